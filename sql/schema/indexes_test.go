package schema_test

import (
	"context"
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

	for _, c := range []struct {
		table, index, where string
	}{
		{"events", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))"},
		{"events", "hunt_ports", "has([src_port, dst_port], 4444)"},
		{"events", "hunt_binary", "binary = 'implant'"},
		{"events", "hunt_query_name", "query_name LIKE '%.evil.example'"},
		{"events", "hunt_query_name", "endsWith(query_name, '.evil.example')"},
		{"events", "hunt_answers", "has(answers, toIPv6('198.51.100.9'))"},
		{"flows", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))"},
		{"flows", "hunt_ports", "has([src_port, dst_port], 4444)"},
		{"flows", "hunt_binary", "binary = 'implant'"},
		{"active_flows", "hunt_addresses", "has([src_address, dst_address], toIPv6('203.0.113.7'))"},
		{"active_flows", "hunt_binary", "binary = 'implant'"},
		{"tcp_connections", "hunt_addresses", "has([local_address, remote_address], toIPv6('203.0.113.7'))"},
		{"tcp_connections", "hunt_ports", "has([local_port, remote_port], 4444)"},
		{"tcp_connections", "hunt_binary", "binary = 'implant'"},
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
			if got != hitRows {
				t.Errorf("%s finds %d rows, want %d", c.where, got, hitRows)
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
