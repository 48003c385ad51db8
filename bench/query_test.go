package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/querytest"
	"github.com/netview/netview/sql/schema"
)

// BenchmarkQuery measures the connections view of a fleet of 10,000
// sensors with 100 active connections each (1,000,000 rows in the latest
// view), in two stores of the same process:
//
//   - "2 beats": two heartbeats per sensor (2,000,000 rows in the table, so
//     the latest filter has history to skip), loaded through the ingest
//     Decoder and Batch (the ingest path minus HTTP);
//   - "12 h": the same fleet after 12 hours of 15-second heartbeats (2,880
//     per sensor) with churn, written straight into the store as its
//     tables hold it after merges (loadHistory). Skipped with
//     NETVIEW_BENCH_HISTORY=0. With NETVIEW_BENCH_MERGED=1 its
//     tcp_connections and heartbeats are merged into one part per
//     partition first (OPTIMIZE ... FINAL): the closed sockets' rows then
//     share every granule with the live ones, the layout no bound on time
//     can skip. As loaded, whether the engine has merged them by the
//     rounds varies from run to run (the active parts are printed).
//
// A real query service per store answers on loopback and a plain net/http
// client asks it:
//
//	page1        GET /api/v2/network/connections?limit=100
//	cursor1000   the same, page 1,000 by cursor (rows 99,900..99,999)
//	page1000     GET /api/v1/network/connections?page=1000&page_size=100
//	raw          the SQL text the service ran for page1, run straight on
//	             the store in the same run (the reference)
//	v1page1      GET /api/v1/network/connections?page=1&page_size=100, the
//	             default (key) order: the reference of the sorted pages
//	sortBinary   the same with sort=binary (a text column)
//	sortDuration the same with sort=-duration_secs (a nullable number)
//
// It does its own repetitions (a warm-up, then querySamples rounds that
// each take the probes of both stores in a shuffled order, so drift on a
// noisy machine and the wake of the previous query hit all alike) and
// reports p50 and p95 of each in milliseconds, the ratios page1/raw,
// cursor1000/page1 and of each sorted page 1 to the default-order v1 page
// 1 (p50), each 12-hour figure over its 2-beat one (p50 and p95), the load
// times and the process RSS after loading (Go and the in-process engine).
// It also prints the service's statements by kind as timed inside the
// store, which says where a request's time goes. Run it once:
//
//	go test -run '^$' -bench Query -benchtime 1x -timeout 20m ./bench/
//
// b.N is ignored: one run is minutes of work and a sample of its own.
func BenchmarkQuery(b *testing.B) {
	sensors := 10_000
	if n, err := strconv.Atoi(os.Getenv("NETVIEW_BENCH_SENSORS")); err == nil && n >= 1000 {
		sensors = n // a smaller fleet, to try the benchmark out (page 1,000 needs 1,000 sensors)
	}
	const (
		beats        = 2
		batchRows    = 100_000
		historyBeats = 12 * 60 * 4 // 12 h of 15-s heartbeats
		warmup       = 3
		querySamples = 30
		budget       = 8 * time.Minute // of the measured rounds; at least 10 are kept
	)
	shape := heartbeat.Shape{Conns: 100}
	ctx := context.Background()
	be := storetest.Embedded(b)
	if _, err := schema.Migrate(ctx, be.Store, schema.Options{}); err != nil {
		b.Fatal(err)
	}

	// Load.
	start := time.Now()
	rows := loadFleet(b, be.Store, sensors, beats, shape, batchRows)
	load := time.Since(start)
	rss, hwm := procStatus("VmRSS"), procStatus("VmHWM")
	parts := activeParts(b, be.Store, "tcp_connections")
	fmt.Printf("query: loaded %d rows (%d sensors x %d heartbeats x %d connections, with sensors and heartbeats rows) in %.1f s (%.0f rows/s); RSS %d MiB, peak %d MiB; tcp_connections: %d active parts\n",
		rows, sensors, beats, shape.Conns, load.Seconds(), float64(rows)/load.Seconds(), rss>>20, hwm>>20, parts)
	fleets := []*benchFleet{{label: "2 beats", be: be}}
	if os.Getenv("NETVIEW_BENCH_HISTORY") != "0" {
		hb := storetest.Embedded(b)
		if _, err := schema.Migrate(ctx, hb.Store, schema.Options{}); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		counts := loadHistory(b, be, hb, historyBeats)
		if os.Getenv("NETVIEW_BENCH_MERGED") == "1" {
			for _, t := range []string{"tcp_connections", "heartbeats"} {
				if err := hb.Store.Exec(ctx, store.Query{SQL: "OPTIMIZE TABLE " + t + " FINAL"}); err != nil {
					b.Fatal(err)
				}
			}
		}
		fmt.Printf("query: history of %d heartbeats per sensor written in %.1f s; rows: %s; RSS %d MiB; tcp_connections: %d active parts\n",
			historyBeats, time.Since(start).Seconds(), counts, procStatus("VmRSS")>>20, activeParts(b, hb.Store, "tcp_connections"))
		b.ReportMetric(time.Since(start).Seconds(), "history-load-s")
		fleets = append(fleets, &benchFleet{label: "12 h", metric: "hist-", be: hb})
	}
	var probes []*probe
	for _, f := range fleets {
		f.setup(b, sensors*shape.Conns)
		probes = append(probes, f.probes...)
	}

	loadBefore := loadavg()
	order := rand.New(rand.NewPCG(1, 2)) // each round takes the probes in a new order
	for _, f := range fleets {
		f.rec.start() // the service's statements, timed inside the store
	}
	began := time.Now()
	for round := 0; round < warmup+querySamples; round++ {
		if round == warmup {
			for _, f := range fleets {
				f.rec.stop()
				f.rec.start()
			}
			began = time.Now()
		}
		runRound(b, probes, order, round >= warmup)
		if round >= warmup+10 && time.Since(began) > budget {
			fmt.Printf("query: stopped after %d rounds (budget %s)\n", round-warmup+1, budget)
			break
		}
	}
	fmt.Printf("query: load average before the rounds %s, after %s (other work on the machine widens p95)\n", loadBefore, loadavg())
	for _, f := range fleets {
		fmt.Printf("query: [%s] active parts after the rounds: tcp_connections %d, heartbeats %d\n", f.label,
			activeParts(b, f.be.Store, "tcp_connections"), activeParts(b, f.be.Store, "heartbeats"))
	}

	for _, f := range fleets {
		engine := f.rec.stop()
		pr := f.probes
		fmt.Printf("query: [%s] %-28s %9s %9s %9s\n", f.label, "(ms, n="+strconv.Itoa(len(pr[0].d))+")", "p50", "p95", "max")
		for _, p := range pr {
			p50, p95, mx := pct(p.d, 0.50), pct(p.d, 0.95), pct(p.d, 1)
			fmt.Printf("query: [%s] %-28s %9.1f %9.1f %9.1f\n", f.label, p.name, ms(p50), ms(p95), ms(mx))
			b.ReportMetric(ms(p50), p.metric+"-p50-ms")
			b.ReportMetric(ms(p95), p.metric+"-p95-ms")
		}
		// The service's statements by kind, as timed inside the store.
		for _, kind := range []string{"page", "keyset page", "offset page", "seek", "sorted page", "count", "flows page"} {
			var d []time.Duration
			for _, s := range engine {
				if s.kind() == kind {
					d = append(d, s.took)
				}
			}
			if len(d) > 0 {
				fmt.Printf("query: [%s]   in the store: %-13s %9.1f %9.1f   (n=%d)\n", f.label, kind, ms(pct(d, 0.5)), ms(pct(d, 0.95)), len(d))
			}
		}
		r1 := ms(pct(pr[1].d, 0.5)) / ms(pct(pr[0].d, 0.5))
		r2 := ms(pct(pr[2].d, 0.5)) / ms(pct(pr[1].d, 0.5))
		fmt.Printf("query: [%s] page1/raw %.2f (aim <= 1.5), cursor1000/page1 %.2f (aim <= 1.5), worst p95 of pages 1 and 1,000 %.1f ms (aim < 200)\n",
			f.label, r1, r2, slices.Max([]float64{ms(pct(pr[1].d, .95)), ms(pct(pr[2].d, .95)), ms(pct(pr[3].d, .95))}))
		rb := ms(pct(pr[5].d, 0.5)) / ms(pct(pr[4].d, 0.5))
		rd := ms(pct(pr[6].d, 0.5)) / ms(pct(pr[4].d, 0.5))
		fmt.Printf("query: [%s] sorted v1 page 1 / key-order v1 page 1: sort=binary %.1f, sort=-duration_secs %.1f\n", f.label, rb, rd)
		b.ReportMetric(r1, f.metric+"page1/raw")
		b.ReportMetric(r2, f.metric+"cursor1000/page1")
		b.ReportMetric(rb, f.metric+"sortBinary/v1page1")
		b.ReportMetric(rd, f.metric+"sortDuration/v1page1")
	}
	if len(fleets) == 2 {
		// Each figure with history over the same figure without, in the
		// same rounds (aim: at most 1.5).
		for i, p := range fleets[0].probes {
			h := fleets[1].probes[i]
			r50, r95 := ms(pct(h.d, 0.5))/ms(pct(p.d, 0.5)), ms(pct(h.d, 0.95))/ms(pct(p.d, 0.95))
			fmt.Printf("query: 12 h / 2 beats: %-28s p50 %.2f p95 %.2f\n", p.name, r50, r95)
			b.ReportMetric(r50, "hist/"+p.metric+"-p50")
		}
	}
	b.ReportMetric(load.Seconds(), "load-s")
	b.ReportMetric(float64(rss>>20), "rss-MiB")
	b.ReportMetric(0, "ns/op")
}

// benchFleet is one store of BenchmarkQuery, its query service and probes.
type benchFleet struct {
	label, metric string // metric: the prefix of its metrics
	be            storetest.Backend
	rec           *recorder
	probes        []*probe
}

// setup starts a query service on f's store and makes its probes. Not
// timed: page 1 once (recording its SQL for the raw run), the cursor of
// page 1,000, and checks that the pages are what they claim.
func (f *benchFleet) setup(b *testing.B, live int) {
	ctx := context.Background()
	f.rec = &recorder{Store: f.be.Store}
	cfg := query.Config{Tokens: auth.TokenFlags{List: token}, MaxListRows: 10_000, Timeout: 60 * time.Second}
	srv, err := query.New(cfg, f.rec, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	c := &client{base: querytest.Serve(b, srv), http: &http.Client{Timeout: 2 * time.Minute}}

	const page1 = "/api/v2/network/connections?limit=100"
	f.rec.start()
	var first v2Page
	c.getJSON(b, page1, &first)
	calls := f.rec.stop()
	if len(first.Connections) != 100 || first.Next == "" {
		b.Fatalf("[%s] page 1: %d rows, next cursor %q", f.label, len(first.Connections), first.Next)
	}
	if len(calls) != 1 {
		b.Fatalf("[%s] page 1 ran %d statements, want 1", f.label, len(calls))
	}
	raw := calls[0]

	walk := time.Now()
	cursor := c.cursorAt(b, 999*100) // after row 99,899: the start of page 1,000
	walked := time.Since(walk)
	cursor1000 := "/api/v2/network/connections?limit=100&cursor=" + url.QueryEscape(cursor)
	const page1000 = "/api/v1/network/connections?page=1000&page_size=100"
	var byCursor v2Page
	c.getJSON(b, cursor1000, &byCursor)
	var byNumber v1Page
	c.getJSON(b, page1000, &byNumber)
	if byNumber.Total != uint64(live) {
		b.Fatalf("[%s] v1 total %d, want %d", f.label, byNumber.Total, live)
	}
	if k1, k2 := keysOf(byCursor.Connections), keysOf(byNumber.Connections); len(k1) != 100 || !slices.Equal(k1, k2) {
		b.Fatalf("[%s] page 1,000 differs by cursor and by number (%d and %d rows)", f.label, len(k1), len(k2))
	}
	fmt.Printf("query: [%s] cursor of page 1,000 found in %.1f s (walk of 100 pages at limit=1000, untimed)\n", f.label, walked.Seconds())

	// Page 1 of v1 connections in the default order and sorted by two
	// columns that are not the key: the sorted pages must group the whole
	// view, the default one stops early. Checked to be sorted.
	const v1page1 = "/api/v1/network/connections?page=1&page_size=100"
	sortBinary, sortDuration := v1page1+"&sort=binary", v1page1+"&sort=-duration_secs"
	var sorted v1Page
	c.getJSON(b, sortBinary, &sorted)
	for i := 1; i < len(sorted.Connections); i++ {
		if sorted.Connections[i-1]["binary"].(string) > sorted.Connections[i]["binary"].(string) {
			b.Fatalf("[%s] sort=binary: row %d is out of order", f.label, i)
		}
	}
	c.getJSON(b, sortDuration, &sorted)
	if d, ok := sorted.Connections[0]["duration_secs"].(float64); len(sorted.Connections) != 100 || !ok || d != 14 {
		b.Fatalf("[%s] sort=-duration_secs: %d rows, first duration %v, want 14", f.label, len(sorted.Connections), sorted.Connections[0]["duration_secs"])
	}

	m := f.metric
	f.probes = []*probe{
		{name: "raw SQL of page 1 (store)", metric: m + "raw", run: func() error { return raw.rerun(ctx, f.be.Store) }},
		{name: "v2 page 1", metric: m + "page1", run: func() error { return c.get(page1) }},
		{name: "v2 page 1,000 by cursor", metric: m + "cursor1000", run: func() error { return c.get(cursor1000) }},
		{name: "v1 page 1,000 by number", metric: m + "page1000", run: func() error { return c.get(page1000) }},
		{name: "v1 page 1 (key order)", metric: m + "v1page1", run: func() error { return c.get(v1page1) }},
		{name: "v1 page 1 sort=binary", metric: m + "sortBinary", run: func() error { return c.get(sortBinary) }},
		{name: "v1 page 1 sort=-duration_secs", metric: m + "sortDuration", run: func() error { return c.get(sortDuration) }},
	}
}

// loadHistory writes into dst what its tables hold after beats 15-second
// heartbeats of src's fleet (src holds the last two), merged as the
// engine merges them, with one connection of each sensor closing and one
// opening every heartbeat. Pushing 2,880 heartbeats of 10,000 sensors
// through the decoder would take hours; the engine writes this in about a
// minute, by INSERT ... SELECT from src:
//
//   - every row of src, its seq moved up to the last two of beats (the
//     current state: each live socket's two newest rows, not yet merged);
//   - the live snapshot rows and the sensors rows once more at the two
//     seqs before, 30 s older: a tail of four heartbeats not yet collapsed;
//   - per sensor, one dead connection for each earlier heartbeat, with its
//     last row at that heartbeat's seq and time (a closed socket is never
//     replaced, so it stays until its TTL);
//   - the heartbeats row of every earlier heartbeat (ReplacingMergeTree on
//     (sensor_id, seq) keeps each), with the same counts.
//
// It returns the row counts of the tables written, as text.
func loadHistory(b *testing.B, src, dst storetest.Backend, beats int) string {
	ctx := context.Background()
	tables := map[string][]string{} // the tables src holds rows of, with their columns
	var tn, cn proto.ColStr
	err := dst.Store.Select(ctx, store.Query{
		SQL: "SELECT c.table AS t, c.name AS c FROM system.columns AS c JOIN system.parts AS p ON p.database = c.database AND p.table = c.table" +
			" WHERE c.database = {db:String} AND p.active AND p.rows > 0 GROUP BY c.table, c.name, c.position ORDER BY c.table, c.position",
		Params: []store.Param{store.P("db", src.DB)},
	}, proto.Results{{Name: "t", Data: &tn}, {Name: "c", Data: &cn}}, func(rows int) error {
		for i := range rows {
			tables[tn.Row(i)] = append(tables[tn.Row(i)], cn.Row(i))
		}
		tn.Reset()
		cn.Reset()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	// insert copies table t from src (FROM from, if given) with the
	// columns in repl replaced by expressions.
	insert := func(t, from string, repl map[string]string) {
		cols := tables[t]
		sel := make([]string, len(cols))
		for i, c := range cols {
			sel[i] = c
			if e, ok := repl[c]; ok {
				sel[i] = e + " AS " + c
			}
		}
		if from == "" {
			from = src.DB + "." + t
		}
		q := "INSERT INTO " + dst.DB + "." + t + " (" + strings.Join(cols, ", ") + ") SELECT " + strings.Join(sel, ", ") + " FROM " + from
		if err := dst.Store.Exec(ctx, store.Query{SQL: q}); err != nil {
			b.Fatalf("%s: %v", t, err)
		}
	}
	shift := strconv.Itoa(beats - 2)
	before := strconv.Itoa(beats - 4)
	older := func(t string) map[string]string {
		r := map[string]string{"seq": "seq + " + before}
		for _, c := range []string{"observed_at", "sent_at", "received_at"} {
			if slices.Contains(tables[t], c) {
				r[c] = c + " - toIntervalSecond(30)"
			}
		}
		return r
	}
	for t, cols := range tables {
		if t == "schema_migrations" {
			continue
		}
		if !slices.Contains(cols, "seq") {
			insert(t, "", nil) // not per heartbeat: as it is
			continue
		}
		insert(t, "", map[string]string{"seq": "seq + " + shift})
		switch t {
		case "tcp_connections", "tcp_listeners", "udp_listeners", "active_flows", "sensors":
			insert(t, "", older(t))
		}
	}
	// Seq k of the history is (beats-1-k) heartbeats before src's seq 1.
	dead := strconv.Itoa(beats - 4)
	ago := "toIntervalSecond(15 * (" + strconv.Itoa(beats-1) + " - (number + 1)))"
	insert("tcp_connections", "(SELECT * FROM "+src.DB+".tcp_connections WHERE seq = 1 LIMIT 1 BY sensor_id) AS t CROSS JOIN numbers("+dead+") AS n",
		map[string]string{
			"seq": "number + 1", "observed_at": "observed_at - " + ago, "first_seen": "observed_at - " + ago + " - toIntervalSecond(600)",
			"local_port": "toUInt16(32768 + (number * 7919) % 28000)", "inode": "inode + bitShiftLeft(number + 1, 33)",
		})
	insert("heartbeats", "(SELECT * FROM "+src.DB+".heartbeats WHERE seq = 1) AS h CROSS JOIN numbers("+strconv.Itoa(beats-2)+") AS n",
		map[string]string{"seq": "number + 1", "heartbeat_id": "generateUUIDv4(number)", "sent_at": "sent_at - " + ago,
			"received_at": "received_at - " + ago})

	var out []string
	for _, t := range slices.Sorted(maps.Keys(tables)) {
		if t == "schema_migrations" {
			continue
		}
		var n proto.ColUInt64
		var c uint64
		if err := dst.Store.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM " + dst.DB + "." + t}, proto.Results{{Name: "n", Data: &n}},
			func(int) error { c = n.Row(0); return nil }); err != nil {
			b.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %d", t, c))
	}
	return strings.Join(out, ", ")
}

// loadFleet writes beats heartbeats of every sensor through the ingest
// Decoder into Batches of about batchRows connection rows, decoding the
// next batch while the last one is inserted. It returns the rows written.
func loadFleet(b testing.TB, st store.Store, sensors, beats int, shape heartbeat.Shape, batchRows int) int {
	ctx := context.Background()
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(i+1), shape)
	}
	perBatch := max(1, batchRows/max(1, shape.Conns))
	base := time.Now().Add(-time.Duration(beats) * 15 * time.Second)
	free := make(chan *ingest.Batch, 2)
	free <- ingest.NewBatch()
	free <- ingest.NewBatch()
	full := make(chan *ingest.Batch, 1)
	errc := make(chan error, 1)
	go func() {
		defer close(full)
		var dec ingest.Decoder
		for k := range beats {
			at := base.Add(time.Duration(k) * 15 * time.Second)
			dec.Now = func() time.Time { return at }
			for lo := 0; lo < sensors; lo += perBatch {
				batch := <-free
				for _, g := range gens[lo:min(lo+perBatch, sensors)] {
					doc, err := json.Marshal(g.Next(at))
					if err == nil {
						_, err = dec.Decode(doc, batch)
					}
					if err != nil {
						errc <- err
						return
					}
				}
				full <- batch
			}
		}
	}()
	rows := 0
	for batch := range full {
		if refused, err := batch.Insert(ctx, st); err != nil || len(refused) > 0 {
			b.Fatal(err, refused)
		}
		rows += batch.Rows()
		batch.Reset()
		free <- batch
	}
	select {
	case err := <-errc:
		b.Fatal(err)
	default:
	}
	return rows
}

// probe is one thing measured and its samples.
type probe struct {
	name, metric string
	run          func() error
	d            []time.Duration
}

// runRound runs every probe once in an order drawn from order, so no probe
// always follows another, and keeps the times when keep (after warm-up).
func runRound(b *testing.B, probes []*probe, order *rand.Rand, keep bool) {
	for _, i := range order.Perm(len(probes)) {
		p := probes[i]
		t0 := time.Now()
		if err := p.run(); err != nil {
			b.Fatalf("%s: %v", p.name, err)
		}
		if keep {
			p.d = append(p.d, time.Since(t0))
		}
	}
}

// pct is the nearest-rank percentile q of d.
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// recorder is a store that notes the statements run through it while on.
type recorder struct {
	store.Store
	mu    sync.Mutex
	on    bool
	calls []statement
}

type statement struct {
	q     store.Query
	names []string // result columns
	took  time.Duration
}

func (r *recorder) Select(ctx context.Context, q store.Query, res proto.Results, onBlock func(int) error) error {
	t0 := time.Now()
	err := r.Store.Select(ctx, q, res, onBlock)
	took := time.Since(t0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.on {
		names := make([]string, len(res))
		for i, c := range res {
			names[i] = c.Name
		}
		r.calls = append(r.calls, statement{q: q, names: names, took: took})
	}
	return err
}

func (r *recorder) start() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on, r.calls = true, nil
}

func (r *recorder) stop() []statement {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.on = false
	return r.calls
}

// kind names what a statement of the connections endpoints is.
func (s statement) kind() string {
	has := func(p string) bool {
		for _, x := range s.q.Params {
			if x.Name == p {
				return true
			}
		}
		return false
	}
	switch {
	case strings.HasPrefix(s.q.SQL, "SELECT toUInt64(sum(n)) AS n FROM (SELECT sensor_id"):
		return "count"
	case strings.Contains(s.q.SQL, " NULLS "):
		return "sorted page"
	case strings.Contains(s.q.SQL, "FROM active_flows"):
		return "flows page"
	case strings.HasSuffix(s.q.SQL, "GROUP BY sensor_id ORDER BY sensor_id"):
		return "seek"
	case has("offset"):
		return "offset page"
	case has("k0"):
		return "keyset page"
	}
	return "page"
}

// rerun runs the statement again straight on st, decoding its columns as
// the service does but writing no JSON.
func (s statement) rerun(ctx context.Context, st store.Store) error {
	res := make(proto.Results, len(s.names))
	for i, n := range s.names {
		res[i] = proto.ResultColumn{Name: n, Data: &proto.ColAuto{}}
	}
	n := 0
	err := st.Select(ctx, s.q, res, func(rows int) error { n += rows; return nil })
	if err == nil && n != 100 {
		err = fmt.Errorf("%d rows, want 100", n)
	}
	return err
}

// client is a plain HTTP client of the query service.
type client struct {
	base string
	http *http.Client
}

func (c *client) fetch(path string) ([]byte, error) {
	req, err := http.NewRequest("GET", c.base+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("%s: %d %s", path, resp.StatusCode, body)
	}
	return body, err
}

// get fetches path and reads the whole answer: what a timed round does.
func (c *client) get(path string) error {
	_, err := c.fetch(path)
	return err
}

func (c *client) getJSON(b *testing.B, path string, out any) {
	body, err := c.fetch(path)
	if err == nil {
		err = json.Unmarshal(body, out)
	}
	if err != nil {
		b.Fatal(err)
	}
}

// cursorAt walks the v2 connections view to the cursor that follows row
// skip (the limit is not part of a cursor, so the walk takes big pages).
func (c *client) cursorAt(b *testing.B, skip int) string {
	cursor := ""
	for skip > 0 {
		n := min(skip, 1000)
		path := "/api/v2/network/connections?limit=" + strconv.Itoa(n)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		var p v2Page
		c.getJSON(b, path, &p)
		if len(p.Connections) != n || p.Next == "" {
			b.Fatalf("walk: %d rows, want %d", len(p.Connections), n)
		}
		cursor, skip = p.Next, skip-n
	}
	return cursor
}

type v2Page struct {
	Connections []map[string]any `json:"connections"`
	Next        string           `json:"next_cursor"`
}

type v1Page struct {
	Connections []map[string]any `json:"connections"`
	Total       uint64           `json:"total"`
}

// keysOf returns the unique key of each row, as text.
func keysOf(rows []map[string]any) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = fmt.Sprint(r["sensor_id"], r["netns"], r["local_address"], r["local_port"], r["remote_address"], r["remote_port"], r["inode"])
	}
	return out
}

// procStatus returns a size field of /proc/self/status in bytes.
func procStatus(field string) uint64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// activeParts counts a table's active parts in the store's database.
func activeParts(b testing.TB, st store.Store, table string) uint64 {
	var n proto.ColUInt64
	var parts uint64
	err := st.Select(context.Background(), store.Query{
		SQL:    "SELECT count() AS n FROM system.parts WHERE database = currentDatabase() AND table = {t:String} AND active",
		Params: []store.Param{store.P("t", table)},
	}, proto.Results{{Name: "n", Data: &n}}, func(int) error { parts = n.Row(0); return nil })
	if err != nil {
		b.Logf("parts: %v", err)
	}
	return parts
}

// loadavg is the machine's 1-minute load average, as text.
func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(data))[0]
}

// huntQuestions are an analyst's first questions, asked of the events list
// (GET /api/v2/events) with the hunting filters over the last 7 days, as
// the console asks them: the statement timed is the one query/filter.go and
// the events endpoint write, FINAL and all. Each names what it looks for;
// the generator plants each in about 100 events of the 30 days.
var huntQuestions = []struct{ name, filter string }{
	{"address", "addr=203.0.113.7"},
	// Asked in another case than stored: dns= matches without regard to
	// case, which is why the filter compares lower(query_name).
	{"dns-suffix", "dns=" + url.QueryEscape("*.EVIL.example")},
	{"port", "port=8805"},
	{"binary", "kind=network_connect&binary=curl"},
}

// The ways BenchmarkHunt runs each question's statement. The query
// condition cache is off in all: it remembers which granules a repeated
// condition matched, so from the second round on it would answer a scan
// and an indexed run alike from memory, and each sample is to be a first
// ask.
var huntModes = []struct{ name, settings string }{
	// As the service runs it: FINAL without exact mode (its statement
	// says so), which keeps the granules the skip indexes skipped.
	{"indexed", "use_query_condition_cache = 0"},
	// The full scan of the same SQL: every accelerator off.
	{"scan", "use_skip_indexes = 0, optimize_use_projections = 0, use_query_condition_cache = 0"},
	// The engine's default exact mode, which the service ran before: a
	// granule the index keeps is widened to every granule whose key range
	// meets it (see the Hunting indexes section of docs/performance.md).
	{"exact", "use_skip_indexes_if_final_exact_mode = 1, use_query_condition_cache = 0"},
}

// withSettings adds settings to statement sql, after the SETTINGS clause
// the statement may end with already (the later value of a setting wins).
func withSettings(sql, settings string) string {
	if i := strings.LastIndex(sql, "SETTINGS "); i >= 0 && !strings.Contains(sql[i:], ")") {
		return sql + ", " + settings
	}
	return sql + " SETTINGS " + settings
}

// BenchmarkHunt asks huntQuestions of NETVIEW_HUNT_EVENTS events (default
// 100,000,000) from 10,000 sensors over 30 days, generated straight into
// the events table by the engine (INSERT ... SELECT FROM numbers). A real
// query service on loopback answers each question once, which records the
// statement it runs; that statement is then run straight on the store in
// each of huntModes, and the question is asked over HTTP, in alternating
// rounds of the same run. It reports p50 and p95 of each in milliseconds,
// scan/indexed and scan/exact at p50 (the speed-ups), and prints the
// granules each mode reads (EXPLAIN indexes = 1). Run it once:
//
//	NETVIEW_HUNT_EVENTS=100000000 go test -run '^$' -bench Hunt -benchtime 1x -timeout 60m ./bench/
//
// b.N is ignored: the load is minutes of work and the rounds are its
// samples.
func BenchmarkHunt(b *testing.B) {
	events := 100_000_000
	if v := os.Getenv("NETVIEW_HUNT_EVENTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1_000_000 {
			b.Fatalf("NETVIEW_HUNT_EVENTS=%q: want a number of events, at least 1,000,000", v)
		}
		events = n
	}
	const rounds = 7
	ctx := context.Background()
	be := storetest.Embedded(b)
	if _, err := schema.Migrate(ctx, be.Store, schema.Options{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	loadEvents(b, be.Store, events)
	gen := time.Since(start)
	var disk uint64
	var bytes proto.ColUInt64
	if err := be.Store.Select(ctx, store.Query{SQL: "SELECT sum(bytes_on_disk) AS n FROM system.parts WHERE database = currentDatabase() AND table = 'events' AND active"},
		proto.Results{{Name: "n", Data: &bytes}}, func(int) error { disk = bytes.Row(0); return nil }); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("hunt: generated %d events from 10,000 sensors over 30 days in %v; events: %d active parts, %d MiB on disk\n",
		events, gen.Round(time.Second), activeParts(b, be.Store, "events"), disk>>20)

	rec := &recorder{Store: be.Store}
	srv, err := query.New(query.Config{Tokens: auth.TokenFlags{List: token}, MaxListRows: 10_000, Timeout: 10 * time.Minute}, rec, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	c := &client{base: querytest.Serve(b, srv), http: &http.Client{Timeout: 10 * time.Minute}}
	since := time.Now().UTC().Add(-7 * 24 * time.Hour).Format(time.RFC3339)
	fmt.Printf("hunt: load average before the rounds %s\n", loadavg())
	for _, q := range huntQuestions {
		path := "/api/v2/events?limit=1000&since=" + since + "&" + q.filter
		rec.start()
		var page struct {
			Events []map[string]any `json:"events"`
		}
		c.getJSON(b, path, &page)
		calls := rec.stop()
		if len(calls) != 1 {
			b.Fatalf("%s: the service ran %d statements, want 1", q.name, len(calls))
		}
		if len(page.Events) == 0 || len(page.Events) == 1000 {
			b.Fatalf("%s: %d events: want some of the planted ones, and all of them on one page", q.name, len(page.Events))
		}
		stmt := calls[0]
		for _, m := range huntModes {
			fmt.Printf("hunt: %-10s %-8s reads %s\n", q.name, m.name, huntGranules(b, be.Store, stmt.q, m.settings))
		}
		d := make([][]time.Duration, len(huntModes)+1) // the modes, then HTTP
		for r := range rounds + 1 {
			for i, m := range huntModes {
				t0 := time.Now()
				n := huntRun(b, be.Store, stmt, m.settings)
				if r > 0 {
					d[i] = append(d[i], time.Since(t0))
				}
				if n != len(page.Events) {
					b.Fatalf("%s: %d rows %s, %d as served", q.name, n, m.name, len(page.Events))
				}
			}
			t0 := time.Now()
			if err := c.get(path); err != nil {
				b.Fatal(err)
			}
			if r > 0 {
				d[len(huntModes)] = append(d[len(huntModes)], time.Since(t0))
			}
		}
		for i, name := range []string{"", "-scan", "-exact", "-http"} {
			b.ReportMetric(ms(pct(d[i], 0.5)), q.name+name+"-p50-ms")
			b.ReportMetric(ms(pct(d[i], 0.95)), q.name+name+"-p95-ms")
		}
		b.ReportMetric(float64(pct(d[1], 0.5))/float64(pct(d[0], 0.5)), q.name+"-scan/indexed")
		b.ReportMetric(float64(pct(d[1], 0.5))/float64(pct(d[2], 0.5)), q.name+"-scan/exact")
		fmt.Printf("hunt: %-10s %d events; p50/p95 ms: indexed %.0f/%.0f, scan %.0f/%.0f, exact mode %.0f/%.0f, over HTTP %.0f/%.0f\n",
			q.name, len(page.Events), ms(pct(d[0], 0.5)), ms(pct(d[0], 0.95)), ms(pct(d[1], 0.5)), ms(pct(d[1], 0.95)),
			ms(pct(d[2], 0.5)), ms(pct(d[2], 0.95)), ms(pct(d[3], 0.5)), ms(pct(d[3], 0.95)))
	}
	fmt.Printf("hunt: load average after the rounds %s (other work on the machine widens p95)\n", loadavg())
	b.ReportMetric(gen.Seconds(), "generate-s")
	b.ReportMetric(0, "ns/op")
}

// loadEvents generates n events into events: 10,000 sensors, times spread
// evenly over the last 30 days, five kinds. About 100 events each, whatever
// n, carry the values huntQuestions look for (203.0.113.7, a name under
// evil.example in mixed case, curl, port 8805); the rest carry common
// values. Inserts go a day's worth
// at a time, under the engine's partitions-per-insert limit.
func loadEvents(b *testing.B, st store.Store, n int) {
	b.Helper()
	const days = 30
	per := (n + days - 1) / days
	for d := range days {
		from, to := d*per, min((d+1)*per, n)
		if from >= to {
			break
		}
		sql := fmt.Sprintf(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol,
			src_address, src_port, dst_address, dst_port, pid, binary, binary_path, query_name, answers, source)
		SELECT generateUUIDv4(number) AS event_id,
			toUUID(concat('00000000-0000-4000-8000-', leftPad(lower(hex(toUInt16(number %% 10000))), 12, '0'))) AS sensor_id,
			['network_connect', 'network_accept', 'dns_query', 'dns_lookup', 'network_listen'][1 + h %% 5] AS kind,
			now64(3) - toIntervalMillisecond(intDiv(number * %d, %d)) AS time, time AS received_at, 'tcp' AS protocol,
			toIPv6(IPv4NumToString(toUInt32(167772160 + bitShiftRight(h, 8) %% 65536))) AS src_address, toUInt16(32768 + bitShiftRight(h, 24) %% 28000) AS src_port,
			if(rare(1), toIPv6('203.0.113.7'), toIPv6(IPv4NumToString(toUInt32(167837696 + bitShiftRight(h, 32) %% 4096)))) AS dst_address,
			if(rare(2), 8805, [443, 80, 5432, 53, 8080][1 + bitShiftRight(h, 40) %% 5]) AS dst_port,
			toUInt32(1000 + bitShiftRight(h, 12) %% 30000) AS pid,
			if(rare(3), 'curl', ['nginx', 'envoy', 'postgres', 'sshd', 'java', 'python3', 'node'][1 + bitShiftRight(h, 44) %% 7]) AS binary,
			concat('/usr/bin/', binary) AS binary_path,
			if(kind IN ('dns_query', 'dns_lookup'), if(rare(4), 'c2.Evil.example', concat('svc', toString(bitShiftRight(h, 20) %% 100000), '.corp.example')), '') AS query_name,
			if(kind = 'dns_lookup', [dst_address], []) AS answers, 'ebpf' AS source
		FROM (SELECT number, cityHash64(number) AS h FROM numbers(%d, %d))`,
			int64(days)*24*3600*1000, n, from, to-from)
		// rare(k): about one row in n/100 (a million at 100,000,000), a
		// different one for each k.
		for k := 1; k <= 4; k++ {
			sql = strings.ReplaceAll(sql, fmt.Sprintf("rare(%d)", k), fmt.Sprintf("(cityHash64(number, %d) %% %d = 0)", k, max(n/100, 1)))
		}
		if err := st.Exec(context.Background(), store.Query{SQL: sql}); err != nil {
			b.Fatalf("generate day %d: %v", d, err)
		}
	}
}

// huntRun runs the service's statement s straight on st with settings,
// decoding its columns as the service does, and returns its rows.
func huntRun(b *testing.B, st store.Store, s statement, settings string) int {
	b.Helper()
	res := make(proto.Results, len(s.names))
	for i, n := range s.names {
		res[i] = proto.ResultColumn{Name: n, Data: &proto.ColAuto{}}
	}
	q := s.q
	q.SQL = withSettings(q.SQL, settings)
	n := 0
	if err := st.Select(context.Background(), q, res, func(rows int) error { n += rows; return nil }); err != nil {
		b.Fatal(err)
	}
	return n
}

// huntGranules is what the events read of q with settings reads, as
// EXPLAIN indexes = 1 says: "Parts: p | Granules: g" of the granules left
// to read, and each index step's kept/given granules.
func huntGranules(b *testing.B, st store.Store, q store.Query, settings string) string {
	b.Helper()
	q.SQL = "EXPLAIN indexes = 1 " + withSettings(q.SQL, settings)
	var col proto.ColStr
	var out []string
	name := ""
	if err := st.Select(context.Background(), q, proto.Results{{Name: "explain", Data: &col}}, func(r int) error {
		for i := range r {
			l := strings.TrimLeft(col.Row(i), " │├└─")
			switch {
			case strings.HasPrefix(l, "Parts: ") && strings.Contains(l, "| Granules:") && len(out) == 0:
				out = append(out, l)
			case strings.HasPrefix(l, "Name: "):
				name = strings.TrimPrefix(l, "Name: ")
			case l == "PrimaryKeyExpand":
				name = l
			case strings.HasPrefix(l, "Granules: ") && name != "":
				out = append(out, name+" "+strings.TrimPrefix(l, "Granules: "))
				name = ""
			}
		}
		col.Reset()
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	return strings.Join(out, "; ")
}

// BenchmarkQueryAt measures the views at a moment 6 hours back (at=, read
// from the snapshot history) against now, in the same rounds, on a store
// of 12 hours of 15-second heartbeats written through the ingest decoder
// and batch insert (so the history tables are filled as in production).
// The fleet is small, NETVIEW_BENCH_AT_SENSORS (default 50), since every
// heartbeat is written: BenchmarkQuery's 12 h store is written by INSERT
// ... SELECT of what merges leave, which holds no history to travel in.
// Reported: each probe's p50 at 6 h back over its p50 now (aim: at most
// 1.5).
func BenchmarkQueryAt(b *testing.B) {
	sensors := 50
	if n, err := strconv.Atoi(os.Getenv("NETVIEW_BENCH_AT_SENSORS")); err == nil && n > 0 {
		sensors = n
	}
	const (
		beats   = 12 * 60 * 4
		warmup  = 3
		samples = 20
	)
	shape := heartbeat.Shape{Conns: 40, Listeners: 10, UDP: 5, ActiveFlows: 10}
	ctx := context.Background()
	be := storetest.Embedded(b)
	if _, err := schema.Migrate(ctx, be.Store, schema.Options{}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	rows := loadFleet(b, be.Store, sensors, beats, shape, 100_000)
	fmt.Printf("query at: loaded %d rows (%d sensors x %d heartbeats of %+v) in %.1f s; tcp_connections_history: %d active parts\n",
		rows, sensors, beats, shape, time.Since(start).Seconds(), activeParts(b, be.Store, "tcp_connections_history"))
	cfg := query.Config{Tokens: auth.TokenFlags{List: token}, MaxListRows: 10_000, Timeout: 60 * time.Second}
	srv, err := query.New(cfg, be.Store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	c := &client{base: querytest.Serve(b, srv), http: &http.Client{Timeout: 2 * time.Minute}}
	at := "at=" + strconv.FormatInt(time.Now().Add(-6*time.Hour).UnixMilli(), 10)
	paths := []string{"/api/v2/network/connections?limit=100", "/api/v1/network/connections?page=1&page_size=100",
		"/api/v1/network/connections?page=20&page_size=100", "/api/v2/network/listening?limit=100", "/api/v2/network/flows?limit=100",
		"/api/v1/network/summary", "/api/v2/network/graph?limit=100"}
	var now, back []*probe
	for _, p := range paths {
		sep := "?"
		if strings.Contains(p, "?") {
			sep = "&"
		}
		now = append(now, &probe{name: p, run: func() error { return c.get(p) }})
		back = append(back, &probe{name: p, run: func() error { return c.get(p + sep + at) }})
	}
	// Both see the whole fleet: at 6 h back each sensor's heartbeat then.
	var n1, n2 v1Page
	c.getJSON(b, paths[1], &n1)
	c.getJSON(b, paths[1]+"&"+at, &n2)
	if n1.Total == 0 || n2.Total != n1.Total {
		b.Fatalf("v1 total now %d, 6 h back %d: want the same fleet", n1.Total, n2.Total)
	}
	probes := append(append([]*probe{}, now...), back...)
	order := rand.New(rand.NewPCG(3, 4))
	for round := range warmup + samples {
		runRound(b, probes, order, round >= warmup)
	}
	fmt.Printf("query at: load average %s; %-52s %8s %8s %6s\n", loadavg(), "(p50 ms, n="+strconv.Itoa(samples)+")", "now", "6h back", "ratio")
	for i, p := range now {
		r := ms(pct(back[i].d, 0.5)) / ms(pct(p.d, 0.5))
		fmt.Printf("query at: %-60s %8.1f %8.1f %6.2f\n", p.name, ms(pct(p.d, 0.5)), ms(pct(back[i].d, 0.5)), r)
		b.ReportMetric(r, "at/now-"+strconv.Itoa(i))
	}
	b.ReportMetric(0, "ns/op")
}
