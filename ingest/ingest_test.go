package ingest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

var shape = heartbeat.Shape{Conns: 100, Listeners: 20, UDP: 6, ActiveFlows: 10, CompletedFlows: 5, Events: 14}

func keysOf(h *heartbeat.Heartbeat) []string {
	var out []string
	for _, c := range h.TCPConnections {
		out = append(out, ingesttest.ConnKey(c.LocalPort, c.RemoteAddress, c.RemotePort, c.Inode))
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
		got, want := ingesttest.ActiveConns(context.Background(), t, n.store, g.Sensor.SensorID), keysOf(last[s])
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
		q := "SELECT count() AS n FROM " + table + " WHERE " + schema.Latest
		if got := count(t, n.store, "SELECT count() AS n FROM (SELECT DISTINCT * FROM "+table+" WHERE "+schema.Latest+")"); got != uint64(2*per) {
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
	if got := ingesttest.ActiveConns(context.Background(), t, n.store, g.Sensor.SensorID); len(got) != 2 {
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

// SCTP associations and endpoints (multi-homed: arrays of addresses) and the
// sensor's capabilities travel through a real node into their columns, field
// for field; a later heartbeat without them leaves nothing of them behind.
func TestSCTPAndCapabilitiesStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(31, heartbeat.Shape{Conns: 2, Telecom: true})
	h := g.Next(time.Now())
	h.Sensor.Capabilities = map[string]string{"flow_source": "inet_diag", "sctp": "available", "lsm": "unavailable"}
	ip := netip.MustParseAddr
	seen := h.SentAt.Add(-time.Hour)
	h.SCTPAssociations = []heartbeat.SCTPAssoc{
		{
			AssocID: 17, State: "ESTABLISHED", LocalPort: 38412, RemotePort: 36412,
			LocalAddresses:  []netip.Addr{ip("10.40.5.15"), ip("10.41.5.15")},
			RemoteAddresses: []netip.Addr{ip("10.50.1.2"), ip("10.51.1.2")},
			PrimaryAddress:  ip("10.51.1.2"), Inode: 7001, Netns: 4026531840, TxQueue: 12, RxQueue: 3,
			Process:   heartbeat.Process{PID: 1400, Binary: "open5gs-amfd", BinaryPath: "/usr/bin/open5gs-amfd", UID: 7},
			FirstSeen: seen,
		},
		{
			// Not attributed, no primary path, first_seen defaulting to sent_at.
			AssocID: 4294967295, State: "COOKIE_WAIT", LocalPort: 2905, RemotePort: 2905,
			LocalAddresses:  []netip.Addr{ip("2001:db8:40::15"), ip("2001:db8:41::15")},
			RemoteAddresses: []netip.Addr{ip("2001:db8:50::2"), ip("::ffff:10.52.1.2")},
			Inode:           7002, RxQueue: 99,
		},
	}
	h.SCTPEndpoints = []heartbeat.SCTPEndpoint{{
		LocalPort: 38412, LocalAddresses: []netip.Addr{ip("10.40.5.15"), ip("10.41.5.15")}, Inode: 7000, Netns: 4026531840,
		Process: heartbeat.Process{PID: 1400, Binary: "open5gs-amfd", BinaryPath: "/usr/bin/open5gs-amfd", UID: 7}, FirstSeen: seen,
	}}
	body, err := heartbeat.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	code, msg, _ := n.post(body, nil)
	// 2 connections, 2 associations, 1 endpoint, the heartbeats and sensors rows.
	if code != 200 || !strings.Contains(msg, `"rows":7`) {
		t.Fatalf("heartbeat: %d %s, want 200 with 7 rows", code, msg)
	}
	sensor := store.P("s", h.Sensor.SensorID.String())
	ctx := context.Background()
	ms := func(tm time.Time) int64 { return tm.UnixMilli() }

	var (
		seq, inode, netns           proto.ColUInt64
		assocID, txq, rxq, uid, pid proto.ColUInt32
		lport, rport                proto.ColUInt16
		state, binary, path         proto.ColStr
		primary                     proto.ColIPv6
		observed, first             = newMilli(), newMilli()
		local, remote               = new(proto.ColIPv6).Array(), new(proto.ColIPv6).Array()
		rows                        int
	)
	err = n.store.Select(ctx, store.Query{SQL: `SELECT seq, observed_at, netns, assoc_id, CAST(state AS String) AS state,
		    local_port, remote_port, local_addresses, remote_addresses, primary_address, inode, tx_queue, rx_queue,
		    uid, pid, CAST(binary AS String) AS binary, CAST(binary_path AS String) AS binary_path, first_seen
		FROM sctp_associations FINAL WHERE sensor_id = {s:UUID} ORDER BY assoc_id`, Params: []store.Param{sensor}},
		proto.Results{{Name: "seq", Data: &seq}, {Name: "observed_at", Data: observed}, {Name: "netns", Data: &netns},
			{Name: "assoc_id", Data: &assocID}, {Name: "state", Data: &state}, {Name: "local_port", Data: &lport},
			{Name: "remote_port", Data: &rport}, {Name: "local_addresses", Data: local}, {Name: "remote_addresses", Data: remote},
			{Name: "primary_address", Data: &primary}, {Name: "inode", Data: &inode}, {Name: "tx_queue", Data: &txq},
			{Name: "rx_queue", Data: &rxq}, {Name: "uid", Data: &uid}, {Name: "pid", Data: &pid}, {Name: "binary", Data: &binary},
			{Name: "binary_path", Data: &path}, {Name: "first_seen", Data: first}},
		func(r int) error {
			for i := range r {
				if rows+i >= len(h.SCTPAssociations) {
					break
				}
				a := h.SCTPAssociations[rows+i]
				wantFirst := a.FirstSeen
				if wantFirst.IsZero() {
					wantFirst = h.SentAt
				}
				got := fmt.Sprintln(seq.Row(i), observed.Row(i).UnixMilli(), netns.Row(i), assocID.Row(i), state.Row(i), lport.Row(i), rport.Row(i),
					addrs(local.Row(i)), addrs(remote.Row(i)), primary.Row(i).ToIP(), inode.Row(i), txq.Row(i), rxq.Row(i),
					uid.Row(i), pid.Row(i), binary.Row(i), path.Row(i), first.Row(i).UnixMilli())
				want := fmt.Sprintln(h.Seq, ms(h.SentAt), a.Netns, a.AssocID, a.State, a.LocalPort, a.RemotePort,
					mapped(a.LocalAddresses), mapped(a.RemoteAddresses), mapped([]netip.Addr{orUnspecified(a.PrimaryAddress)})[0], a.Inode, a.TxQueue, a.RxQueue,
					a.UID, a.PID, a.Binary, a.BinaryPath, ms(wantFirst))
				if got != want {
					t.Errorf("sctp_associations row %d:\n got %s\nwant %s", rows+i, got, want)
				}
			}
			rows += r
			return nil
		})
	if err != nil || rows != len(h.SCTPAssociations) {
		t.Fatalf("sctp_associations: %v, %d rows, want %d", err, rows, len(h.SCTPAssociations))
	}

	rows = 0
	local = new(proto.ColIPv6).Array()
	err = n.store.Select(ctx, store.Query{SQL: `SELECT seq, observed_at, netns, local_port, local_addresses, inode,
		    uid, pid, CAST(binary AS String) AS binary, CAST(binary_path AS String) AS binary_path, first_seen
		FROM sctp_endpoints FINAL WHERE sensor_id = {s:UUID}`, Params: []store.Param{sensor}},
		proto.Results{{Name: "seq", Data: &seq}, {Name: "observed_at", Data: observed}, {Name: "netns", Data: &netns},
			{Name: "local_port", Data: &lport}, {Name: "local_addresses", Data: local}, {Name: "inode", Data: &inode},
			{Name: "uid", Data: &uid}, {Name: "pid", Data: &pid}, {Name: "binary", Data: &binary},
			{Name: "binary_path", Data: &path}, {Name: "first_seen", Data: first}},
		func(r int) error {
			e := h.SCTPEndpoints[0]
			got := fmt.Sprintln(seq.Row(0), observed.Row(0).UnixMilli(), netns.Row(0), lport.Row(0), addrs(local.Row(0)), inode.Row(0),
				uid.Row(0), pid.Row(0), binary.Row(0), path.Row(0), first.Row(0).UnixMilli())
			want := fmt.Sprintln(h.Seq, ms(h.SentAt), e.Netns, e.LocalPort, mapped(e.LocalAddresses), e.Inode,
				e.UID, e.PID, e.Binary, e.BinaryPath, ms(e.FirstSeen))
			if got != want {
				t.Errorf("sctp_endpoints row:\n got %s\nwant %s", got, want)
			}
			rows += r
			return nil
		})
	if err != nil || rows != 1 {
		t.Fatalf("sctp_endpoints: %v, %d rows, want 1", err, rows)
	}

	// The capabilities map, whole and by key.
	caps := func(s uuid.UUID) (map[string]string, string) {
		t.Helper()
		m := proto.NewMap[string, string](new(proto.ColStr), new(proto.ColStr))
		var sctp proto.ColStr
		var got map[string]string
		var gotSCTP string
		err := n.store.Select(ctx, store.Query{SQL: `SELECT CAST(capabilities AS Map(String, String)) AS caps, capabilities['sctp'] AS sctp
			FROM sensors FINAL WHERE sensor_id = {s:UUID}`, Params: []store.Param{store.P("s", s.String())}},
			proto.Results{{Name: "caps", Data: m}, {Name: "sctp", Data: &sctp}},
			func(r int) error { got, gotSCTP = m.Row(0), sctp.Row(0); return nil })
		if err != nil || got == nil {
			t.Fatalf("sensors: %v (map %v)", err, got)
		}
		return got, gotSCTP
	}
	got, sctp := caps(h.Sensor.SensorID)
	if sctp != "available" {
		t.Errorf("capabilities['sctp'] = %q, want available", sctp)
	}
	if fmt.Sprint(got) != fmt.Sprint(h.Sensor.Capabilities) {
		t.Errorf("capabilities = %v, want %v", got, h.Sensor.Capabilities)
	}

	// A standard sensor without the new sections, through the same decoder:
	// an empty map and no SCTP rows.
	g2 := heartbeat.NewGenerator(32, heartbeat.Shape{Conns: 1})
	h2 := g2.Next(time.Now())
	n.send(h2)
	if got, sctp := caps(h2.Sensor.SensorID); len(got) != 0 || sctp != "" {
		t.Errorf("sensor without capabilities: %v, sctp %q; want an empty map", got, sctp)
	}
	for _, table := range []string{"sctp_associations", "sctp_endpoints"} {
		if c := count(t, n.store, "SELECT count() AS n FROM "+table+" WHERE sensor_id = {s:UUID}", store.P("s", h2.Sensor.SensorID.String())); c != 0 {
			t.Errorf("%s holds %d rows of a sensor that sent none", table, c)
		}
	}
}

func newMilli() *proto.ColDateTime64 {
	return new(proto.ColDateTime64).WithPrecision(proto.PrecisionMilli)
}

// addrs formats stored addresses as text.
func addrs(a []proto.IPv6) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = x.ToIP().String()
	}
	return out
}

// mapped formats addresses the way they are stored: IPv6, IPv4 v4-mapped.
func mapped(a []netip.Addr) []string {
	out := make([]string, len(a))
	for i, x := range a {
		out[i] = netip.AddrFrom16(x.As16()).String()
	}
	return out
}

func orUnspecified(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return netip.IPv6Unspecified()
	}
	return a
}

// A heartbeat whose snapshots the sensor's spool dropped keeps its events
// but does not replace the sensor's latest snapshot with an empty one.
func TestDroppedSnapshotsKeepLatestView(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(61, heartbeat.Shape{Conns: 5, Events: 2})
	full := g.Next(time.Now())
	n.send(full)
	stripped := g.Next(time.Now().Add(15 * time.Second))
	stripped.DropSnapshots()
	n.send(stripped)
	if got := ingesttest.ActiveConns(context.Background(), t, n.store, g.Sensor.SensorID); strings.Join(got, ",") != strings.Join(keysOf(full), ",") {
		t.Fatalf("latest view = %v, want the %d connections of the last full heartbeat", got, len(full.TCPConnections))
	}
	if got := count(t, n.store, "SELECT count() AS n FROM events FINAL"); got != 4 {
		t.Fatalf("events = %d, want 4 (both heartbeats' events kept)", got)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats FINAL"); got != 2 {
		t.Fatalf("heartbeats = %d, want 2", got)
	}
}

// A process's systemd unit reaches every table a row of it goes to: the
// snapshot tables, flows, and events (a completed flow's network_flow event
// too); rows without one store ”.
func TestProcessUnitStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(61, heartbeat.Shape{Conns: 4, Listeners: 2, UDP: 2, ActiveFlows: 2, CompletedFlows: 3, Events: 3})
	h := g.Next(time.Now())
	for i := range h.TCPListeners {
		h.TCPListeners[i].Unit = "" // the generator's listeners run in nginx.service
	}
	h.TCPConnections[1].ContainerID, h.TCPConnections[1].ContainerRuntime, h.TCPConnections[1].PodUID =
		strings.Repeat("ab", 32), "cri-o", "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f"
	const unit = "nginx.service"
	for i := range h.TCPConnections {
		h.TCPConnections[i].Unit = unit
	}
	h.TCPConnections[0].Unit = "" // one without
	for _, p := range []*heartbeat.Process{&h.TCPListeners[0].Process, &h.UDPListeners[0].Process, &h.ActiveFlows[0].Process,
		&h.CompletedFlows[0].Process, &h.Events[0].Process} {
		p.Unit = unit
	}
	n.send(h)
	id := store.P("s", h.Sensor.SensorID.String())
	for table, want := range map[string]uint64{"tcp_connections": uint64(len(h.TCPConnections) - 1), "tcp_listeners": 1, "udp_listeners": 1,
		"active_flows": 1, "flows": 1, "events": 2} {
		if got := count(t, n.store, "SELECT count() AS n FROM "+table+" WHERE sensor_id = {s:UUID} AND unit = 'nginx.service'", id); got != want {
			t.Errorf("%s: %d rows with unit %s, want %d", table, got, unit, want)
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM events WHERE sensor_id = {s:UUID} AND kind = 'network_flow' AND unit = 'nginx.service'", id); got != 1 {
		t.Errorf("%d network_flow events with the flow's unit, want 1", got)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM tcp_connections WHERE sensor_id = {s:UUID} AND unit = ''", id); got != 1 {
		t.Errorf("%d connections without a unit, want 1", got)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM tcp_connections WHERE sensor_id = {s:UUID} AND container_id = {c:String} AND container_runtime = 'cri-o' AND pod_uid = '7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f'",
		id, store.P("c", strings.Repeat("ab", 32))); got != 1 {
		t.Errorf("%d connections in the container, want 1", got)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM udp_listeners WHERE sensor_id = {s:UUID} AND container_runtime = 'containerd'", id); got != uint64(len(h.UDPListeners)) {
		t.Errorf("%d UDP sockets in the generator's pod, want %d", got, len(h.UDPListeners))
	}
}

// TestProcessStringsStored sets every string member of Process, the ones
// added later included, on every row kind and finds each in its column:
// a member without its column or outside the sink fails here.
func TestProcessStringsStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(62, heartbeat.Shape{Conns: 2, Listeners: 1, UDP: 1, ActiveFlows: 1, CompletedFlows: 1, Events: 1})
	h := g.Next(time.Now())
	a := netip.MustParseAddr("10.7.0.1")
	h.SCTPAssociations = []heartbeat.SCTPAssoc{{AssocID: 1, State: "ESTABLISHED", LocalPort: 38412, RemotePort: 36412,
		LocalAddresses: []netip.Addr{a}, RemoteAddresses: []netip.Addr{a}, PrimaryAddress: a, Inode: 77}}
	h.SCTPEndpoints = []heartbeat.SCTPEndpoint{{LocalPort: 38412, LocalAddresses: []netip.Addr{a}, Inode: 78}}
	var procs []*heartbeat.Process
	procs = procsOf(procs, h.TCPConnections, func(r *heartbeat.Conn) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.TCPListeners, func(r *heartbeat.Listener) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.UDPListeners, func(r *heartbeat.UDPSocket) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.ActiveFlows, func(r *heartbeat.Flow) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.CompletedFlows, func(r *heartbeat.Flow) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.Events, func(r *heartbeat.Event) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.SCTPAssociations, func(r *heartbeat.SCTPAssoc) *heartbeat.Process { return &r.Process })
	procs = procsOf(procs, h.SCTPEndpoints, func(r *heartbeat.SCTPEndpoint) *heartbeat.Process { return &r.Process })
	// Each member's value is written into the struct through its JSON
	// name, by marshalling, so this test names no member itself.
	vals := map[string]string{}
	for _, m := range heartbeat.ProcessStrings() {
		vals[m.Name] = m.Name + "-x"
	}
	raw, err := json.Marshal(vals)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range procs {
		if err := json.Unmarshal(raw, p); err != nil {
			t.Fatal(err)
		}
	}
	n.send(h)
	id := store.P("s", h.Sensor.SensorID.String())
	for table, want := range map[string]uint64{"tcp_connections": uint64(len(h.TCPConnections)), "tcp_listeners": uint64(len(h.TCPListeners)),
		"udp_listeners": uint64(len(h.UDPListeners)), "active_flows": uint64(len(h.ActiveFlows)), "flows": uint64(len(h.CompletedFlows)),
		"events": uint64(len(h.Events) + len(h.CompletedFlows)), "sctp_associations": uint64(len(h.SCTPAssociations)),
		"sctp_endpoints": uint64(len(h.SCTPEndpoints))} {
		for _, m := range heartbeat.ProcessStrings() {
			if got := count(t, n.store, "SELECT count() AS n FROM "+table+" WHERE sensor_id = {s:UUID} AND "+m.Name+" = {v:String}",
				id, store.P("v", vals[m.Name])); got != want {
				t.Errorf("%s.%s: %d rows with %q, want %d", table, m.Name, got, vals[m.Name], want)
			}
		}
	}
}

// TestFlowEventNetnsStored: a flow's and an event's network namespace reach
// the netns column of active_flows, flows and events, and a completed
// flow's derived network_flow event keeps the flow's; rows without one
// store 0.
func TestFlowEventNetnsStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(63, heartbeat.Shape{Conns: 1, Listeners: 1, ActiveFlows: 2, CompletedFlows: 2, Events: 2})
	h := g.Next(time.Now())
	// Distinct inodes, so a value landing in another table's row, or the
	// sensor's own namespace written in place of the row's, shows.
	const active, completed, event = 4026532101, 4026532102, 4026532103
	h.ActiveFlows[0].Netns = active
	h.CompletedFlows[0].Netns = completed
	h.Events[0].Netns = event // the second of each is left without one
	n.send(h)
	id := store.P("s", h.Sensor.SensorID.String())
	for _, c := range []struct {
		table, where string
		want         uint64
	}{
		{"active_flows", fmt.Sprint("netns = ", active), 1},
		{"active_flows", "netns = 0", 1},
		{"flows", fmt.Sprint("netns = ", completed), 1},
		{"flows", "netns = 0", 1},
		{"events", fmt.Sprint("kind = 'network_flow' AND netns = ", completed), 1},
		{"events", "kind = 'network_flow' AND netns = 0", 1},
		{"events", fmt.Sprint("kind != 'network_flow' AND netns = ", event), 1},
		{"events", "kind != 'network_flow' AND netns = 0", 1},
	} {
		if got := count(t, n.store, "SELECT count() AS n FROM "+c.table+" WHERE sensor_id = {s:UUID} AND "+c.where, id); got != c.want {
			t.Errorf("%s WHERE %s: %d rows, want %d", c.table, c.where, got, c.want)
		}
	}
}

// procsOf appends the Process of each of rows.
func procsOf[T any](dst []*heartbeat.Process, rows []T, of func(*T) *heartbeat.Process) []*heartbeat.Process {
	for i := range rows {
		dst = append(dst, of(&rows[i]))
	}
	return dst
}

const ownNetns, podNetns = 4026531840, 4026532481

// hostInterfaces are a host's interfaces: lo, eth0 up with a v4 and a v6
// address, eth1 down without addresses, and a pod's eth0 in its own
// namespace.
func hostInterfaces(mac string, v4 string) []heartbeat.Interface {
	p := netip.MustParsePrefix
	return []heartbeat.Interface{
		{Netns: ownNetns, Name: "lo", Index: 1, Up: true, MAC: "00:00:00:00:00:00", Addresses: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
		{Netns: ownNetns, Name: "eth0", Index: 2, Up: true, MAC: mac, Addresses: []netip.Prefix{p(v4), p("2001:db8::5/64")}},
		{Netns: ownNetns, Name: "eth1", Index: 3, MAC: "02:00:00:00:00:03"},
		{Netns: podNetns, Name: "eth0", Index: 2, Up: true, MAC: "d2:0c:9e:41:7a:13", Addresses: []netip.Prefix{p("10.244.1.7/24")}},
	}
}

// holding is one merged row of host_addresses, as text.
func holdings(t *testing.T, st store.Store, sensor uuid.UUID, final string) []string {
	t.Helper()
	var row proto.ColStr
	var out []string
	q := `SELECT concat(site, ' ', IPv6NumToString(address), '/', toString(prefix_len), ' ', toString(netns), ' ', interface, '#', toString(ifindex), ' ',
	        mac, ' ', if(up, 'up', 'down'), ' ', toString(min(first_seen)), ' ', toString(max(last_seen)), ' ', toString(count())) AS row
	      FROM host_addresses ` + final + ` WHERE sensor_id = {s:UUID}
	      GROUP BY site, address, sensor_id, netns, interface, ifindex, prefix_len, mac, up ORDER BY row`
	err := st.Select(context.Background(), store.Query{SQL: q, Params: []store.Param{store.P("s", sensor.String())}},
		proto.Results{{Name: "row", Data: &row}}, func(n int) error {
			for i := range n {
				out = append(out, row.Row(i))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every address of every interface is a row, with the sensor's site, its
// namespace, interface, prefix length (24 for an IPv4 /24, though stored
// v4-mapped), MAC and state; repeated heartbeats merge into one row per
// holding that spans the first report to the last; the site lands in
// sensors too.
func TestHostAddressesStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(71, heartbeat.Shape{Conns: 2})
	g.Sensor.Site = "fra1.core"
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 3 {
		h := g.Next(t0.Add(time.Duration(i) * 15 * time.Second))
		h.Interfaces = hostInterfaces("02:42:ac:11:00:02", "10.0.0.5/24")
		n.send(h)
	}
	ts := func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000") }
	span := ts(t0) + " " + ts(t0.Add(30*time.Second))
	want := []string{
		"fra1.core ::1/128 4026531840 lo#1 00:00:00:00:00:00 up " + span,
		"fra1.core ::ffff:10.0.0.5/24 4026531840 eth0#2 02:42:ac:11:00:02 up " + span,
		"fra1.core ::ffff:10.244.1.7/24 4026532481 eth0#2 d2:0c:9e:41:7a:13 up " + span,
		"fra1.core ::ffff:127.0.0.1/8 4026531840 lo#1 00:00:00:00:00:00 up " + span,
		"fra1.core 2001:db8::5/64 4026531840 eth0#2 02:42:ac:11:00:02 up " + span,
	}
	slices.Sort(want)
	rows := holdings(t, n.store, g.Sensor.SensorID, "")
	for i := range rows {
		rows[i] = rows[i][:strings.LastIndexByte(rows[i], ' ')] // before a merge: 3 rows a holding
	}
	if !slices.Equal(rows, want) {
		t.Errorf("host_addresses:\n got %q\nwant %q", rows, want)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM host_addresses WHERE sensor_id = {s:UUID}", store.P("s", g.Sensor.SensorID.String())); got != 15 {
		t.Errorf("%d rows before the merge, want 3 heartbeats x 5 addresses", got)
	}
	// A merge leaves one row a holding, with the whole span.
	if err := n.store.Exec(context.Background(), store.Query{SQL: "OPTIMIZE TABLE host_addresses FINAL"}); err != nil {
		t.Fatal(err)
	}
	for i, r := range holdings(t, n.store, g.Sensor.SensorID, "") {
		if i >= len(want) || r != want[i]+" 1" {
			t.Errorf("after the merge, holding %d is %q, want %q and one row", i, r, want[min(i, len(want)-1)]+" 1")
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM sensors FINAL WHERE sensor_id = {s:UUID} AND site = 'fra1.core'", store.P("s", g.Sensor.SensorID.String())); got != 1 {
		t.Errorf("sensors rows with the site: %d, want 1", got)
	}
	// The heartbeats without a site leave it '' (the default site).
	g2 := heartbeat.NewGenerator(72, heartbeat.Shape{})
	h := g2.Next(time.Now())
	h.Interfaces = hostInterfaces("02:42:ac:11:00:09", "10.0.0.9/24")[1:2]
	n.send(h)
	if got := holdings(t, n.store, g2.Sensor.SensorID, "FINAL"); len(got) != 2 || !strings.HasPrefix(got[0], " ") {
		t.Errorf("a sensor without a site: %q, want 2 rows of site ''", got)
	}
}

// resolve runs schema.ResolveAddress and returns its resolution and its
// candidates as "sensor/netns/interfaces/up" words.
func resolve(t *testing.T, st store.Store, site, addr string, at time.Time, slack int) (string, string) {
	t.Helper()
	var res, who proto.ColStr
	var gotRes, gotWho string
	q := `SELECT resolution, arrayStringConcat(arrayMap(c -> concat(toString(c.1), '/', toString(c.2), '/', arrayStringConcat(c.3, ','), '/', if(c.4, 'up', 'down')), candidates), ' ') AS who
	      FROM (` + schema.ResolveAddress + `)`
	err := st.Select(context.Background(), store.Query{SQL: q, Params: []store.Param{
		store.P("site", site), store.P("address", netip.MustParseAddr(addr).String()),
		store.P("at", at.UTC().Format("2006-01-02 15:04:05.000")), store.P("slack_secs", fmt.Sprint(slack)),
	}}, proto.Results{{Name: "resolution", Data: &res}, {Name: "who", Data: &who}}, func(n int) error {
		if n != 1 {
			return fmt.Errorf("%d rows, want 1", n)
		}
		gotRes, gotWho = res.Row(0), who.Row(0)
		return nil
	})
	if err != nil {
		t.Fatalf("resolve %s %s: %v", site, addr, err)
	}
	return gotRes, gotWho
}

// Two sensors of one site holding 10.0.0.5 at once make it ambiguous, with
// both as candidates; a sensor of another site holding it too is resolved
// there alone; before the second sensor held it, the first one alone
// resolves it; an address no one held is unknown. The answers are the same
// before and after the table merges.
func TestAddressResolution(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	t0 := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Millisecond)
	sensor := func(seed uint64, site string) *heartbeat.Generator {
		g := heartbeat.NewGenerator(seed, heartbeat.Shape{})
		g.Sensor.Site = site
		return g
	}
	a, b, c, d := sensor(81, "s1"), sensor(82, "s1"), sensor(83, "s2"), sensor(84, "s1")
	report := func(g *heartbeat.Generator, from, to int, ifs []heartbeat.Interface) {
		for i := from; i <= to; i++ {
			h := g.Next(t0.Add(time.Duration(i) * 15 * time.Second))
			h.Interfaces = ifs
			n.send(h)
		}
	}
	// a holds 10.0.0.5 throughout (heartbeats 0..5), b from heartbeat 3 in
	// a pod's namespace, c in site s2 throughout; d holds 10.0.0.9.
	report(a, 0, 5, hostInterfaces("02:00:00:00:00:0a", "10.0.0.5/24"))
	report(b, 3, 5, []heartbeat.Interface{{Netns: podNetns, Name: "eth0", Index: 7, Up: true, MAC: "02:00:00:00:00:0b",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/16")}}})
	report(c, 0, 5, hostInterfaces("02:00:00:00:00:0c", "10.0.0.5/24"))
	report(d, 0, 5, []heartbeat.Interface{{Netns: ownNetns, Name: "bond0", Index: 4, MAC: "02:00:00:00:00:0d",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}}})

	owner := func(g *heartbeat.Generator, netns uint64, iface, up string) string {
		return fmt.Sprintf("%s/%d/%s/%s", g.Sensor.SensorID, netns, iface, up)
	}
	ab := []string{owner(a, ownNetns, "eth0", "up"), owner(b, podNetns, "eth0", "up")}
	slices.Sort(ab)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 15 * time.Second) }
	cases := []struct {
		name, site, addr string
		at               time.Time
		res, who         string
	}{
		{"shared in one site", "s1", "10.0.0.5", at(4), "ambiguous", strings.Join(ab, " ")},
		{"the same address, another site", "s2", "10.0.0.5", at(4), "resolved", owner(c, ownNetns, "eth0", "up")},
		{"before the second holder", "s1", "10.0.0.5", at(1), "resolved", owner(a, ownNetns, "eth0", "up")},
		{"v4-mapped asks the same", "s1", "::ffff:10.0.0.5", at(1), "resolved", owner(a, ownNetns, "eth0", "up")},
		{"an interface that is down", "s1", "10.0.0.9", at(4), "resolved", owner(d, ownNetns, "bond0", "down")},
		{"a pod's address", "s2", "10.244.1.7", at(2), "resolved", owner(c, podNetns, "eth0", "up")},
		{"no one holds it", "s1", "10.0.0.6", at(4), "unknown", ""},
		{"a site no sensor is in", "s3", "10.0.0.5", at(4), "unknown", ""},
		{"after every report", "s1", "10.0.0.5", at(5).Add(time.Hour), "unknown", ""},
		{"before every report", "s2", "10.0.0.5", at(0).Add(-time.Hour), "unknown", ""},
	}
	check := func(when string) {
		for _, c := range cases {
			res, who := resolve(t, n.store, c.site, c.addr, c.at, 20)
			if res != c.res || who != c.who {
				t.Errorf("%s, %s: %s %s at %s: %s [%s], want %s [%s]", when, c.name, c.site, c.addr, c.at.Format(time.TimeOnly), res, who, c.res, c.who)
			}
		}
	}
	check("before the merge")
	if err := n.store.Exec(context.Background(), store.Query{SQL: "OPTIMIZE TABLE host_addresses FINAL"}); err != nil {
		t.Fatal(err)
	}
	check("after the merge")

	// AddressOwners answers for every address at once, as a join needs.
	var site, res proto.ColStr
	var addr proto.ColIPv6
	var owners proto.ColUInt64
	var got []string
	err := n.store.Select(context.Background(), store.Query{
		SQL:    "SELECT CAST(site, 'String') AS site_name, address, owners, resolution FROM (" + schema.AddressOwners + ") WHERE address IN (toIPv6('10.0.0.5'), toIPv6('10.0.0.9')) ORDER BY site, address",
		Params: []store.Param{store.P("at", at(4).Format("2006-01-02 15:04:05.000")), store.P("slack_secs", "20")},
	}, proto.Results{{Name: "site_name", Data: &site}, {Name: "address", Data: &addr}, {Name: "owners", Data: &owners}, {Name: "resolution", Data: &res}},
		func(n int) error {
			for i := range n {
				a := netip.AddrFrom16(addr.Row(i)).Unmap()
				got = append(got, fmt.Sprintf("%s %s %d %s", site.Row(i), a, owners.Row(i), res.Row(i)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"s1 10.0.0.5 2 ambiguous", "s1 10.0.0.9 1 resolved", "s2 10.0.0.5 1 resolved"}; !slices.Equal(got, want) {
		t.Errorf("AddressOwners: %q, want %q", got, want)
	}
}

// ListenersOf finds, at each owner of an address, the listeners that take
// a connection to it: bound to the address, to :: or (IPv4) to 0.0.0.0, in
// the owner's namespace; a listener on loopback, in another namespace, or
// of another sensor that does not hold the address is not one of them.
// With two owners, both owners' listeners are listed.
func TestListenersOfAnAddress(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	now := time.Now().UTC().Truncate(time.Millisecond)
	ip := netip.MustParseAddr
	send := func(seed uint64, ifs []heartbeat.Interface, ls ...heartbeat.Listener) *heartbeat.Generator {
		g := heartbeat.NewGenerator(seed, heartbeat.Shape{})
		g.Sensor.Site = "s1"
		h := g.Next(now)
		h.Interfaces, h.TCPListeners = ifs, ls
		n.send(h)
		return g
	}
	listener := func(addr string, port uint16, netns, inode uint64) heartbeat.Listener {
		family := "inet"
		if ip(addr).Is6() {
			family = "inet6"
		}
		return heartbeat.Listener{Family: family, LocalAddress: ip(addr), LocalPort: port, Netns: netns, Inode: inode,
			Process: heartbeat.Process{PID: uint32(inode), Binary: fmt.Sprint("srv", inode)}}
	}
	eth0 := func(netns uint64, addr string) []heartbeat.Interface {
		return []heartbeat.Interface{{Netns: netns, Name: "eth0", Index: 2, Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix(addr)}}}
	}
	a := send(91, eth0(ownNetns, "10.0.0.5/24"),
		listener("0.0.0.0", 443, ownNetns, 1),    // takes 10.0.0.5:443
		listener("127.0.0.1", 8080, ownNetns, 2), // loopback only
		listener("::", 8443, ownNetns, 3),        // takes IPv4 too
		listener("0.0.0.0", 443, podNetns, 4))    // another namespace of a
	b := send(92, eth0(podNetns, "10.0.0.5/24"), listener("10.0.0.5", 443, podNetns, 5), listener("10.0.0.6", 443, podNetns, 6))
	send(93, eth0(ownNetns, "10.0.0.7/24"), listener("0.0.0.0", 443, ownNetns, 7)) // does not hold 10.0.0.5
	six := send(94, eth0(ownNetns, "2001:db8::5/64"), listener("0.0.0.0", 22, ownNetns, 8), listener("::", 22, ownNetns, 9))

	who := func(addr string, port uint16) []string {
		t.Helper()
		var sensor proto.ColUUID
		var netns proto.ColUInt64
		var bin proto.ColStr
		var got []string
		err := n.store.Select(context.Background(), store.Query{
			SQL: "SELECT sensor_id, netns, CAST(binary, 'String') AS bin FROM (" + schema.ListenersOf + ")",
			Params: []store.Param{store.P("site", "s1"), store.P("address", ip(addr).String()), store.P("port", fmt.Sprint(port)),
				store.P("at", now.Format("2006-01-02 15:04:05.000")), store.P("slack_secs", "30")},
		}, proto.Results{{Name: "sensor_id", Data: &sensor}, {Name: "netns", Data: &netns}, {Name: "bin", Data: &bin}}, func(rows int) error {
			for i := range rows {
				got = append(got, fmt.Sprintf("%s/%d/%s", sensor.Row(i), netns.Row(i), bin.Row(i)))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return got
	}
	at := func(g *heartbeat.Generator, netns uint64, bin string) string {
		return fmt.Sprintf("%s/%d/%s", g.Sensor.SensorID, netns, bin)
	}
	both := []string{at(a, ownNetns, "srv1"), at(b, podNetns, "srv5")}
	slices.Sort(both)
	for _, c := range []struct {
		addr string
		port uint16
		want []string
	}{
		{"10.0.0.5", 443, both},
		{"10.0.0.5", 8080, nil},
		{"10.0.0.5", 8443, []string{at(a, ownNetns, "srv3")}},
		{"10.0.0.7", 8443, nil},
		{"2001:db8::5", 22, []string{at(six, ownNetns, "srv9")}},
	} {
		if got := who(c.addr, c.port); !slices.Equal(got, c.want) {
			t.Errorf("listeners of %s:%d: %q, want %q", c.addr, c.port, got, c.want)
		}
	}
}
