package query_test

import (
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
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
