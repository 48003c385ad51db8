package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/ClickHouse/ch-go/proto"
	"github.com/netview/netview/internal/store"
	"maps"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
)

const (
	sensorA = "a0000000-0000-4000-8000-00000000000a"
	sensorB = "b0000000-0000-4000-8000-00000000000b"
	sensorC = "c0000000-0000-4000-8000-00000000000c"
)

func timeText(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }

// Every connection carries the documented fields with the values the
// sensor reported; duration_secs is null for a connection that predates
// the sensor, and the page carries flows and the paging totals.
func TestConnectionsV1Fields(t *testing.T) {
	f := start(t)
	s := sensor(sensorA, "edge-1")
	at := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Millisecond)
	first := at.Add(-10 * time.Minute)

	old := conn(40001, "10.0.0.5", 443, 11) // predates the sensor
	old.FirstSeen = first
	young := conn(40002, "2001:db8::7", 5432, 12)
	young.Family, young.LocalAddress, young.State = "inet6", netip.MustParseAddr("2001:db8::1"), "SYN_SENT"
	young.Process = heartbeat.Process{UID: 0} // not attributed
	young.DurationSecs = u32(42)

	h := beat(s, 1, at)
	h.TCPConnections = []heartbeat.Conn{old, young}
	flowID := uuid.MustParse("f0000000-0000-4000-8000-000000000001")
	h.ActiveFlows = []heartbeat.Flow{tcpFlow(flowID, "outbound", "10.9.0.1:40001", "10.0.0.5:443",
		heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl"}, at.Add(-30*time.Second), 100, 2000, "proc")}
	f.ingest.Send(h)

	// A second sensor must not leak into a filtered page.
	other := beat(sensor(sensorB, "edge-2"), 1, at)
	other.TCPConnections = []heartbeat.Conn{conn(50000, "10.0.0.9", 22, 99)}
	f.ingest.Send(other)

	rest, rows := f.list("/api/v1/network/connections?sensor_id="+sensorA, "connections")
	for k, want := range map[string]float64{"total": 2, "page_count": 1, "current_page": 1, "page_size": 100} {
		if num(rest, k) != want {
			t.Errorf("%s = %v, want %v", k, rest[k], want)
		}
	}
	flows, _ := rest["flows"].([]any)
	if len(flows) != 1 || flows[0].(row)["flow_id"] != flowID.String() {
		t.Errorf("flows = %v, want the one active flow", rest["flows"])
	}
	if len(rows) != 2 {
		t.Fatalf("got %d connections, want 2: %v", len(rows), rows)
	}
	required := []string{"sensor_id", "hostname", "protocol", "local_address", "local_port", "remote_address", "remote_port",
		"state", "pid", "binary", "duration_secs", "first_seen", "last_seen"}
	for _, r := range rows {
		for _, k := range required {
			if _, ok := r[k]; !ok {
				t.Errorf("connection lacks %q: %v", k, r)
			}
		}
		if str(r, "sensor_id") != sensorA || str(r, "hostname") != "edge-1" || str(r, "protocol") != "tcp" {
			t.Errorf("identity: %v", r)
		}
		if str(r, "last_seen") != timeText(at) {
			t.Errorf("last_seen = %v, want %s", r["last_seen"], timeText(at))
		}
	}
	// Key order: local 10.9.0.1 (v4-mapped, ::ffff:...) sorts before 2001:db8::1.
	o, y := rows[0], rows[1]
	if str(o, "local_address") != "10.9.0.1" || num(o, "local_port") != 40001 || str(o, "remote_address") != "10.0.0.5" ||
		num(o, "remote_port") != 443 || str(o, "state") != "ESTABLISHED" || num(o, "pid") != 4242 || str(o, "binary") != "curl" ||
		o["duration_secs"] != nil || str(o, "first_seen") != timeText(first) {
		t.Errorf("old connection: %v", o)
	}
	if str(y, "local_address") != "2001:db8::1" || str(y, "remote_address") != "2001:db8::7" || num(y, "remote_port") != 5432 ||
		str(y, "state") != "SYN_SENT" || y["pid"] != nil || str(y, "binary") != "" || num(y, "duration_secs") != 42 ||
		str(y, "first_seen") != timeText(at) {
		t.Errorf("young connection: %v", y)
	}

	// The same through v2.
	v2 := f.walk("/api/v2/network/connections?sensor_id="+sensorA, "connections", nil)
	if !slices.Equal(keys("connections", v2), keys("connections", rows)) {
		t.Errorf("v2 %v != v1 %v", keys("connections", v2), keys("connections", rows))
	}
	_, all := f.list("/api/v1/network/connections", "connections")
	if len(all) != 3 {
		t.Errorf("unfiltered: %d connections, want 3", len(all))
	}
}

// Listening sockets and UDP sockets, telecom ports named by service.
func TestListeningAndUDP(t *testing.T) {
	f := start(t)
	gens := f.fleet(2, 2, heartbeat.Shape{Conns: 5, Listeners: 3, UDP: 4, Telecom: true})
	id := gens[0].Sensor.SensorID.String()

	rest, ls := f.list("/api/v1/network/listening?sensor_id="+id, "listening")
	if len(ls) != 3 || num(rest, "total") != 3 || rest["truncated"] != false {
		t.Fatalf("listening: %d rows, %v", len(ls), rest)
	}
	for i, r := range ls {
		if str(r, "sensor_id") != id || str(r, "hostname") != gens[0].Sensor.Hostname || str(r, "local_address") != "0.0.0.0" ||
			num(r, "local_port") != float64(8000+i) || num(r, "pid") != float64(200+i) || str(r, "binary") != "nginx" ||
			str(r, "binary_path") != "/usr/sbin/nginx" || str(r, "unit") != "nginx.service" || str(r, "protocol") != "tcp" {
			t.Errorf("listener %d: %v", i, r)
		}
	}
	f.checkKeyOrder("listening", ls, "v1 listening")

	rest, us := f.list("/api/v1/network/udp?sensor_id="+id, "udp")
	if len(us) != 4 || num(rest, "total") != 4 {
		t.Fatalf("udp: %d rows, %v", len(us), rest)
	}
	services := map[float64]string{}
	for _, r := range us {
		services[num(r, "local_port")] = str(r, "service")
		if str(r, "protocol") != "udp" || str(r, "binary") != "upf" || num(r, "pid") != 300 || len(str(r, "container_id")) != 64 ||
			str(r, "container_runtime") != "containerd" || str(r, "pod_uid") == "" || str(r, "unit") != "" {
			t.Errorf("udp socket: %v", r)
		}
		// The generator's pod, as its runtime's state files name it.
		for k, v := range map[string]string{"container_name": "upf", "container_image": "registry.example/telecom/upf:2.4",
			"pod": "upf-0", "pod_namespace": "telecom"} {
			if str(r, k) != v {
				t.Errorf("udp socket: %s %q, want %q: %v", k, str(r, k), v, r)
			}
		}
	}
	want := map[float64]string{2152: "gtp-u", 8805: "pfcp", 1812: "radius", 1813: "radius-acct"}
	for p, s := range want {
		if services[p] != s {
			t.Errorf("udp port %v: service %q, want %q", p, services[p], s)
		}
	}
	f.checkKeyOrder("udp", us, "v1 udp")

	_, all := f.list("/api/v1/network/udp", "udp")
	if len(all) != 8 {
		t.Errorf("unfiltered udp: %d, want 8", len(all))
	}
	f.checkKeyOrder("udp", all, "v1 udp fleet")
}

// The v1 lists that return everything stop at the configured cap, say
// how many rows there are and that the list was cut; the rows given are
// the first in key order.
func TestV1ListsCapped(t *testing.T) {
	f := startWith(t, options{maxListRows: 5})
	f.fleet(1, 1, heartbeat.Shape{Conns: 2, Listeners: 8, UDP: 3, ActiveFlows: 7})
	for _, c := range []struct {
		view      string
		rows, tot int
		truncated bool
	}{{"listening", 5, 8, true}, {"udp", 3, 3, false}, {"flows", 5, 7, true}} {
		rest, rows := f.list("/api/v1/network/"+c.view, c.view)
		if len(rows) != c.rows || num(rest, "total") != float64(c.tot) || rest["truncated"] != c.truncated {
			t.Errorf("%s: %d rows, total %v, truncated %v; want %d, %d, %v", c.view, len(rows), rest["total"], rest["truncated"], c.rows, c.tot, c.truncated)
		}
		all := f.walk("/api/v2/network/"+c.view+"?limit=3", c.view, nil)
		if len(all) != c.tot || !slices.Equal(keys(c.view, rows), keys(c.view, all)[:len(rows)]) {
			t.Errorf("%s: v1 rows are not the first %d of the %d in key order", c.view, len(rows), len(all))
		}
	}
	// Exactly at the cap is not truncated.
	f2 := startWith(t, options{maxListRows: 7})
	f2.fleet(1, 1, heartbeat.Shape{ActiveFlows: 7})
	if rest, rows := f2.list("/api/v1/network/flows", "flows"); len(rows) != 7 || rest["truncated"] != false {
		t.Errorf("flows at the cap: %d rows, %v", len(rows), rest)
	}
}

// Flow rows carry the documented fields.
func TestFlowsFields(t *testing.T) {
	f := start(t)
	at := time.Now().Add(-5 * time.Second).UTC().Truncate(time.Millisecond)
	h := beat(sensor(sensorA, "edge-1"), 1, at)
	id := uuid.MustParse("f0000000-0000-4000-8000-0000000000f1")
	h.ActiveFlows = []heartbeat.Flow{tcpFlow(id, "inbound", "10.1.2.3:51000", "10.9.0.1:8443",
		heartbeat.Process{PID: 77, Binary: "envoy", BinaryPath: "/usr/local/bin/envoy"}, at.Add(-90*time.Second), 1234, 5678, "inet_diag")}
	f.ingest.Send(h)
	rest, rows := f.list("/api/v1/network/flows", "flows")
	if len(rows) != 1 || num(rest, "total") != 1 || rest["truncated"] != false {
		t.Fatalf("flows: %v %v", rows, rest)
	}
	r := rows[0]
	if str(r, "flow_id") != id.String() || str(r, "binary") != "envoy" || str(r, "src_address") != "10.1.2.3" || num(r, "src_port") != 51000 ||
		str(r, "dst_address") != "10.9.0.1" || num(r, "dst_port") != 8443 || str(r, "protocol") != "tcp" || str(r, "direction") != "inbound" ||
		num(r, "duration_secs") != 90 || num(r, "bytes_sent") != 1234 || num(r, "bytes_received") != 5678 || str(r, "state") != "ESTABLISHED" ||
		str(r, "hostname") != "edge-1" {
		t.Errorf("flow: %v", r)
	}
}

// tcpFlow is an established TCP flow from src to dst ("addr:port") by p,
// started at started, with its byte counts, as source saw it.
func tcpFlow(id uuid.UUID, dir, src, dst string, p heartbeat.Process, started time.Time, sent, received uint64, source string) heartbeat.Flow {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	return heartbeat.Flow{FlowID: id, Protocol: "tcp", Direction: dir, SrcAddress: s.Addr(), SrcPort: s.Port(), DstAddress: d.Addr(), DstPort: d.Port(),
		Process: p, StartedAt: started, BytesSent: sent, BytesReceived: received, State: "ESTABLISHED", Source: source}
}

// The network graph's fleet: three sensors in site dc1 and one in dc2,
// each in one network namespace. Every test of the graph reads it.
const (
	graphNetns = 4026531840
	graphA     = "a1000000-0000-4000-8000-0000000000a1" // dc1, 10.1.0.1: the clients
	graphB     = "b1000000-0000-4000-8000-0000000000b1" // dc1, 10.1.0.2 and the shared 10.1.0.50: nginx, haproxy
	graphC     = "c1000000-0000-4000-8000-0000000000c1" // dc1, 10.1.0.3 and the shared 10.1.0.50: postgres
	graphD     = "d1000000-0000-4000-8000-0000000000d1" // dc2, 10.1.0.9 and 10.1.0.50: wget
)

// graphFleet sends one heartbeat from each of the fleet's sensors, at at,
// through the real ingest node, and returns the flow ids it used.
func graphFleet(f *fixture, at time.Time) {
	f.t.Helper()
	ip := netip.MustParseAddr
	ifaces := func(addrs ...string) []heartbeat.Interface {
		var ps []netip.Prefix
		for _, a := range addrs {
			ps = append(ps, netip.MustParsePrefix(a))
		}
		return []heartbeat.Interface{{Netns: graphNetns, Name: "eth0", Index: 2, Up: true, MAC: "02:00:00:00:00:01", Addresses: ps}}
	}
	proc := func(pid uint32, bin string) heartbeat.Process {
		return heartbeat.Process{PID: pid, Binary: bin, BinaryPath: "/usr/bin/" + bin, UID: 1000}
	}
	n := 0
	flow := func(dir, src, dst string, p heartbeat.Process, state string, sent, recv uint64) heartbeat.Flow {
		n++
		fl := tcpFlow(uuid.MustParse(fmt.Sprintf("f1000000-0000-4000-8000-%012d", n)), dir, src, dst, p, at.Add(-time.Minute), sent, recv, "ebpf")
		fl.Netns, fl.State, fl.EndedAt = graphNetns, state, at.Add(-10*time.Second)
		return fl
	}
	listener := func(addr string, port uint16, inode uint64, p heartbeat.Process) heartbeat.Listener {
		return heartbeat.Listener{Family: "inet", LocalAddress: ip(addr), LocalPort: port, Inode: inode, Netns: graphNetns, Process: p}
	}
	hb := func(id, host, site string, addrs ...string) *heartbeat.Heartbeat {
		s := sensor(id, host)
		s.Site, s.Netns = site, graphNetns
		h := beat(s, 1, at)
		h.Interfaces = ifaces(addrs...)
		return h
	}
	curl, python, wget := proc(100, "curl"), proc(101, "python"), proc(400, "wget")
	nginx, haproxy, postgres := proc(200, "nginx"), proc(201, "haproxy"), proc(300, "postgres")

	a := hb(graphA, "client-a", "dc1", "10.1.0.1/24")
	a.CompletedFlows = []heartbeat.Flow{
		// Seen from both ends: B reports it too.
		flow("outbound", "10.1.0.1:40001", "10.1.0.2:443", curl, "established", 100, 2000),
		// To the address B and C both hold: ambiguous.
		flow("outbound", "10.1.0.1:40010", "10.1.0.50:8080", curl, "established", 10, 20),
		// Refused twice by B, which listens on no 9999.
		flow("outbound", "10.1.0.1:40020", "10.1.0.2:9999", curl, "refused", 0, 0),
		flow("outbound", "10.1.0.1:40021", "10.1.0.2:9999", curl, "refused", 0, 0),
		// External, resolved by name (two addresses of one name) and not.
		flow("outbound", "10.1.0.1:40030", "203.0.113.10:443", curl, "established", 300, 4000),
		flow("outbound", "10.1.0.1:40031", "203.0.113.11:443", curl, "half-closed", 30, 40),
		flow("outbound", "10.1.0.1:40040", "198.51.100.7:80", curl, "stale", 5, 6),
		// A stale connection to C's postgres, beside the open one below.
		flow("outbound", "10.1.0.1:40050", "10.1.0.3:5432", python, "stale", 7, 8),
	}
	// Open: python to C's postgres, which C's sensor does not report.
	open := conn(40051, "10.1.0.3", 5432, 11)
	open.LocalAddress, open.Netns, open.Process = ip("10.1.0.1"), graphNetns, python
	a.TCPConnections = []heartbeat.Conn{open}
	for i, name := range []string{"203.0.113.10", "203.0.113.11"} {
		a.Events = append(a.Events, heartbeat.Event{EventID: uuid.MustParse(fmt.Sprintf("e1000000-0000-4000-8000-%012d", i+1)),
			Kind: "dns_resolution", Time: at.Add(-time.Minute), Protocol: "tcp", SrcAddress: ip("10.1.0.1"), SrcPort: uint16(40030 + i),
			DstAddress: ip(name), DstPort: 443, Netns: graphNetns, Process: curl, QueryName: "API.example.com", Answers: []netip.Addr{ip(name)}, Source: "ebpf"})
	}
	f.ingest.Send(a)

	b := hb(graphB, "server-b", "dc1", "10.1.0.2/24", "10.1.0.50/24")
	b.TCPListeners = []heartbeat.Listener{listener("0.0.0.0", 443, 21, nginx), listener("0.0.0.0", 8080, 22, haproxy)}
	b.CompletedFlows = []heartbeat.Flow{
		flow("inbound", "10.1.0.1:40001", "10.1.0.2:443", nginx, "established", 2000, 100),
		// From outside the fleet.
		flow("inbound", "192.0.2.5:51000", "10.1.0.2:443", nginx, "established", 50, 60),
	}
	// Open, and seen by B alone: the client end is A's host.
	accepted := conn(443, "10.1.0.1", 40060, 23)
	accepted.LocalAddress, accepted.Netns, accepted.Process = ip("10.1.0.2"), graphNetns, nginx
	b.TCPConnections = []heartbeat.Conn{accepted}
	// ...which its flow tracker follows too: one connection, not two.
	tracked := tcpFlow(uuid.MustParse("f1000000-0000-4000-8000-0000000000ff"), "inbound", "10.1.0.1:40060", "10.1.0.2:443", nginx, at.Add(-time.Minute), 11, 22, "ebpf")
	tracked.Netns = graphNetns
	b.ActiveFlows = []heartbeat.Flow{tracked}
	f.ingest.Send(b)

	c := hb(graphC, "server-c", "dc1", "10.1.0.3/24", "10.1.0.50/24")
	c.TCPListeners = []heartbeat.Listener{listener("0.0.0.0", 5432, 31, postgres)}
	f.ingest.Send(c)

	// dc2 has a 10.1.0.50 of its own and no 10.1.0.2: wget's connection
	// there is to a peer outside the fleet, whatever dc1 holds.
	d := hb(graphD, "other-d", "dc2", "10.1.0.9/24", "10.1.0.50/24")
	d.CompletedFlows = []heartbeat.Flow{flow("outbound", "10.1.0.9:40070", "10.1.0.2:443", wget, "established", 1, 2)}
	f.ingest.Send(d)
}

// graphAnswer is a graph as the API writes it.
type graphAnswer struct {
	Nodes      []row  `json:"nodes"`
	Edges      []row  `json:"edges"`
	NextCursor string `json:"next_cursor"`
	Truncated  bool   `json:"truncated"`
}

func (f *fixture) graph(path string) graphAnswer {
	f.t.Helper()
	var g graphAnswer
	code, b, _ := f.raw("GET", path, viewerToken, nil)
	if code != 200 {
		f.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, &g); err != nil {
		f.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
	return g
}

// graphIndependent is a fleet's graph as plain joins of the raw tables
// compute it, written apart from the service's statements, for a window
// that holds all the stored rows: each sensor's sightings (its completed
// flows; the active flows of its newest heartbeat that did not complete;
// the sockets of its newest heartbeat that none of its flows covers,
// oriented by its newest listeners), the client's and the server's side
// of one connection joined on site and 4-tuple, a side nobody reported
// resolved from host_addresses and tcp_listeners, external peers named by
// dns_resolution. One line per edge, sorted.
const graphIndependent = `
WITH
  newest AS (SELECT sensor_id, max(seq) AS seq FROM sensors GROUP BY sensor_id),
  info AS (SELECT sensor_id, argMax(site, seq) AS site FROM sensors GROUP BY sensor_id),
  lis AS (SELECT sensor_id, netns, local_address AS la, local_port AS lp,
        concat('process:', toString(sensor_id), '/', toString(netns), '/', toString(pid), '/', binary) AS proc
    FROM tcp_listeners FINAL WHERE (sensor_id, seq) IN (SELECT sensor_id, seq FROM newest)),
  socks AS (SELECT * FROM tcp_connections FINAL WHERE (sensor_id, seq) IN (SELECT sensor_id, seq FROM newest)),
  serving AS (
    SELECT DISTINCT s.sensor_id AS sensor_id, s.netns AS netns, s.local_address AS local_address, s.local_port AS local_port
    FROM socks AS s JOIN lis AS l ON l.sensor_id = s.sensor_id AND l.netns = s.netns AND l.lp = s.local_port
    WHERE l.la = s.local_address OR l.la = toIPv6('::')
       OR (l.la = toIPv6('0.0.0.0') AND startsWith(toString(s.local_address), '::ffff:') AND position(toString(s.local_address), '.') > 0)),
  live AS (SELECT * FROM active_flows FINAL WHERE (sensor_id, seq) IN (SELECT sensor_id, seq FROM newest)
    AND (sensor_id, flow_id) NOT IN (SELECT sensor_id, flow_id FROM flows)),
  covered AS (
    SELECT sensor_id, src_address AS a1, src_port AS p1, dst_address AS a2, dst_port AS p2 FROM flows
    UNION ALL SELECT sensor_id, dst_address, dst_port, src_address, src_port FROM flows
    UNION ALL SELECT sensor_id, src_address, src_port, dst_address, dst_port FROM live
    UNION ALL SELECT sensor_id, dst_address, dst_port, src_address, src_port FROM live),
  seen AS (
    SELECT sensor_id, toString(protocol) AS proto, direction = 'outbound' AS is_client, src_address AS ca, src_port AS cp, dst_address AS sa, dst_port AS sp,
        netns, pid, toString(binary) AS bin, if(is_client, bytes_sent, bytes_received) AS c2s, if(is_client, bytes_received, bytes_sent) AS s2c,
        toString(state) AS st, 0 AS open
    FROM flows FINAL
    UNION ALL
    SELECT sensor_id, toString(protocol), direction = 'outbound', src_address, src_port, dst_address, dst_port, netns, pid, toString(binary),
        if(direction = 'outbound', bytes_sent, bytes_received), if(direction = 'outbound', bytes_received, bytes_sent), '', 1
    FROM live
    UNION ALL
    SELECT t.sensor_id, 'tcp', v.sensor_id IS NULL, if(v.sensor_id IS NULL, t.local_address, t.remote_address), if(v.sensor_id IS NULL, t.local_port, t.remote_port),
        if(v.sensor_id IS NULL, t.remote_address, t.local_address), if(v.sensor_id IS NULL, t.remote_port, t.local_port),
        t.netns, t.pid, toString(t.binary), 0, 0, '', 1
    FROM socks AS t
    LEFT JOIN serving AS v ON v.sensor_id = t.sensor_id AND v.netns = t.netns AND v.local_address = t.local_address AND v.local_port = t.local_port
    WHERE (t.sensor_id, t.local_address, t.local_port, t.remote_address, t.remote_port) NOT IN (SELECT sensor_id, a1, p1, a2, p2 FROM covered)
  ),
  sides AS (
    SELECT i.site AS site, proto, is_client, ca, cp, sa, sp, count() AS n, sum(open) AS open, sum(c2s) AS c2s, sum(s2c) AS s2c,
        countIf(st = 'established') AS established, countIf(st = 'refused') AS refused, countIf(st = 'half-closed') AS half_closed, countIf(st = 'stale') AS stale,
        any(seen.sensor_id) AS sensor, any(concat('process:', toString(seen.sensor_id), '/', toString(netns), '/', toString(pid), '/', bin)) AS proc,
        any(concat('service:', toString(seen.sensor_id), '/', toString(netns), '/', proto, '/', toString(sp))) AS svc
    FROM seen JOIN info AS i ON i.sensor_id = seen.sensor_id
    GROUP BY site, proto, is_client, ca, cp, sa, sp),
  conns AS (
    SELECT site, proto, ca, cp, sa, sp, c.sensor AS c_sensor, c.proc AS c_proc, v.proc AS v_proc, v.svc AS v_svc,
        greatest(ifNull(c.n, 0), ifNull(v.n, 0)) AS n, greatest(ifNull(c.open, 0), ifNull(v.open, 0)) AS open,
        if(ifNull(c.n, 0) >= ifNull(v.n, 0), c.c2s, v.c2s) AS c2s, if(ifNull(c.n, 0) >= ifNull(v.n, 0), c.s2c, v.s2c) AS s2c,
        greatest(ifNull(c.established, 0), ifNull(v.established, 0)) AS established, greatest(ifNull(c.refused, 0), ifNull(v.refused, 0)) AS refused,
        greatest(ifNull(c.half_closed, 0), ifNull(v.half_closed, 0)) AS half_closed, greatest(ifNull(c.stale, 0), ifNull(v.stale, 0)) AS stale
    FROM (SELECT * FROM sides WHERE is_client) AS c
    FULL OUTER JOIN (SELECT * FROM sides WHERE NOT is_client) AS v USING (site, proto, ca, cp, sa, sp)
  ),
  holdings AS (SELECT DISTINCT site, address, sensor_id, netns FROM host_addresses),
  holders AS (SELECT site AS h_site, address AS h_address, count() AS owners, arraySort(groupArray(toString(sensor_id))) AS who FROM holdings GROUP BY site, address),
  owner_lis AS (
    SELECT o.site AS site, o.address AS address, l.lp AS port, o.sensor_id AS sensor_id,
        argMin(l.proc, (l.la != o.address, l.proc)) AS proc, concat('service:', toString(o.sensor_id), '/', toString(any(l.netns)), '/tcp/', toString(l.lp)) AS svc
    FROM holdings AS o JOIN lis AS l ON l.sensor_id = o.sensor_id AND l.netns = o.netns
    WHERE l.la = o.address OR l.la = toIPv6('::')
       OR (l.la = toIPv6('0.0.0.0') AND startsWith(toString(o.address), '::ffff:') AND position(toString(o.address), '.') > 0)
    GROUP BY o.site, o.address, l.lp, o.sensor_id),
  cands AS (
    SELECT t.site AS k_site, t.sa AS k_sa, t.sp AS k_sp,
        arrayMap(x -> x.2, arraySort(groupArray((toString(h.sensor_id), ifNull(ol.proc, concat('host:', toString(h.sensor_id))))))) AS list,
        any(ol.svc) AS svc
    FROM (SELECT DISTINCT site, sa, sp FROM conns WHERE v_proc IS NULL) AS t
    JOIN holdings AS h ON h.site = t.site AND h.address = t.sa
    LEFT JOIN owner_lis AS ol ON ol.site = t.site AND ol.address = t.sa AND ol.port = t.sp AND ol.sensor_id = h.sensor_id
    GROUP BY t.site, t.sa, t.sp),
  names AS (SELECT sensor_id AS nm_sensor, dst_address AS nm_address, argMax(lower(query_name), time) AS name FROM events
    WHERE kind = 'dns_resolution' AND query_name != '' GROUP BY sensor_id, dst_address),
  ends AS (
    SELECT conns.*, if(startsWith(toString(sa), '::ffff:') AND position(toString(sa), '.') > 0, substring(toString(sa), 8), toString(sa)) AS peer,
        if(startsWith(toString(ca), '::ffff:') AND position(toString(ca), '.') > 0, substring(toString(ca), 8), toString(ca)) AS cpeer,
        multiIf(c_proc IS NOT NULL, c_proc, ifNull(hc.owners, 0) = 1, concat('host:', hc.who[1]),
            ifNull(hc.owners, 0) > 1, concat('ambiguous:', conns.site, '/', cpeer), concat('external:', cpeer)) AS source,
        multiIf(v_proc IS NOT NULL, 'observed', ifNull(hs.owners, 0) = 1, 'resolved', ifNull(hs.owners, 0) > 1, 'ambiguous', 'external') AS resolution,
        multiIf(resolution = 'observed', v_proc, resolution = 'resolved', k.list[1],
            resolution = 'ambiguous', concat('ambiguous:', conns.site, '/', peer), concat('external:', ifNull(nm.name, peer))) AS target,
        multiIf(resolution = 'observed', v_svc, resolution = 'resolved' AND startsWith(k.list[1], 'process:'), k.svc, '') AS service,
        if(resolution = 'ambiguous', k.list, []) AS candidates
    FROM conns
    LEFT JOIN holders AS hc ON hc.h_site = conns.site AND hc.h_address = conns.ca
    LEFT JOIN holders AS hs ON hs.h_site = conns.site AND hs.h_address = conns.sa
    LEFT JOIN cands AS k ON k.k_site = conns.site AND k.k_sa = conns.sa AND k.k_sp = conns.sp
    LEFT JOIN names AS nm ON nm.nm_sensor = conns.c_sensor AND nm.nm_address = conns.sa
  )
SELECT assumeNotNull(concat(source, ' -> ', target, ' ', proto, ':', toString(sp), ' ', min(resolution), ' service=', max(service), ' n=', toString(sum(n)),
    ' open=', toString(sum(open)), ' c2s=', toString(sum(c2s)), ' s2c=', toString(sum(s2c)), ' refused=', toString(sum(refused)), ' stale=', toString(sum(stale)),
    ' half-closed=', toString(sum(half_closed)), ' established=', toString(sum(established)),
    ' cands=', toString(any(candidates)), ' peers=', toString(arraySort(groupUniqArray(peer))))) AS line
FROM ends GROUP BY source, target, proto, sp ORDER BY line
SETTINGS join_use_nulls = 1`

// graphLine is an API edge written as graphIndependent writes one.
func graphLine(e row) string {
	states := e["end_states"].(map[string]any)
	q := func(k string) string {
		var out []string
		for _, v := range e[k].([]any) {
			out = append(out, "'"+v.(string)+"'")
		}
		return "[" + strings.Join(out, ",") + "]"
	}
	return fmt.Sprintf("%s -> %s %s:%d %s service=%s n=%d open=%d c2s=%d s2c=%d refused=%d stale=%d half-closed=%d established=%d cands=%s peers=%s",
		str(e, "source"), str(e, "target"), str(e, "protocol"), int(num(e, "port")), str(e, "resolution"), str(e, "service"), int(num(e, "connections")),
		int(num(e, "active")), int(num(e, "bytes_client_to_server")), int(num(e, "bytes_server_to_client")), int(states["refused"].(float64)),
		int(states["stale"].(float64)), int(states["half-closed"].(float64)), int(states["established"].(float64)), q("candidates"), q("peer_addresses"))
}

// independentGraph runs graphIndependent on f's store.
func (f *fixture) independentGraph() []string {
	f.t.Helper()
	var line proto.ColStr
	var out []string
	if err := f.ingest.Store.Select(context.Background(), store.Query{SQL: graphIndependent}, proto.Results{{Name: "line", Data: &line}},
		func(n int) error {
			for i := range n {
				out = append(out, line.Row(i))
			}
			return nil
		}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// The network graph of a fleet of four sensors in two sites, sent through
// real ingest: a connection both its ends report is one edge from the
// client's process to the server's; a client's connection to a listener
// of a sensor that does not report it reaches that listener's process;
// external peers are grouped by the name their client resolved, else by
// address; an address two sensors of the site hold is ambiguous, with
// both as candidates and the other site's holder not among them; refused
// and other end states are counted. The edges equal those an independent
// plain join computes, and the v2 cursor walk gives each edge once.
func TestNetworkGraph(t *testing.T) {
	f := start(t)
	at := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Millisecond)
	graphFleet(f, at)
	g := f.graph("/api/v1/network/graph")
	if g.Truncated {
		t.Errorf("truncated with %d edges", len(g.Edges))
	}

	want := f.independentGraph()
	var got []string
	for _, e := range g.Edges {
		got = append(got, graphLine(e))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("the API's edges differ from the independent join's:\n got:\n  %s\n want:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}

	// Each node once, every node an edge names among them, and each
	// process inside its host.
	nodes := map[string]row{}
	for _, n := range g.Nodes {
		if nodes[str(n, "id")] != nil {
			t.Errorf("node %s twice", str(n, "id"))
		}
		nodes[str(n, "id")] = n
	}
	for _, e := range g.Edges {
		ends := []string{str(e, "source"), str(e, "target")}
		if s := str(e, "service"); s != "" {
			ends = append(ends, s)
		}
		for _, c := range e["candidates"].([]any) {
			ends = append(ends, c.(string))
		}
		for _, id := range ends {
			if nodes[id] == nil {
				t.Errorf("edge %s names node %s, which is not among the nodes", str(e, "id"), id)
			}
		}
	}
	proc := func(sensor string, pid int, bin string) string {
		return fmt.Sprintf("process:%s/%d/%d/%s", sensor, graphNetns, pid, bin)
	}
	for _, id := range []string{proc(graphA, 100, "curl"), proc(graphB, 200, "nginx"), proc(graphC, 300, "postgres")} {
		n := nodes[id]
		if n == nil || str(n, "kind") != "process" || nodes[str(n, "parent")] == nil || str(nodes[str(n, "parent")], "kind") != "host" {
			t.Errorf("process node %s: %v, parent %v", id, n, nodes[str(n, "parent")])
		}
	}
	edges := func(source, target string) []row {
		var out []row
		for _, e := range g.Edges {
			if str(e, "source") == source && str(e, "target") == target {
				out = append(out, e)
			}
		}
		return out
	}
	one := func(what, source, target string) row {
		t.Helper()
		es := edges(source, target)
		if len(es) != 1 {
			t.Errorf("%s: %d edges %s -> %s, want 1: %v", what, len(es), source, target, es)
			return row{}
		}
		return es[0]
	}
	curl := proc(graphA, 100, "curl")
	// Both ends: one edge, with the client's view of the bytes, and not a
	// second one from the server's side.
	if e := one("both ends", curl, proc(graphB, 200, "nginx")); str(e, "resolution") != "observed" || num(e, "connections") != 1 ||
		num(e, "bytes_client_to_server") != 100 || num(e, "bytes_server_to_client") != 2000 ||
		str(e, "service") != fmt.Sprintf("service:%s/%d/tcp/443", graphB, graphNetns) {
		t.Errorf("both ends: %v", e)
	}
	for _, e := range g.Edges {
		if strings.HasPrefix(str(e, "source"), "external:10.1.0.1") {
			t.Errorf("an edge from A's address as a stranger: %v", e)
		}
	}
	// To a listener of C, which does not report the connections: the
	// open one and the stale one.
	if e := one("to a listener", proc(graphA, 101, "python"), proc(graphC, 300, "postgres")); str(e, "resolution") != "resolved" ||
		num(e, "connections") != 2 || num(e, "active") != 1 || e["end_states"].(map[string]any)["stale"] != 1.0 {
		t.Errorf("to a listener: %v", e)
	}
	// External peers: by name (both addresses of it), and by address.
	if e := one("by name", curl, "external:api.example.com"); num(e, "connections") != 2 ||
		!slices.Equal(e["peer_addresses"].([]any), []any{"203.0.113.10", "203.0.113.11"}) {
		t.Errorf("by name: %v", e)
	}
	if n := nodes["external:api.example.com"]; str(n, "name") != "api.example.com" || str(n, "kind") != "external" {
		t.Errorf("named peer node: %v", n)
	}
	if e := one("by address", curl, "external:198.51.100.7"); str(e, "resolution") != "external" || e["end_states"].(map[string]any)["stale"] != 1.0 {
		t.Errorf("by address: %v", e)
	}
	// Ambiguous within dc1: B's haproxy listens there, C holds it but does
	// not listen; D (dc2) holds it too and is no candidate.
	wantCands := []any{proc(graphB, 201, "haproxy"), "host:" + graphC}
	if e := one("ambiguous", curl, "ambiguous:dc1/10.1.0.50"); str(e, "resolution") != "ambiguous" || !slices.Equal(e["candidates"].([]any), wantCands) {
		t.Errorf("ambiguous: %v, want candidates %v", e, wantCands)
	}
	// Refused: two, to B's host (nothing listens on 9999).
	if e := one("refused", curl, "host:"+graphB); e["end_states"].(map[string]any)["refused"] != 2.0 || num(e, "connections") != 2 || str(e, "service") != "" {
		t.Errorf("refused: %v", e)
	}
	// The other site's 10.1.0.2 is not B.
	if e := one("other site", proc(graphD, 400, "wget"), "external:10.1.0.2"); str(e, "resolution") != "external" {
		t.Errorf("other site: %v", e)
	}
	// The socket B alone reports (and its flow, once): from A's host.
	if e := one("server side only", "host:"+graphA, proc(graphB, 200, "nginx")); num(e, "connections") != 1 || num(e, "active") != 1 ||
		num(e, "bytes_client_to_server") != 22 || num(e, "bytes_server_to_client") != 11 {
		t.Errorf("server side only: %v", e)
	}

	// v2: a walk of two edges a page gives every edge once, in id order,
	// each page with the nodes its edges name.
	var ids []string
	for _, page := range f.walkPages("/api/v2/network/graph?limit=2", "edges", func(int, []row, string) {}) {
		for _, e := range page {
			ids = append(ids, str(e, "id"))
		}
	}
	var all []string
	for _, e := range g.Edges {
		all = append(all, str(e, "id"))
	}
	if !slices.IsSorted(ids) || !slices.Equal(ids, all) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("v2 walk: %v, want each of %v once, in order", ids, all)
	}
	p := f.graph("/api/v2/network/graph?limit=3")
	for _, e := range p.Edges {
		for _, id := range []string{str(e, "source"), str(e, "target")} {
			if !slices.ContainsFunc(p.Nodes, func(n row) bool { return str(n, "id") == id }) {
				t.Errorf("v2 page: edge %s names %s, not among the page's nodes", str(e, "id"), id)
			}
		}
	}
}

// The graph's filters choose connections: one with any sighting that
// matches is in the graph whole, both sensors' views of it merged as
// without the filter. Filters the graph has no column for are refused, as
// is a window that is empty or too long, and a cursor of other filters.
func TestNetworkGraphFilters(t *testing.T) {
	f := start(t)
	at := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Millisecond)
	graphFleet(f, at)
	lines := func(path string) []string {
		t.Helper()
		var out []string
		for _, e := range f.graph(path).Edges {
			out = append(out, graphLine(e))
		}
		slices.Sort(out)
		return out
	}
	all := lines("/api/v1/network/graph")
	pick := func(keep func(string) bool) []string {
		var out []string
		for _, l := range all {
			if keep(l) {
				out = append(out, l)
			}
		}
		return out
	}
	nginx := fmt.Sprintf("process:%s/%d/200/nginx", graphB, graphNetns)
	for _, c := range []struct {
		query string
		want  []string
	}{
		// nginx's connections, and the client's view of the one curl made.
		{"sensor_id=" + graphB, pick(func(l string) bool { return strings.Contains(l, "-> "+nginx+" ") })},
		{"binary=curl", pick(func(l string) bool { return strings.HasPrefix(l, "process:"+graphA+"/4026531840/100/curl ") })},
		{"host=server-*&binary=nginx", pick(func(l string) bool { return strings.Contains(l, "-> "+nginx+" ") })},
		{"state=refused", pick(func(l string) bool { return strings.Contains(l, " tcp:9999 ") })},
		{"port=5432", pick(func(l string) bool { return strings.Contains(l, " tcp:5432 ") })},
		{"dst_addr=203.0.113.0/24", pick(func(l string) bool { return strings.Contains(l, "external:api.example.com") })},
		{"direction=inbound&addr=192.0.2.5", pick(func(l string) bool { return strings.HasPrefix(l, "external:192.0.2.5 ") })},
		{"until=" + timeText(at.Add(-time.Hour)), nil},
	} {
		if got := lines("/api/v1/network/graph?" + c.query); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got  %q\n want %q", c.query, got, c.want)
		}
	}
	if len(pick(func(l string) bool { return strings.Contains(l, "-> "+nginx+" ") })) != 3 {
		t.Errorf("the fleet has not its three edges to nginx: %q", all)
	}
	for _, bad := range []string{"dns=api.example.com", "local_addr=10.1.0.1", "state=bogus", "since=" + timeText(at) + "&until=" + timeText(at),
		"since=" + timeText(at.Add(-8*24*time.Hour)) + "&until=" + timeText(at), "limit=5"} {
		if code := f.get("/api/v1/network/graph?"+bad, nil); code != 400 {
			t.Errorf("%s: %d, want 400", bad, code)
		}
	}
	var p graphAnswer
	f.get("/api/v2/network/graph?limit=1&binary=curl", &p)
	if p.NextCursor == "" {
		t.Fatal("no cursor")
	}
	if code := f.get("/api/v2/network/graph?limit=1&binary=wget&cursor="+p.NextCursor, nil); code != 400 {
		t.Errorf("a cursor of other filters: %d, want 400", code)
	}
	if code := f.get("/api/v2/network/graph?limit=1&binary=curl&cursor="+p.NextCursor, nil); code != 200 {
		t.Errorf("the cursor with its own filters: %d", code)
	}

	// v1 stops at the list cap, says so, and has the first edges in id
	// order with only their nodes.
	capped := startWith(t, options{maxListRows: 3})
	graphFleet(capped, at)
	c := capped.graph("/api/v1/network/graph")
	full := f.graph("/api/v1/network/graph")
	if !c.Truncated || len(c.Edges) != 3 || full.Truncated {
		t.Fatalf("capped at 3: truncated %v with %d edges (uncapped: truncated %v)", c.Truncated, len(c.Edges), full.Truncated)
	}
	named := map[string]bool{}
	for i, e := range c.Edges {
		if str(e, "id") != str(full.Edges[i], "id") {
			t.Errorf("capped edge %d is %s, want %s", i, str(e, "id"), str(full.Edges[i], "id"))
		}
		named[str(e, "source")], named[str(e, "target")] = true, true
	}
	for _, n := range c.Nodes {
		if k := str(n, "kind"); (k == "external" || k == "ambiguous") && !named[str(n, "id")] {
			t.Errorf("capped: node %s of an edge left out", str(n, "id"))
		}
	}
}

// A resolved server end is the listener that takes the connection: one
// bound to the address itself before one bound to 0.0.0.0 (the kernel's
// choice), and never one on loopback or in another namespace.
func TestNetworkGraphListenerChoice(t *testing.T) {
	f := start(t)
	at := time.Now().Add(-20 * time.Second).UTC().Truncate(time.Millisecond)
	ip := netip.MustParseAddr
	send := func(id, host string, h func(*heartbeat.Heartbeat)) {
		s := sensor(id, host)
		s.Site, s.Netns = "lab", graphNetns
		b := beat(s, 1, at)
		h(b)
		f.ingest.Send(b)
	}
	listener := func(addr string, port uint16, netns, inode uint64, bin string) heartbeat.Listener {
		return heartbeat.Listener{Family: "inet", LocalAddress: ip(addr), LocalPort: port, Inode: inode, Netns: netns,
			Process: heartbeat.Process{PID: uint32(inode), Binary: bin}}
	}
	send(graphB, "server", func(h *heartbeat.Heartbeat) {
		h.Interfaces = []heartbeat.Interface{{Netns: graphNetns, Name: "eth0", Index: 2, Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.1/24")}}}
		h.TCPListeners = []heartbeat.Listener{listener("0.0.0.0", 7000, graphNetns, 1, "wildcard"), listener("10.2.0.1", 7000, graphNetns, 2, "specific"),
			listener("127.0.0.1", 7001, graphNetns, 3, "loopback"), listener("0.0.0.0", 7002, 4026532999, 4, "elsewhere")}
	})
	send(graphA, "client", func(h *heartbeat.Heartbeat) {
		h.Interfaces = []heartbeat.Interface{{Netns: graphNetns, Name: "eth0", Index: 2, Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix("10.2.0.2/24")}}}
		for i, port := range []uint16{7000, 7001, 7002} {
			fl := tcpFlow(uuid.MustParse(fmt.Sprintf("f2000000-0000-4000-8000-%012d", i)), "outbound", fmt.Sprintf("10.2.0.2:%d", 41000+i),
				fmt.Sprintf("10.2.0.1:%d", port), heartbeat.Process{PID: 9, Binary: "client"}, at.Add(-time.Minute), 1, 1, "ebpf")
			fl.Netns, fl.EndedAt, fl.State = graphNetns, at.Add(-time.Second), "established"
			h.CompletedFlows = append(h.CompletedFlows, fl)
		}
	})
	targets := map[float64]string{}
	for _, e := range f.graph("/api/v1/network/graph").Edges {
		targets[num(e, "port")] = str(e, "target")
	}
	want := map[float64]string{7000: fmt.Sprintf("process:%s/%d/2/specific", graphB, graphNetns), 7001: "host:" + graphB, 7002: "host:" + graphB}
	if !maps.Equal(targets, want) {
		t.Errorf("targets by port %v, want %v", targets, want)
	}
}

// The graph of a fleetsim fleet (40 sensors in 4 sites, three heartbeats
// each, through real ingest) equals graphIndependent's: hosts that connect
// to other hosts' listeners, seen by both ends or by the client alone,
// external peers with and without DNS lineage, and a VIP two hosts of each
// site hold, ambiguous with its site's holders as candidates. v1 and the
// v2 walk to the end give the same edges and nodes, and every node is one
// an edge names (or its host, or an ambiguous address's holder).
func TestNetworkGraphFleetsim(t *testing.T) {
	f := start(t)
	now := time.Now().UTC()
	fleet, err := fleetsim.NewGraphFleet(7, 40, 4, fleetsim.Shape{Conns: 12, Listeners: 8, ShortLived: 3, Churn: 0.2}, now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for k := range 3 {
		hbs, err := fleet.Next(now.Add(time.Duration(k-3) * 15 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		// All of a tick's heartbeats at once, as a fleet sends them.
		errs := make(chan error, len(hbs))
		for _, h := range hbs {
			go func() {
				body, err := heartbeat.Encode(h)
				if err == nil {
					var code int
					var b []byte
					code, b, err = ingesttest.PostTo(context.Background(), http.DefaultClient, f.ingest.URL+"/v1/heartbeat", ingesttest.Token, body)
					if err == nil && code != 200 {
						err = fmt.Errorf("heartbeat %s: %d %s", h.Sensor.SensorID, code, b)
					}
				}
				errs <- err
			}()
		}
		for range hbs {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	t0 := time.Now()
	g := f.graph("/api/v1/network/graph")
	t1 := time.Now()
	want := f.independentGraph()
	t.Logf("the API's graph in %v, the independent join in %v", t1.Sub(t0), time.Since(t1))
	var got []string
	for _, e := range g.Edges {
		got = append(got, graphLine(e))
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		missing, extra := diff(want, got), diff(got, want)
		t.Errorf("the API's %d edges differ from the independent join's %d:\n only the API's:\n  %s\n only the join's:\n  %s",
			len(got), len(want), strings.Join(extra, "\n  "), strings.Join(missing, "\n  "))
	}
	// The fleet has what the test is for.
	count := func(sub string) int {
		n := 0
		for _, l := range want {
			if strings.Contains(l, sub) {
				n++
			}
		}
		return n
	}
	for what, sub := range map[string]string{"observed": " observed ", "resolved to a listener": " resolved service=service:",
		"ambiguous": " ambiguous service= ", "external by name": "-> external:api.", "external by address": "-> external:203.0.113.",
		"a candidate listener": "cands=['process:", "refused": "refused=1"} {
		if count(sub) == 0 {
			t.Errorf("the fleet's graph has no %s edge (%q)", what, sub)
		}
	}
	for _, l := range want {
		if strings.Contains(l, "ambiguous:") && !strings.Contains(l, "-> ambiguous:dc") {
			t.Errorf("an ambiguous source: %s", l)
		}
	}

	// Nodes: each once, exactly the ones the edges name with their hosts
	// and the ambiguous addresses' holders, hosts with their sensor's name
	// and site.
	nodes := map[string]row{}
	for _, n := range g.Nodes {
		if nodes[str(n, "id")] != nil {
			t.Errorf("node %s twice", str(n, "id"))
		}
		nodes[str(n, "id")] = n
	}
	named := map[string]bool{}
	name := func(id string) {
		named[id] = true
		for _, kind := range []string{"process:", "service:"} {
			if s, ok := strings.CutPrefix(id, kind); ok {
				named["host:"+s[:36]] = true
			}
		}
	}
	for _, e := range g.Edges {
		for _, k := range []string{"source", "target", "service"} {
			if id := str(e, k); id != "" {
				name(id)
			}
		}
		for _, c := range e["candidates"].([]any) {
			name(c.(string))
		}
	}
	if !maps.Equal(maps.Collect(func(yield func(string, bool) bool) {
		for id := range nodes {
			if !yield(id, true) {
				return
			}
		}
	}), named) {
		t.Errorf("nodes %d, named by the edges %d: %v", len(nodes), len(named), diff(slices.Sorted(maps.Keys(nodes)), slices.Sorted(maps.Keys(named))))
	}
	for _, s := range fleet.Sensors {
		n := nodes["host:"+s.SensorID.String()]
		if n != nil && (str(n, "hostname") != s.Hostname || str(n, "site") != s.Site || str(n, "kind") != "host") {
			t.Errorf("host node %v, want hostname %s site %s", n, s.Hostname, s.Site)
		}
	}
	for id, n := range nodes {
		if strings.HasPrefix(id, "process:") && str(nodes[str(n, "parent")], "kind") != "host" {
			t.Errorf("process %s has no host parent: %v", id, n)
		}
	}

	// v2, walked by cursor to the end: the same edges and nodes.
	var walked []string
	v2nodes := map[string]bool{}
	for path := "/api/v2/network/graph?limit=400"; ; {
		p := f.graph(path)
		for _, e := range p.Edges {
			walked = append(walked, graphLine(e))
		}
		for _, n := range p.Nodes {
			v2nodes[str(n, "id")] = true
		}
		if p.NextCursor == "" {
			break
		}
		path = "/api/v2/network/graph?limit=400&cursor=" + p.NextCursor
	}
	if slices.Sort(walked); !slices.Equal(walked, got) {
		t.Errorf("v2 walk: %d edges, v1 %d", len(walked), len(got))
	}
	if !maps.Equal(v2nodes, named) {
		t.Errorf("v2 walk: %d nodes, want %d", len(v2nodes), len(named))
	}
	t.Logf("%d edges, %d nodes", len(got), len(nodes))
}

// diff is what of a (sorted) b lacks.
func diff(a, b []string) []string {
	var out []string
	for _, s := range a {
		if _, ok := slices.BinarySearch(b, s); !ok {
			out = append(out, s)
		}
	}
	return out
}

// The fleet timeline equals a plain scan of the heartbeats table done here:
// per bucket, each sensor once with its newest heartbeat that has a
// snapshot (a retried heartbeat once, one whose snapshots were dropped
// not at all, though its completed flows count), empty buckets as zeros,
// and host= and sensor_id= narrow it. Bad steps and windows are 400s
// naming the parameter.
func TestNetworkTimeline(t *testing.T) {
	f := start(t)
	base := time.Now().UTC().Truncate(time.Minute).Add(-20 * time.Minute)
	gens := make([]*heartbeat.Generator, 4)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(7000+i), heartbeat.Shape{Conns: 3 + 2*i, Listeners: 2, UDP: 1, ActiveFlows: 2, CompletedFlows: 1})
	}
	gens[1].Sensor.Hostname, gens[2].Sensor.Hostname = "web-1", "web-2"
	// Ten minutes of heartbeats, every 20 s, sensor 3 silent after five;
	// a retry and a heartbeat with its snapshots dropped.
	for k := range 30 {
		for i, g := range gens {
			if i == 3 && k >= 15 {
				continue
			}
			h := g.Next(base.Add(time.Duration(k)*20*time.Second + time.Duration(i)*time.Second))
			if i == 0 && k == 8 { // the newest of its minute
				h.DropSnapshots()
			}
			f.ingest.Send(h)
			if i == 1 && k == 4 {
				f.ingest.Send(h)
			}
		}
	}

	// The plain scan: every stored row, folded here.
	type hb struct {
		sensor, host string
		seq          uint64
		at           time.Time
		counts       [5]uint64 // connections, listeners, udp, active flows, completed flows
	}
	var rows []hb
	{
		var sensorID, host proto.ColStr
		var seq, c, l, u, a, d proto.ColUInt64
		var at proto.ColDateTime64
		q := `SELECT toString(sensor_id) AS s, ifNull(n.hostname, '') AS host, seq, sent_at, toUInt64(tcp_connections) AS c, toUInt64(tcp_listeners) AS l,
            toUInt64(udp_listeners) AS u, toUInt64(active_flows) AS a, toUInt64(completed_flows) AS d
            FROM heartbeats LEFT JOIN (SELECT sensor_id, argMax(hostname, seq) AS hostname FROM sensors GROUP BY sensor_id) AS n USING (sensor_id)`
		if err := f.ingest.Store.Select(context.Background(), store.Query{SQL: q}, proto.Results{{Name: "s", Data: &sensorID}, {Name: "host", Data: &host},
			{Name: "seq", Data: &seq}, {Name: "sent_at", Data: &at}, {Name: "c", Data: &c}, {Name: "l", Data: &l}, {Name: "u", Data: &u},
			{Name: "a", Data: &a}, {Name: "d", Data: &d}}, func(n int) error {
			for i := range n {
				rows = append(rows, hb{sensorID.Row(i), host.Row(i), seq.Row(i), at.Row(i), [5]uint64{c.Row(i), l.Row(i), u.Row(i), a.Row(i), d.Row(i)}})
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	type bucket struct {
		Time                                                                       string
		Sensors, Connections, Listeners, UDPListeners, ActiveFlows, CompletedFlows uint64
	}
	scan := func(since time.Time, step time.Duration, n int, keep func(hb) bool) []bucket {
		once := map[[2]string]hb{}
		for _, r := range rows {
			if keep(r) && !r.at.Before(since) && r.at.Before(since.Add(time.Duration(n)*step)) {
				once[[2]string{r.sensor, strconv.FormatUint(r.seq, 10)}] = r
			}
		}
		type state struct {
			seq    uint64
			newest [4]uint64
			done   uint64
		}
		per := make([]map[string]*state, n)
		for _, r := range once {
			b := int(r.at.Sub(since) / step)
			if per[b] == nil {
				per[b] = map[string]*state{}
			}
			s := per[b][r.sensor]
			if s == nil {
				s = &state{}
				per[b][r.sensor] = s
			}
			s.done += r.counts[4]
			if r.counts[0]+r.counts[1]+r.counts[2]+r.counts[3] > 0 && r.seq >= s.seq {
				s.seq = r.seq
				copy(s.newest[:], r.counts[:4])
			}
		}
		out := make([]bucket, n)
		for b := range out {
			out[b].Time = timeText(since.Add(time.Duration(b) * step))
			for _, s := range per[b] {
				out[b].Sensors++
				out[b].Connections += s.newest[0]
				out[b].Listeners += s.newest[1]
				out[b].UDPListeners += s.newest[2]
				out[b].ActiveFlows += s.newest[3]
				out[b].CompletedFlows += s.done
			}
		}
		return out
	}
	get := func(path string) []bucket {
		t.Helper()
		var a struct {
			Buckets []struct {
				Time                            string
				Sensors, Connections, Listeners uint64
				UDP                             uint64 `json:"udp_listeners"`
				Active                          uint64 `json:"active_flows"`
				Completed                       uint64 `json:"completed_flows"`
			} `json:"buckets"`
		}
		if code := f.get(path, &a); code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		out := make([]bucket, len(a.Buckets))
		for i, b := range a.Buckets {
			out[i] = bucket{b.Time, b.Sensors, b.Connections, b.Listeners, b.UDP, b.Active, b.Completed}
		}
		return out
	}
	all := func(hb) bool { return true }
	since := base.Add(-2 * time.Minute)
	window := "since=" + timeText(since) + "&until=" + timeText(since.Add(14*time.Minute))
	for _, c := range []struct {
		query string
		step  time.Duration
		n     int
		keep  func(hb) bool
	}{
		{"&step=1m", time.Minute, 14, all},
		{"&step=15s", 15 * time.Second, 56, all},
		{"", 7 * time.Second, 120, all}, // the default: 14 min / 120, rounded up to whole seconds
		{"&step=1m&host=web-*", time.Minute, 14, func(r hb) bool { return strings.HasPrefix(r.host, "web-") }},
		{"&step=1m&host=WEB-2&host=web-1", time.Minute, 14, func(r hb) bool { return r.host == "web-1" || r.host == "web-2" }},
		{"&step=1m&sensor_id=" + gens[3].Sensor.SensorID.String(), time.Minute, 14, func(r hb) bool { return r.sensor == gens[3].Sensor.SensorID.String() }},
	} {
		got, want := get("/api/v2/network/timeline?"+window+c.query), scan(since, c.step, c.n, c.keep)
		if !slices.Equal(got, want) {
			t.Errorf("%s:\n got  %+v\n want %+v", c.query, got, want)
		}
	}
	// The fleet is as the test means it: four sensors, then three; the
	// retry and the dropped snapshots are inside the window.
	if b := scan(since, time.Minute, 14, all); b[3].Sensors != 4 || b[10].Sensors != 3 || b[0].Sensors != 0 {
		t.Errorf("the scan's buckets: %+v", b)
	}
	var top row
	f.get("/api/v2/network/timeline?"+window+"&step=90s", &top)
	if str(top, "since") != timeText(since) || num(top, "step_secs") != 90 || len(top["buckets"].([]any)) != 10 {
		t.Errorf("answer: %v", top)
	}
	for bad, param := range map[string]string{"step=500ms": "step", "step=1s": "step", "step=fast": "step", "step=1.5s5": "step",
		"since=" + timeText(since) + "&until=" + timeText(since): "since", "since=" + timeText(since.Add(-32*24*time.Hour)): "since",
		"host=a%20b": "host", "port=22": "port", "binary=curl": "binary", "sensor_id=x": "sensor_id"} {
		var e row
		if code := f.get("/api/v2/network/timeline?"+bad, &e); code != 400 || str(e, "parameter") != param {
			t.Errorf("%s: %d %v, want 400 naming %s", bad, code, e, param)
		}
	}
	if code, _, _ := f.raw("GET", "/api/v2/network/timeline", "", nil); code != 401 {
		t.Errorf("no token: %d, want 401", code)
	}
}

// atMember is the echoed at of an answer, cut out to compare a replay with
// what was recorded (null then, the moment asked for now); generatedAt is
// the summary's own clock, which says when an answer was made, not what it
// shows.
var (
	atMember    = regexp.MustCompile(`,"at":(null|"[^"]*")`)
	generatedAt = regexp.MustCompile(`"generated_at":"[^"]*"`)
	nextCursor  = regexp.MustCompile(`"next_cursor":"[^"]*"`)
)

// atPages fetches path, and its second page when it has one (a v2 cursor
// made under the same at), each normalised for comparison: the at member,
// generated_at, and next_cursor cut out (a cursor seals its at, so a
// replay's differs from the recording's by design). wantAt is the at the
// answer must echo ("null" for now).
func (f *fixture) atPages(path, at, wantAt string) string {
	f.t.Helper()
	join := func(p, kv string) string {
		if strings.Contains(p, "?") {
			return p + "&" + kv
		}
		return p + "?" + kv
	}
	if at != "" {
		path = join(path, "at="+at)
	}
	var out strings.Builder
	p := path
	for page := 0; page < 2; page++ {
		code, b, _ := f.raw("GET", p, viewerToken, nil)
		if code != 200 {
			f.t.Fatalf("GET %s: %d %s", p, code, b)
		}
		if !strings.Contains(path, "/export") {
			if m := atMember.Find(b); m == nil || string(m[len(`,"at":`):]) != wantAt {
				f.t.Errorf("GET %s: at echoed as %s, want %s", p, m, wantAt)
			}
		}
		out.Write(nextCursor.ReplaceAll(generatedAt.ReplaceAll(atMember.ReplaceAll(b, nil), nil), nil))
		var next struct {
			Cursor string `json:"next_cursor"`
		}
		if json.Unmarshal(b, &next); next.Cursor == "" {
			break
		}
		p = join(path, "cursor="+next.Cursor)
		out.WriteString("\n--- page 2\n")
	}
	return out.String()
}

// at= replays what every snapshot view answered at that moment: answers are
// recorded after each phase of a fleet's life (sockets open, change state
// and close; a sensor appears, one stops reporting, one's snapshots are
// dropped), then asked for again with at= the time of each recording, and
// must be the same bytes but for the echoed at.
func TestAtReplaysWhatTheViewsShowed(t *testing.T) {
	f := start(t)
	a, c := sensor(sensorA, "host-a"), sensor(sensorC, "host-c")
	listen := func(port uint16, inode uint64) heartbeat.Listener {
		return heartbeat.Listener{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: port, Inode: inode,
			Process: heartbeat.Process{PID: 80, Binary: "nginx", BinaryPath: "/usr/sbin/nginx"}}
	}
	udp := func(port uint16, inode uint64) heartbeat.UDPSocket {
		return heartbeat.UDPSocket{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: port, Inode: inode,
			RemoteAddress: netip.IPv4Unspecified(), Process: heartbeat.Process{PID: 53, Binary: "unbound", BinaryPath: "/usr/sbin/unbound"}}
	}
	flowID := uuid.MustParse("f2000000-0000-4000-8000-000000000001")
	curl := heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl", UID: 1000}

	var since, until string
	paths := func() []string {
		g := "since=" + since + "&until=" + until
		return []string{
			"/api/v1/network/connections", "/api/v1/network/connections?page=2&page_size=1", "/api/v1/network/connections?sort=-remote_port",
			"/api/v1/network/connections?sensor_id=" + sensorA, "/api/v1/network/listening", "/api/v1/network/udp", "/api/v1/network/flows",
			"/api/v1/network/listening?page=1&page_size=2&sort=local_port", "/api/v1/network/summary",
			"/api/v2/network/connections", "/api/v2/network/connections?limit=1", "/api/v2/network/connections?binary=curl",
			"/api/v2/network/listening", "/api/v2/network/udp", "/api/v2/network/flows",
			"/api/v2/network/connections/export?format=ndjson", "/api/v2/network/listening/export?format=csv",
			"/api/v1/network/graph?" + g, "/api/v2/network/graph?" + g, "/api/v2/network/graph?limit=1&" + g,
		}
	}
	type recording struct {
		phase       string
		ats         []time.Time // each answer's moment
		paths       []string
		answers     []string
		graphWindow [2]string
	}
	var recs []recording
	record := func(phase string) {
		t.Helper()
		now := time.Now().UTC().Truncate(time.Millisecond)
		since, until = timeText(now.Add(-time.Hour)), timeText(now)
		r := recording{phase: phase, paths: paths()}
		for _, p := range r.paths {
			r.answers = append(r.answers, f.atPages(p, "", "null"))
			// Each answer's moment is taken as it is made: every heartbeat
			// it shows was received by then, and none after; and a sensor
			// turning stale while the phase is recorded (a loaded machine
			// can take many seconds for twenty answers) is stale at the
			// moments of the answers that say so, and only those.
			r.ats = append(r.ats, time.Now().UTC().Truncate(time.Millisecond))
		}
		recs = append(recs, r)
		time.Sleep(5 * time.Millisecond)
	}

	// Phase 1: the graph's fleet, and A with a connection, a listener, a
	// UDP socket and a flow, received three minutes ago: A is stale.
	now := time.Now().UTC().Truncate(time.Millisecond)
	graphFleet(f, now.Add(-20*time.Second))
	h := beat(a, 1, now.Add(-3*time.Minute))
	h.TCPConnections = []heartbeat.Conn{conn(50001, "10.9.0.7", 443, 1), conn(50002, "10.9.0.8", 443, 2)}
	h.TCPListeners = []heartbeat.Listener{listen(80, 10), listen(443, 11)}
	h.UDPListeners = []heartbeat.UDPSocket{udp(53, 20)}
	h.ActiveFlows = []heartbeat.Flow{tcpFlow(flowID, "outbound", "10.9.0.1:50001", "10.9.0.7:443", curl, now.Add(-4*time.Minute), 10, 20, "ebpf")}
	f.sendReceivedAt(h, now.Add(-3*time.Minute))
	// B last reported 30 s ago, and never again: fresh in this phase's
	// answers, stale (45 s) by the time they are replayed.
	hb := beat(sensor(sensorB, "host-b"), 1, now.Add(-30*time.Second))
	hb.TCPConnections = []heartbeat.Conn{conn(50100, "10.9.0.1", 22, 30)}
	f.sendReceivedAt(hb, now.Add(-30*time.Second))
	record("open")

	// Phase 2: A reports again (fresh): one connection changes state, one
	// closes, one opens; a listener goes, the flow moves bytes. C appears.
	// B drops its haproxy listener and its accepted connection; the graph's
	// other sensors stop reporting.
	now = time.Now().UTC().Truncate(time.Millisecond)
	h = beat(a, 2, now)
	c1 := conn(50001, "10.9.0.7", 443, 1)
	c1.State = "CLOSE_WAIT"
	h.TCPConnections = []heartbeat.Conn{c1, conn(50003, "10.9.0.9", 8443, 3)}
	h.TCPListeners = []heartbeat.Listener{listen(443, 11)}
	h.UDPListeners = []heartbeat.UDPSocket{udp(53, 20), udp(5353, 21)}
	h.ActiveFlows = []heartbeat.Flow{tcpFlow(flowID, "outbound", "10.9.0.1:50001", "10.9.0.7:443", curl, now.Add(-4*time.Minute), 500, 900, "ebpf")}
	f.ingest.Send(h)
	hc := beat(c, 1, now)
	hc.TCPConnections = []heartbeat.Conn{conn(60000, "10.9.0.1", 443, 7)}
	f.ingest.Send(hc)
	bs := sensor(graphB, "server-b")
	bs.Site, bs.Netns = "dc1", graphNetns
	hb = beat(bs, 2, now)
	hb.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: 443, Inode: 21, Netns: graphNetns,
		Process: heartbeat.Process{PID: 200, Binary: "nginx", BinaryPath: "/usr/bin/nginx", UID: 1000}}}
	f.ingest.Send(hb)
	record("changed")

	// Phase 3: A's connections, its flow and UDP sockets close; C opens a
	// second connection, then sends a heartbeat whose snapshots its spool
	// dropped, which is no state: C's previous one stays in force.
	now = time.Now().UTC().Truncate(time.Millisecond)
	h = beat(a, 3, now)
	h.TCPListeners = []heartbeat.Listener{listen(443, 11)}
	f.ingest.Send(h)
	hc = beat(c, 2, now)
	hc.TCPConnections = []heartbeat.Conn{conn(60000, "10.9.0.1", 443, 7), conn(60001, "10.9.0.1", 443, 8)}
	f.ingest.Send(hc)
	hc = beat(c, 3, now.Add(time.Second))
	hc.DropSnapshots()
	f.ingest.Send(hc)
	record("closed")

	// B is stale now, as it was not then: the replay must say what was.
	time.Sleep(time.Until(recs[0].ats[0].Add(20 * time.Second)))
	if _, rows := f.list("/api/v2/network/connections?sensor_id="+sensorB, "connections"); len(rows) != 1 || rows[0]["sensor_stale"] != true {
		t.Fatalf("B now: %v, want its connection, stale", rows)
	}
	var then struct{ Connections []row }
	if err := json.Unmarshal([]byte(recs[0].answers[9]), &then); err != nil || !slices.ContainsFunc(then.Connections, func(r row) bool {
		return r["sensor_id"] == sensorB && r["sensor_stale"] == false
	}) {
		t.Fatalf("phase open (%v) does not show B fresh: %s", err, recs[0].answers[9])
	}
	// The recordings differ (or the replay proves little).
	for i := 1; i < len(recs); i++ {
		if slices.Equal(recs[i].answers, recs[i-1].answers) {
			t.Fatalf("phases %s and %s answered the same", recs[i-1].phase, recs[i].phase)
		}
	}
	for _, r := range recs {
		for i, p := range r.paths {
			for _, at := range []string{timeText(r.ats[i]), strconv.FormatInt(r.ats[i].UnixMilli(), 10)} {
				if got := f.atPages(p, at, `"`+timeText(r.ats[i])+`"`); got != r.answers[i] {
					t.Errorf("phase %s, GET %s at=%s:\n got %s\nwant %s", r.phase, p, at, got, r.answers[i])
				}
			}
		}
	}
}

// at= is refused, naming it, when it is not a time, not yet come, or older
// than the history kept; a cursor made at one moment is refused at another
// or now, and a graph's window may not end after its moment.
func TestAtRefusesBadMoments(t *testing.T) {
	f := start(t)
	f.fleet(1, 2, heartbeat.Shape{Conns: 3, Listeners: 2})
	now := time.Now().UTC()
	for _, ep := range []string{"/api/v1/network/connections", "/api/v1/network/listening", "/api/v1/network/udp", "/api/v1/network/flows",
		"/api/v1/network/summary", "/api/v1/network/graph", "/api/v2/network/graph", "/api/v2/network/connections", "/api/v2/network/listening",
		"/api/v2/network/udp", "/api/v2/network/flows", "/api/v2/network/connections/export?format=csv"} {
		sep := "?"
		if strings.Contains(ep, "?") {
			sep = "&"
		}
		for _, at := range []string{"yesterday", "2026-11-25", "12:00", "1.5", timeText(now.Add(time.Hour)),
			strconv.FormatInt(now.Add(time.Minute).UnixMilli(), 10), timeText(now.Add(-8 * 24 * time.Hour))} {
			f.badRequest(ep+sep+"at="+url.QueryEscape(at), "at")
		}
		f.badRequest(ep+sep+"at="+timeText(now)+"&at="+timeText(now), "at")
	}
	// The good forms are taken: RFC 3339 with an offset, Unix ms, a moment
	// a little ahead of this clock (a client's runs ahead), seven days back.
	for _, at := range []string{now.Add(-time.Hour).Format(time.RFC3339), now.In(time.FixedZone("", 2*3600)).Format(time.RFC3339Nano),
		strconv.FormatInt(now.UnixMilli(), 10), timeText(now.Add(2 * time.Second)), timeText(now.Add(-7*24*time.Hour + time.Minute))} {
		var out map[string]any
		if code := f.get("/api/v2/network/connections?at="+url.QueryEscape(at), &out); code != 200 {
			t.Errorf("at=%s: %d %v", at, code, out)
		}
	}
	at := timeText(now)
	other := timeText(now.Add(-time.Second))
	for _, c := range []struct{ path, name string }{{"/api/v2/network/connections?limit=1", "connections"}, {"/api/v2/network/graph?limit=1", "edges"}} {
		var out map[string]any
		if code := f.get(c.path+"&at="+at, &out); code != 200 || out["next_cursor"] == nil {
			if c.name == "edges" {
				continue // the fleet's sockets make no edge of their own: nothing to page
			}
			t.Fatalf("%s at=%s: %d %v", c.path, at, code, out)
		}
		cur := out["next_cursor"].(string)
		f.badRequest(c.path+"&cursor="+cur+"&at="+other, "cursor")
		f.badRequest(c.path+"&cursor="+cur, "cursor")
		if code := f.get(c.path+"&cursor="+cur+"&at="+at, &out); code != 200 {
			t.Errorf("%s: the cursor at its own at: %d %v", c.path, code, out)
		}
	}
	// A live cursor is refused at a moment.
	var out map[string]any
	f.get("/api/v2/network/connections?limit=1", &out)
	f.badRequest("/api/v2/network/connections?limit=1&cursor="+out["next_cursor"].(string)+"&at="+at, "cursor")
	f.badRequest("/api/v1/network/graph?at="+url.QueryEscape(timeText(now.Add(-time.Hour)))+"&until="+url.QueryEscape(timeText(now)), "until")
}
