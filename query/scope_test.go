package query_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/netip"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// scopedBeat is one sensor's heartbeat with sockets, flows and events in
// two containers (one in a pod) and on the host, in three namespaces; one
// event, as from a sensor that does not report it, has no namespace.
func scopedBeat(now time.Time) *heartbeat.Heartbeat {
	h := beat(sensor("5c000000-0000-4000-8000-000000000001", "host-scope"), 1, now)
	web := heartbeat.Process{PID: 10, Binary: "nginx", UID: 33, ContainerID: strings.Repeat("ab", 32), ContainerRuntime: "docker", ContainerName: "web-1"}
	db := heartbeat.Process{PID: 20, Binary: "postgres", UID: 999, ContainerID: strings.Repeat("cd", 32), ContainerRuntime: "containerd",
		ContainerName: "db", PodUID: "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f", Pod: "db-0", PodNamespace: "prod"}
	for i, c := range []struct {
		p     heartbeat.Process
		netns uint64
	}{{web, 4026532001}, {db, 4026532002}, {heartbeat.Process{PID: 30, Binary: "sshd"}, 4026531840}, {web, 4026532001}} {
		k := conn(uint16(40000+i), "10.0.0.5", 443, uint64(100+i))
		k.Process, k.Netns = c.p, c.netns
		h.TCPConnections = append(h.TCPConnections, k)
	}
	h.ActiveFlows = []heartbeat.Flow{{FlowID: uuid.MustParse("5c000000-0000-4000-8000-0000000000f1"), Protocol: "tcp", Direction: "outbound",
		SrcAddress: h.TCPConnections[1].LocalAddress, SrcPort: 40001, DstAddress: h.TCPConnections[1].RemoteAddress, DstPort: 443,
		Netns: 4026532002, Process: db, StartedAt: h.SentAt, State: "ESTABLISHED", Source: "proc"},
		{FlowID: uuid.MustParse("5c000000-0000-4000-8000-0000000000f2"), Protocol: "tcp", Direction: "outbound",
			SrcAddress: h.TCPConnections[2].LocalAddress, SrcPort: 40002, DstAddress: h.TCPConnections[2].RemoteAddress, DstPort: 443,
			Netns: 4026531840, Process: heartbeat.Process{PID: 30, Binary: "sshd"}, StartedAt: h.SentAt, State: "ESTABLISHED", Source: "proc"}}
	// A completed flow in web's namespace: its network_flow event is
	// narrowed by the flow's namespace.
	h.CompletedFlows = []heartbeat.Flow{{FlowID: uuid.MustParse("5c000000-0000-4000-8000-0000000000f3"), Protocol: "tcp", Direction: "outbound",
		SrcAddress: h.TCPConnections[0].LocalAddress, SrcPort: 40010, DstAddress: h.TCPConnections[0].RemoteAddress, DstPort: 443,
		Netns: 4026532001, Process: web, StartedAt: h.SentAt.Add(-4 * time.Second), EndedAt: h.SentAt.Add(-3 * time.Second), State: "established", Source: "proc"}}
	e1 := ev("5c000000-0000-4000-8000-0000000000e1", "network_connect", now.Add(-time.Second))
	e1.Process, e1.Netns = web, 4026532001
	e2 := ev("5c000000-0000-4000-8000-0000000000e2", "network_connect", now.Add(-2*time.Second))
	h.Events = []heartbeat.Event{e1, e2}
	return h
}

// TestScopeFilters narrows every kind of list by container, pod and
// namespace: each value form, OR within a filter, AND across, counts, v2
// cursors bound to their filters, and 400s that name the parameter.
func TestScopeFilters(t *testing.T) {
	f := start(t)
	f.ingest.Send(scopedBeat(time.Now()))
	// Another sensor's rows, outside every scope below.
	f.fleet(1, 1, heartbeat.Shape{Conns: 3, ActiveFlows: 1, Events: 2})

	web, uid := strings.Repeat("ab", 32), "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f"
	for _, c := range []struct {
		query string
		ports []float64 // local ports of the connections found
	}{
		{"container=web-1", []float64{40000, 40003}},
		{"container=" + web, []float64{40000, 40003}},
		{"container=" + web[:12], []float64{40000, 40003}},
		{"container=" + web[:11], nil}, // too short to be a prefix
		{"container=web-1&container=db", []float64{40000, 40001, 40003}},
		{"pod=db-0", []float64{40001}},
		{"pod=prod/db-0", []float64{40001}},
		{"pod=staging/db-0", nil},
		{"pod=" + uid, []float64{40001}},
		{"pod=" + strings.ToUpper(uid), []float64{40001}},
		{"netns=4026532001", []float64{40000, 40003}},
		{"netns=4026532001&netns=4026531840", []float64{40000, 40002, 40003}},
		{"netns=4026532001&container=db", nil},
		{"netns=4026532002&pod=db-0", []float64{40001}},
	} {
		rest, rows := f.list("/api/v1/network/connections?"+c.query, "connections")
		var got []float64
		for _, r := range rows {
			got = append(got, num(r, "local_port"))
		}
		slices.Sort(got) // key order: the namespace first
		if !slices.Equal(got, c.ports) || num(rest, "total") != float64(len(c.ports)) {
			t.Errorf("v1 connections?%s: ports %v total %v, want %v", c.query, got, rest["total"], c.ports)
		}
		all := f.walk("/api/v2/network/connections?limit=1&"+c.query, "connections", nil)
		if len(all) != len(c.ports) {
			t.Errorf("v2 connections?%s: %d rows, want %d", c.query, len(all), len(c.ports))
		}
	}

	// The flow and the events, by container and pod.
	if _, rows := f.list("/api/v2/network/flows?pod=prod/db-0", "flows"); len(rows) != 1 || str(rows[0], "pod") != "db-0" {
		t.Errorf("flows?pod=prod/db-0: %v", rows)
	}
	if _, rows := f.list("/api/v2/network/flows?container=web-1", "flows"); len(rows) != 0 {
		t.Errorf("flows?container=web-1: %v, want none", rows)
	}
	if _, rows := f.list("/api/v1/events?container=web-1&kind=network_connect", "events"); len(rows) != 1 || str(rows[0], "container_name") != "web-1" {
		t.Errorf("events?container=web-1: %v", rows)
	}

	// The flows and the events, by namespace: each answers its netns, the
	// filter narrows them (OR within it, AND with the others), and rows
	// without a namespace are outside every one. The other sensor's rows
	// have none, so it is not narrowed to this sensor.
	// idsAt names rows by the last two digits of their id and their netns.
	idsAt := func(id string, rows []row) []string {
		var ids []string
		for _, r := range rows {
			ids = append(ids, str(r, id)[34:]+"@"+strconv.FormatFloat(num(r, "netns"), 'f', -1, 64))
		}
		slices.Sort(ids)
		return ids
	}
	flowIDs := func(rows []row) []string { return idsAt("flow_id", rows) }
	eventIDs := func(rows []row) []string { return idsAt("event_id", rows) }
	for _, c := range []struct {
		query string
		want  []string // flow_id's last two digits @ netns
	}{
		{"netns=4026532002", []string{"f1@4026532002"}},
		{"netns=4026532002&netns=4026531840", []string{"f1@4026532002", "f2@4026531840"}},
		{"netns=4026531840&container=db", nil},
		{"netns=4026532001", nil},
	} {
		if _, rows := f.list("/api/v2/network/flows?"+c.query, "flows"); !slices.Equal(flowIDs(rows), c.want) {
			t.Errorf("v2 flows?%s: %v, want %v", c.query, flowIDs(rows), c.want)
		}
		if _, rows := f.list("/api/v1/network/flows?"+c.query, "flows"); !slices.Equal(flowIDs(rows), c.want) {
			t.Errorf("v1 flows?%s: %v, want %v", c.query, flowIDs(rows), c.want)
		}
	}
	// Beside a page of connections, the flows are of its namespaces too.
	if rest, _ := f.list("/api/v1/network/connections?netns=4026531840", "connections"); len(rest["flows"].([]any)) != 1 {
		t.Errorf("connections?netns=4026531840: flows %v, want the one in that namespace", rest["flows"])
	}
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"netns=4026532001", []string{"e1@4026532001", "f3@4026532001"}},
		{"netns=4026532001&kind=network_flow", []string{"f3@4026532001"}},
		{"netns=4026532001&container=db", nil},
		{"netns=4026532002", nil},
	} {
		if _, rows := f.list("/api/v2/events?"+c.query, "events"); !slices.Equal(eventIDs(rows), c.want) {
			t.Errorf("events?%s: %v, want %v", c.query, eventIDs(rows), c.want)
		}
	}
	if _, rows := f.list("/api/v1/events?kind=network_connect&sensor_id=5c000000-0000-4000-8000-000000000001", "events"); !slices.Equal(eventIDs(rows), []string{"e1@4026532001", "e2@0"}) {
		t.Errorf("events of the scoped sensor: %v, want e1 in its namespace and e2 in none", eventIDs(rows))
	}

	// A cursor is bound to its filters.
	rest, _ := f.list("/api/v2/network/connections?limit=1&container=web-1", "connections")
	cur, _ := rest["next_cursor"].(string)
	if cur == "" {
		t.Fatal("no cursor after the first of two rows")
	}
	var out map[string]any
	if code := f.get("/api/v2/network/connections?limit=1&container=db&cursor="+url.QueryEscape(cur), &out); code != 400 ||
		!strings.Contains(out["error"].(string), "cursor") {
		t.Errorf("a cursor used with another container: %d %v, want 400 naming cursor", code, out)
	}

	for _, c := range []struct{ path, param string }{
		{"/api/v1/network/connections?netns=abc", "netns"},
		{"/api/v1/network/connections?netns=0", "netns"},
		{"/api/v2/network/listening?container=", "container"},
		{"/api/v2/network/udp?pod=" + strings.Repeat("p", 300), "pod"},
		{"/api/v2/network/flows?netns=0", "netns"},
		{"/api/v1/events?netns=x", "netns"},
	} {
		out = nil
		if code := f.get(c.path, &out); code != 400 || !strings.Contains(out["error"].(string), c.param) {
			t.Errorf("GET %s: %d %v, want 400 naming %s", c.path, code, out, c.param)
		}
	}
}

// TestSummaryNamespacesAndContainers counts each sensor's namespaces and
// containers from its latest snapshot's sockets.
func TestSummaryNamespacesAndContainers(t *testing.T) {
	f := start(t)
	h := scopedBeat(time.Now())
	f.ingest.Send(h)
	_, rows := f.list("/api/v1/network/summary", "sensors")
	for _, r := range rows {
		if str(r, "sensor_id") != h.Sensor.SensorID.String() {
			continue
		}
		// Three namespaces (two containers' and the host's) and the two
		// containers of scopedBeat.
		if num(r, "namespaces") != 3 || num(r, "containers") != 2 {
			t.Errorf("summary of %s: namespaces %v containers %v, want 3 and 2", str(r, "hostname"), r["namespaces"], r["containers"])
		}
		return
	}
	t.Fatalf("the summary has no row for %s: %v", h.Sensor.SensorID, rows)
}

const huntSensor = "5e000000-0000-4000-8000-000000000001"

// huntBeat is one sensor's heartbeat with something for every hunting
// filter to find and to miss: IPv4 and IPv6 ends, several states,
// binaries sharing a prefix, listeners on 8805, flows both ways, DNS
// events with answers.
func huntBeat(now time.Time) *heartbeat.Heartbeat {
	h := beat(sensor(huntSensor, "host-hunt"), 1, now)
	a := netip.MustParseAddr
	curl := heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl", UID: 1000}
	optCurl := heartbeat.Process{PID: 4243, Binary: "curl", BinaryPath: "/opt/curl/bin/curl", UID: 0}
	postdrop := heartbeat.Process{PID: 77, Binary: "postdrop", BinaryPath: "/usr/sbin/postdrop", UID: 89}
	postgres := heartbeat.Process{PID: 20, Binary: "postgres", BinaryPath: "/usr/lib/postgresql/16/bin/postgres", UID: 999}
	upf := heartbeat.Process{PID: 50, Binary: "upf", BinaryPath: "/usr/bin/upf", UID: 0}
	c := func(lport uint16, remote string, rport uint16, inode uint64, state string, p heartbeat.Process) heartbeat.Conn {
		k := conn(lport, remote, rport, inode)
		k.State, k.Process = state, p
		return k
	}
	v6 := c(41003, "2001:db8:1::5", 8805, 9004, "SYN_SENT", optCurl)
	v6.Family, v6.LocalAddress = "inet6", a("2001:db8::10")
	h.TCPConnections = []heartbeat.Conn{
		c(41000, "203.0.113.7", 443, 9001, "ESTABLISHED", curl),
		c(41001, "203.0.113.99", 443, 9002, "TIME_WAIT", postdrop),
		c(41002, "198.51.100.9", 25, 9003, "ESTABLISHED", postgres),
		v6,
		c(8805, "203.0.113.7", 50000, 9005, "CLOSE_WAIT", upf),
	}
	h.TCPListeners = []heartbeat.Listener{
		{Family: "inet", LocalAddress: a("10.9.0.1"), LocalPort: 8805, Inode: 9101, Process: upf},
		{Family: "inet", LocalAddress: a("0.0.0.0"), LocalPort: 22, Inode: 9102, Process: heartbeat.Process{PID: 1, Binary: "sshd", BinaryPath: "/usr/sbin/sshd"}},
		{Family: "inet6", LocalAddress: a("::"), LocalPort: 8805, Inode: 9103, Process: upf},
	}
	h.UDPListeners = []heartbeat.UDPSocket{
		{Family: "inet", LocalAddress: a("0.0.0.0"), LocalPort: 8805, Inode: 9201, Service: "pfcp", Process: upf},
		{Family: "inet", LocalAddress: a("10.9.0.1"), LocalPort: 53, RemoteAddress: a("203.0.113.7"), RemotePort: 5353, Inode: 9202,
			Process: heartbeat.Process{PID: 60, Binary: "dnsmasq", BinaryPath: "/usr/sbin/dnsmasq", UID: 65534}},
	}
	flow := func(id, proto, dir, src string, sport uint16, dst string, dport uint16, state string, p heartbeat.Process) heartbeat.Flow {
		return heartbeat.Flow{FlowID: uuid.MustParse("5e000000-0000-4000-8000-0000000000" + id), Protocol: proto, Direction: dir,
			SrcAddress: a(src), SrcPort: sport, DstAddress: a(dst), DstPort: dport, Process: p, StartedAt: h.SentAt, State: state, Source: "proc"}
	}
	h.ActiveFlows = []heartbeat.Flow{
		flow("f1", "tcp", "outbound", "10.9.0.1", 41000, "203.0.113.7", 443, "ESTABLISHED", curl),
		flow("f2", "tcp", "inbound", "203.0.113.7", 50000, "10.9.0.1", 8805, "CLOSE_WAIT", upf),
		flow("f3", "tcp", "outbound", "2001:db8::10", 41003, "2001:db8:1::5", 8805, "SYN_SENT", optCurl),
		flow("f4", "udp", "outbound", "10.9.0.1", 53, "198.51.100.9", 53, "ESTABLISHED", postgres),
	}
	// A completed flow: its network_flow event has a final state.
	done := flow("f5", "tcp", "outbound", "10.9.0.1", 41010, "203.0.113.7", 443, "refused", curl)
	done.StartedAt, done.EndedAt = h.SentAt.Add(-4*time.Second), h.SentAt.Add(-3*time.Second)
	h.CompletedFlows = []heartbeat.Flow{done}
	e := func(n int, id, kind, name string, answers []string, p heartbeat.Process) heartbeat.Event {
		x := ev("5e000000-0000-4000-8000-0000000000"+id, kind, now.Add(-time.Duration(n)*time.Second))
		x.Process = p
		if name != "" {
			x.QueryName, x.Answers = name, nil
			for _, s := range answers {
				x.Answers = append(x.Answers, a(s))
			}
		}
		return x
	}
	accept := e(5, "e5", "network_accept", "", nil, upf)
	accept.SrcAddress, accept.SrcPort, accept.DstAddress, accept.DstPort = a("203.0.113.7"), 50000, a("10.9.0.1"), 8805
	connect := e(4, "e4", "network_connect", "", nil, curl)
	connect.DstAddress = a("203.0.113.7")
	h.Events = []heartbeat.Event{
		e(1, "e1", "dns_query", "api.evil.example", []string{"203.0.113.7"}, curl),
		e(2, "e2", "dns_lookup", "cdn.EVIL.example", []string{"2001:db8:1::5"}, heartbeat.Process{PID: 4300, Binary: "wget", BinaryPath: "/usr/bin/wget", UID: 1000}),
		e(3, "e3", "dns_resolution", "good.example.com", []string{"198.51.100.9", "203.0.113.7"}, postgres),
		connect, accept,
		e(6, "e6", "dns_query", "evil.example", []string{"192.0.2.1"}, curl),
	}
	return h
}

// huntTable is how the test reads each list itself: the table, the
// identity of a row (as the API's row gives it) and the key order.
var huntTables = map[string]struct{ table, id, order string }{
	"connections": {"tcp_connections", "concat(toString(sensor_id), '/', toString(inode))", "sensor_id, netns, local_address, local_port, remote_address, remote_port, inode"},
	"listening":   {"tcp_listeners", "concat(toString(sensor_id), '/', toString(inode))", "sensor_id, netns, local_address, local_port, inode"},
	"udp":         {"udp_listeners", "concat(toString(sensor_id), '/', toString(inode))", "sensor_id, netns, local_address, local_port, remote_address, remote_port, inode"},
	"flows":       {"active_flows", "concat(toString(sensor_id), '/', toString(flow_id))", "sensor_id, flow_id"},
}

// apiID is a row's identity as huntTables spells it.
func apiID(view string, r row) string {
	if view == "flows" {
		return str(r, "sensor_id") + "/" + str(r, "flow_id")
	}
	if view == "events" {
		return str(r, "event_id")
	}
	return str(r, "sensor_id") + "/" + strconv.FormatFloat(num(r, "inode"), 'f', -1, 64)
}

// scan answers a question with SQL written here, over the table itself.
func (f *fixture) scan(q string) []string {
	f.t.Helper()
	var c proto.ColStr
	var out []string
	if err := f.ingest.Store.Select(context.Background(), store.Query{SQL: q}, proto.Results{{Name: "id", Data: &c}}, func(n int) error {
		for i := range n {
			out = append(out, c.Row(i))
		}
		c.Reset()
		return nil
	}); err != nil {
		f.t.Fatalf("%s: %v", q, err)
	}
	return out
}

// v4in is the test's own CIDR check of a v4-mapped column.
func v4in(col, cidr string) string {
	return "isIPAddressInRange(replaceOne(toString(" + col + "), '::ffff:', ''), '" + cidr + "')"
}

// TestHuntFilters asks each filter of every list and of the events, and
// compares the API's rows, v1 and walked by v2 cursors, with the same
// question asked of the table in plain SQL: same rows, same order.
func TestHuntFilters(t *testing.T) {
	f := start(t)
	now := time.Now()
	f.ingest.Send(huntBeat(now))
	// Other sensors' rows, for the filters to leave out (or find: the SQL
	// scan is over them too).
	f.fleet(2, 1, heartbeat.Shape{Conns: 6, Listeners: 3, UDP: 3, ActiveFlows: 3, CompletedFlows: 2, Events: 10})
	// A sensor with a dotted hostname in capitals, for host= and q=, whose
	// older name (web-9) is no longer its hostname; and one whose host name
	// starts like it but is another word.
	web := sensor("5e000000-0000-4000-8000-000000000002", "web-9")
	f.ingest.Send(beat(web, 1, now.Add(-30*time.Second)))
	web.Hostname = "Web-1.Prod.Example"
	wb := beat(web, 2, now)
	wb.TCPConnections = []heartbeat.Conn{conn(42000, "203.0.113.7", 443, 9301)}
	wb.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: 80, Inode: 9302,
		Process: heartbeat.Process{PID: 8, Binary: "nginx", BinaryPath: "/usr/sbin/nginx"}}}
	wb.Events = []heartbeat.Event{ev("5e000000-0000-4000-8000-0000000000e7", "network_connect", now.Add(-7*time.Second))}
	f.ingest.Send(wb)
	w10 := beat(sensor("5e000000-0000-4000-8000-000000000003", "web-10"), 1, now)
	w10.TCPConnections = []heartbeat.Conn{conn(42001, "203.0.113.7", 443, 9401)}
	f.ingest.Send(w10)
	// hostIs is the test's own reading of a sensor's current hostname.
	hostIs := func(cond string) string {
		return "sensor_id IN (SELECT id FROM (SELECT sensor_id AS id, argMax(hostname, seq) AS name FROM sensors GROUP BY id) WHERE " +
			strings.ReplaceAll(cond, "@", "lower(name)") + ")"
	}

	either := func(a, b string) func(string) string {
		return func(x string) string {
			return "(" + strings.ReplaceAll(x, "@", a) + " OR " + strings.ReplaceAll(x, "@", b) + ")"
		}
	}
	sock, flw := either("local_address", "remote_address"), either("src_address", "dst_address")
	sockPort, flwPort := either("local_port", "remote_port"), either("src_port", "dst_port")
	for _, c := range []struct {
		view, query, cond string
		atLeast           int // rows the answer must have, so no case passes empty by mistake
	}{
		{"connections", "addr=203.0.113.7", sock("@ = toIPv6('203.0.113.7')"), 2},
		{"connections", "remote_addr=203.0.113.0/24", v4in("remote_address", "203.0.113.0/24"), 3},
		{"connections", "local_addr=2001:db8::/32", "isIPAddressInRange(toString(local_address), '2001:db8::/32')", 1},
		{"connections", "addr=2001:db8:1::/48", sock("isIPAddressInRange(toString(@), '2001:db8:1::/48')"), 1},
		{"connections", "addr=203.0.113.7&addr=198.51.100.9", sock("@ IN (toIPv6('203.0.113.7'), toIPv6('198.51.100.9'))"), 3},
		{"connections", "port=443", sockPort("@ = 443"), 2},
		{"connections", "port=8805", sockPort("@ = 8805"), 2},
		{"connections", "state=TIME_WAIT", "state = 'TIME_WAIT'", 1},
		{"connections", "state=!TIME_WAIT", "state != 'TIME_WAIT'", 4},
		{"connections", "state=!TIME_WAIT&state=!ESTABLISHED", "state NOT IN ('TIME_WAIT', 'ESTABLISHED')", 2},
		{"connections", "state=SYN_SENT&state=CLOSE_WAIT", "state IN ('SYN_SENT', 'CLOSE_WAIT')", 2},
		{"connections", "binary=curl", "binary = 'curl'", 2},
		{"connections", "binary=post*", "binary LIKE 'post%'", 2},
		{"connections", "binary_path=/usr/*&binary=curl", "binary_path LIKE '/usr/%' AND binary = 'curl'", 1},
		{"connections", "binary_path=/opt/curl/bin/curl", "binary_path = '/opt/curl/bin/curl'", 1},
		{"connections", "pid=4242&pid=77", "pid IN (4242, 77)", 2},
		{"connections", "uid=0", "uid = 0", 2},
		{"connections", "binary=curl&addr=203.0.113.0/24&port=443", "binary = 'curl' AND " + sock(v4in("@", "203.0.113.0/24")) + " AND " + sockPort("@ = 443"), 1},
		{"listening", "port=8805", "local_port = 8805", 2},
		{"listening", "addr=10.0.0.0/8", v4in("local_address", "10.0.0.0/8"), 1},
		{"listening", "local_addr=::/0", "1", 3},
		{"listening", "binary=upf&uid=0", "binary = 'upf' AND uid = 0", 2},
		{"udp", "port=8805", sockPort("@ = 8805"), 1},
		{"udp", "remote_addr=203.0.113.7", "remote_address = toIPv6('203.0.113.7')", 1},
		{"udp", "binary_path=/usr/sbin/*", "startsWith(binary_path, '/usr/sbin/')", 1},
		{"flows", "addr=203.0.113.7", flw("@ = toIPv6('203.0.113.7')"), 2},
		{"flows", "dst_addr=203.0.113.7", "dst_address = toIPv6('203.0.113.7')", 1},
		{"flows", "src_addr=2001:db8::10", "src_address = toIPv6('2001:db8::10')", 1},
		{"flows", "port=8805", flwPort("@ = 8805"), 2},
		{"flows", "protocol=udp", "protocol = 'udp'", 1},
		{"flows", "direction=inbound", "direction = 'inbound'", 1},
		{"flows", "direction=inbound&direction=outbound", "direction IN ('inbound', 'outbound')", 4},
		{"flows", "state=!ESTABLISHED", "state != 'ESTABLISHED'", 2},
		{"flows", "binary=curl&direction=outbound", "binary = 'curl' AND direction = 'outbound'", 2},
		{"flows", "pid=50", "pid = 50", 1},
		{"connections", "host=HOST-HUNT", "sensor_id = '" + huntSensor + "'", 5},
		{"connections", "host=web-1.prod.example", "sensor_id = '5e000000-0000-4000-8000-000000000002'", 1},
		{"connections", "host=web-9", "0", 0}, // its former name (its row may be merged away already)
		{"connections", "host=WEB-*", hostIs("@ LIKE 'web-%'"), 2},
		{"connections", "host=host-*&port=443", hostIs("@ LIKE 'host-%'") + " AND " + sockPort("@ = 443"), 3},
		{"listening", "host=web-1.prod.example&host=host-hunt", hostIs("@ IN ('web-1.prod.example', 'host-hunt')"), 4},
		{"udp", "host=host-hunt", hostIs("@ = 'host-hunt'"), 2},
		{"flows", "host=host-hunt&direction=inbound", hostIs("@ = 'host-hunt'") + " AND direction = 'inbound'", 1},
		{"connections", "q=curl", "lower(binary) = 'curl' OR " + hostIs("@ = 'curl'"), 3},
		{"connections", "q=Web-1", hostIs("@ = 'web-1' OR @ LIKE 'web-1.%'"), 1}, // not web-10
		{"connections", "q=web-1.prod.example", hostIs("@ = 'web-1.prod.example'"), 1},
		{"connections", "q=prod", "0", 0}, // a hostname's later word is not a hostname
		{"listening", "q=upf&q=nginx", "binary IN ('upf', 'nginx')", 3},
		{"udp", "q=host-hunt", hostIs("@ = 'host-hunt'"), 2},
		{"flows", "q=curl&addr=203.0.113.7", "lower(binary) = 'curl' AND " + flw("@ = toIPv6('203.0.113.7')"), 1},
	} {
		ht := huntTables[c.view]
		want := f.scan("SELECT " + ht.id + " AS id FROM " + ht.table +
			" WHERE (sensor_id, seq) IN (SELECT sensor_id, max(seq) FROM sensors GROUP BY sensor_id) AND (" + c.cond + ")" +
			" GROUP BY sensor_id, " + strings.TrimPrefix(ht.order, "sensor_id, ") + " ORDER BY " + ht.order)
		if len(want) < c.atLeast {
			t.Errorf("%s?%s: the SQL scan found %d rows, the test data has at least %d", c.view, c.query, len(want), c.atLeast)
		}
		ids := func(rows []row) []string {
			out := []string{}
			for _, r := range rows {
				out = append(out, apiID(c.view, r))
			}
			return out
		}
		if want == nil {
			want = []string{}
		}
		rest, rows := f.list("/api/v1/network/"+c.view+"?"+c.query, c.view)
		if got := ids(rows); !slices.Equal(got, want) || num(rest, "total") != float64(len(want)) {
			t.Errorf("v1 %s?%s: %v (total %v), want %v", c.view, c.query, got, rest["total"], want)
		}
		if got := ids(f.walk("/api/v2/network/"+c.view+"?limit=1&"+c.query, c.view, nil)); !slices.Equal(got, want) {
			t.Errorf("v2 %s?%s: %v, want %v", c.view, c.query, got, want)
		}
	}

	// The events of a fixed window, newest first.
	since, until := now.Add(-time.Minute).UTC().Truncate(time.Millisecond), now.Add(time.Minute).UTC().Truncate(time.Millisecond)
	window := "since=" + url.QueryEscape(since.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339Nano))
	dnsKinds := "kind IN ('dns_query', 'dns_lookup', 'dns_resolution')"
	for _, c := range []struct {
		query, cond string
		atLeast     int
	}{
		{"addr=203.0.113.7", flw("@ = toIPv6('203.0.113.7')"), 3},
		{"dst_addr=203.0.113.0/24", v4in("dst_address", "203.0.113.0/24"), 2},
		{"src_addr=203.0.113.7&port=8805", "src_address = toIPv6('203.0.113.7') AND " + flwPort("@ = 8805"), 1},
		{"dns=*.evil.example", dnsKinds + " AND lower(query_name) LIKE '%.evil.example'", 2},
		{"dns=EVIL.example", dnsKinds + " AND lower(query_name) = 'evil.example'", 1},
		{"dns=*.evil.example&dns=good.example.com", dnsKinds + " AND (lower(query_name) LIKE '%.evil.example' OR lower(query_name) = 'good.example.com')", 3},
		{"answer=203.0.113.7", "has(answers, toIPv6('203.0.113.7'))", 2},
		{"answer=2001:db8:1::5&binary=wget", "has(answers, toIPv6('2001:db8:1::5')) AND binary = 'wget'", 1},
		{"protocol=udp", "protocol = 'udp'", 3},
		{"state=refused", "state = 'refused'", 1},
		{"binary=curl&kind=network_connect", "binary = 'curl' AND kind = 'network_connect'", 1},
		{"pid=50&uid=0", "pid = 50 AND uid = 0", 1},
		{"host=Web-1.Prod.Example", hostIs("@ = 'web-1.prod.example'"), 1},
		{"host=host-*&kind=dns_query", hostIs("@ LIKE 'host-%'") + " AND kind = 'dns_query'", 3},
		{"q=evil.example", dnsKinds + " AND (lower(query_name) = 'evil.example' OR lower(query_name) LIKE '%.evil.example')", 3},
		{"q=example.com", dnsKinds + " AND lower(query_name) LIKE '%.example.com'", 3},
		{"q=curl", "lower(binary) = 'curl'", 3},
		{"q=web-1", hostIs("@ LIKE 'web-1.%'"), 1},
		{"q=curl&q=evil.example", "lower(binary) = 'curl' OR (" + dnsKinds + " AND lower(query_name) LIKE '%evil.example')", 5},
		{"q=good.example.com&binary=postgres", dnsKinds + " AND lower(query_name) = 'good.example.com' AND binary = 'postgres'", 1},
	} {
		want := f.scan("SELECT toString(event_id) AS id FROM events FINAL WHERE time >= toDateTime64('" + since.Format("2006-01-02 15:04:05.000") +
			"', 3, 'UTC') AND time < toDateTime64('" + until.Format("2006-01-02 15:04:05.000") + "', 3, 'UTC') AND (" + c.cond + ")" +
			" ORDER BY time DESC, event_id DESC")
		if len(want) < c.atLeast {
			t.Errorf("events?%s: the SQL scan found %d rows, the test data has at least %d", c.query, len(want), c.atLeast)
		}
		var got []string
		for _, r := range f.walk("/api/v2/events?limit=1&"+window+"&"+c.query, "events", nil) {
			got = append(got, str(r, "event_id"))
		}
		if !slices.Equal(got, want) {
			t.Errorf("events?%s: %v, want %v", c.query, got, want)
		}
		_, rows := f.list("/api/v1/events?"+window+"&"+c.query, "events")
		if len(rows) != len(want) {
			t.Errorf("v1 events?%s: %d rows, want %d", c.query, len(rows), len(want))
		}
	}

	// The flows beside a page of connections are narrowed by its filters.
	if rest, _ := f.list("/api/v1/network/connections?binary=upf", "connections"); len(rest["flows"].([]any)) != 1 {
		t.Errorf("connections?binary=upf: flows %v, want upf's one", rest["flows"])
	}
}

// TestHuntFilterCursor: a cursor carries its filters; used with others,
// or with one of them changed, it is refused.
func TestHuntFilterCursor(t *testing.T) {
	f := start(t)
	f.ingest.Send(huntBeat(time.Now()))
	rest, _ := f.list("/api/v2/network/connections?limit=1&binary=curl", "connections")
	cur, _ := rest["next_cursor"].(string)
	if cur == "" {
		t.Fatal("no cursor after the first of two curl connections")
	}
	for _, q := range []string{"binary=curl*", "binary=curl&port=443", "", "binary=curl&binary=wget"} {
		var out map[string]any
		if code := f.get("/api/v2/network/connections?limit=1&"+q+"&cursor="+url.QueryEscape(cur), &out); code != 400 || out["parameter"] != "cursor" {
			t.Errorf("the binary=curl cursor with %q: %d %v, want 400 naming cursor", q, code, out)
		}
	}
	var out map[string]any
	if code := f.get("/api/v2/network/connections?limit=1&binary=curl&cursor="+url.QueryEscape(cur), &out); code != 200 {
		t.Errorf("the cursor with its own filter: %d %v", code, out)
	}
	rest, _ = f.list("/api/v2/events?limit=1&dns=*.evil.example", "events")
	cur, _ = rest["next_cursor"].(string)
	if cur == "" {
		t.Fatal("no events cursor after the first of two evil names")
	}
	out = nil
	if code := f.get("/api/v2/events?limit=1&dns=*.good.example&cursor="+url.QueryEscape(cur), &out); code != 400 || out["parameter"] != "cursor" {
		t.Errorf("the dns cursor with another name: %d %v, want 400 naming cursor", code, out)
	}
}

// TestHuntFilterErrors: every bad value, and every filter a list does not
// have, is a 400 naming its parameter.
func TestHuntFilterErrors(t *testing.T) {
	f := start(t)
	for _, c := range []struct{ path, param string }{
		{"/api/v1/network/connections?addr=203.0.113", "addr"},
		{"/api/v1/network/connections?addr=10.0.0.0/33", "addr"},
		{"/api/v2/network/connections?addr=fe80::1%25eth0", "addr"},
		{"/api/v2/network/connections?local_addr=host.example", "local_addr"},
		{"/api/v2/network/connections?remote_addr=", "remote_addr"},
		{"/api/v2/network/connections?src_addr=10.0.0.1", "src_addr"},
		{"/api/v1/network/flows?local_addr=10.0.0.1", "local_addr"},
		{"/api/v1/network/listening?remote_addr=10.0.0.1", "remote_addr"},
		{"/api/v1/events?dst_addr=::ffff:1.2.3", "dst_addr"},
		{"/api/v1/network/connections?port=0", "port"},
		{"/api/v1/network/connections?port=65536", "port"},
		{"/api/v2/network/udp?port=-1", "port"},
		{"/api/v2/network/flows?protocol=icmp", "protocol"},
		{"/api/v2/network/connections?protocol=tcp", "protocol"},
		{"/api/v2/network/connections?state=LISTENING", "state"},
		{"/api/v2/network/connections?state=!", "state"},
		{"/api/v2/network/connections?state=established", "state"},
		{"/api/v2/network/listening?state=LISTEN", "state"},
		{"/api/v2/network/udp?state=ESTABLISHED", "state"},
		{"/api/v1/events?state=ESTABLISHED", "state"},
		{"/api/v2/network/flows?direction=sideways", "direction"},
		{"/api/v2/network/connections?direction=inbound", "direction"},
		{"/api/v1/events?direction=inbound", "direction"},
		{"/api/v2/network/connections?binary=*", "binary"},
		{"/api/v2/network/connections?binary_path=*", "binary_path"},
		{"/api/v2/network/connections?pid=0", "pid"},
		{"/api/v2/network/connections?pid=4294967296", "pid"},
		{"/api/v2/network/connections?uid=root", "uid"},
		{"/api/v2/network/listening?dns=example.com", "dns"},
		{"/api/v1/network/flows?answer=1.2.3.4", "answer"},
		{"/api/v1/events?dns=*", "dns"},
		{"/api/v1/events?dns=ex%20ample.com", "dns"},
		{"/api/v1/events?dns=a.*.example", "dns"},
		{"/api/v1/events?answer=10.0.0.0/8", "answer"},
		{"/api/v1/events?binary=" + strings.Repeat("b", 256), "binary"},
		{"/api/v1/events?port=1" + strings.Repeat("&port=1", 32), "port"},
		{"/api/v1/network/connections?host=*", "host"},
		{"/api/v2/network/listening?host=web%201", "host"},
		{"/api/v2/network/udp?host=h%C3%B6st", "host"},
		{"/api/v1/network/flows?host=", "host"},
		{"/api/v2/events?host=a/b", "host"},
		{"/api/v1/network/connections?q=two%20words", "q"},
		{"/api/v2/network/flows?q=post*", "q"},
		{"/api/v1/events?q=", "q"},
		{"/api/v2/events?q=a%09b", "q"},
		{"/api/v2/network/udp/export?format=csv&host=a%20b", "host"},
		{"/api/v2/events/export?format=ndjson&q=x%20y", "q"},
		// The exports: their format, their list's filters and nothing
		// of paging.
		{"/api/v2/network/connections/export", "format"},
		{"/api/v2/network/connections/export?format=xlsx", "format"},
		{"/api/v2/network/udp/export?format=csv&format=ndjson", "format"},
		{"/api/v2/events/export?kind=dns_query", "format"},
		{"/api/v2/network/listening/export?format=csv&remote_addr=10.0.0.1", "remote_addr"},
		{"/api/v2/network/connections/export?format=ndjson&dns=evil.example", "dns"},
		{"/api/v2/network/udp/export?format=csv&state=ESTABLISHED", "state"},
		{"/api/v2/network/flows/export?format=csv&local_addr=10.0.0.1", "local_addr"},
		{"/api/v2/events/export?format=csv&direction=inbound", "direction"},
		{"/api/v2/network/flows/export?format=csv&limit=10", "limit"},
		{"/api/v2/events/export?format=csv&cursor=abc", "cursor"},
		{"/api/v2/network/connections/export?format=csv&addr=10.0.0", "addr"},
	} {
		var out map[string]any
		if code := f.get(c.path, &out); code != 400 || out["parameter"] != c.param {
			t.Errorf("GET %s: %d %v, want 400 naming %s", c.path, code, out, c.param)
		}
	}
}

// TestHuntExport: each export is its list's whole answer, streamed: the
// rows of a v2 walk to its end in the same order, as the same objects in
// NDJSON and the same values in CSV, as many as v1's total (its 400s are
// in TestHuntFilterErrors).
func TestHuntExport(t *testing.T) {
	f := start(t)
	now := time.Now()
	f.ingest.Send(huntBeat(now))
	// More rows than a v2 page (100) in each, and for the connections more
	// than the 1 MiB answered before the stream begins, in both formats.
	f.fleet(3, 1, heartbeat.Shape{Conns: 1800, Listeners: 50, UDP: 50, ActiveFlows: 60, Events: 100})
	since, until := now.Add(-time.Minute).UTC().Truncate(time.Millisecond), now.Add(time.Minute).UTC().Truncate(time.Millisecond)
	window := "since=" + url.QueryEscape(since.Format(time.RFC3339Nano)) + "&until=" + url.QueryEscape(until.Format(time.RFC3339Nano))
	filename := regexp.MustCompile(`^attachment; filename="netview-([a-z]+)-\d{8}T\d{6}Z\.(csv|ndjson)"$`)
	for _, c := range []struct {
		list, name, query string
		streamed          bool // larger than what is answered before streaming
	}{
		{"/api/v2/network/connections", "connections", "addr=10.0.0.0/8", true},
		{"/api/v2/network/listening", "listening", "binary=nginx", false},
		{"/api/v2/network/udp", "udp", "binary=upf&uid=0", false},
		{"/api/v2/network/flows", "flows", "protocol=tcp&state=ESTABLISHED", false},
		{"/api/v2/events", "events", "src_addr=10.9.0.1&" + window, false},
	} {
		want := f.walk(c.list+"?limit=500&"+c.query, c.name, nil)
		if len(want) <= 100 {
			t.Fatalf("%s?%s: %d rows, the test needs more than a page of 100", c.name, c.query, len(want))
		}
		if c.name != "events" {
			if rest, _ := f.list(strings.Replace(c.list, "/v2/", "/v1/", 1)+"?page_size=1&"+c.query, c.name); num(rest, "total") != float64(len(want)) {
				t.Errorf("v1 %s?%s: total %v, the v2 walk has %d", c.name, c.query, rest["total"], len(want))
			}
		}
		get := func(format string) []byte {
			code, body, h := f.raw("GET", c.list+"/export?format="+format+"&"+c.query, viewerToken, nil)
			if code != 200 {
				t.Fatalf("%s export?format=%s&%s: %d %s", c.name, format, c.query, code, body)
			}
			if m := filename.FindStringSubmatch(h.Get("Content-Disposition")); m == nil || m[1] != c.name || m[2] != format {
				t.Errorf("%s export as %s: Content-Disposition %q", c.name, format, h.Get("Content-Disposition"))
			}
			if ct := map[string]string{"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}[format]; h.Get("Content-Type") != ct {
				t.Errorf("%s export as %s: Content-Type %q, want %q", c.name, format, h.Get("Content-Type"), ct)
			}
			if streamed := h.Get("Content-Length") == ""; streamed != c.streamed || streamed != (len(body) > 1<<20) {
				t.Errorf("%s export as %s: %d bytes, streamed (no Content-Length) %v, want %v", c.name, format, len(body), streamed, c.streamed)
			}
			return body
		}

		// NDJSON: the list's objects, one a line, in the list's order.
		lines := strings.Split(strings.TrimSuffix(string(get("ndjson")), "\n"), "\n")
		if len(lines) != len(want) {
			t.Errorf("%s NDJSON: %d lines, the v2 walk has %d rows", c.name, len(lines), len(want))
		}
		for i := range min(len(lines), len(want)) {
			var got row
			if err := json.Unmarshal([]byte(lines[i]), &got); err != nil || !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("%s NDJSON line %d: %s (%v), the list has %v", c.name, i+1, lines[i], err, want[i])
			}
		}

		// CSV: a header of the list's names, then its values.
		recs, err := csv.NewReader(bytes.NewReader(get("csv"))).ReadAll()
		if err != nil || len(recs) == 0 {
			t.Fatalf("%s CSV: %v", c.name, err)
		}
		if len(recs)-1 != len(want) {
			t.Errorf("%s CSV: %d rows, want %d", c.name, len(recs)-1, len(want))
		}
		head := recs[0]
		if len(head) != len(want[0]) {
			t.Errorf("%s CSV header %v, the list's rows have %d fields", c.name, head, len(want[0]))
		}
		for i, rec := range recs[1:min(len(recs), len(want)+1)] {
			for j, name := range head {
				v, ok := want[i][name]
				var text string
				switch v := v.(type) {
				case nil:
				case string:
					text = v
				case float64:
					text = strconv.FormatFloat(v, 'f', -1, 64)
				case bool:
					text = strconv.FormatBool(v)
				default:
					b, _ := json.Marshal(v)
					text = string(b)
				}
				if !ok || rec[j] != text {
					t.Fatalf("%s CSV row %d %s = %q, the list has %v", c.name, i+1, name, rec[j], v)
				}
			}
		}
	}

	if code, _, h := f.raw("GET", "/api/v2/network/flows/export?format=csv", "", nil); code != 401 || h.Get("Content-Disposition") != "" {
		t.Errorf("an export without a token: %d, Content-Disposition %q", code, h.Get("Content-Disposition"))
	}
}

// TestExportTurns: exports stream at most half as many at once as analyst
// statements (2 of the default 4); one more waits, then gets 429 with
// Retry-After, and a turn comes back when its client goes away.
func TestExportTurns(t *testing.T) {
	f := start(t)
	// About 20 MB of NDJSON: more than the socket buffers hold, so an
	// export waits for a client that does not read, and keeps its turn.
	f.fleet(10, 1, heartbeat.Shape{Conns: 3000})
	const path = "/api/v2/network/connections/export?format=ndjson"
	open := func() *http.Response {
		req, _ := http.NewRequest("GET", f.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+viewerToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("an export: %v %v", err, resp)
		}
		return resp
	}
	first, second := open(), open()
	defer second.Body.Close()
	code, b, h := f.raw("GET", path, viewerToken, nil)
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(string(b), "exports") {
		t.Errorf("a third export while two stream: %d %q %.200s", code, h.Get("Retry-After"), b)
	}
	first.Body.Close()
	for range 100 {
		if code, _, _ = f.raw("GET", "/api/v2/network/listening/export?format=csv", viewerToken, nil); code != 429 {
			break
		}
	}
	if code != 200 {
		t.Errorf("an export after the first client left: %d", code)
	}
}
