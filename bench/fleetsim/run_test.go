package fleetsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
)

// run runs cfg with a deadline well past its own bounds, so a hung run
// fails the test instead of hanging it.
func run(t *testing.T, cfg Config) Report {
	t.Helper()
	limit := cfg.Duration + max(cfg.Drain, 0) + 60*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("Run: %v (after %v)", err, time.Since(start))
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("report:\n%s", b.String())
	return rep
}

func checkLatency(t *testing.T, name string, l Latency) {
	t.Helper()
	if l.Count == 0 || l.Min <= 0 || !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Errorf("%s latency not sane: %+v", name, l)
	}
}

func fleetIDs(rep *Report) store.Param { return store.P("ids", uuidArray(rep.SensorIDs())) }

// A fleet of 500 sensors, one heartbeat a second each for 10 s, against a
// real ingest node on the embedded engine: every acknowledged heartbeat is
// stored exactly once, nothing else is, and the rows the acknowledgements
// counted are the rows the tables hold.
func TestFleetAgainstIngest(t *testing.T) {
	cfg := ingesttest.Config()
	cfg.BatchAge, cfg.BatchRows, cfg.MaxPending, cfg.AckTimeout = 200*time.Millisecond, 50_000, 1_000_000, 20*time.Second
	node := ingesttest.Start(t, cfg, nil)
	ctx := context.Background()
	// Rows of one socket in consecutive heartbeats are collapsed by merges;
	// stop them so the tables can be counted per heartbeat.
	for _, tbl := range append(SnapshotTables, "flows", "events") {
		if err := node.Store.Exec(ctx, store.Query{SQL: "SYSTEM STOP MERGES " + tbl}); err != nil {
			t.Fatalf("stop merges on %s: %v", tbl, err)
		}
	}

	sensors := 500
	if raceEnabled {
		sensors = 50
	}
	rep := run(t, Config{Sensors: sensors, Interval: time.Second, Duration: 10 * time.Second, Drain: 40 * time.Second,
		Targets: []string{node.URL}, Token: ingesttest.Token, Seed: 8, StartSeq: 1, TelecomShare: 0.04})

	telecom := sensors / 25
	if rep.TelecomSensors != telecom {
		t.Errorf("%d telecom sensors, want %d", rep.TelecomSensors, telecom)
	}
	if want := uint64(sensors * 10); rep.Offered < want*9/10 || rep.Offered > want*11/10 {
		t.Errorf("offered %d heartbeats, want about %d", rep.Offered, want)
	}
	if rep.Accepted != rep.Offered || rep.Rejected+rep.Dropped+rep.InDoubt+rep.Unsent != 0 {
		t.Errorf("offered %d, accepted %d, rejected %d, dropped %d, in doubt %d, unsent %d", rep.Offered, rep.Accepted, rep.Rejected, rep.Dropped, rep.InDoubt, rep.Unsent)
	}
	if rep.RowMismatches+rep.AckMismatches != 0 {
		t.Errorf("%d row mismatches, %d ack mismatches", rep.RowMismatches, rep.AckMismatches)
	}
	checkLatency(t, "ack", rep.Latency)
	checkLatency(t, "request", rep.RequestLatency)
	if rep.RowsPerSec <= 0 || rep.AcceptedPerSec <= 0 || rep.Rows == 0 {
		t.Errorf("rates: %.0f rows/s, %.0f hb/s, %d rows", rep.RowsPerSec, rep.AcceptedPerSec, rep.Rows)
	}

	v, err := Verify(ctx, node.Store, &rep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("store: %s; tables %v", v.String(), v.Tables)
	if !v.OK() || v.Stored != int(rep.Accepted) || v.StoredRaw != int(rep.Accepted) || v.Acked != int(rep.Accepted) {
		t.Errorf("store does not hold the acknowledged heartbeats exactly once: %s (first missing %v, duplicated %v, extra %v)",
			v.String(), first(v.Missing), first(v.Duplicated), first(v.Extra))
	}
	if v.AckedRows != rep.Rows || v.StoredRows != rep.Rows {
		t.Errorf("rows: report %d, acks %d, store %d (%v)", rep.Rows, v.AckedRows, v.StoredRows, v.Tables)
	}
	for _, tbl := range append(SnapshotTables, "flows", "events") {
		if v.Tables[tbl] == 0 {
			t.Errorf("no rows in %s", tbl)
		}
	}
	// The same through FINAL, as views read it.
	ids := fleetIDs(&rep)
	if n := ingesttest.Count(t, node.Store, "SELECT count() AS n FROM heartbeats FINAL WHERE sensor_id IN {ids:Array(UUID)}", ids); n != rep.Accepted {
		t.Errorf("heartbeats FINAL holds %d of the fleet's heartbeats, acknowledged %d", n, rep.Accepted)
	}
	// Every kind of event, network_flow from completed flows; telecom sockets.
	for _, k := range heartbeat.AllEventKinds {
		if n := ingesttest.Count(t, node.Store, "SELECT count() AS n FROM events WHERE sensor_id IN {ids:Array(UUID)} AND kind = {k:String}", ids, store.P("k", k)); n == 0 {
			t.Errorf("no %s events stored", k)
		}
	}
	for _, s := range []string{"gtp-u", "pfcp", "radius"} {
		if n := ingesttest.Count(t, node.Store, "SELECT count() AS n FROM udp_listeners WHERE sensor_id IN {ids:Array(UUID)} AND service = {s:String}", ids, store.P("s", s)); n == 0 {
			t.Errorf("no %s UDP sockets stored", s)
		}
	}
	if n := ingesttest.Count(t, node.Store, "SELECT uniqExact(sensor_id) AS n FROM sensors WHERE sensor_id IN {ids:Array(UUID)} AND flavor = 'telecom'", ids); n != uint64(telecom) {
		t.Errorf("%d telecom sensors stored, want %d", n, telecom)
	}
	// Churn, as the store sees it: between a sensor's first two heartbeats
	// some connections went and others came.
	s0 := rep.PerSensor[0]
	q := `SELECT count() AS n FROM tcp_connections a WHERE sensor_id = {s:UUID} AND seq = {p:UInt64} AND (local_port, remote_address, remote_port, inode) NOT IN
		(SELECT local_port, remote_address, remote_port, inode FROM tcp_connections WHERE sensor_id = {s:UUID} AND seq = {q:UInt64})`
	sp := store.P("s", s0.SensorID.String())
	gone := ingesttest.Count(t, node.Store, q, sp, store.P("p", "1"), store.P("q", "2"))
	came := ingesttest.Count(t, node.Store, q, sp, store.P("p", "2"), store.P("q", "1"))
	if gone == 0 || came == 0 {
		t.Errorf("sensor %v: %d connections closed and %d opened between seq 1 and 2", s0.SensorID, gone, came)
	}
}

func first(ks []Key) any {
	if len(ks) == 0 {
		return "none"
	}
	return ks[0]
}

// Against a server that takes longer to answer than the interval, the
// offered rate stays the schedule's; the latency grows instead, and the
// sensors send one heartbeat at a time, in order.
func TestOpenLoopAgainstSlowServer(t *testing.T) {
	const interval, dur = 250 * time.Millisecond, 4 * time.Second
	sensors := 40
	if raceEnabled {
		sensors = 8
	}
	slow := newFakeIngest(t)
	slow.decide = func(seen) (int, string, time.Duration) { return 0, "", 700 * time.Millisecond }
	// Small heartbeats: the timing is the point, and the simulator must
	// keep its schedule even under the race detector.
	rep := run(t, Config{Sensors: sensors, Interval: interval, Duration: dur, Drain: time.Second,
		Targets: []string{slow.URL}, Seed: 3, StartSeq: 1, Jitter: -1, Shape: Shape{Conns: 10, Listeners: 4, UDP: 3, ShortLived: 1}})
	if rep.ScheduleLag.P50 > 100*time.Millisecond {
		t.Errorf("the simulator could not keep its own schedule: lag %+v", rep.ScheduleLag)
	}
	slow.checkRules(t)

	want := float64(sensors) / interval.Seconds() // 160/s
	if rep.OfferedPerSec < want*0.9 || rep.OfferedPerSec > want*1.1 {
		t.Errorf("offered %.1f heartbeats/s, scheduled %.1f: not open loop", rep.OfferedPerSec, want)
	}
	for _, s := range rep.Timeline[1:4] {
		if float64(s.Offered) < want*0.8 || float64(s.Offered) > want*1.2 {
			t.Errorf("second %d: %d offered, want about %.0f", s.At, s.Offered, want)
		}
	}
	// At most one answer per sensor every 0.7 s.
	if maxAcc := float64(sensors) / 0.7 * 1.15; rep.AcceptedPerSec > maxAcc || rep.AcceptedPerSec > rep.OfferedPerSec/2 {
		t.Errorf("accepted %.1f/s of %.1f offered against a server answering in 0.7 s", rep.AcceptedPerSec, rep.OfferedPerSec)
	}
	if rep.Latency.P99 < 2*time.Second || rep.Latency.P50 < time.Second {
		t.Errorf("latency does not show the slow server: %+v", rep.Latency)
	}
	if rep.RequestLatency.P50 < 650*time.Millisecond {
		t.Errorf("request latency %+v, the server sleeps 700 ms", rep.RequestLatency)
	}
	checkLatency(t, "ack", rep.Latency)
	// Latency grows over the run: heartbeats queue behind older ones.
	for _, s := range rep.PerSensor[:5] {
		a := s.Acks
		if len(a) < 4 || a[len(a)-1].Latency < a[0].Latency+time.Second {
			t.Errorf("sensor %d: latency did not grow: %+v", s.Index, a)
		}
	}
	if rep.InDoubt+rep.Unsent == 0 || rep.Accepted+rep.InDoubt+rep.Unsent+rep.Dropped != rep.Offered {
		t.Errorf("offered %d = accepted %d + in doubt %d + unsent %d + dropped %d?", rep.Offered, rep.Accepted, rep.InDoubt, rep.Unsent, rep.Dropped)
	}
	if rep.Retries != 0 {
		t.Errorf("%d retries against a slow but healthy server", rep.Retries)
	}
}

// 503 with Retry-After: 1 for the first seconds, then a real node behind a
// proxy: every sensor resends the same heartbeat (same heartbeat_id, same
// seq) no sooner than a second later, sends nothing newer meanwhile, and
// the store ends up with every acknowledged heartbeat once.
func TestRetryAfter503(t *testing.T) {
	cfg := ingesttest.Config()
	cfg.BatchAge = 100 * time.Millisecond
	node := ingesttest.Start(t, cfg, nil)
	proxy := newFakeIngest(t)
	var until atomic.Int64
	proxy.decide = func(s seen) (int, string, time.Duration) {
		if s.at.UnixNano() < until.Load() {
			return 503, "1", 0
		}
		return 0, "", 0
	}
	proxy.forward = func(w http.ResponseWriter, body []byte, h http.Header) int {
		req, _ := http.NewRequest("POST", node.URL+"/v1/heartbeat", bytes.NewReader(body))
		for _, k := range []string{"Authorization", "Content-Encoding", "Content-Type"} {
			req.Header.Set(k, h.Get(k))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			w.WriteHeader(502)
			return 502
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		w.Write(b)
		return resp.StatusCode
	}
	until.Store(time.Now().Add(2500 * time.Millisecond).UnixNano())
	sensors := 60
	if raceEnabled {
		sensors = 10
	}
	rep := run(t, Config{Sensors: sensors, Interval: time.Second, Duration: 5 * time.Second, Drain: 30 * time.Second,
		Targets: []string{proxy.URL}, Token: ingesttest.Token, Seed: 5, StartSeq: 1, MinBackoff: 100 * time.Millisecond})
	proxy.checkRules(t)

	if rep.Errors["http_503"] == 0 || rep.Retries < rep.Errors["http_503"] {
		t.Fatalf("errors %v, %d retries: the proxy answered 503 for 2.5 s", rep.Errors, rep.Retries)
	}
	if rep.Accepted != rep.Offered || rep.InDoubt+rep.Unsent+rep.Rejected+rep.Dropped != 0 {
		t.Errorf("offered %d, accepted %d, in doubt %d, unsent %d, rejected %d, dropped %d", rep.Offered, rep.Accepted, rep.InDoubt, rep.Unsent, rep.Rejected, rep.Dropped)
	}
	// The proxy's log: per (sensor, seq) one heartbeat_id; after a 503 the
	// sensor's next request is the same heartbeat, at least 1 s later.
	type key struct {
		s   uuid.UUID
		seq uint64
	}
	ids := map[key]uuid.UUID{}
	last := map[uuid.UUID]seen{}
	retried := 0
	for _, s := range proxy.requests() {
		k := key{s.sensor, s.seq}
		if id, ok := ids[k]; ok && id != s.id {
			t.Fatalf("sensor %v seq %d sent as %v and %v", s.sensor, s.seq, id, s.id)
		}
		ids[k] = s.id
		if p, ok := last[s.sensor]; ok && p.status == 503 {
			if p.seq != s.seq || p.id != s.id {
				t.Fatalf("sensor %v: after a 503 on seq %d it sent seq %d", s.sensor, p.seq, s.seq)
			}
			if gap := s.at.Sub(p.at); gap < 950*time.Millisecond {
				t.Fatalf("sensor %v: retried %v after a 503 with Retry-After: 1", s.sensor, gap)
			}
			retried++
		}
		last[s.sensor] = s
	}
	if retried == 0 {
		t.Fatal("no heartbeat was retried after a 503")
	}
	acked := rep.Acked()
	for k, id := range ids {
		if a, ok := acked[Key{k.s, k.seq}]; !ok || a.HeartbeatID != id {
			t.Fatalf("sensor %v seq %d (%v) sent but acknowledged as %+v", k.s, k.seq, id, a)
		}
	}
	for _, s := range rep.PerSensor {
		for i, a := range s.Acks {
			if a.Seq != s.FirstSeq+uint64(i) {
				t.Fatalf("sensor %d acknowledged out of order: %+v", s.Index, s.Acks)
			}
		}
	}
	v, err := Verify(context.Background(), node.Store, &rep)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Stored != int(rep.Accepted) || v.StoredRaw != int(rep.Accepted) {
		t.Errorf("store: %s", v.String())
	}
	t.Logf("%d heartbeats retried after a 503; store: %s", retried, v.String())
}

// Connection errors (nothing listening yet) are retried with the same
// heartbeat until a server comes up.
func TestConnectionRefusedRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	var srv atomic.Pointer[fakeIngest]
	go func() {
		time.Sleep(1500 * time.Millisecond)
		if ln, err := net.Listen("tcp", addr); err == nil {
			srv.Store(serveFakeIngest(t, ln))
		}
	}()
	rep := run(t, Config{Sensors: 20, Interval: 500 * time.Millisecond, Duration: 3 * time.Second, Drain: 20 * time.Second,
		Targets: []string{"http://" + addr}, Seed: 9, StartSeq: 1, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second})
	f := srv.Load()
	if f == nil {
		t.Fatalf("could not listen on %s again", addr)
	}
	f.checkRules(t)
	if rep.Errors["conn_refused"] == 0 {
		t.Errorf("errors %v: want conn_refused", rep.Errors)
	}
	if rep.Accepted != rep.Offered || rep.InDoubt+rep.Unsent != 0 {
		t.Errorf("offered %d, accepted %d, in doubt %d, unsent %d", rep.Offered, rep.Accepted, rep.InDoubt, rep.Unsent)
	}
	ids := map[Key]uuid.UUID{}
	for _, s := range f.requests() {
		ids[Key{s.sensor, s.seq}] = s.id
	}
	for k, a := range rep.Acked() {
		if ids[k] != a.HeartbeatID {
			t.Fatalf("%v acknowledged as %v, server saw %v", k, a.HeartbeatID, ids[k])
		}
	}
}

// Round-robin sends each attempt to the next target; per-sensor pins each
// sensor to one.
func TestTargets(t *testing.T) {
	a, b := newFakeIngest(t), newFakeIngest(t)
	for _, assign := range []string{AssignSensor, AssignRoundRobin} {
		a.log, b.log = nil, nil
		rep := run(t, Config{Sensors: 10, Interval: 200 * time.Millisecond, Duration: time.Second, Drain: 5 * time.Second,
			Targets: []string{a.URL, b.URL + "/v1/heartbeat"}, Assign: assign, StartSeq: uint64(time.Now().UnixMilli())})
		if rep.Accepted != rep.Offered {
			t.Fatalf("%s: offered %d, accepted %d", assign, rep.Offered, rep.Accepted)
		}
		in := func(f *fakeIngest) map[uuid.UUID]int {
			m := map[uuid.UUID]int{}
			for _, s := range f.requests() {
				m[s.sensor]++
			}
			return m
		}
		ma, mb := in(a), in(b)
		both := 0
		for s := range ma {
			if mb[s] > 0 {
				both++
			}
		}
		switch assign {
		case AssignSensor:
			if len(ma) != 5 || len(mb) != 5 || both != 0 {
				t.Errorf("%s: %d sensors on a, %d on b, %d on both", assign, len(ma), len(mb), both)
			}
		case AssignRoundRobin:
			if both != 10 {
				t.Errorf("%s: only %d sensors on both targets", assign, both)
			}
		}
	}
	a.checkRules(t)
	b.checkRules(t)
}

// Cancelling the context stops a run at once, even with requests in
// flight to a server that never answers.
func TestCancel(t *testing.T) {
	hang := newFakeIngest(t)
	hang.decide = func(seen) (int, string, time.Duration) { return 0, "", time.Minute }
	ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancel()
	start := time.Now()
	rep, err := Run(ctx, Config{Sensors: 30, Interval: 200 * time.Millisecond, Duration: time.Minute, Targets: []string{hang.URL}, StartSeq: 1})
	if err != context.DeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Run took %v after cancel at 1.5 s", took)
	}
	if rep.InDoubt != 30 || rep.Accepted != 0 || rep.Offered == 0 {
		t.Fatalf("in doubt %d, accepted %d, offered %d", rep.InDoubt, rep.Accepted, rep.Offered)
	}
}

// The report reads back as JSON with the documented members.
func TestReportJSON(t *testing.T) {
	f := newFakeIngest(t)
	rep := run(t, Config{Sensors: 3, Interval: 100 * time.Millisecond, Duration: 500 * time.Millisecond, Targets: []string{f.URL}, StartSeq: 1})
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"offered_per_sec", "accepted_per_sec", "rows_per_sec", "latency", "errors", "interval", "per_sensor", "gen_us_per_heartbeat", "timeline"} {
		if _, ok := m[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	lat := m["latency"].(map[string]any)
	if lat["p50_ms"].(float64) <= 0 || lat["p99_ms"].(float64) < lat["p50_ms"].(float64) {
		t.Errorf("latency %v", lat)
	}
	ps := m["per_sensor"].([]any)[0].(map[string]any)
	ack := ps["acks"].([]any)[0].(map[string]any)
	if _, err := uuid.Parse(ack["heartbeat_id"].(string)); err != nil || ack["seq"].(float64) != 1 {
		t.Errorf("ack %v", ack)
	}
}

// Heartbeats that never reached a server are unsent, not in doubt: a fault
// test may take them as surely not stored.
func TestRefusedIsNotInDoubt(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	rep := run(t, Config{Sensors: 5, Interval: 200 * time.Millisecond, Duration: time.Second, Drain: 500 * time.Millisecond,
		Targets: []string{addr}, StartSeq: 1, MinBackoff: 50 * time.Millisecond})
	if rep.Errors["conn_refused"] == 0 || rep.InDoubt != 0 || rep.Unsent != rep.Offered || rep.Accepted != 0 {
		t.Fatalf("errors %v, offered %d, in doubt %d, unsent %d, accepted %d", rep.Errors, rep.Offered, rep.InDoubt, rep.Unsent, rep.Accepted)
	}
}
