package analyst_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query/analyst"
)

var ctx = context.Background()

// fixture is a database filled through a real ingest node, and what was
// sent to it.
type fixture struct {
	rw      store.Store
	dir, db string
	sent    []*heartbeat.Heartbeat
}

var shape = heartbeat.Shape{Conns: 6, Listeners: 3, UDP: 2, ActiveFlows: 2, CompletedFlows: 3, Events: 9}

func setup(t *testing.T) *fixture {
	t.Helper()
	b := storetest.Embedded(t)
	n := ingesttest.Start(t, ingesttest.Config(), b.Store)
	g := heartbeat.NewGenerator(42, shape)
	f := &fixture{rw: b.Store, dir: strings.TrimPrefix(b.DSN, "embedded:"), db: b.DB}
	start := time.Now().Add(-time.Minute)
	for i := range 3 {
		h := g.Next(start.Add(time.Duration(i) * 15 * time.Second))
		n.Send(h)
		f.sent = append(f.sent, h)
	}
	return f
}

// open opens an analyst store on the fixture's database.
func (f *fixture) open(t *testing.T, l analyst.Limits) store.Store {
	t.Helper()
	ro, err := store.OpenEmbedded(ctx, store.EmbeddedConfig{Dir: f.dir, Database: f.db, Conns: 2, Settings: analyst.Settings(l)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	return ro
}

func run(t *testing.T, s store.Store, q, format string) string {
	t.Helper()
	var out bytes.Buffer
	if err := analyst.Run(ctx, s, q, format, &out); err != nil {
		t.Fatalf("%s (%s): %v", q, format, err)
	}
	return out.String()
}

type jsonResult struct {
	Columns []struct{ Name, Type string }
	Rows    [][]any
	Count   int `json:"row_count"`
}

func parseJSON(t *testing.T, s string) jsonResult {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	d.DisallowUnknownFields()
	var r jsonResult
	if err := d.Decode(&r); err != nil {
		t.Fatalf("JSON output does not parse: %v\n%s", err, s)
	}
	if r.Count != len(r.Rows) {
		t.Fatalf("row_count %d for %d rows", r.Count, len(r.Rows))
	}
	return r
}

func parseEachRow(t *testing.T, s string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		if line == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(line))
		d.UseNumber()
		var m map[string]any
		if err := d.Decode(&m); err != nil {
			t.Fatalf("JSONEachRow line does not parse: %v\n%s", err, line)
		}
		out = append(out, m)
	}
	return out
}

func parseCSV(t *testing.T, s string) [][]string {
	t.Helper()
	recs, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("CSV output does not parse: %v\n%s", err, s)
	}
	return recs
}

func parseTSV(s string) [][]string {
	var out [][]string
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		out = append(out, strings.Split(line, "\t"))
	}
	return out
}

// table returns the result of q in every format as header + rows of
// strings, after checking that the formats agree.
func table(t *testing.T, s store.Store, q string) ([]string, [][]string) {
	t.Helper()
	j := parseJSON(t, run(t, s, q, "JSON"))
	var header []string
	for _, c := range j.Columns {
		header = append(header, c.Name)
	}
	var rows [][]string
	for _, r := range j.Rows {
		var row []string
		for _, v := range r {
			row = append(row, cell(v))
		}
		rows = append(rows, row)
	}
	each := parseEachRow(t, run(t, s, q, "JSONEachRow"))
	if len(each) != len(rows) {
		t.Fatalf("%s: JSONEachRow has %d rows, JSON %d", q, len(each), len(rows))
	}
	for i, m := range each {
		for k, name := range header {
			if got := cell(m[name]); got != rows[i][k] {
				t.Errorf("%s: JSONEachRow row %d %s = %q, JSON %q", q, i, name, got, rows[i][k])
			}
		}
	}
	for _, f := range []string{"CSV", "TSV"} {
		var recs [][]string
		if f == "CSV" {
			recs = parseCSV(t, run(t, s, q, f))
		} else {
			recs = parseTSV(run(t, s, q, f))
		}
		if !slices.Equal(recs[0], header) {
			t.Errorf("%s: %s header %q, want %q", q, f, recs[0], header)
		}
		if len(recs)-1 != len(rows) {
			t.Fatalf("%s: %s has %d rows, JSON %d", q, f, len(recs)-1, len(rows))
		}
		for i, r := range recs[1:] {
			for k := range header {
				want := rows[i][k]
				if want == "null" {
					want = ""
				}
				if strings.HasPrefix(want, "[") { // arrays differ in style between JSON and text
					continue
				}
				if r[k] != want {
					t.Errorf("%s: %s row %d %s = %q, JSON %q", q, f, i, header[k], r[k], want)
				}
			}
		}
	}
	return header, rows
}

// cell is a JSON value as text: strings bare, arrays and objects as JSON.
func cell(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return "null"
	default:
		b, _ := json.Marshal(v)
		return string(b)
	}
}

func TestRunReturnsWhatWasSent(t *testing.T) {
	f := setup(t)
	ro := f.open(t, analyst.Limits{})

	_, rows := table(t, ro, "SELECT count() AS n FROM heartbeats")
	if len(rows) != 1 || rows[0][0] != "3" {
		t.Fatalf("heartbeats count = %v, want 3", rows)
	}

	header, rows := table(t, ro, "SELECT seq, heartbeat_id, sent_at, sensor_id, tcp_connections FROM heartbeats ORDER BY seq")
	if !slices.Equal(header, []string{"seq", "heartbeat_id", "sent_at", "sensor_id", "tcp_connections"}) {
		t.Fatalf("header %q", header)
	}
	for i, h := range f.sent {
		want := []string{strconv.FormatUint(h.Seq, 10), h.HeartbeatID.String(), h.SentAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
			h.Sensor.SensorID.String(), strconv.Itoa(len(h.TCPConnections))}
		if !slices.Equal(rows[i], want) {
			t.Errorf("heartbeat %d: got %q, want %q", i, rows[i], want)
		}
	}

	// LowCardinality, IPv6 (v4-mapped, read back as IPv4), UInt16.
	last := f.sent[2]
	_, rows = table(t, ro, "SELECT local_port, binary, local_address, family FROM tcp_listeners WHERE seq = 3 ORDER BY local_port")
	if len(rows) != len(last.TCPListeners) {
		t.Fatalf("%d listeners, sent %d", len(rows), len(last.TCPListeners))
	}
	for i, l := range last.TCPListeners {
		want := []string{strconv.Itoa(int(l.LocalPort)), l.Binary, l.LocalAddress.String(), l.Family}
		if !slices.Equal(rows[i], want) {
			t.Errorf("listener %d: got %q, want %q", i, rows[i], want)
		}
	}

	// Nullable: connections first seen in the first heartbeat have no age.
	_, rows = table(t, ro, "SELECT local_port, duration_secs, remote_address FROM tcp_connections WHERE seq = 1 ORDER BY local_port, remote_address")
	if len(rows) != len(f.sent[0].TCPConnections) {
		t.Fatalf("%d connections in heartbeat 1, sent %d", len(rows), len(f.sent[0].TCPConnections))
	}
	for _, r := range rows {
		if r[1] != "null" {
			t.Errorf("duration_secs of a first-heartbeat connection = %q, want null", r[1])
		}
	}

	// Arrays of IPv6 and strings with the DNS events that were sent.
	want := map[string][]string{}
	for _, h := range f.sent {
		for _, e := range h.Events {
			if e.Kind == "dns_query" {
				var as []string
				for _, a := range e.Answers {
					as = append(as, a.String())
				}
				want[e.EventID.String()] = append([]string{e.QueryName}, as...)
			}
		}
	}
	_, rows = table(t, ro, "SELECT event_id, query_name, answers FROM events WHERE kind = 'dns_query' ORDER BY event_id")
	if len(rows) != len(want) || len(rows) == 0 {
		t.Fatalf("%d dns_query events, sent %d", len(rows), len(want))
	}
	for _, r := range rows {
		w, ok := want[r[0]]
		if !ok {
			t.Fatalf("event %s was not sent", r[0])
		}
		answers, _ := json.Marshal(w[1:])
		if r[1] != w[0] || r[2] != string(answers) {
			t.Errorf("event %s: got %q %s, want %q %s", r[0], r[1], r[2], w[0], answers)
		}
	}
	csvOut := parseCSV(t, run(t, ro, "SELECT answers FROM events WHERE kind = 'dns_query' ORDER BY event_id LIMIT 1", "CSV"))
	if !regexp.MustCompile(`^\['10\.\d+\.\d+\.\d+'\]$`).MatchString(csvOut[1][0]) {
		t.Errorf("array in CSV = %q, want ['10.x.y.z']", csvOut[1][0])
	}

	// The map of capabilities (Map(LowCardinality(String), String)) is empty.
	_, rows = table(t, ro, "SELECT hostname, capabilities FROM sensors FINAL")
	if len(rows) != 1 || rows[0][0] != last.Sensor.Hostname || rows[0][1] != "{}" {
		t.Errorf("sensors = %q, want %s with {}", rows, last.Sensor.Hostname)
	}
}

func TestRenderTypes(t *testing.T) {
	ro := storeOnly(t, analyst.Limits{})
	q := `SELECT
		toUInt8(200) AS u8, toInt8(-5) AS i8, toUInt16(65535) AS u16, toInt16(-300) AS i16, toUInt32(4000000000) AS u32, toInt32(-7) AS i32,
		toUInt64(18446744073709551615) AS u64, toInt64(-9223372036854775808) AS i64,
		toInt128('-170141183460469231731687303715884105728') AS i128, toInt128(-5) AS i128s, toUInt256(12345) AS u256,
		toFloat32(1.5) AS f32, toFloat64(0.1) AS f64, nan AS fnan, -inf AS fninf, 1e300 AS fbig,
		true AS b, toUUID('01234567-89ab-cdef-0123-456789abcdef') AS u, toIPv4('10.1.2.3') AS ip4, toIPv6('2001:db8::1') AS ip6,
		toIPv6('::ffff:10.9.0.1') AS ip6m, toDate('2026-01-02') AS d, toDate32('1960-05-06') AS d32,
		toDateTime('2026-01-02 03:04:05', 'UTC') AS dt, toDateTime64('2026-01-02 03:04:05.123', 3, 'UTC') AS dt64,
		toDateTime64('2026-01-02 03:04:05.123456', 6, 'Asia/Tokyo') AS dt64tz,
		CAST(NULL AS Nullable(String)) AS n, toNullable('x') AS nx, toLowCardinality('lc') AS lc,
		CAST(NULL AS LowCardinality(Nullable(String))) AS lcn, CAST('y' AS LowCardinality(Nullable(String))) AS lcy,
		['a', 'b''c'] AS arr, [[1, 2], []] AS arr2, [NULL, 1] AS arrn, CAST(['p', 'q'] AS Array(LowCardinality(String))) AS arrlc, CAST([] AS Array(LowCardinality(String))) AS arrlce,
		map('k', 'v', 'k2', 'w') AS m, CAST(map('k', 'v') AS Map(LowCardinality(String), String)) AS mlc, map(1, [2, 3]) AS mnum,
		'quote " back \\ tab 	 nl
end' AS s, 'ü€' AS utf, toDecimal64(-1.25, 2) AS dec, toDecimal32(3, 4) AS dec0, toDecimal128(0.05, 3) AS dec128,
		CAST('b' AS Enum8('a' = 1, 'b' = 2)) AS e, toFixedString('ab', 3) AS fs, (1, 'z') AS tup, CAST((1, 'z') AS Tuple(a UInt8, b String)) AS ntup,
		NULL AS nothing`
	j := parseJSON(t, run(t, ro, q, "JSON"))
	got := map[string]string{}
	types := map[string]string{}
	for i, c := range j.Columns {
		b, _ := json.Marshal(j.Rows[0][i])
		got[c.Name] = string(b)
		types[c.Name] = c.Type
	}
	want := map[string]string{
		"u8": `200`, "i8": `-5`, "u16": `65535`, "i16": `-300`, "u32": `4000000000`, "i32": `-7`,
		"u64": `"18446744073709551615"`, "i64": `"-9223372036854775808"`,
		"i128": `"-170141183460469231731687303715884105728"`, "i128s": `"-5"`, "u256": `"12345"`,
		"f32": `1.5`, "f64": `0.1`, "fnan": `null`, "fninf": `null`, "fbig": `1e+300`,
		"b": `true`, "u": `"01234567-89ab-cdef-0123-456789abcdef"`, "ip4": `"10.1.2.3"`, "ip6": `"2001:db8::1"`,
		"ip6m": `"10.9.0.1"`, "d": `"2026-01-02"`, "d32": `"1960-05-06"`,
		"dt": `"2026-01-02T03:04:05Z"`, "dt64": `"2026-01-02T03:04:05.123Z"`, "dt64tz": `"2026-01-01T18:04:05.123456Z"`,
		"n": `null`, "nx": `"x"`, "lc": `"lc"`, "lcn": `null`, "lcy": `"y"`,
		"arr": `["a","b'c"]`, "arr2": `[[1,2],[]]`, "arrn": `[null,1]`, "arrlc": `["p","q"]`, "arrlce": `[]`,
		"m": `{"k":"v","k2":"w"}`, "mlc": `{"k":"v"}`, "mnum": `{"1":[2,3]}`,
		"s": `"quote \" back \\ tab \t nl\nend"`, "utf": `"ü€"`, "dec": `-1.25`, "dec0": `3.0000`, "dec128": `0.050`,
		"e": `"b"`, "fs": `"ab\u0000"`, "tup": `[1,"z"]`, "ntup": `{"a":1,"b":"z"}`, "nothing": `null`,
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s (%s) = %s, want %s", k, types[k], got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d columns, want %d", len(got), len(want))
	}
	if types["lc"] != "LowCardinality(String)" || types["dt64"] != "DateTime64(3, 'UTC')" || types["m"] != "Map(String, String)" {
		t.Errorf("types: %v", types)
	}

	// The same row as CSV and TSV: NULL empty, arrays and maps as the
	// engine writes them in text, strings escaped per format.
	recs := parseCSV(t, run(t, ro, q, "CSV"))
	tsv := parseTSV(run(t, ro, q, "TSV"))
	wantText := map[string]string{
		"u64": "18446744073709551615", "fnan": "nan", "fninf": "-inf", "b": "true", "ip6m": "10.9.0.1", "dt64": "2026-01-02T03:04:05.123Z",
		"n": "", "lcn": "", "arr": `['a','b\'c']`, "arr2": "[[1,2],[]]", "arrn": "[NULL,1]", "m": "{'k':'v','k2':'w'}", "mnum": "{1:[2,3]}",
		"tup": "(1,'z')", "dec": "-1.25", "e": "b", "nothing": "",
	}
	for i, name := range recs[0] {
		if w, ok := wantText[name]; ok && recs[1][i] != w {
			t.Errorf("CSV %s = %q, want %q", name, recs[1][i], w)
		}
		if name == "s" && recs[1][i] != "quote \" back \\ tab \t nl\nend" {
			t.Errorf("CSV s = %q", recs[1][i])
		}
		if name == "s" && tsv[1][i] != `quote " back \\ tab \t nl\nend` {
			t.Errorf("TSV s = %q", tsv[1][i])
		}
		if w, ok := wantText[name]; ok && name != "arr" && tsv[1][i] != w {
			t.Errorf("TSV %s = %q, want %q", name, tsv[1][i], w)
		}
	}

	// An empty result still names its columns.
	if out := run(t, ro, "SELECT 1 AS a, 'x' AS b WHERE 0", "JSON"); out != `{"columns":[{"name":"a","type":"UInt8"},{"name":"b","type":"String"}],"rows":[],"row_count":0}`+"\n" {
		t.Errorf("empty JSON = %s", out)
	}
	if out := run(t, ro, "SELECT 1 AS a, 'x' AS b WHERE 0", "CSV"); out != "a,b\n" {
		t.Errorf("empty CSV = %q", out)
	}
	if out := run(t, ro, "SELECT 1 AS a WHERE 0", "JSONEachRow"); out != "" {
		t.Errorf("empty JSONEachRow = %q", out)
	}

	// A type it cannot render is an error naming the column, not a panic.
	var out bytes.Buffer
	err := analyst.Run(ctx, ro, "SELECT 1 AS ok, toIntervalDay(3) AS span", "JSON", &out)
	var ute *analyst.UnsupportedTypeError
	if !errors.As(err, &ute) || ute.Column != "span" || ute.Type != "IntervalDay" || out.Len() != 0 {
		t.Errorf("interval column: err %v, output %q", err, out.String())
	}

	// Many blocks stream through.
	_, rows := table(t, ro, "SELECT number, toString(number) AS s, toLowCardinality(toString(number % 7)) AS lc, [toLowCardinality(s)] AS a FROM numbers(70000) ORDER BY number")
	if len(rows) != 70000 || rows[69999][1] != "69999" || rows[69999][2] != "6" || rows[69999][3] != `["69999"]` {
		t.Errorf("70000 rows: got %d", len(rows))
	}
}

// storeOnly opens an analyst store on an empty database.
func storeOnly(t *testing.T, l analyst.Limits) store.Store {
	t.Helper()
	b := storetest.Embedded(t)
	f := &fixture{rw: b.Store, dir: strings.TrimPrefix(b.DSN, "embedded:"), db: b.DB}
	return f.open(t, l)
}

func TestFormats(t *testing.T) {
	ro := storeOnly(t, analyst.Limits{})
	for _, f := range []string{"", "json", "JSONEachRow", "csv", "TSV"} {
		var out bytes.Buffer
		if err := analyst.Run(ctx, ro, "SELECT 1 AS x", f, &out); err != nil {
			t.Errorf("format %q: %v", f, err)
		}
		if analyst.ContentType(f) == "" {
			t.Errorf("format %q has no content type", f)
		}
	}
	var out bytes.Buffer
	err := analyst.Run(ctx, ro, "SELECT 1", "XML", &out)
	var r *analyst.Refusal
	if !errors.As(err, &r) || !strings.Contains(r.Reason, `unknown format "XML"`) {
		t.Errorf("XML: %v", err)
	}
}

func TestOtherStatements(t *testing.T) {
	f := setup(t)
	ro := f.open(t, analyst.Limits{})
	_, rows := table(t, ro, "SHOW TABLES")
	if !slices.ContainsFunc(rows, func(r []string) bool { return r[0] == "events" }) {
		t.Errorf("SHOW TABLES = %q", rows)
	}
	header, rows := table(t, ro, "DESCRIBE events")
	if header[0] != "name" || header[1] != "type" || rows[0][0] != "event_id" || rows[0][1] != "UUID" {
		t.Errorf("DESCRIBE events = %q %q", header, rows[:1])
	}
	_, rows = table(t, ro, "EXISTS TABLE events")
	if rows[0][0] != "1" {
		t.Errorf("EXISTS = %q", rows)
	}
	_, rows = table(t, ro, "EXPLAIN SELECT count() FROM events")
	if len(rows) == 0 {
		t.Errorf("EXPLAIN returned nothing")
	}
	header, _ = table(t, ro, "EXPLAIN ESTIMATE SELECT * FROM events")
	if len(header) != 5 {
		t.Errorf("EXPLAIN ESTIMATE header %q", header)
	}
	// Several columns where one was guessed: the statement runs again.
	// (SHOW SETTINGS, which this used, is refused: it shows the server's settings.)
	header, rows = table(t, ro, "SHOW COLUMNS FROM events LIKE 'event_id'")
	if len(header) < 3 || header[0] != "field" || len(rows) != 1 || rows[0][0] != "event_id" || rows[0][1] != "UUID" {
		t.Errorf("SHOW COLUMNS = %q %q", header, rows)
	}
	_, rows = table(t, ro, "WITH (SELECT max(seq) FROM heartbeats) AS newest SELECT newest, count() AS n FROM tcp_connections WHERE seq = newest")
	if rows[0][0] != "3" || rows[0][1] != strconv.Itoa(len(f.sent[2].TCPConnections)) {
		t.Errorf("WITH = %q", rows)
	}
	// UNION ALL's order is the engine's choice: sorted, so formats compare row by row.
	_, rows = table(t, ro, "select /* a comment */ s FROM (SELECT sum(number) AS s FROM numbers(10) UNION ALL SELECT 1) ORDER BY s -- and another")
	if len(rows) != 2 {
		t.Errorf("UNION = %q", rows)
	}
	_, rows = table(t, ro, "SELECT count() AS n FROM merge(currentDatabase(), '^(flows|events)$')")
	if len(rows) != 1 {
		t.Errorf("merge() = %q", rows)
	}
}

// counts is the data of every table, to show a refused statement changed
// nothing.
func counts(t *testing.T, s store.Store) string {
	t.Helper()
	var name proto.ColStr
	var n proto.ColUInt64
	var b strings.Builder
	err := s.Select(ctx, store.Query{SQL: "SELECT name, ifNull(total_rows, 0) AS n FROM system.tables WHERE database = currentDatabase() ORDER BY name"},
		proto.Results{{Name: "name", Data: &name}, {Name: "n", Data: &n}}, func(rows int) error {
			for i := range rows {
				fmt.Fprintf(&b, "%s=%d ", name.Row(i), n.Row(i))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// hostile are statements that must not run: by says which layer refuses
// them (the guard, or the engine's readonly=1) and want what the message
// must name.
var hostile = []struct{ q, by, want string }{
	{"INSERT INTO events (kind) VALUES ('x')", "guard", "INSERT statements are not allowed"},
	{"INSERT INTO events SELECT * FROM events", "guard", "INSERT statements are not allowed"},
	{"ALTER TABLE events DELETE WHERE 1", "guard", "ALTER TABLE statements are not allowed"},
	{"ALTER TABLE events ADD COLUMN x UInt8", "guard", "ALTER TABLE statements are not allowed"},
	{"DROP TABLE events", "guard", "DROP TABLE statements are not allowed"},
	{"DROP DATABASE IF EXISTS system", "guard", "DROP DATABASE statements are not allowed"},
	{"CREATE TABLE x (a UInt8) ENGINE = Memory", "guard", "CREATE TABLE statements are not allowed"},
	{"CREATE TABLE x ENGINE = URL('http://127.0.0.1:1/') AS SELECT 1", "guard", "CREATE TABLE statements are not allowed"},
	{"CREATE FUNCTION f AS x -> x", "guard", "CREATE FUNCTION statements are not allowed"},
	{"TRUNCATE TABLE events", "guard", "TRUNCATE statements are not allowed"},
	{"RENAME TABLE events TO events2", "guard", "RENAME statements are not allowed"},
	{"EXCHANGE TABLES events AND flows", "guard", "EXCHANGE statements are not allowed"},
	{"OPTIMIZE TABLE events FINAL", "guard", "OPTIMIZE statements are not allowed"},
	{"DELETE FROM events WHERE 1", "guard", "DELETE statements are not allowed"},
	{"DETACH TABLE events", "guard", "DETACH TABLE statements are not allowed"},
	{"ATTACH TABLE events", "guard", "ATTACH TABLE statements are not allowed"},
	{"SYSTEM STOP MERGES", "guard", "SYSTEM STOP statements are not allowed"},
	{"SYSTEM DROP DNS CACHE", "guard", "SYSTEM CLEAR statements are not allowed"},
	{"SYSTEM SHUTDOWN", "guard", "SYSTEM SHUTDOWN statements are not allowed"},
	{"KILL QUERY WHERE 1", "guard", "KILL QUERY statements are not allowed"},
	{"USE system", "guard", "USE statements are not allowed"},
	{"BACKUP TABLE events TO File('x')", "guard", "BACKUP statements are not allowed"},
	{"GRANT ALL ON *.* TO default", "guard", "GRANT statements are not allowed"},
	{"SET readonly = 0", "guard", "SET statements are not allowed"},
	{"SET max_execution_time = 0", "guard", "SET statements are not allowed"},
	{"SELECT 1 SETTINGS max_execution_time = 0", "engine", "Cannot modify 'max_execution_time' setting in readonly mode"},
	{"SELECT 1 SETTINGS readonly = 0", "engine", "Cannot modify 'readonly' setting in readonly mode"},
	{"SELECT count() FROM events SETTINGS max_rows_to_read = 0, max_result_rows = 0", "engine", "setting in readonly mode"},
	{"SELECT * FROM file('/etc/passwd')", "guard", "file() is not allowed"},
	{"SELECT * FROM `file`('x')", "guard", "file() is not allowed"},
	{"SELECT * FROM FILE ('x', 'CSV')", "guard", "FILE() is not allowed"},
	{"SELECT * FROM \"file\"('x')", "guard", "file() is not allowed"},
	{"SELECT * FROM file/* hidden */('x')", "guard", "file() is not allowed"},
	{"SELECT * FROM fi/**/le('x')", "guard", "Syntax error"},
	{"SELECT file('/etc/passwd')", "guard", "file() is not allowed"},
	{"SELECT * APPLY file FROM (SELECT '/etc/passwd' AS p)", "guard", "file() is not allowed"},
	{"SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)", "guard", "file() is not allowed"},
	{"SELECT arrayMap(x -> file(x), ['/etc/passwd'])", "guard", "file() is not allowed"},
	{"SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')", "guard", "url() is not allowed"},
	{"SELECT * FROM remote('127.0.0.1', system.one)", "guard", "remote() is not allowed"},
	{"SELECT * FROM remoteSecure('127.0.0.1', system.one)", "guard", "remoteSecure() is not allowed"},
	{"SELECT * FROM cluster('default', system.one)", "guard", "cluster() is not allowed"},
	{"SELECT * FROM s3('http://127.0.0.1:1/bucket/x.csv', 'CSV', 'a String')", "guard", "s3() is not allowed"},
	{"SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'u', 'p')", "guard", "mysql() is not allowed"},
	{"SELECT * FROM postgresql('127.0.0.1:1', 'db', 't', 'u', 'p')", "guard", "postgresql() is not allowed"},
	{"SELECT * FROM executable('x.sh', 'TSV', 'a String')", "guard", "executable() is not allowed"},
	{"SELECT * FROM input('a String')", "guard", "input() is not allowed"},
	{"SELECT * FROM eval('SELECT 1')", "guard", "eval() is not allowed"},
	{"SELECT * FROM dictionary('d')", "guard", "dictionary() is not allowed"},
	{"SELECT * FROM filesystem('/')", "guard", "filesystem() is not allowed"},
	{"SELECT * FROM numbers(1) AS n JOIN url('http://127.0.0.1:1/', CSV, 'a String') AS u ON 1", "guard", "url() is not allowed"},
	{"SELECT * FROM view(SELECT * FROM file('x'))", "guard", "file() is not allowed"},
	{"SELECT * FROM loop(url('http://127.0.0.1:1/', CSV, 'a String'))", "guard", "url() is not allowed"},
	{"DESCRIBE TABLE url('http://127.0.0.1:1/', CSV)", "guard", "url() is not allowed"},
	{"EXPLAIN SELECT * FROM s3('http://127.0.0.1:1/b/x')", "guard", "s3() is not allowed"},
	{"SELECT 1 IN (SELECT * FROM remote('127.0.0.1', system.one))", "guard", "remote() is not allowed"},
	{"SELECT catboostEvaluate('/m.bin', 1)", "guard", "catboostEvaluate() is not allowed"},
	{"SELECT generateSerialID('x')", "guard", "generateSerialID() is not allowed"},
	{"SELECT 1; DROP TABLE events", "guard", "Multi-statements are not allowed"},
	{"SELECT 1; SELECT 2", "guard", "Multi-statements are not allowed"},
	{"SELECT 1 INTO OUTFILE '/tmp/netview-analyst-outfile'", "guard", "INTO OUTFILE is not allowed"},
	{"SHOW TABLES INTO OUTFILE '/tmp/netview-analyst-outfile' TRUNCATE", "guard", "INTO OUTFILE is not allowed"},
	{"SELECT 1 FORMAT JSON", "guard", "FORMAT clause is not allowed"},
	{"SELECT 1 PARALLEL WITH DROP TABLE events", "guard", "PARALLEL WITH is not allowed"},
	{"EXPLAIN AST DROP TABLE events", "guard", "EXPLAIN is allowed only for"},
	{"EXPLAIN SYNTAX INSERT INTO events SELECT * FROM events", "guard", "EXPLAIN is allowed only for"},
	// The credentials, the audit log and the engine's statement logs.
	{"SELECT * FROM credentials", "guard", "credentials may not be read"},
	// On a cluster the rows live in the local tables behind the Distributed ones.
	{"SELECT * FROM credentials_local", "guard", "credentials_local may not be read"},
	{"SELECT * FROM netview.audit_log_local", "guard", "audit_log_local may not be read"},
	{"SELECT hash FROM `credentials`", "guard", "credentials may not be read"},
	{"SELECT id FROM default.credentials", "guard", "credentials may not be read"},
	{"SELECT * FROM \"Credentials\"", "guard", "credentials may not be read"},
	{"SELECT actor, detail FROM audit_log", "guard", "audit_log may not be read"},
	{"SELECT blocked_by, reason FROM sensor_blocks", "guard", "sensor_blocks may not be read"},
	{"SELECT count() FROM (SELECT * FROM audit_log)", "guard", "audit_log may not be read"},
	{"SELECT * FROM view(SELECT * FROM credentials)", "guard", "credentials may not be read"},
	{"SELECT * FROM loop(credentials) LIMIT 1", "guard", "credentials may not be read"},
	{"SHOW CREATE TABLE audit_log", "guard", "audit_log may not be read"},
	{"SELECT * FROM merge(currentDatabase(), '^cred')", "guard", "merge() is allowed only"},
	{"SELECT * FROM merge(REGEXP('.*'), '.*')", "guard", "merge() is allowed only"},
	{"SELECT _table FROM merge(currentDatabase(), 'o')", "guard", "merge() is allowed only"},
	{"SELECT * FROM mergeTreeIndex(currentDatabase(), 'credentials')", "guard", "credentials may not be read"},
	{"SELECT * FROM mergeTreeIndex(currentDatabase(), audit_log)", "guard", "audit_log may not be read"},
	{"SELECT query FROM system.processes", "guard", "system.processes may not be read"},
	{"SELECT query FROM `system`.`query_log`", "guard", "system.query_log may not be read"},
	{"SELECT message FROM system.text_log", "guard", "system.text_log may not be read"},
	// Table functions that name a table take it written out (issue #14).
	{"SELECT * FROM mergeTreeIndex(currentDatabase(), concat('cred', 'entials'))", "guard", "mergeTreeIndex() is allowed only with its database and table written out"},
	{"SELECT * FROM mergeTreeIndex(currentDatabase(), 'cred' || 'entials', with_marks = true)", "guard", "mergeTreeIndex() is allowed only"},
	{"SELECT * FROM mergeTreeProjection(currentDatabase(), concat('audit', '_log'), p)", "guard", "mergeTreeProjection() is allowed only"},
	{"SELECT * FROM mergeTreeAnalyzeIndexes(currentDatabase(), concat('cred', 'entials'))", "guard", "mergeTreeAnalyzeIndexes() is allowed only"},
	{"SELECT * FROM mergeTreeTextIndex(currentDatabase(), concat('cred', 'entials'), i)", "guard", "mergeTreeTextIndex() is allowed only"},
	{"SELECT * FROM mergeTreeIndex(concat('sys', 'tem'), 'query_log')", "guard", "mergeTreeIndex() is allowed only"},
	{"SELECT * FROM loop(currentDatabase(), concat('cred', 'entials')) LIMIT 1", "guard", "loop() is allowed only"},
	{"SELECT * FROM loop(concat('cred', 'entials')) LIMIT 1", "guard", "loop() is allowed only"},
	{"SELECT * FROM loop('system', 'errors') LIMIT 1", "guard", "system.errors may not be read"},
	{"SELECT * FROM loop(system.errors) LIMIT 1", "guard", "system.errors may not be read"},
	{"SELECT * FROM merge('system', '^errors$')", "guard", "merge() is allowed only"},
	// System tables are an allow-list: other users' failed statements, the
	// settings, who may do what, the parts on disk.
	{"SELECT name, last_error_message FROM system.errors", "guard", "system.errors may not be read"},
	{"SELECT name, value FROM system.settings", "guard", "system.settings may not be read"},
	{"SELECT name, value FROM system.server_settings", "guard", "system.server_settings may not be read"},
	{"SELECT name, value FROM system.merge_tree_settings", "guard", "system.merge_tree_settings may not be read"},
	{"SELECT * FROM system.macros", "guard", "system.macros may not be read"},
	{"SELECT name, auth_type FROM system.users", "guard", "system.users may not be read"},
	{"SELECT * FROM system.grants", "guard", "system.grants may not be read"},
	{"SELECT path FROM system.parts", "guard", "system.parts may not be read"},
	{"SELECT * FROM `system`.\"errors\"", "guard", "system.errors may not be read"},
	{"SELECT * FROM view(SELECT * FROM system.settings)", "guard", "system.settings may not be read"},
	{"SELECT * FROM (SELECT * FROM system.errors) WHERE 1", "guard", "system.errors may not be read"},
	{"DESCRIBE TABLE system.errors", "guard", "system.errors may not be read"},
	{"SHOW CREATE TABLE system.errors", "guard", "system.errors may not be read"},
	{"SHOW PROCESSLIST", "guard", "SHOW PROCESSLIST statements are not allowed"},
	{"SHOW SETTINGS LIKE 'max%'", "guard", "SHOW SETTINGS statements are not allowed"},
	{"SHOW SETTING max_memory_usage", "guard", "SHOW SETTING statements are not allowed"},
	{"SHOW USERS", "guard", "SHOW USERS statements are not allowed"},
	{"SHOW GRANTS", "guard", "SHOW GRANTS statements are not allowed"},
	{"SHOW CREATE USER default", "guard", "SHOW CREATE statements are not allowed"},
	{"SHOW CLUSTERS", "guard", "SHOW CLUSTERS statements are not allowed"},
	{"SHOW DICTIONARIES", "guard", "SHOW DICTIONARIES statements are not allowed"},
	{"SHOW MERGES", "guard", "SHOW MERGES statements are not allowed"},
	{"EXPLAIN AST SHOW PROCESSLIST", "guard", "SHOW PROCESSLIST statements are not allowed"},
	// Functions that read the server's configuration.
	{"SELECT getServerSetting('max_server_memory_usage')", "guard", "getServerSetting() is not allowed"},
	{"SELECT getMergeTreeSetting('index_granularity')", "guard", "getMergeTreeSetting() is not allowed"},
	{"SELECT getMacro('replica')", "guard", "getMacro() is not allowed"},
	{"SELECT getSetting('max_memory_usage')", "guard", "getSetting() is not allowed"},
	{"SELECT filesystemCapacity()", "guard", "filesystemCapacity() is not allowed"},
	{"SELECT 1 SETTINGS additional_table_filters = {}", "engine", "Cannot modify 'additional_table_filters' setting in readonly mode"},
	{"", "guard", "empty"},
	{"  /* only a comment */ ", "guard", "Empty query"},
	{"SELEC 1", "guard", "Syntax error"},
}

func TestHostileSQL(t *testing.T) {
	f := setup(t)
	ro := f.open(t, analyst.Limits{})
	before := counts(t, f.rw)
	if !strings.Contains(before, "events=") {
		t.Fatalf("no data: %s", before)
	}
	for _, h := range hostile {
		var out bytes.Buffer
		err := analyst.Run(ctx, ro, h.q, "JSON", &out)
		var r *analyst.Refusal
		var ee *store.EngineError
		switch {
		case err == nil:
			t.Errorf("%q ran: %s", h.q, out.String())
		case h.by == "guard" && !errors.As(err, &r):
			t.Errorf("%q: want a refusal by the guard, got %v", h.q, err)
		case h.by == "guard" && !strings.Contains(r.Reason, h.want):
			t.Errorf("%q: refusal %q does not say %q", h.q, r.Reason, h.want)
		case h.by == "engine" && !errors.As(err, &ee):
			t.Errorf("%q: want a refusal by the engine, got %v", h.q, err)
		case h.by == "engine" && !strings.Contains(ee.Message, h.want):
			t.Errorf("%q: engine message %q does not say %q", h.q, ee.Message, h.want)
		}
		if out.Len() != 0 {
			t.Errorf("%q wrote %q", h.q, out.String())
		}
		if h.by == "guard" {
			if gerr := analyst.Guard(ctx, ro, h.q); !errors.As(gerr, &r) {
				t.Errorf("Guard(%q) = %v", h.q, gerr)
			}
		}
		if after := counts(t, f.rw); after != before {
			t.Fatalf("after %q the data changed:\n%s\n%s", h.q, before, after)
		}
	}
	if _, err := os.Stat("/tmp/netview-analyst-outfile"); err == nil {
		t.Errorf("INTO OUTFILE wrote a file")
	}
}

// TestEngineReadonly runs statements on the analyst store directly, without
// the guard, to record what readonly=1 refuses by itself and what only the
// guard stops.
func TestEngineReadonly(t *testing.T) {
	f := setup(t)
	ro := f.open(t, analyst.Limits{})
	before := counts(t, f.rw)
	for _, q := range []string{
		"INSERT INTO events (kind) VALUES ('x')",
		"INSERT INTO credentials (id, kind, role) VALUES ('0123456789abcdef', 'token', 'admin')",
		"ALTER TABLE events DELETE WHERE 1",
		"DROP TABLE events",
		"CREATE TABLE x (a UInt8) ENGINE = Memory",
		"TRUNCATE TABLE events",
		"RENAME TABLE events TO events2",
		"OPTIMIZE TABLE events FINAL",
		"DELETE FROM events WHERE 1",
		"SYSTEM FLUSH LOGS",
		"SET readonly = 0",
		"SET max_execution_time = 0",
		"SELECT 1 SETTINGS max_execution_time = 0",
		"SELECT * FROM file('/etc/passwd')",
		"SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
		"SELECT * FROM remote('127.0.0.1', system.one)",
		"SELECT * FROM mysql('127.0.0.1:1', 'db', 't', 'u', 'p')",
		"SELECT * FROM executable('x.sh', 'TSV', 'a String')",
		"SELECT * FROM dictionary('d')",
		"SELECT * FROM filesystem('/')",
	} {
		err := ro.Exec(ctx, store.Query{SQL: q})
		var ee *store.EngineError
		if !errors.As(err, &ee) || !strings.Contains(ee.Message, "readonly mode") {
			t.Errorf("engine under readonly=1: %q = %v, want a readonly refusal", q, err)
		}
	}
	if after := counts(t, f.rw); after != before {
		t.Fatalf("the data changed:\n%s\n%s", before, after)
	}

	// Under the guard, the engine itself shows the protected tables as empty
	// (additional_table_filters, which readonly=1 keeps analysts from
	// changing), read directly or through a view.
	for _, q := range []string{"INSERT INTO credentials (id, kind) VALUES ('0123456789abcdef', 'token')", "INSERT INTO audit_log (actor, action) VALUES ('x', 'sql')"} {
		if err := f.rw.Exec(ctx, store.Query{SQL: q}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"SELECT count() AS n FROM credentials", "SELECT count() AS n FROM audit_log",
		"SELECT count() AS n FROM view(SELECT * FROM credentials)", "SELECT count() AS n FROM " + f.db + ".audit_log",
		"SELECT count() AS n FROM system.processes"} {
		var n proto.ColUInt64
		got := uint64(99)
		if err := ro.Select(ctx, store.Query{SQL: q}, proto.Results{{Name: "n", Data: &n}}, func(int) error { got = n.Row(0); return nil }); err != nil || got != 0 {
			t.Errorf("engine under the analyst settings: %q = %d, %v; want 0 rows", q, got, err)
		}
	}
	if got := ingesttest.Count(t, f.rw, "SELECT count() AS n FROM credentials"); got != 1 {
		t.Errorf("the service's own store sees %d credentials, want 1", got)
	}

	// What readonly=1 lets through, and the guard refuses.
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("s3cr3t"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c proto.ColStr
	got := ""
	err := ro.Select(ctx, store.Query{SQL: "SELECT file(" + store.Quote(secret) + ") AS c"}, proto.Results{{Name: "c", Data: &c}},
		func(int) error { got = c.Row(0); return nil })
	if err != nil || got != "s3cr3t" {
		t.Logf("file() under readonly=1: %q, %v", got, err)
	} else {
		t.Logf("readonly=1 lets file() read %s: the guard refuses file()", secret)
	}
	outfile := filepath.Join(dir, "out")
	err = ro.Exec(ctx, store.Query{SQL: "SELECT 1 INTO OUTFILE " + store.Quote(outfile)})
	if _, serr := os.Stat(outfile); serr == nil {
		t.Logf("readonly=1 lets INTO OUTFILE write %s: the guard refuses INTO OUTFILE", outfile)
	} else {
		t.Logf("INTO OUTFILE under readonly=1: %v", err)
	}
	if err := ro.Exec(ctx, store.Query{SQL: "KILL QUERY WHERE 0"}); err == nil {
		t.Logf("readonly=1 lets KILL QUERY run: the guard refuses KILL")
	}
	other := f.open(t, analyst.Limits{})
	if err := other.Exec(ctx, store.Query{SQL: "USE system"}); err == nil {
		t.Logf("readonly=1 lets USE switch a pooled connection to another database: the guard refuses USE")
	}
	other.Close()
	for _, q := range []string{"SYSTEM STOP MERGES", "SYSTEM STOP MERGES " + f.db + ".events"} {
		err := ro.Exec(ctx, store.Query{SQL: q})
		t.Logf("%s under readonly=1: %v", q, err)
		if err == nil {
			if err := f.rw.Exec(ctx, store.Query{SQL: strings.Replace(q, "STOP", "START", 1)}); err != nil {
				t.Error(err)
			}
		}
	}
	if err := ro.Exec(ctx, store.Query{SQL: "SELECT 1 SETTINGS readonly = 1, max_execution_time = 30"}); err != nil {
		t.Errorf("a SETTINGS clause that changes nothing: %v", err)
	}
	for _, q := range []string{"SELECT 1 INTO OUTFILE " + store.Quote(outfile+"2"), "KILL QUERY WHERE 0", "SELECT file(" + store.Quote(secret) + ")", "SYSTEM STOP MERGES", "USE system"} {
		var r *analyst.Refusal
		if err := analyst.Guard(ctx, ro, q); !errors.As(err, &r) {
			t.Errorf("guard let %q through: %v", q, err)
		}
	}
}

func TestLimits(t *testing.T) {
	b := storetest.Embedded(t)
	f := &fixture{rw: b.Store, dir: strings.TrimPrefix(b.DSN, "embedded:"), db: b.DB}
	engineErr := func(t *testing.T, s store.Store, q, want string) {
		t.Helper()
		var out bytes.Buffer
		err := analyst.Run(ctx, s, q, "JSON", &out)
		var ee *store.EngineError
		if !errors.As(err, &ee) || !strings.Contains(strings.ToLower(ee.Message), strings.ToLower(want)) {
			t.Errorf("%q: got %v, want the engine's %q", q, err, want)
		}
		if out.Len() != 0 {
			t.Errorf("%q wrote %d bytes before failing", q, out.Len())
		}
	}

	t.Run("rows read", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxRowsRead: 1_000_000})
		engineErr(t, ro, "SELECT count() FROM numbers(10000000)", "max rows: 1.00 million")
		engineErr(t, ro, "SELECT count() FROM system.numbers", "max rows: 1.00 million")
		run(t, ro, "SELECT count() FROM numbers(1000000)", "JSON")
	})
	t.Run("result rows", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxResultRows: 100})
		engineErr(t, ro, "SELECT number FROM numbers(1000)", "Limit for result exceeded, max rows: 100")
		engineErr(t, ro, "SELECT number FROM numbers(101)", "Limit for result exceeded")
		if j := parseJSON(t, run(t, ro, "SELECT number FROM numbers(100)", "JSON")); len(j.Rows) != 100 {
			t.Errorf("100 rows: got %d", len(j.Rows))
		}
	})
	t.Run("result bytes", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxResultBytes: 10_000})
		engineErr(t, ro, "SELECT repeat(toString(number), 100) AS s FROM numbers(1000)", "Limit for result exceeded, max bytes")
	})
	t.Run("execution time", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxExecution: time.Second})
		// The engine's own "Timeout exceeded" proves the limit stopped it
		// (the statement alone would sleep 2.5 s); no wall-clock assertion.
		engineErr(t, ro, "SELECT sleepEachRow(0.25) FROM numbers(10)", "Timeout exceeded")
	})
	t.Run("memory", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxMemoryBytes: 20 << 20})
		engineErr(t, ro, "SELECT length(groupArray(toString(number))) FROM numbers(5000000)", "memory limit exceeded")
	})
	t.Run("statement size", func(t *testing.T) {
		ro := f.open(t, analyst.Limits{MaxQueryBytes: 1000})
		err := analyst.Run(ctx, ro, "SELECT 1 "+strings.Repeat("+ 1 ", 500), "JSON", new(bytes.Buffer))
		var r *analyst.Refusal
		if !errors.As(err, &r) || !strings.Contains(r.Reason, "Max query size exceeded") {
			t.Errorf("long statement: %v", err)
		}
		err = analyst.Run(ctx, ro, strings.Repeat(" ", analyst.MaxStatementBytes+1), "JSON", new(bytes.Buffer))
		if !errors.As(err, &r) {
			t.Errorf("huge statement: %v", err)
		}
	})
	t.Run("settings", func(t *testing.T) {
		s := analyst.Settings(analyst.Limits{MaxExecution: 1500 * time.Millisecond})
		m := map[string]string{}
		for _, st := range s {
			m[st.Name] = st.Value
		}
		if m["readonly"] != "1" || s[len(s)-1].Name != "readonly" || m["max_execution_time"] != "1.5" || m["result_overflow_mode"] != "throw" ||
			m["max_result_rows"] != "100000" || m["max_rows_to_read"] == "" || m["max_memory_usage"] == "" {
			t.Errorf("settings %v", m)
		}
	})
}

func TestGuardAllows(t *testing.T) {
	ro := storeOnly(t, analyst.Limits{})
	for _, q := range allowedSeeds {
		if err := analyst.Guard(ctx, ro, q); err != nil {
			t.Errorf("Guard(%q) = %v", q, err)
		}
	}
	names := analyst.DeniedNames(ctx, ro)
	for _, n := range []string{"file", "url", "remote", "s3", "eval", "arrowstream", "ytsaurus"} {
		if !slices.Contains(names, n) {
			t.Errorf("%s is not refused", n)
		}
	}
	for _, n := range []string{"numbers", "merge", "view", "values"} {
		if slices.Contains(names, n) {
			t.Errorf("%s is refused", n)
		}
	}
}

// allowedSeeds are valid statements for the fuzz corpus.
var allowedSeeds = []string{
	"SELECT 1", "select count() from events", "WITH 1 AS x SELECT x", "SHOW TABLES", "DESCRIBE events", "EXISTS TABLE events",
	"EXPLAIN SELECT 1", "EXPLAIN PIPELINE SELECT * FROM numbers(3)", "SELECT * FROM numbers(10) WHERE number IN (SELECT 1)",
	"SELECT 'file(1)' AS s", "SELECT `file` FROM t", "SELECT $$url('x')$$", "SELECT * FROM merge('db', '^t')", "SELECT * FROM view(SELECT 1)",
	"SELECT toString(x) AS format FROM t", "SELECT 1 AS `into`, 2 AS outfile",
	"SELECT name, type FROM system.columns WHERE database = currentDatabase()", "SELECT name FROM system.tables", "SELECT name FROM system.functions",
	"SELECT * FROM system.numbers LIMIT 3", "SHOW COLUMNS FROM events", "SHOW CREATE TABLE events", "SHOW DATABASES", "SHOW INDEX FROM events",
	"SELECT * FROM mergeTreeIndex(currentDatabase(), 'events', with_marks = true)", "SELECT * FROM mergeTreeIndex(currentDatabase(), events)",
	"SELECT * FROM loop(numbers(3)) LIMIT 5", "SELECT * FROM loop(events) LIMIT 5",
}

var allowedVerb = map[string]bool{"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "EXPLAIN": true, "EXISTS": true}

var (
	literal     = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	quotedIdent = regexp.MustCompile("`(?:[^`\\\\]|\\\\.)*`")
	nonWord     = regexp.MustCompile(`\W`)
	outside     = regexp.MustCompile(`(?i)\b(file|url|remote|remotesecure|cluster|clusterallreplicas|s3|s3cluster|gcs|azureblobstorage|hdfs|mysql|postgresql|sqlite|mongodb|redis|jdbc|odbc|executable|input|eval|dictionary|filesystem|iceberg\w*|deltalake\w*|hudi\w*)\s*\(`)
	outfile     = regexp.MustCompile(`(?i)\binto\s+outfile\b`)
	applyBad    = regexp.MustCompile(`(?i)\bapply\s*\(?\s*(file|catboostevaluate)\b`)
)

// FuzzGuard feeds the guard (and the engine's parser behind it) arbitrary
// text: it must never panic, every error must be a refusal, and whatever it
// lets through must be, in the engine's canonical form, an allowed
// statement calling nothing that reaches outside.
func FuzzGuard(f *testing.F) {
	for _, h := range hostile {
		f.Add(h.q)
	}
	for _, s := range allowedSeeds {
		f.Add(s)
	}
	b := storetest.Embedded(f)
	ro, err := store.OpenEmbedded(ctx, store.EmbeddedConfig{Dir: strings.TrimPrefix(b.DSN, "embedded:"), Database: b.DB, Conns: 2,
		Settings: analyst.Settings(analyst.Limits{MaxExecution: 5 * time.Second})})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ro.Close() })
	f.Fuzz(func(t *testing.T, q string) {
		err := analyst.Guard(ctx, ro, q)
		if err != nil {
			var r *analyst.Refusal
			if !errors.As(err, &r) || r.Reason == "" {
				t.Fatalf("Guard(%q) = %v, want a *Refusal", q, err)
			}
			return
		}
		var c proto.ColStr
		canonical := ""
		if err := ro.Select(ctx, store.Query{SQL: "SELECT formatQuery({q:String}) AS c", Params: []store.Param{store.P("q", q)}},
			proto.Results{{Name: "c", Data: &c}}, func(int) error { canonical = c.Row(0); return nil }); err != nil {
			t.Fatalf("Guard allowed %q, which does not format: %v", q, err)
		}
		lines := strings.SplitN(canonical, "\n", 2)
		verb := strings.ToUpper(strings.Fields(lines[0] + " x")[0])
		if verb == "DESC" {
			verb = "DESCRIBE"
		}
		if !allowedVerb[verb] {
			t.Fatalf("Guard allowed %q: canonical form %q starts with %s", q, canonical, verb)
		}
		if verb == "EXPLAIN" {
			if len(lines) < 2 || !allowedVerb[strings.ToUpper(strings.Fields(lines[1] + " x")[0])] || strings.HasPrefix(strings.ToUpper(lines[1]), "EXPLAIN") {
				t.Fatalf("Guard allowed %q: EXPLAIN of %q", q, canonical)
			}
		}
		code := quotedIdent.ReplaceAllStringFunc(literal.ReplaceAllString(canonical, "''"), func(id string) string {
			return nonWord.ReplaceAllString(strings.Trim(id, "`"), "_")
		})
		if outside.MatchString(code) || outfile.MatchString(code) || applyBad.MatchString(code) {
			t.Fatalf("Guard allowed %q: canonical form %q reaches outside", q, canonical)
		}
	})
}

// TestSchemaStatementsRun runs, on the engine, what an analyst needs to
// explore the schema: the allowed system tables, SHOW kinds and table
// functions with their names written out.
func TestSchemaStatementsRun(t *testing.T) {
	f := setup(t)
	ro := f.open(t, analyst.Limits{})
	for _, q := range []string{
		"SELECT name FROM system.tables WHERE database = currentDatabase()",
		"SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'",
		"SELECT count() FROM system.functions", "SELECT name FROM system.databases", "SELECT name FROM system.table_functions",
		"SELECT name FROM system.data_type_families LIMIT 1", "SELECT name FROM system.formats LIMIT 1",
		"SHOW TABLES", "SHOW DATABASES", "SHOW COLUMNS FROM events", "SHOW CREATE TABLE events", "SHOW INDEX FROM events",
		"SELECT count() FROM mergeTreeIndex(currentDatabase(), 'events')",
		"SELECT count() FROM mergeTreeIndex(" + store.Quote(f.db) + ", events, with_marks = true)",
		"SELECT count() FROM merge(currentDatabase(), '^events$')",
	} {
		var out bytes.Buffer
		if err := analyst.Run(ctx, ro, q, "JSON", &out); err != nil {
			t.Errorf("%q: %v", q, err)
		}
	}
}
