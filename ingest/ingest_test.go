package ingest_test

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql"
)

var shape = heartbeat.Shape{Conns: 100, Listeners: 20, UDP: 6, ActiveFlows: 10, CompletedFlows: 5, Events: 14}

// connKey identifies a connection row in tests.
func connKey(port uint16, remote netip.Addr, rport uint16, inode uint64) string {
	return fmt.Sprintf("%d>%s:%d#%d", port, remote.Unmap(), rport, inode)
}

// activeConns returns the latest-state view of one sensor, as keys.
func activeConns(t *testing.T, st store.Store, sensor uuid.UUID) []string {
	t.Helper()
	var (
		lport, rport proto.ColUInt16
		raddr        proto.ColIPv6
		inode        proto.ColUInt64
		out          []string
	)
	q := "SELECT local_port, remote_address, remote_port, inode FROM (" + sql.ActiveConnections + ") WHERE sensor_id = {s:UUID}"
	err := st.Select(context.Background(), store.Query{SQL: q, Params: []store.Param{store.P("s", sensor.String())}},
		proto.Results{{Name: "local_port", Data: &lport}, {Name: "remote_address", Data: &raddr}, {Name: "remote_port", Data: &rport}, {Name: "inode", Data: &inode}},
		func(n int) error {
			for i := range n {
				out = append(out, connKey(lport.Row(i), raddr.Row(i).ToIP(), rport.Row(i), inode.Row(i)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func keysOf(h *heartbeat.Heartbeat) []string {
	var out []string
	for _, c := range h.TCPConnections {
		out = append(out, connKey(c.LocalPort, c.RemoteAddress, c.RemotePort, c.Inode))
	}
	sort.Strings(out)
	return out
}

// Two sensors, retries, duplicates and out-of-order heartbeats: every table
// holds each row once, and the latest view is exactly the newest snapshot.
func TestIngestEndToEnd(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	base := time.Now().Add(-time.Minute)
	gens := []*heartbeat.Generator{heartbeat.NewGenerator(1, shape), heartbeat.NewGenerator(2, shape)}
	var last [2]*heartbeat.Heartbeat
	var sent []*heartbeat.Heartbeat
	for i := range 5 {
		for s, g := range gens {
			h := g.Next(base.Add(time.Duration(i) * 15 * time.Second))
			sent = append(sent, h)
			last[s] = h
		}
	}
	// Sensor 0's last two heartbeats arrive swapped; sensor 1's third is
	// sent twice (a retry after a lost acknowledgement).
	order := append([]*heartbeat.Heartbeat(nil), sent...)
	order[6], order[8] = order[8], order[6]
	order = append(order, sent[5])
	for _, h := range order {
		n.send(h)
	}

	for s, g := range gens {
		got, want := activeConns(t, n.store, g.Sensor.SensorID), keysOf(last[s])
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("sensor %d: latest view has %d connections, want the %d of seq %d", s, len(got), len(want), last[s].Seq)
		}
	}

	// Every heartbeat once, every event once (network_flow ones included).
	hbs := uint64(len(sent))
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats FINAL"); got != hbs {
		t.Errorf("heartbeats = %d, want %d", got, hbs)
	}
	wantEvents := hbs * uint64(shape.Events+shape.CompletedFlows)
	if got := count(t, n.store, "SELECT count() AS n FROM events FINAL"); got != wantEvents {
		t.Errorf("events = %d, want %d", got, wantEvents)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM events FINAL WHERE kind = 'network_flow'"); got != hbs*uint64(shape.CompletedFlows) {
		t.Errorf("network_flow events = %d, want %d", got, hbs*uint64(shape.CompletedFlows))
	}
	if got := count(t, n.store, "SELECT count() AS n FROM flows FINAL"); got != hbs*uint64(shape.CompletedFlows) {
		t.Errorf("flows = %d, want %d", got, hbs*uint64(shape.CompletedFlows))
	}
	for table, per := range map[string]int{"tcp_listeners": shape.Listeners, "udp_listeners": shape.UDP, "active_flows": shape.ActiveFlows} {
		q := "SELECT count() AS n FROM " + table + " WHERE " + sql.Latest
		if got := count(t, n.store, "SELECT count() AS n FROM (SELECT DISTINCT * FROM "+table+" WHERE "+sql.Latest+")"); got != uint64(2*per) {
			t.Errorf("%s latest = %d, want %d (%s)", table, got, 2*per, q)
		}
	}
	// The sensors table keeps the newest state per sensor.
	if got := count(t, n.store, "SELECT max(seq) AS n FROM sensors FINAL WHERE sensor_id = {s:UUID}", store.P("s", gens[0].Sensor.SensorID.String())); got != 5 {
		t.Errorf("sensor 0 latest seq = %d, want 5", got)
	}
	// Fields survive the trip: one known connection, byte for byte.
	c := last[1].TCPConnections[0]
	var bin, path proto.ColStr
	var pid proto.ColUInt32
	var found int
	err := n.store.Select(context.Background(), store.Query{
		SQL: `SELECT CAST(binary AS String) AS b, CAST(binary_path AS String) AS p, pid FROM tcp_connections
		      WHERE sensor_id = {s:UUID} AND seq = {q:UInt64} AND inode = {i:UInt64} AND remote_address = toIPv6({r:String})`,
		Params: []store.Param{store.P("s", gens[1].Sensor.SensorID.String()), store.P("q", fmt.Sprint(last[1].Seq)), store.P("i", fmt.Sprint(c.Inode)), store.P("r", c.RemoteAddress.String())},
	}, proto.Results{{Name: "b", Data: &bin}, {Name: "p", Data: &path}, {Name: "pid", Data: &pid}}, func(rows int) error {
		found += rows
		if bin.Row(0) != c.Binary || path.Row(0) != c.BinaryPath || pid.Row(0) != c.PID {
			t.Errorf("row = %s %s %d, want %s %s %d", bin.Row(0), path.Row(0), pid.Row(0), c.Binary, c.BinaryPath, c.PID)
		}
		return nil
	})
	if err != nil || found != 1 {
		t.Fatalf("connection lookup: %v, %d rows", err, found)
	}
}

// A connection that closed is gone from the latest view at the next heartbeat.
func TestClosedConnectionLeavesLatestView(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(7, heartbeat.Shape{Conns: 3})
	h1 := g.Next(time.Now())
	n.send(h1)
	h2 := *h1
	h2.Seq, h2.HeartbeatID, h2.SentAt = 2, uuid.New(), h1.SentAt.Add(15*time.Second)
	h2.TCPConnections = h1.TCPConnections[1:]
	n.send(&h2)
	if got := activeConns(t, n.store, g.Sensor.SensorID); len(got) != 2 {
		t.Fatalf("latest view = %v, want the 2 connections still open", got)
	}
}

// Many senders at once: each gets its 200 only after its rows are stored.
func TestConcurrentSendersAllStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	const sensors, beats = 8, 6
	var wg sync.WaitGroup
	for s := range sensors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := heartbeat.NewGenerator(uint64(100+s), heartbeat.Shape{Conns: 50, Listeners: 5, Events: 5})
			for i := range beats {
				n.send(g.Next(time.Now().Add(time.Duration(i) * time.Second)))
			}
		}()
	}
	wg.Wait()
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats FINAL"); got != sensors*beats {
		t.Fatalf("heartbeats = %d, want %d", got, sensors*beats)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM events FINAL"); got != sensors*beats*5 {
		t.Fatalf("events = %d, want %d", got, sensors*beats*5)
	}
}
