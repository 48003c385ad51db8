package schema_test

import (
	"context"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

func TestMigrateIsIdempotentAndRecorded(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			ms, err := schema.Migrations()
			if err != nil {
				t.Fatal(err)
			}
			latest := ms[len(ms)-1].Version
			for range 2 {
				v, err := schema.Migrate(ctx, b.Store, schema.Options{EventsTTLDays: 30})
				if err != nil {
					t.Fatal(err)
				}
				if v != latest {
					t.Fatalf("version = %d, want %d", v, latest)
				}
			}
			var n proto.ColUInt64
			var rows uint64
			if err := b.Store.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM schema_migrations FINAL"},
				proto.Results{{Name: "n", Data: &n}}, func(int) error { rows = n.Row(0); return nil }); err != nil {
				t.Fatal(err)
			}
			if rows != uint64(len(ms)) {
				t.Fatalf("schema_migrations has %d rows, want %d", rows, len(ms))
			}
			tables, err := schema.Tables()
			if err != nil {
				t.Fatal(err)
			}
			var name proto.ColStr
			have := map[string]bool{}
			if err := b.Store.Select(ctx, store.Query{SQL: "SELECT name FROM system.tables WHERE database = currentDatabase()"},
				proto.Results{{Name: "name", Data: &name}}, func(r int) error {
					for i := range r {
						have[name.Row(i)] = true
					}
					return nil
				}); err != nil {
				t.Fatal(err)
			}
			for _, tb := range tables {
				if !have[tb] {
					t.Errorf("table %s missing after migrate", tb)
				}
			}
		})
	}
}

func TestEventsTTLIsConfigurable(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{EventsTTLDays: 9}); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"events", "flows"} {
		var e proto.ColStr
		var full string
		if err := b.Store.Select(ctx, store.Query{SQL: "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
			Params: []store.Param{store.P("t", table)}},
			proto.Results{{Name: "engine_full", Data: &e}}, func(int) error { full = e.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full, "toIntervalDay(9)") {
			t.Errorf("%s TTL not set to 9 days: %s", table, full)
		}
	}
}

// The history tables are filled by their materialized views on every
// insert into a snapshot table, keep every heartbeat's rows (the snapshot
// table keeps only each socket's newest), fold a retried heartbeat's copy,
// and take their retention from HistoryTTLDays.
func TestSnapshotHistoryKeepsEveryHeartbeat(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{HistoryTTLDays: 3}); err != nil {
		t.Fatal(err)
	}
	count := func(q string) uint64 {
		t.Helper()
		var n proto.ColUInt64
		var got uint64
		if err := b.Store.Select(ctx, store.Query{SQL: q}, proto.Results{{Name: "n", Data: &n}}, func(int) error { got = n.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	exec := func(q string) {
		t.Helper()
		if err := b.Store.Exec(ctx, store.Query{SQL: q}); err != nil {
			t.Fatal(err)
		}
	}
	const sensor = "'6f1d2c3b-0000-4000-8000-000000000001'"
	insert := func(seq int) {
		exec("INSERT INTO tcp_connections (sensor_id, seq, observed_at, local_port, remote_port, inode) SELECT " + sensor + ", " +
			strconv.Itoa(seq) + ", now64(3), 443, 40000 + number, number FROM numbers(5)")
		exec("INSERT INTO sensors (sensor_id, seq, received_at) VALUES (" + sensor + ", " + strconv.Itoa(seq) + ", now64(3))")
	}
	insert(1)
	insert(1) // the heartbeat retried after a lost acknowledgement
	insert(2)
	for _, tb := range []string{"tcp_connections", "tcp_connections_history", "sensors", "sensors_history"} {
		exec("OPTIMIZE TABLE " + tb + " FINAL")
	}
	if got := count("SELECT count() AS n FROM tcp_connections"); got != 5 {
		t.Errorf("tcp_connections holds %d rows after the merge, want 5 (each socket's newest)", got)
	}
	if got := count("SELECT count() AS n FROM tcp_connections_history"); got != 10 {
		t.Errorf("tcp_connections_history holds %d rows, want 10 (5 sockets x 2 heartbeats, the retry folded)", got)
	}
	if got := count("SELECT count() AS n FROM sensors_history"); got != 2 {
		t.Errorf("sensors_history holds %d rows, want 2 (one a heartbeat, the retry folded)", got)
	}
	for _, h := range schema.HistoryTables {
		var e proto.ColStr
		var full string
		if err := b.Store.Select(ctx, store.Query{SQL: "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
			Params: []store.Param{store.P("t", h.History)}},
			proto.Results{{Name: "engine_full", Data: &e}}, func(int) error { full = e.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(full, "toIntervalDay(3)") {
			t.Errorf("%s TTL not set to 3 days: %s", h.History, full)
		}
	}
}

// The cluster form must exist for every table and be valid ClickHouse SQL
// (checked by the engine's own parser).
func TestClusterFormCoversEveryTable(t *testing.T) {
	ddl, err := schema.ClusterDDL("netview")
	if err != nil {
		t.Fatal(err)
	}
	tables, err := schema.Tables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		for _, want := range []string{
			"CREATE TABLE IF NOT EXISTS " + tb + "_local ON CLUSTER 'netview'",
			"ENGINE = Replicated",
			"CREATE TABLE IF NOT EXISTS " + tb + " ON CLUSTER 'netview' AS " + tb + "_local\nENGINE = Distributed('netview', currentDatabase(), " + tb + "_local,",
		} {
			if !strings.Contains(ddl, want) {
				t.Errorf("cluster DDL lacks %q", want)
			}
		}
	}
	if !strings.Contains(ddl, "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_connections_local', '{replica}', seq)") {
		t.Errorf("version column not carried into the replicated engine:\n%s", ddl)
	}
	// A column change goes to the local table and to the Distributed one in
	// front of it, or reads through the Distributed table would not see it.
	ms, err := schema.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	alters := 0
	for _, m := range ms {
		for _, st := range m.Statements {
			rest, ok := strings.CutPrefix(st, "ALTER TABLE ")
			if !ok || !strings.Contains(st, " COLUMN ") {
				continue
			}
			alters++
			table, change, _ := strings.Cut(rest, " ")
			want := []string{
				"ALTER TABLE " + table + "_local ON CLUSTER 'netview' " + change,
				"ALTER TABLE " + table + " ON CLUSTER 'netview' " + change,
			}
			if got := schema.ClusterForm(st, "netview"); strings.Join(got, ";") != strings.Join(want, ";") {
				t.Errorf("cluster form of %q = %q, want %q", st, got, want)
			}
		}
	}
	if alters == 0 {
		t.Errorf("no ALTER ... COLUMN in the migrations; sensors.capabilities is added by one")
	}
	// A materialized view runs on every node, from local table to local
	// table: a shard's inserts fill its own history, never a Distributed
	// table's (which would write every row twice across the cluster).
	mv := "CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_connections_history_mv TO tcp_connections_history AS SELECT * FROM tcp_connections"
	want := "CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_connections_history_mv ON CLUSTER 'netview' TO tcp_connections_history_local AS SELECT * FROM tcp_connections_local"
	if got := schema.ClusterForm(mv, "netview"); len(got) != 1 || got[0] != want {
		t.Errorf("cluster form of %q = %q, want %q", mv, got, want)
	}
	for _, h := range schema.HistoryTables {
		if want := "TO " + h.History + "_local AS SELECT * FROM " + h.Table + "_local;"; !strings.Contains(ddl, want) {
			t.Errorf("cluster DDL lacks %q", want)
		}
	}
	b := storetest.Embedded(t)
	var out proto.ColStr
	for _, st := range schema.Split(ddl) {
		err := b.Store.Select(context.Background(), store.Query{SQL: "SELECT formatQuery({q:String}) AS f", Params: []store.Param{store.P("q", st)}},
			proto.Results{{Name: "f", Data: &out}}, nil)
		if err != nil {
			t.Errorf("engine rejects cluster statement: %v\n%s", err, st)
		}
	}
}

func TestSplit(t *testing.T) {
	got := schema.Split("-- c\nCREATE TABLE a (x UInt8) ENGINE = Memory;\n\nALTER TABLE a ADD COLUMN y UInt8; -- trailing\n")
	if len(got) != 2 || !strings.HasPrefix(got[0], "CREATE TABLE a") || got[1] != "ALTER TABLE a ADD COLUMN y UInt8" {
		t.Fatalf("Split = %q", got)
	}
}

// deploy/clickhouse/cluster.sql is what operators apply by hand; it must be
// the generator's current output (refresh with `make cluster-ddl`).
func TestDeployedClusterDDLIsCurrent(t *testing.T) {
	ddl, err := schema.ClusterDDL("netview")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../../deploy/clickhouse/cluster.sql")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != ddl {
		t.Fatal("deploy/clickhouse/cluster.sql is stale: run `make cluster-ddl`")
	}
}

// indexRows is enough rows for about 49 granules of 8192 in one part; the
// values a hunt looks for sit in rows hitFrom..hitFrom+hitRows, inside one
// or two granules, and everywhere else the columns hold other values.
const (
	indexRows = 400000
	hitFrom   = 200000
	hitRows   = 20
)

// hit is the SQL condition that marks the rows holding the hunted values.
var hit = "number BETWEEN " + strconv.Itoa(hitFrom) + " AND " + strconv.Itoa(hitFrom+hitRows-1)

// Every hunting filter must be answered by its skip index: EXPLAIN names the
// index and shows it dropped granules. The rows are written after the
// migration, so every part has the indexes.
func TestHuntingIndexesSkipGranules(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	// Filler addresses are v4-mapped 10.x.y.z, ports 1024.., binaries b<n%500>,
	// names h<n>.corp.example; the hunted rows have 203.0.113.7 on one end
	// (source in half of them, destination in the other), port 4444, binary
	// implant, name x<n>.evil.example and answer 198.51.100.9.
	addr := func(end string) string {
		other := "toIPv6(IPv4NumToString(toUInt32(167772160 + number % 1000000)))"
		if end == "src" {
			return "if(" + hit + " AND number % 2 = 0, toIPv6('203.0.113.7'), " + other + ")"
		}
		return "if(" + hit + " AND number % 2 = 1, toIPv6('203.0.113.7'), " + other + ")"
	}
	port := "if(" + hit + ", toUInt16(4444), toUInt16(1024 + number % 3000))"
	binary := "if(" + hit + ", 'implant', concat('b', toString(number % 500)))"
	exec := func(sql string) {
		t.Helper()
		if err := b.Store.Exec(ctx, store.Query{SQL: sql}); err != nil {
			t.Fatalf("%v\n%s", err, sql)
		}
	}
	sensor := "toUUID('00000000-0000-0000-0000-000000000001')"
	start := time.Now().UTC().Add(-time.Hour).Format("2006-01-02 15:04:05")
	at := "toDateTime64('" + start + "', 3, 'UTC') + toIntervalMillisecond(number)"
	exec(`INSERT INTO events (event_id, sensor_id, kind, time, src_address, src_port, dst_address, dst_port, binary, query_name, answers)
SELECT generateUUIDv4(number), ` + sensor + `, 'dns_query', ` + at + `, ` + addr("src") + `, ` + port + `, ` + addr("dst") + `, toUInt16(53), ` + binary + `,
    if(` + hit + `, concat('x', toString(number), '.evil.example'), concat('h', toString(number), '.corp.example')),
    [if(` + hit + `, toIPv6('198.51.100.9'), toIPv6(IPv4NumToString(toUInt32(167772160 + number % 1000000))))]
FROM numbers(` + strconv.Itoa(indexRows) + `)`)
	exec(`INSERT INTO flows (sensor_id, flow_id, src_address, src_port, dst_address, dst_port, binary, started_at, ended_at)
SELECT ` + sensor + `, generateUUIDv4(number), ` + addr("src") + `, toUInt16(40000), ` + addr("dst") + `, ` + port + `, ` + binary + `, ` + at + `, ` + at + `
FROM numbers(` + strconv.Itoa(indexRows) + `)`)
	exec(`INSERT INTO active_flows (sensor_id, seq, observed_at, flow_id, src_address, src_port, dst_address, dst_port, binary, started_at)
SELECT ` + sensor + `, 1, ` + at + `, toUUID(concat('00000000-0000-0000-0000-', leftPad(toString(number), 12, '0'))), ` + addr("src") + `, toUInt16(40000), ` + addr("dst") + `, ` + port + `, ` + binary + `, ` + at + `
FROM numbers(` + strconv.Itoa(indexRows) + `)`)
	// tcp_connections is sorted by local address then port: the hunted
	// address is remote, where only the index can find it.
	exec(`INSERT INTO tcp_connections (sensor_id, seq, observed_at, local_address, local_port, remote_address, remote_port, inode, binary, first_seen)
SELECT ` + sensor + `, 1, ` + at + `, toIPv6('10.0.0.1'), toUInt16(10000 + number % 50000), if(` + hit + `, toIPv6('203.0.113.7'), toIPv6(IPv4NumToString(toUInt32(167772160 + number % 1000000)))), if(` + hit + `, toUInt16(4444), toUInt16(1024 + number % 3000)), number, ` + binary + `, ` + at + `
FROM numbers(` + strconv.Itoa(indexRows) + `)`)

	// dns is the DNS name filter's form (query/filter.go): names compared
	// lowercased, which only migration 0011's index is built on.
	const dns = "events.kind IN ['dns_query', 'dns_lookup', 'dns_resolution'] AND "
	for _, c := range []struct {
		table, index, where string
		rows                uint64 // the rows it finds; hitRows when 0
	}{
		{"events", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))", 0},
		{"events", "hunt_ports", "has([src_port, dst_port], 4444)", 0},
		{"events", "hunt_binary", "binary = 'implant'", 0},
		{"events", "hunt_query_name", "query_name LIKE '%.evil.example'", 0},
		{"events", "hunt_query_name", "endsWith(query_name, '.evil.example')", 0},
		{"events", "hunt_query_name_lower", dns + "endsWith(lower(events.query_name), '.evil.example')", 0},
		{"events", "hunt_query_name_lower", dns + "lower(events.query_name) = 'x200007.evil.example'", 1},
		{"events", "hunt_answers", "has(answers, toIPv6('198.51.100.9'))", 0},
		{"flows", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))", 0},
		{"flows", "hunt_ports", "has([src_port, dst_port], 4444)", 0},
		{"flows", "hunt_binary", "binary = 'implant'", 0},
		{"active_flows", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))", 0},
		{"active_flows", "hunt_binary", "binary = 'implant'", 0},
		{"tcp_connections", "hunt_addresses", "has([local_address, remote_address], toIPv6('203.0.113.7'))", 0},
		{"tcp_connections", "hunt_ports", "has([local_port, remote_port], 4444)", 0},
		{"tcp_connections", "hunt_binary", "binary = 'implant'", 0},
	} {
		t.Run(c.table+"/"+c.where, func(t *testing.T) {
			q := "SELECT count() FROM " + c.table + " WHERE " + c.where
			kept, total, ok := skipGranules(t, b.Store, q, c.index)
			if !ok {
				t.Fatalf("EXPLAIN does not show index %s for %s", c.index, c.where)
			}
			t.Logf("%s %s: granules %d/%d", c.table, c.index, kept, total)
			if total < 40 || kept >= total || kept > 4 {
				t.Errorf("index %s kept %d of %d granules for %s; want a few", c.index, kept, total, c.where)
			}
			// The index only skips: the hunted rows are all still found.
			var n proto.ColUInt64
			var got uint64
			if err := b.Store.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM " + c.table + " WHERE " + c.where},
				proto.Results{{Name: "n", Data: &n}}, func(int) error { got = n.Row(0); return nil }); err != nil {
				t.Fatal(err)
			}
			want := uint64(hitRows)
			if c.rows > 0 {
				want = c.rows
			}
			if got != want {
				t.Errorf("%s finds %d rows, want %d", c.where, got, want)
			}
		})
	}
}

var granulesRe = regexp.MustCompile(`Granules:\s*(\d+)/(\d+)`)

// skipGranules runs EXPLAIN indexes = 1 on q and returns the granules kept
// out of those given to the skip index named index, ok false when the plan
// does not use it.
func skipGranules(t *testing.T, s store.Store, q, index string) (kept, total int, ok bool) {
	t.Helper()
	var col proto.ColStr
	var lines []string
	if err := s.Select(context.Background(), store.Query{SQL: "EXPLAIN indexes = 1 " + q},
		proto.Results{{Name: "explain", Data: &col}}, func(r int) error {
			for i := range r {
				lines = append(lines, col.Row(i))
			}
			col.Reset()
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	for i, l := range lines {
		if strings.TrimSpace(l) != "Name: "+index {
			continue
		}
		for _, next := range lines[i+1:] {
			if m := granulesRe.FindStringSubmatch(next); m != nil {
				kept, _ = strconv.Atoi(m[1])
				total, _ = strconv.Atoi(m[2])
				return kept, total, true
			}
			if strings.Contains(next, "Name:") {
				break
			}
		}
	}
	t.Logf("plan:\n%s", strings.Join(lines, "\n"))
	return 0, 0, false
}

// A history table must hold every column of its snapshot table, with the
// same type: its materialized view writes the snapshot rows by name, so a
// column added to a snapshot table and not to its history (a later
// migration) would be lost from every view at a moment, or fail the insert.
func TestHistoryTablesMatchTheirSnapshotTables(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	columns := func(table string) string {
		t.Helper()
		var c proto.ColStr
		var got string
		if err := b.Store.Select(ctx, store.Query{SQL: "SELECT arrayStringConcat(groupArray(name || ' ' || type), ', ') AS c FROM (SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} ORDER BY name)",
			Params: []store.Param{store.P("t", table)}},
			proto.Results{{Name: "c", Data: &c}}, func(int) error { got = c.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	for _, h := range schema.HistoryTables {
		snap, hist := columns(h.Table), columns(h.History)
		if snap == "" || snap != hist {
			t.Errorf("%s has columns\n  %s\nbut %s has\n  %s", h.Table, snap, h.History, hist)
		}
	}
}
