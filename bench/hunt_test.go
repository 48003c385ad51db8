package bench

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

// huntQuestions are an analyst's first questions, over the last 7 days of
// events, in the form migration 0010's indexes can skip on (either end as
// has([src, dst], x): an OR of the two ends is not). Each names what it looks for;
// the generator plants each in about 100 events of the 30 days.
var huntQuestions = []struct{ name, sql string }{
	{"address", `SELECT DISTINCT sensor_id FROM events
		WHERE time >= now() - INTERVAL 7 DAY AND has([src_address, dst_address], toIPv6('203.0.113.7'))`},
	{"dns-suffix", `SELECT DISTINCT sensor_id, binary FROM events
		WHERE time >= now() - INTERVAL 7 DAY AND kind IN ('dns_query', 'dns_lookup') AND endsWith(query_name, '.evil.example')`},
	{"binary", `SELECT dst_address, dst_port, count() AS n FROM events
		WHERE time >= now() - INTERVAL 7 DAY AND kind = 'network_connect' AND binary = 'curl'
		GROUP BY dst_address, dst_port ORDER BY n DESC LIMIT 100`},
	{"port", `SELECT DISTINCT sensor_id, binary FROM events
		WHERE time >= now() - INTERVAL 7 DAY AND has([src_port, dst_port], 8805)`},
}

// BenchmarkHunt asks huntQuestions of NETVIEW_HUNT_EVENTS events (default
// 100,000,000) from 10,000 sensors over 30 days, generated straight into
// the events table by the engine (INSERT ... SELECT FROM numbers), and
// times each with the data-skipping indexes (use_skip_indexes = 1) and
// without them, the full scan of the same SQL, in alternating rounds of
// the same run. It reports p50 and p95 of both in milliseconds and
// scan/indexed at p50, the speed-up. Run it once:
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
	b.Logf("generated %d events from 10,000 sensors over 30 days in %v", events, time.Since(start).Round(time.Second))

	for _, q := range huntQuestions {
		var with, without []time.Duration
		var got [2]uint64
		for r := range rounds + 1 {
			for i, skip := range []string{"1", "0"} {
				t0 := time.Now()
				n := countRows(b, be.Store, q.sql, skip)
				d := time.Since(t0)
				got[i] = n
				if r == 0 {
					continue // warm-up
				}
				if skip == "1" {
					with = append(with, d)
				} else {
					without = append(without, d)
				}
			}
			if got[0] != got[1] {
				b.Fatalf("%s: %d rows with the indexes, %d without", q.name, got[0], got[1])
			}
		}
		if got[0] == 0 {
			b.Fatalf("%s: no rows: the planted values are missing", q.name)
		}
		slices.Sort(with)
		slices.Sort(without)
		b.ReportMetric(ms(pct(with, 0.5)), q.name+"-p50-ms")
		b.ReportMetric(ms(pct(with, 0.95)), q.name+"-p95-ms")
		b.ReportMetric(ms(pct(without, 0.5)), q.name+"-scan-p50-ms")
		b.ReportMetric(ms(pct(without, 0.95)), q.name+"-scan-p95-ms")
		b.ReportMetric(float64(pct(without, 0.5))/float64(pct(with, 0.5)), q.name+"-scan/indexed")
	}
}

// loadEvents generates n events into events: 10,000 sensors, times spread
// evenly over the last 30 days, five kinds. About 100 events each, whatever
// n, carry the values huntQuestions look for (203.0.113.7, *.evil.example,
// curl, port 8805); the rest carry common values. Inserts go a day's worth
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
			if(kind IN ('dns_query', 'dns_lookup'), if(rare(4), 'c2.evil.example', concat('svc', toString(bitShiftRight(h, 20) %% 100000), '.corp.example')), '') AS query_name,
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

// countRows runs sql, with the data-skipping indexes used or not (skip "1"
// or "0"), and counts the rows it returns.
func countRows(b *testing.B, st store.Store, sql, skip string) uint64 {
	b.Helper()
	var c proto.ColUInt64
	var n uint64
	err := st.Select(context.Background(), store.Query{SQL: "SELECT toUInt64(count()) AS n FROM (" + sql + ") SETTINGS use_skip_indexes = " + skip},
		proto.Results{{Name: "n", Data: &c}}, func(int) error { n = c.Row(0); return nil })
	if err != nil {
		b.Fatal(err)
	}
	return n
}
