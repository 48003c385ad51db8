package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

// sizingShape is the heartbeat BenchmarkStorage writes: a busy server. The
// generator closes about a tenth of the connections between two heartbeats
// and opens as many, so 10 completed flows per heartbeat match its churn;
// every completed flow is also a network_flow event, beside the 10 events.
// Active flows are not the generator's (new flow ids every heartbeat, which
// never collapse) but withFlows': one per open connection, keeping its
// flow_id while the connection lives, as the sensor's flow tracker does.
var sizingShape = heartbeat.Shape{Conns: 100, Listeners: 20, UDP: 10, CompletedFlows: 10, Events: 10}

const heartbeatsPerDay = 24 * 3600 / 15 // at the default 15 s interval

// BenchmarkStorage measures the disk a sensor costs, for sizing. 100
// sensors × 240 heartbeats (one hour at 15 s) of sizingShape go through a
// real ingest node on loopback (HTTP, zstd, production batch settings) into
// the embedded engine. It then reads system.parts twice: as ingested (the
// parts background merges left within the run), and after OPTIMIZE TABLE
// ... FINAL, when the snapshot tables' ReplacingMergeTree has collapsed the
// rows of a socket seen by many heartbeats into one, as background merges
// do over time within a day's partition.
//
// It prints, per table, active parts, rows, bytes on disk, uncompressed
// bytes, bytes per row and per heartbeat, and MB per sensor-day (bytes per
// heartbeat × 5,760 heartbeats a day), and reports the totals:
//
//	wire-B/heartbeat        compressed heartbeat body on the wire
//	ingested-B/heartbeat    disk per heartbeat before OPTIMIZE
//	merged-B/heartbeat      disk per heartbeat after OPTIMIZE FINAL
//	merged-MB/sensor-day    the same × 5,760
//	retained-MB/sensor      each table's sensor-day × its TTL in days
//
// Per sensor-day is one hour scaled by 24: right for the event tables and
// for connections that churn, an overestimate for sockets that live all
// day (listeners: 20 rows a day, not 480). Run it once:
//
//	go test -run '^$' -bench Storage -benchtime 1x ./bench/
//
// b.N is ignored: one run is the measurement, made once per process (the
// testing package calls a benchmark again for -benchtime 3x, as make bench
// does; that call reports the same figures).
func BenchmarkStorage(b *testing.B) {
	if storageMetrics == nil {
		storageMetrics = measureStorage(b)
	}
	for _, m := range storageMetrics {
		b.ReportMetric(m.value, m.unit)
	}
	b.ReportMetric(0, "ns/op")
}

type storageMetric struct {
	value float64
	unit  string
}

var storageMetrics []storageMetric

func measureStorage(b *testing.B) []storageMetric {
	const sensors, beats, senders = 100, 240, 300
	ctx := context.Background()
	cfg := ingest.Config{MaxBodyBytes: 4 << 20, MaxDecodedBytes: 32 << 20, MaxRatio: 40,
		BatchRows: 100_000, BatchAge: 200 * time.Millisecond, MaxPending: 1_000_000, AckTimeout: 30 * time.Second,
		Tokens: auth.TokenFlags{List: ingesttest.Token}, SharedTokens: true}
	node := ingesttest.Start(b, cfg, nil)

	// One producer makes the heartbeats in time order (every sensor's k-th,
	// then the (k+1)-th), senders encode and post them concurrently.
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(1000+i), sizingShape)
	}
	base := time.Now().Add(-time.Duration(beats) * 15 * time.Second)
	work := make(chan *heartbeat.Heartbeat, senders)
	inserted := map[string]uint64{} // rows sent per table, read after the senders are done
	go func() {
		defer close(work)
		for k := range beats {
			at := base.Add(time.Duration(k) * 15 * time.Second)
			for _, g := range gens {
				h := withFlows(g.Next(at))
				inserted["sensors"]++
				inserted["heartbeats"]++
				inserted["tcp_connections"] += uint64(len(h.TCPConnections))
				inserted["tcp_listeners"] += uint64(len(h.TCPListeners))
				inserted["udp_listeners"] += uint64(len(h.UDPListeners))
				inserted["active_flows"] += uint64(len(h.ActiveFlows))
				inserted["flows"] += uint64(len(h.CompletedFlows))
				inserted["events"] += uint64(len(h.Events) + len(h.CompletedFlows))
				work <- h
			}
		}
	}()
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: senders, MaxConnsPerHost: senders}}
	defer client.CloseIdleConnections()
	url := node.URL + "/v1/heartbeat"
	var wireBytes, sent atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for h := range work {
				if err := postHeartbeat(client, url, h, &wireBytes); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	load := time.Since(start)
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatal(err)
	}
	n := sent.Load()
	if n != sensors*beats {
		b.Fatalf("%d heartbeats acknowledged, want %d", n, sensors*beats)
	}
	fmt.Printf("storage: %d sensors × %d heartbeats (%+v, an active flow per connection) acknowledged in %.1f s (%.0f heartbeats/s); %.0f B per heartbeat on the wire\n",
		sensors, beats, sizingShape, load.Seconds(), float64(n)/load.Seconds(), float64(wireBytes.Load())/float64(n))

	tables, err := schema.Tables()
	if err != nil {
		b.Fatal(err)
	}
	ttl := tableTTLs(b, node.Store)
	ingested := readParts(b, node.Store)
	start = time.Now()
	for _, t := range tables {
		if err := node.Store.Exec(ctx, store.Query{SQL: "OPTIMIZE TABLE " + t + " FINAL"}); err != nil {
			b.Fatalf("optimize %s: %v", t, err)
		}
	}
	fmt.Printf("storage: OPTIMIZE FINAL of %d tables in %.1f s\n", len(tables), time.Since(start).Seconds())
	merged := readParts(b, node.Store)

	perHB := func(bytes uint64) float64 { return float64(bytes) / float64(n) }
	perDay := func(bytes uint64) float64 { return perHB(bytes) * heartbeatsPerDay / 1e6 }
	fmt.Printf("\nAfter OPTIMIZE FINAL (\"as ingested\": before it); B/hb and MB per sensor-day of disk after it\n")
	fmt.Printf("%-18s %9s %9s %6s %11s %11s %6s %7s %10s %9s %11s %5s %13s\n", "table", "inserted", "rows", "parts", "disk B", "uncompr. B", "B/row",
		"B/hb", "MB/sen-day", "as ingested rows", "disk B", "TTL d", "MB/sensor@TTL")
	var tot, totIn, totUn uint64
	var retained float64
	for _, t := range tables {
		m, in := merged[t], ingested[t]
		tot, totIn, totUn = tot+m.bytes, totIn+in.bytes, totUn+m.uncompressed
		days, ok := ttl[t]
		ret, ttlText := 0.0, "-"
		if ok {
			ret, ttlText = perDay(m.bytes)*float64(days), strconv.Itoa(days)
			retained += ret
		}
		bpr := 0.0
		if m.rows > 0 {
			bpr = float64(m.bytes) / float64(m.rows)
		}
		fmt.Printf("%-18s %9d %9d %6d %11d %11d %6.1f %7.1f %10.2f %16d %11d %5s %13.1f\n", t, inserted[t], m.rows, m.parts, m.bytes, m.uncompressed, bpr,
			perHB(m.bytes), perDay(m.bytes), in.rows, in.bytes, ttlText, ret)
	}
	fmt.Printf("%-18s %9s %9s %6s %11d %11d %6s %7.1f %10.2f %16s %11d %5s %13.1f\n\n", "total", "", "", "", tot, totUn, "", perHB(tot), perDay(tot), "", totIn, "", retained)

	// What a sensor of this shape must leave in every table it feeds.
	for _, t := range []string{"sensors", "heartbeats", "tcp_connections", "tcp_listeners", "udp_listeners", "active_flows", "flows", "events"} {
		if m := merged[t]; m.rows == 0 || m.bytes == 0 || ingested[t].bytes == 0 {
			b.Errorf("%s: %d rows, %d bytes after OPTIMIZE, %d bytes before: want some", t, m.rows, m.bytes, ingested[t].bytes)
		}
	}
	if got, want := merged["heartbeats"].rows, uint64(n); got != want {
		b.Errorf("heartbeats: %d rows, want one per heartbeat (%d)", got, want)
	}
	if got, want := merged["sensors"].rows, uint64(sensors); got != want {
		b.Errorf("sensors: %d rows after OPTIMIZE FINAL, want one per sensor (%d)", got, want)
	}
	wantFlows := uint64(n) * uint64(sizingShape.CompletedFlows)
	if got := merged["flows"].rows; got != wantFlows {
		b.Errorf("flows: %d rows, want %d", got, wantFlows)
	}
	if got, want := merged["events"].rows, uint64(n)*uint64(sizingShape.Events+sizingShape.CompletedFlows); got != want {
		b.Errorf("events: %d rows, want %d (events and network_flow)", got, want)
	}
	if got, max := merged["tcp_listeners"].rows, uint64(sensors*sizingShape.Listeners*2); got > max { // a day boundary may split one hour
		b.Errorf("tcp_listeners: %d rows after OPTIMIZE FINAL, want at most %d: the snapshot did not collapse", got, max)
	}

	if b.Failed() {
		b.FailNow()
	}
	return []storageMetric{
		{float64(wireBytes.Load()) / float64(n), "wire-B/heartbeat"},
		{perHB(totIn), "ingested-B/heartbeat"},
		{perHB(tot), "merged-B/heartbeat"},
		{perDay(tot), "merged-MB/sensor-day"},
		{retained, "retained-MB/sensor"},
	}
}

// withFlows sets a heartbeat's active flows to one per TCP connection, with
// a flow_id derived from the socket (stable while it is open) and byte
// counters that grow with its age.
func withFlows(h *heartbeat.Heartbeat) *heartbeat.Heartbeat {
	h.ActiveFlows = h.ActiveFlows[:0]
	for _, c := range h.TCPConnections {
		key := fmt.Sprintf("%s:%d-%s:%d/%d", c.LocalAddress, c.LocalPort, c.RemoteAddress, c.RemotePort, c.Inode)
		age := uint64(h.SentAt.Sub(c.FirstSeen) / time.Second)
		h.ActiveFlows = append(h.ActiveFlows, heartbeat.Flow{
			FlowID: uuid.NewSHA1(h.Sensor.SensorID, []byte(key)), Protocol: "tcp", Direction: "outbound",
			SrcAddress: c.LocalAddress, SrcPort: c.LocalPort, DstAddress: c.RemoteAddress, DstPort: c.RemotePort,
			Process: c.Process, StartedAt: c.FirstSeen, BytesSent: 1200 + age*(c.Inode%4096),
			BytesReceived: 5400 + age*(c.Inode%65536), State: "ESTABLISHED", Source: "inet_diag",
		})
	}
	return h
}

// postHeartbeat encodes and sends one heartbeat and requires a 200.
func postHeartbeat(client *http.Client, url string, h *heartbeat.Heartbeat, wire *atomic.Int64) error {
	body, err := heartbeat.Encode(h)
	if err != nil {
		return err
	}
	wire.Add(int64(len(body)))
	req, err := http.NewRequest("POST", url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+ingesttest.Token)
	req.Header.Set("Content-Encoding", "zstd")
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("heartbeat %s seq %d: %d %s", h.Sensor.SensorID, h.Seq, resp.StatusCode, msg)
	}
	return nil
}

type partStats struct{ parts, rows, bytes, uncompressed uint64 }

// readParts sums the active parts of every table of the current database.
func readParts(b testing.TB, st store.Store) map[string]partStats {
	var (
		table                      proto.ColStr
		parts, rows, disk, uncompr proto.ColUInt64
	)
	out := map[string]partStats{}
	err := st.Select(context.Background(), store.Query{SQL: `SELECT table, count() AS parts, sum(rows) AS rows,
		sum(bytes_on_disk) AS disk, sum(data_uncompressed_bytes) AS uncompr
		FROM system.parts WHERE database = currentDatabase() AND active GROUP BY table`},
		proto.Results{{Name: "table", Data: &table}, {Name: "parts", Data: &parts}, {Name: "rows", Data: &rows},
			{Name: "disk", Data: &disk}, {Name: "uncompr", Data: &uncompr}},
		func(n int) error {
			for i := range n {
				out[table.Row(i)] = partStats{parts.Row(i), rows.Row(i), disk.Row(i), uncompr.Row(i)}
			}
			return nil
		})
	if err != nil {
		b.Fatalf("system.parts: %v", err)
	}
	return out
}

var ttlDays = regexp.MustCompile(`TTL .*toIntervalDay\((\d+)\)`)

// tableTTLs reads each table's TTL in days from the engine, so the retained
// figure follows the migrations.
func tableTTLs(b testing.TB, st store.Store) map[string]int {
	var name, engine proto.ColStr
	out := map[string]int{}
	err := st.Select(context.Background(), store.Query{SQL: "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"},
		proto.Results{{Name: "name", Data: &name}, {Name: "engine_full", Data: &engine}},
		func(n int) error {
			for i := range n {
				if m := ttlDays.FindStringSubmatch(engine.Row(i)); m != nil {
					out[name.Row(i)], _ = strconv.Atoi(m[1])
				}
			}
			return nil
		})
	if err != nil {
		b.Fatalf("system.tables: %v", err)
	}
	for _, t := range []string{"heartbeats", "tcp_connections", "flows", "events"} {
		if out[t] == 0 {
			b.Fatalf("%s: no TTL in days found in system.tables", t)
		}
	}
	return out
}
