package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/analyst"
	"github.com/netview/netview/query/querytest"
)

const (
	viewerToken  = "viewer-token-0123456789"
	analystToken = "analyst-token-0123456789"
	adminToken   = "admin-token-0123456789"
)

// fixture is a real ingest node and a real query service over one store.
type fixture struct {
	t      *testing.T
	ingest *ingesttest.Node
	url    string
	faults *querytest.Outage // in front of the store the query service reads
}

// options change what start builds.
type options struct {
	maxListRows int
	sql         query.SQLRunner
	// analystSQL serves POST /api/v1/sql the way netview-query does: on a
	// second, read-only store over the same data.
	analystSQL bool
	credsTTL   time.Duration
}

func start(t *testing.T) *fixture {
	t.Helper()
	return startWith(t, options{})
}

func startWith(t *testing.T, o options) *fixture {
	t.Helper()
	be := storetest.Embedded(t)
	n := ingesttest.Start(t, ingesttest.Config(), be.Store)
	if o.analystSQL {
		ro, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: strings.TrimPrefix(be.DSN, "embedded:"), Database: be.DB,
			Conns: 2, Settings: analyst.Settings(analyst.DefaultLimits())})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ro.Close() })
		o.sql = query.AnalystSQL(ro)
	}
	if o.maxListRows == 0 {
		o.maxListRows = 10_000
	}
	fs := &querytest.Outage{Store: n.Store}
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		AdminTokens: auth.TokenFlags{List: adminToken}, MaxListRows: o.maxListRows, Timeout: 30 * time.Second, CredsTTL: o.credsTTL}
	srv, err := query.New(cfg, fs, o.sql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ingest: n, url: querytest.Serve(t, srv), faults: fs}
}

// get fetches path with the viewer token and decodes the JSON answer.
func (f *fixture) get(path string, out any) int {
	f.t.Helper()
	return f.do("GET", path, viewerToken, out)
}

func (f *fixture) do(method, path, token string, out any) int {
	f.t.Helper()
	code, b, _ := f.raw(method, path, token, nil)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %d, body not JSON: %v\n%s", method, path, code, err, b)
		}
	}
	return code
}

// raw sends a request and returns the status, body and headers.
func (f *fixture) raw(method, path, token string, body []byte) (int, []byte, http.Header) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// fleet sends beats heartbeats from each of sensors generated sensors.
func (f *fixture) fleet(sensors, beats int, shape heartbeat.Shape) []*heartbeat.Generator {
	f.t.Helper()
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(1000+i), shape)
	}
	base := time.Now().Add(-time.Duration(beats) * 15 * time.Second)
	for k := range beats {
		for _, g := range gens {
			f.ingest.Send(g.Next(base.Add(time.Duration(k) * 15 * time.Second)))
		}
	}
	return gens
}

// sendReceivedAt writes h the way an ingest node does (the production
// decoder and batch insert), but with the node's clock reading recv: the
// heartbeat is stored as if it had been received then. It is how a test
// makes a sensor silent for minutes without waiting for minutes.
func (f *fixture) sendReceivedAt(h *heartbeat.Heartbeat, recv time.Time) {
	f.t.Helper()
	doc, err := json.Marshal(h)
	if err != nil {
		f.t.Fatal(err)
	}
	d := &ingest.Decoder{Now: func() time.Time { return recv }}
	b := ingest.NewBatch()
	if _, err := d.Decode(doc, b); err != nil {
		f.t.Fatal(err)
	}
	if refused, err := b.Insert(context.Background(), f.ingest.Store); err != nil || len(refused) > 0 {
		f.t.Fatal(err, refused)
	}
}

// uuidRank returns each id's place in ClickHouse's own order of UUIDs,
// which is not the order of their text: the key order the views document
// is the engine's.
func (f *fixture) uuidRank(ids []string) map[string]int {
	f.t.Helper()
	var c proto.ColStr
	rank := map[string]int{}
	q := store.Query{SQL: `SELECT toString(u) AS s FROM (SELECT DISTINCT arrayJoin({ids:Array(UUID)}) AS u) ORDER BY u`,
		Params: []store.Param{store.P("ids", "['"+strings.Join(ids, "','")+"']")}}
	if err := f.ingest.Store.Select(context.Background(), q, proto.Results{{Name: "s", Data: &c}}, func(n int) error {
		for i := range n {
			rank[c.Row(i)] = len(rank)
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return rank
}

// Hand-made heartbeats, for tests that need exact rows.

func sensor(id, host string) heartbeat.Sensor {
	return heartbeat.Sensor{SensorID: uuid.MustParse(id), Hostname: host, Flavor: "standard", Version: "0.1.0",
		BootID: uuid.MustParse("b0000000-0000-4000-8000-000000000001"), IntervalSecs: 15, Kernel: "6.18.0"}
}

func beat(s heartbeat.Sensor, seq uint64, at time.Time) *heartbeat.Heartbeat {
	return &heartbeat.Heartbeat{Format: heartbeat.Format, HeartbeatID: uuid.New(), Seq: seq,
		SentAt: at.UTC().Truncate(time.Millisecond), Sensor: s}
}

func conn(lport uint16, remote string, rport uint16, inode uint64) heartbeat.Conn {
	return heartbeat.Conn{Family: "inet", LocalAddress: netip.MustParseAddr("10.9.0.1"), LocalPort: lport,
		RemoteAddress: netip.MustParseAddr(remote), RemotePort: rport, State: "ESTABLISHED", Inode: inode,
		Process: heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl", UID: 1000}}
}

func u32(v uint32) *uint32 { return &v }

// Answers, decoded loosely so a test can see which fields are there.

type row = map[string]any

func (f *fixture) list(path, name string) (row, []row) {
	f.t.Helper()
	var out map[string]json.RawMessage
	if code := f.get(path, &out); code != 200 {
		f.t.Fatalf("GET %s: %d %s", path, code, out["error"])
	}
	var rows []row
	if err := json.Unmarshal(out[name], &rows); err != nil {
		f.t.Fatalf("GET %s: %q is not a list: %v", path, name, err)
	}
	var rest row
	b, _ := json.Marshal(out)
	json.Unmarshal(b, &rest)
	return rest, rows
}

// walk follows a v2 endpoint's cursors to the end and returns every row.
func (f *fixture) walk(path, name string, between func(page int)) []row {
	f.t.Helper()
	var all []row
	for _, rows := range f.walkPages(path, name, func(page int, _ []row, _ string) {
		if between != nil {
			between(page)
		}
	}) {
		all = append(all, rows...)
	}
	return all
}

// walkPages follows a v2 endpoint's cursors to the end and returns each
// page's rows. between runs after every page that has a next one, with
// that page's rows and its next_cursor, before the next page is asked for.
func (f *fixture) walkPages(path, name string, between func(page int, rows []row, cursor string)) [][]row {
	f.t.Helper()
	var pages [][]row
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	next := ""
	for page := 0; ; page++ {
		p := path
		if next != "" {
			p += sep + "cursor=" + next
		}
		rest, rows := f.list(p, name)
		pages = append(pages, rows)
		c, _ := rest["next_cursor"].(string)
		if c == "" {
			if rest["next_cursor"] != nil {
				f.t.Fatalf("GET %s: next_cursor %v", p, rest["next_cursor"])
			}
			return pages
		}
		if c == next || page > 2_000 {
			f.t.Fatalf("GET %s: the cursor walk does not advance (page %d)", p, page)
		}
		if between != nil {
			between(page, rows, c)
		}
		next = c
	}
}

func str(r row, k string) string {
	v, _ := r[k].(string)
	return v
}

func num(r row, k string) float64 {
	v, _ := r[k].(float64)
	return v
}

// rawAuth sends a request with a literal Authorization header.
func (f *fixture) rawAuth(method, path, authorization string) (int, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, nil)
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
