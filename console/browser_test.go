package console_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/internal/testenv"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/baseline"
	"github.com/netview/netview/query/querytest"
)

const (
	chromium = "/usr/bin/chromium"
	token    = "console-browser-token-0123456789"
)

// browserDeps returns the Node modules folder holding playwright-core, or
// skips: `make test` installs Chromium and the modules and sets
// NETVIEW_REQUIRE_BROWSER, under which a missing piece fails instead.
func browserDeps(t *testing.T) string {
	t.Helper()
	mods := os.Getenv("NETVIEW_NODE_MODULES")
	var missing string
	switch {
	case mods == "":
		missing = "NETVIEW_NODE_MODULES is not set (make test sets it)"
	case !exists(filepath.Join(mods, "playwright-core", "index.mjs")):
		missing = "playwright-core is not in " + mods
	case !exists(chromium):
		missing = chromium + " is missing (Debian package chromium)"
	}
	testenv.Require(t, "NETVIEW_REQUIRE_BROWSER", "the browser tests need Chromium and playwright-core", missing)
	return mods
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestConsoleInBrowser drives the Console in headless Chromium against a
// real query service over a store filled through a real ingest node. The
// checks live in test/browser.mjs; this test builds the fleet and tells the
// script what it must find.
func TestConsoleInBrowser(t *testing.T) {
	mods := browserDeps(t)
	be := storetest.Embedded(t)
	node := ingesttest.Start(t, ingesttest.Config(), be.Store)
	outage := &querytest.Outage{Store: be.Store}
	srv, err := query.New(query.Config{Tokens: auth.TokenFlags{List: token}, MaxListRows: 10_000, Timeout: 30 * time.Second},
		outage, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	base := querytest.Serve(t, srv)

	// The script turns a storage outage on and off through this.
	control := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outage.Down.Store(r.URL.Query().Get("down") == "1")
	}))
	t.Cleanup(control.Close)

	fx := buildFleet(t, node)
	fxFile := filepath.Join(t.TempDir(), "fleet.json")
	b, _ := json.Marshal(fx)
	if err := os.WriteFile(fxFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	artifacts := os.Getenv("NETVIEW_ARTIFACTS")
	if artifacts == "" {
		artifacts = filepath.Join("..", "test-artifacts")
	}
	artifacts, _ = filepath.Abs(filepath.Join(artifacts, "console"))
	// Screenshots of an earlier run must not pass for this one's.
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "test/browser.mjs")
	cmd.Env = append(os.Environ(), "NETVIEW_NODE_MODULES="+mods, "CHROMIUM="+chromium, "BASE_URL="+base,
		"TOKEN="+token, "FLEET="+fxFile, "CONTROL_URL="+control.URL, "ARTIFACTS="+artifacts)
	out, err := cmd.CombinedOutput()
	t.Logf("browser.mjs:\n%s", out)
	if err != nil {
		t.Fatalf("browser checks failed: %v", err)
	}
	for _, view := range []string{"01-signin-refused", "02-summary", "03-connections", "04-listening-tcp", "05-listening-udp", "06-flows", "07-investigate", "09-workloads", "10-pivot-investigate", "11-search-unapplied", "12-summary-findings", "13-map", "14-at-a-moment"} {
		if !exists(filepath.Join(artifacts, view+".png")) {
			t.Errorf("no screenshot %s.png in %s", view, artifacts)
		}
	}
}

// fleet is what the browser script must find. Connections counts are of
// what the Connections view shows by default: TIME_WAIT rows are hidden
// behind a toggle (TimeWait counts them); the Summary counts every one.
type fleet struct {
	Edge, Core, Old                  sensorFacts
	Connections, Listening, Flows    int
	TimeWait                         int
	EventsLastHour, ConnectsLastHour int
	EventsLast6h                     int
	UDPServices                      []string
	PredatesLocal                    string // local endpoint of the connection without a duration
	EdgeCaps                         map[string]string
	Workloads                        workloadFacts
	Searches                         []searchFact
	PivotAddr                        string // a connection's remote address that three events also name
	PivotEvents                      int    // events of the last hour to or from PivotAddr
	ConnectAddr                      string // the address the network_connect and DNS events share
	DNSAnswering                     int    // DNS events of the last hour whose answers hold ConnectAddr
	FlowEvent                        flowEventFacts
	Map                              mapFacts
	Findings                         findingFacts
	Past                             pastFacts
}

// pastFacts are the fleet as it was three hours ago, for the time
// control: only edge-a had reported, with connections of its own (to
// 10.7.0.x) that no later heartbeat has.
type pastFacts struct {
	AtMs                        int64 // when edge-a sent its first heartbeat, and ingest received it
	Connections, AllConnections int   // shown by default, and every state (the Summary's)
	Remote                      string
}

// mapFacts are the map's three connections, each on a port of its own so
// a search for the ports shows them alone: core-b's curl to edge-a's curl
// listening on port 80 (both ends report it: one edge), edge-a's curl to
// example.org's address (a DNS name edge-a resolved), and edge-a's
// redis-server, in its container, to an address core-b and old-c both
// hold (ambiguous).
type mapFacts struct {
	Search                    string
	JoinPort                  int
	JoinClient, JoinServer    string // the join's client and server addresses
	JoinSent, JoinReceived    int    // bytes client → server and back, as the client reported
	External                  string // the external peer's DNS name
	ExternalPort              int
	Ambiguous                 string // the address two sensors hold
	AmbiguousPort             int
	Container                 string // redis-server's container, by name
	HostNodes, ContainerNodes int    // nodes of the searched map by host, by container
	ServiceNodes, Edges       int    // by service and process; edges (the same in every grouping)
}

// findingFacts are the findings of one run of the baseline job over the
// join's end: core-b's new destination and new peer.
type findingFacts struct {
	Sensor string
	Kinds  []string
	What   string // the new destination as the Summary says it
}

// flowEventFacts name the connect event that opened edge-a's first active
// flow: its source port and destination.
type flowEventFacts struct {
	SrcPort    int
	DstAddress string
}

// searchFact is a search the script types into the box of a view, the URL
// query it must make, and the rows the view must then count, counted here
// from the fleet's latest heartbeats (or its events).
type searchFact struct {
	View, Text, Query string
	Rows              int
	Unapplied         string `json:",omitempty"` // a term the view must report as not applied
}

// workloadFacts are the containers and pods the fleet's processes run in,
// and how many rows each filter must keep.
type workloadFacts struct {
	Pod, PodImage, PodContainerID        string // envoy's pod as namespace/name, its image and container id
	PodConnections, PodFlows, PodEvents  int
	Container, ContainerImage            string // redis-server's docker container, by name
	ContainerConnections, ContainerFlows int
	IDOnly                               string // postgres's unnamed container: its id, cut to 12 as shown
	IDOnlyListening                      int
	UDPPod                               string // upf's pod, every UDP socket's
	Unit                                 string // nginx's systemd unit
}

type sensorFacts struct {
	ID, Hostname                string
	Connections, Listening, UDP int // Connections: shown by default (no TIME_WAIT)
	AllConnections              int // every state: the Summary's count
	Flows                       int
	Namespaces, Containers      int // of its latest snapshot's sockets
}

var binaries = []string{"nginx", "curl", "java", "sshd", "postgres", "envoy", "redis-server"}

// What the fleet's processes run in, by binary: envoy in a Kubernetes pod,
// redis-server in a named docker container, postgres in a container whose
// runtime state the sensor could not read (an id only), nginx and sshd
// under systemd; curl and java are bare host processes. Each container
// has a network namespace of its own.
var (
	envoyID = "e1e2e3e4e5e6" + strings.Repeat("0a", 26)
	redisID = "d1d2d3d4d5d6" + strings.Repeat("0b", 26)
	pgID    = "c1c2c3c4c5c6" + strings.Repeat("0c", 26)
	upfID   = "b1b2b3b4b5b6" + strings.Repeat("0d", 26)
	inside  = map[string]struct {
		heartbeat.Process
		netns uint64
	}{
		"envoy": {heartbeat.Process{ContainerID: envoyID, ContainerRuntime: "containerd", PodUID: "5f0c3d2e-1a4b-4c6d-8e7f-9a0b1c2d3e4f",
			ContainerName: "envoy", ContainerImage: "envoyproxy/envoy:v1.31", Pod: "envoy-7f9c", PodNamespace: "mesh"}, 4026532101},
		"redis-server": {heartbeat.Process{ContainerID: redisID, ContainerRuntime: "docker", ContainerName: "cache", ContainerImage: "redis:7.2"}, 4026532102},
		"postgres":     {heartbeat.Process{ContainerID: pgID, ContainerRuntime: "cri-o"}, 4026532103},
		"upf": {heartbeat.Process{ContainerID: upfID, ContainerRuntime: "containerd", PodUID: "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f",
			ContainerName: "upf", ContainerImage: "registry.example/telecom/upf:2.4", Pod: "upf-0", PodNamespace: "telecom"}, 4026532104},
		"nginx": {heartbeat.Process{Unit: "nginx.service"}, 0},
		"sshd":  {heartbeat.Process{Unit: "ssh.service"}, 0},
	}
)

// placed puts a process in its container or unit, and returns the
// network namespace its sockets are in (0: the host's).
func placed(p heartbeat.Process) (heartbeat.Process, uint64) {
	w := inside[p.Binary]
	p.Unit, p.ContainerID, p.ContainerRuntime, p.PodUID = w.Unit, w.ContainerID, w.ContainerRuntime, w.PodUID
	p.ContainerName, p.ContainerImage, p.Pod, p.PodNamespace = w.ContainerName, w.ContainerImage, w.Pod, w.PodNamespace
	return p, w.netns
}

func proc(i int) heartbeat.Process {
	b := binaries[i%len(binaries)]
	p, _ := placed(heartbeat.Process{PID: uint32(1000 + i%len(binaries)), Binary: b, BinaryPath: "/usr/bin/" + b, UID: uint32(i % 3 * 1000)})
	return p
}

// netnsOf is the namespace of a socket of the process.
func netnsOf(p heartbeat.Process) uint64 { _, ns := placed(p); return ns }

// workloads counts the network namespaces (the host's too) and containers
// of a snapshot's sockets, as the Summary is documented to.
func workloads(h *heartbeat.Heartbeat) (namespaces, containers int) {
	ns, cs := map[uint64]bool{}, map[string]bool{}
	add := func(n uint64, p heartbeat.Process) {
		ns[n] = true
		if p.ContainerID != "" {
			cs[p.ContainerID] = true
		}
	}
	for _, c := range h.TCPConnections {
		add(c.Netns, c.Process)
	}
	for _, l := range h.TCPListeners {
		add(l.Netns, l.Process)
	}
	for _, u := range h.UDPListeners {
		add(u.Netns, u.Process)
	}
	return len(ns), len(cs)
}

// countBy counts the items whose process satisfies keep.
func countBy[T any](items []T, proc func(T) heartbeat.Process, keep func(heartbeat.Process) bool) int {
	n := 0
	for _, it := range items {
		if keep(proc(it)) {
			n++
		}
	}
	return n
}

func mkSensor(id, host string, interval uint32) heartbeat.Sensor {
	return heartbeat.Sensor{SensorID: uuid.MustParse(id), Hostname: host, Flavor: "telecom", Version: "0.2.0",
		BootID: uuid.New(), IntervalSecs: interval, Kernel: "6.18.0"}
}

func mkBeat(s heartbeat.Sensor, seq uint64, at time.Time) *heartbeat.Heartbeat {
	return &heartbeat.Heartbeat{Format: heartbeat.Format, HeartbeatID: uuid.New(), Seq: seq, SentAt: at.UTC().Truncate(time.Millisecond), Sensor: s}
}

// holding is an interface of the host's namespace with the addresses
// given: what lets the graph resolve an address to a sensor.
func holding(addrs ...string) []heartbeat.Interface {
	i := heartbeat.Interface{Name: "eth0", Index: 2, Up: true, MAC: "02:00:00:00:00:01"}
	for _, a := range addrs {
		i.Addresses = append(i.Addresses, netip.MustParsePrefix(a+"/24"))
	}
	return []heartbeat.Interface{i}
}

// completed is a closed TCP flow of a process, ended at end.
func completed(p heartbeat.Process, dir, src string, sport uint16, dst string, dport uint16, end time.Time, sent, recv uint64, st string) heartbeat.Flow {
	return heartbeat.Flow{FlowID: uuid.New(), Protocol: "tcp", Direction: dir, SrcAddress: netip.MustParseAddr(src), SrcPort: sport,
		DstAddress: netip.MustParseAddr(dst), DstPort: dport, Netns: netnsOf(p), Process: p, StartedAt: end.Add(-2 * time.Second), EndedAt: end,
		BytesSent: sent, BytesReceived: recv, State: st, Source: "ebpf"}
}

// shown says whether the Connections view shows a connection by default:
// it hides the TIME_WAIT remnants of closed ones.
func shown(c heartbeat.Conn) bool { return c.State != "TIME_WAIT" }

// countConns counts the connections of heartbeats that keep takes.
func countConns(hs []*heartbeat.Heartbeat, keep func(heartbeat.Conn) bool) int {
	n := 0
	for _, h := range hs {
		for _, c := range h.TCPConnections {
			if keep(c) {
				n++
			}
		}
	}
	return n
}

func conns(n int, local string, at time.Time) []heartbeat.Conn {
	out := make([]heartbeat.Conn, n)
	states := []string{"ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT"}
	for i := range out {
		d := uint32(i * 7)
		out[i] = heartbeat.Conn{Family: "inet", LocalAddress: netip.MustParseAddr(local), LocalPort: uint16(30000 + i),
			RemoteAddress: netip.AddrFrom4([4]byte{10, 2, byte(i / 250), byte(i%250 + 1)}), RemotePort: 443,
			State: states[i%len(states)], Inode: uint64(100000 + i), Netns: netnsOf(proc(i)), Process: proc(i), FirstSeen: at.Add(-time.Duration(d) * time.Second),
			DurationSecs: &d}
	}
	if n > 0 {
		out[0].DurationSecs = nil // open before the sensor started
	}
	return out
}

// edgeConns is edge-a's connections: with the other sensors' more than
// 1,000, so one page of 1,000 rows (TIME_WAIT shown) is full.
const edgeConns = 1000

// buildFleet sends three sensors' heartbeats: edge-a (large: 1,000
// connections, telecom UDP services, flows, events of every kind), core-b
// (an hour of ~10 connections, now 60: the anomaly; its clock five minutes
// ahead) and old-c (silent for
// ten minutes: stale).
func buildFleet(t *testing.T, node *ingesttest.Node) fleet {
	now := time.Now().UTC()
	edge := mkSensor("aaaaaaaa-0000-4000-8000-000000000001", "edge-a", 5)
	// What a sensor with its eBPF probes loaded says (sensor.capabilities).
	edge.Capabilities = map[string]string{"flow_source": "ebpf+inet_diag", "ebpf": "active", "sctp": "available",
		"ebpf_probes": "inet_sock_set_state,sys_exit_accept4,sys_exit_accept,sys_enter_sendto,getaddrinfo", "ebpf_lost_events": "0",
		"attribution_failures": "3", "dns": "active: sendto, sendmsg, getaddrinfo in /usr/lib/x86_64-linux-gnu/libc.so.6",
		"lsm": "unavailable: the kernel does not offer BPF LSM programs"}
	core := mkSensor("bbbbbbbb-0000-4000-8000-000000000002", "core-b", 5)
	old := mkSensor("cccccccc-0000-4000-8000-000000000003", "old-c", 15)
	var fx fleet
	fx.EdgeCaps = edge.Capabilities

	// The map's connections (mapFacts). The join ends at joinEnd, when no
	// other row of the fleet has its time: one run of the baseline job
	// over that instant finds what it made new.
	m := mapFacts{Search: "port:80 port:8080 port:8443", JoinPort: 80, JoinClient: "10.1.0.2", JoinServer: "10.1.0.1", JoinSent: 300, JoinReceived: 7000,
		External: "example.org", ExternalPort: 8443, Ambiguous: "10.9.0.5", AmbiguousPort: 8080, Container: inside["redis-server"].ContainerName,
		HostNodes: 4, ContainerNodes: 5, ServiceNodes: 6, Edges: 3}
	joinEnd := now.Add(-450 * time.Second).Truncate(time.Millisecond)
	curl, redis := proc(1), proc(6)
	if curl.Binary != "curl" || redis.Binary != "redis-server" {
		t.Fatal("fleet: proc(1) and proc(6) must be curl and redis-server")
	}

	// core-b: a steady hour, then a burst.
	for i, n := range []int{9, 10, 11, 10, 9, 11} {
		h := mkBeat(core, uint64(i+1), now.Add(-time.Duration(30-5*i)*time.Minute))
		h.TCPConnections = conns(n, "10.1.0.2", h.SentAt)
		h.Interfaces = holding(m.JoinClient, m.Ambiguous)
		if i == 5 {
			h.CompletedFlows = []heartbeat.Flow{completed(curl, "outbound", m.JoinClient, 45000, m.JoinServer, 80, joinEnd, 300, 7000, "established")}
		}
		node.Send(h)
	}
	// Its clock runs five minutes ahead: the Summary shows the skew.
	h := mkBeat(core, 7, now.Add(5*time.Minute))
	h.TCPConnections = conns(60, "10.1.0.2", h.SentAt)
	h.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: 22, Inode: 9, Process: proc(3)}}
	h.Interfaces = holding(m.JoinClient, m.Ambiguous)
	node.Send(h)
	fx.Core = sensorFacts{ID: core.SensorID.String(), Hostname: core.Hostname, AllConnections: 60, Listening: 1,
		Connections: countConns([]*heartbeat.Heartbeat{h}, shown)}
	fx.Core.Namespaces, fx.Core.Containers = workloads(h)
	latest := []*heartbeat.Heartbeat{h}

	// edge-a: its previous heartbeat, then the latest with everything
	// (its first one, seq 1, is the past's below).
	h = mkBeat(edge, 2, now.Add(-time.Minute))
	h.TCPConnections = conns(edgeConns, "10.1.0.1", h.SentAt)
	node.Send(h)
	h = mkBeat(edge, 3, now.Add(-time.Second))
	h.TCPConnections = conns(edgeConns, "10.1.0.1", h.SentAt)
	for i, p := range []uint16{22, 80, 443, 5432, 8805} {
		h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"),
			LocalPort: p, Inode: uint64(500 + i), Netns: netnsOf(proc(i)), Process: proc(i)})
	}
	upf, upfNetns := placed(heartbeat.Process{PID: 77, Binary: "upf", BinaryPath: "/opt/upf/bin/upf"})
	for i, p := range []uint16{2152, 8805, 1812, 1813, 53, 51820} {
		h.UDPListeners = append(h.UDPListeners, heartbeat.UDPSocket{Family: "inet", LocalAddress: netip.MustParseAddr("10.1.0.1"),
			LocalPort: p, Inode: uint64(700 + i), Netns: upfNetns, Service: heartbeat.ServiceName(p), Process: upf})
	}
	for i := range 12 {
		h.ActiveFlows = append(h.ActiveFlows, heartbeat.Flow{FlowID: uuid.New(), Protocol: "tcp", Direction: "outbound",
			SrcAddress: netip.MustParseAddr("10.1.0.1"), SrcPort: uint16(40000 + i), DstAddress: netip.MustParseAddr("10.3.0.9"), DstPort: 5432,
			Process: proc(i), StartedAt: now.Add(-time.Duration(i+1) * time.Minute), BytesSent: uint64(1000 << i), BytesReceived: uint64(500 * i),
			State: "ESTABLISHED", Source: "inet_diag"})
	}
	h.Interfaces = holding(m.JoinServer)
	// the join's server end; curl to example.org's address (answered by
	// the dns_resolution below); redis-server to the ambiguous address
	h.CompletedFlows = append(h.CompletedFlows,
		completed(curl, "inbound", m.JoinClient, 45000, m.JoinServer, 80, joinEnd, 7000, 300, "established"),
		completed(curl, "outbound", m.JoinServer, 46000, "93.184.216.34", 8443, now.Add(-8*time.Minute), 50, 60, "established"),
		completed(redis, "outbound", m.JoinServer, 47000, m.Ambiguous, 8080, now.Add(-510*time.Second), 0, 0, "refused"))
	mapFlows := len(h.CompletedFlows) + 1 // and core-b's end of the join
	for i := range 2 {
		h.CompletedFlows = append(h.CompletedFlows, heartbeat.Flow{FlowID: uuid.New(), Protocol: "tcp", Direction: "inbound",
			SrcAddress: netip.MustParseAddr("10.4.0.1"), SrcPort: uint16(50000 + i), DstAddress: netip.MustParseAddr("10.1.0.1"), DstPort: 443,
			Process: proc(0), StartedAt: now.Add(-20 * time.Minute), EndedAt: now.Add(-time.Duration(10+i) * time.Minute),
			BytesSent: 4096, BytesReceived: 1 << 20, State: "established", Source: "inet_diag"})
	}
	ev := func(kind string, at time.Time) heartbeat.Event {
		e := heartbeat.Event{EventID: uuid.New(), Kind: kind, Time: at.Truncate(time.Millisecond), Protocol: "tcp",
			SrcAddress: netip.MustParseAddr("10.1.0.1"), SrcPort: 41000, DstAddress: netip.MustParseAddr("93.184.216.34"), DstPort: 443, Process: proc(1)}
		if kind[:3] == "dns" {
			e.Protocol, e.DstAddress, e.DstPort, e.QueryName, e.QueryType = "udp", netip.MustParseAddr("10.0.0.53"), 53, "example.org", "A"
			e.Answers = []netip.Addr{netip.MustParseAddr("93.184.216.34")}
		}
		return e
	}
	for i := range 150 {
		e := ev("network_connect", now.Add(-time.Duration(2+i*19)*time.Second*1))
		if i%5 != 0 {
			e.Process = proc(5) // four in five from envoy's pod: more than one page of them
		}
		h.Events = append(h.Events, e)
	}
	// Three connects to the remote end of the sensors' first connection:
	// what the pivot from that address to Investigate must find.
	fx.PivotAddr = "10.2.0.1"
	for i := range 3 {
		e := ev("network_connect", now.Add(-time.Duration(3+i)*time.Minute))
		e.DstAddress, e.SrcPort = netip.MustParseAddr(fx.PivotAddr), uint16(42000+i)
		h.Events = append(h.Events, e)
	}
	fx.PivotEvents = 3
	// A connect that opened the first active flow: its detail's flow link
	// must find that flow.
	e := ev("network_connect", now.Add(-90*time.Second))
	f0 := h.ActiveFlows[0]
	e.SrcPort, e.DstAddress, e.DstPort, e.Process = f0.SrcPort, f0.DstAddress, f0.DstPort, f0.Process
	h.Events = append(h.Events, e)
	fx.FlowEvent = flowEventFacts{SrcPort: int(f0.SrcPort), DstAddress: f0.DstAddress.String()}
	fx.ConnectAddr = "93.184.216.34"
	for i, k := range []string{"network_accept", "network_listen", "dns_query", "dns_lookup", "dns_resolution", "lsm_net_connect"} {
		h.Events = append(h.Events, ev(k, now.Add(-time.Duration(5+i)*time.Minute)))
	}
	// The map's external peer: curl's connection to example.org's address,
	// tied to the name it looked up (a dns_resolution names the address
	// connected to).
	res := ev("dns_resolution", now.Add(-8*time.Minute-time.Second))
	res.DstAddress, res.DstPort, res.QueryName = netip.MustParseAddr(fx.ConnectAddr), uint16(m.ExternalPort), m.External
	h.Events = append(h.Events, res)
	for i := range 5 {
		h.Events = append(h.Events, ev("dns_query", now.Add(-3*time.Hour-time.Duration(i)*time.Minute)))
	}
	// Every DNS event names example.org and answers ConnectAddr; those of
	// the last hour are what dns: and answer: find in Investigate's window.
	for _, e := range h.Events {
		if strings.HasPrefix(e.Kind, "dns_") && e.Time.After(now.Add(-time.Hour)) && e.QueryName == "example.org" && e.Answers[0].String() == fx.ConnectAddr {
			fx.DNSAnswering++
		}
	}
	node.Send(h)
	fx.Edge = sensorFacts{ID: edge.SensorID.String(), Hostname: edge.Hostname, AllConnections: edgeConns, Listening: 5, UDP: 6, Flows: 12,
		Connections: countConns([]*heartbeat.Heartbeat{h}, shown)}
	fx.Edge.Namespaces, fx.Edge.Containers = workloads(h)
	latest = append(latest, h)
	fx.UDPServices = []string{"GTP-U", "PFCP", "RADIUS", "RADIUS accounting", "DNS"}
	fx.PredatesLocal = "10.1.0.1:30000"
	fx.EventsLastHour = 150 + 3 + 1 + 6 + 1 + 2 + mapFlows // a completed flow is a network_flow event
	fx.ConnectsLastHour = 150 + 3 + 1
	fx.EventsLast6h = fx.EventsLastHour + 5

	// old-c: written as an ingest node does, with the node's clock ten
	// minutes back, so it is stale without the test waiting for it.
	h = mkBeat(old, 1, now.Add(-10*time.Minute))
	h.TCPConnections = conns(5, "10.1.0.3", h.SentAt)
	h.Interfaces = holding("10.1.0.3", m.Ambiguous)
	receivedAt(t, node, h, now.Add(-10*time.Minute))
	fx.Old = sensorFacts{ID: old.SensorID.String(), Hostname: old.Hostname, AllConnections: 5, Connections: countConns([]*heartbeat.Heartbeat{h}, shown)}
	fx.Old.Namespaces, fx.Old.Containers = workloads(h)
	latest = append(latest, h)
	fx.Workloads = workloadsOf(latest)

	fx.Connections = countConns(latest, shown)
	fx.TimeWait = countConns(latest, func(c heartbeat.Conn) bool { return !shown(c) })
	if fx.Connections+fx.TimeWait != edgeConns+60+5 || fx.TimeWait == 0 {
		t.Fatalf("fleet: %d connections shown and %d in TIME_WAIT, want %d in all and some TIME_WAIT", fx.Connections, fx.TimeWait, edgeConns+65)
	}
	fx.Searches = searchesOf(latest, fx)
	fx.Listening = 5 + 1
	fx.Flows = 12
	if got := ingesttest.Count(t, node.Store, "SELECT count() AS n FROM events FINAL"); got != uint64(fx.EventsLast6h) {
		t.Fatalf("fleet: %d events stored, want %d", got, fx.EventsLast6h)
	}
	fx.Map = m

	// The baseline job learns everything before the join's end, findings
	// muted, then runs once over that end: core-b's curl has a new
	// destination and a new peer. (edge-a's end of the join is no finding:
	// its first heartbeat came after.)
	ctx := context.Background()
	learn, err := baseline.New(baseline.Config{Mute: baseline.RuleNames()}, node.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := learn.Process(ctx, now.Add(-7*time.Hour), joinEnd.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	job, err := baseline.New(baseline.Config{}, node.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Process(ctx, joinEnd.Add(-time.Second), joinEnd.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	fx.Findings = findingFacts{Sensor: core.SensorID.String(), Kinds: []string{"baseline_new_destination", "baseline_new_peer"},
		What: "curl → " + m.JoinServer + ":80"}
	q := "SELECT count() AS n FROM events FINAL WHERE kind LIKE 'baseline_%' AND sensor_id = toUUID('" + fx.Findings.Sensor + "')"
	if got := ingesttest.Count(t, node.Store, q); got != uint64(len(fx.Findings.Kinds)) {
		t.Fatalf("fleet: the baseline job found %d of core-b's, want %d", got, len(fx.Findings.Kinds))
	}
	if got := ingesttest.Count(t, node.Store, "SELECT count() AS n FROM events FINAL WHERE kind LIKE 'baseline_%'"); got != uint64(len(fx.Findings.Kinds)) {
		t.Fatalf("fleet: the baseline job found %d, want only core-b's %d", got, len(fx.Findings.Kinds))
	}
	fx.EventsLastHour += len(fx.Findings.Kinds)

	// The fleet three hours ago: edge-a's first heartbeat, received then.
	// Written after the baseline job ran, so nothing of it is learned; its
	// connections go to addresses of their own, so a view at that moment
	// shows them and a view of now does not.
	past := now.Add(-3 * time.Hour).Truncate(time.Millisecond)
	h = mkBeat(edge, 1, past)
	h.TCPConnections = conns(7, "10.1.0.1", past)
	for i := range h.TCPConnections {
		h.TCPConnections[i].RemoteAddress = netip.AddrFrom4([4]byte{10, 7, 0, byte(i + 1)})
		h.TCPConnections[i].Inode = uint64(900000 + i)
	}
	receivedAt(t, node, h, past)
	fx.Past = pastFacts{AtMs: past.UnixMilli(), Connections: countConns([]*heartbeat.Heartbeat{h}, shown), AllConnections: len(h.TCPConnections),
		Remote: "10.7.0."}
	return fx
}

// receivedAt writes a heartbeat as an ingest node whose clock reads at
// does: a sensor silent since then, or the past of one.
func receivedAt(t *testing.T, node *ingesttest.Node, h *heartbeat.Heartbeat, at time.Time) {
	t.Helper()
	doc, _ := json.Marshal(h)
	d := &ingest.Decoder{Now: func() time.Time { return at }}
	b := ingest.NewBatch()
	if _, err := d.Decode(doc, b); err != nil {
		t.Fatal(err)
	}
	if refused, err := b.Insert(context.Background(), node.Store); err != nil || len(refused) > 0 {
		t.Fatal(err, refused)
	}
}

// workloadsOf counts, over the sensors' latest heartbeats, the rows each
// Container/Pod filter of the browser script must keep.
func workloadsOf(latest []*heartbeat.Heartbeat) workloadFacts {
	envoy, redis := inside["envoy"], inside["redis-server"]
	w := workloadFacts{Pod: envoy.PodNamespace + "/" + envoy.Pod, PodImage: envoy.ContainerImage, PodContainerID: envoyID,
		Container: redis.ContainerName, ContainerImage: redis.ContainerImage, IDOnly: pgID[:12],
		UDPPod: inside["upf"].PodNamespace + "/" + inside["upf"].Pod, Unit: inside["nginx"].Unit}
	isEnvoy := func(p heartbeat.Process) bool { return p.ContainerID == envoyID }
	isRedis := func(p heartbeat.Process) bool { return p.ContainerID == redisID }
	flowP := func(f heartbeat.Flow) heartbeat.Process { return f.Process }
	for _, h := range latest {
		w.PodConnections += countConns([]*heartbeat.Heartbeat{h}, func(c heartbeat.Conn) bool { return shown(c) && isEnvoy(c.Process) })
		w.ContainerConnections += countConns([]*heartbeat.Heartbeat{h}, func(c heartbeat.Conn) bool { return shown(c) && isRedis(c.Process) })
		w.PodFlows += countBy(h.ActiveFlows, flowP, isEnvoy)
		w.ContainerFlows += countBy(h.ActiveFlows, flowP, isRedis)
		w.IDOnlyListening += countBy(h.TCPListeners, func(l heartbeat.Listener) heartbeat.Process { return l.Process },
			func(p heartbeat.Process) bool { return p.ContainerID == pgID })
		w.PodEvents += countBy(h.Events, func(e heartbeat.Event) heartbeat.Process { return e.Process },
			func(p heartbeat.Process) bool { return isEnvoy(p) })
	}
	return w
}

// searchesOf are the searches the script types, each with the rows it
// must find, counted from the latest heartbeats by the rule the term
// names (Connections shows no TIME_WAIT unless a state: term is given).
func searchesOf(latest []*heartbeat.Heartbeat, fx fleet) []searchFact {
	conn := func(keep func(c heartbeat.Conn) bool) int {
		return countConns(latest, func(c heartbeat.Conn) bool { return shown(c) && keep(c) })
	}
	anyState := func(keep func(c heartbeat.Conn) bool) int { return countConns(latest, keep) }
	either := func(c heartbeat.Conn, a netip.Addr) bool { return c.LocalAddress == a || c.RemoteAddress == a }
	pfx := netip.MustParsePrefix("10.2.0.0/24")
	return []searchFact{
		{View: "connections", Text: "10.1.0.3", Query: "addr=10.1.0.3",
			Rows: conn(func(c heartbeat.Conn) bool { return either(c, netip.MustParseAddr("10.1.0.3")) })},
		{View: "connections", Text: "10.2.0.0/24", Query: "addr=10.2.0.0%2F24",
			Rows: conn(func(c heartbeat.Conn) bool { return pfx.Contains(c.LocalAddress) || pfx.Contains(c.RemoteAddress) })},
		{View: "connections", Text: "port:30001 port:30002", Query: "port=30001&port=30002",
			Rows: conn(func(c heartbeat.Conn) bool {
				return c.LocalPort == 30001 || c.LocalPort == 30002 || c.RemotePort == 30001 || c.RemotePort == 30002
			})},
		{View: "connections", Text: "proc:curl", Query: "binary=curl", Rows: conn(func(c heartbeat.Conn) bool { return c.Process.Binary == "curl" })},
		{View: "connections", Text: `proc:"/usr/bin/redis-server"`, Query: "binary_path=%2Fusr%2Fbin%2Fredis-server",
			Rows: conn(func(c heartbeat.Conn) bool { return c.Process.BinaryPath == "/usr/bin/redis-server" })},
		{View: "connections", Text: "proc:post*", Query: "binary=post*", Rows: conn(func(c heartbeat.Conn) bool { return strings.HasPrefix(c.Process.Binary, "post") })},
		{View: "connections", Text: "proc:curl 10.1.0.2", Query: "binary=curl&addr=10.1.0.2",
			Rows: conn(func(c heartbeat.Conn) bool {
				return c.Process.Binary == "curl" && either(c, netip.MustParseAddr("10.1.0.2"))
			})},
		{View: "connections", Text: "container:cache", Query: "container=cache", Rows: fx.Workloads.ContainerConnections},
		{View: "connections", Text: "host:" + fx.Core.Hostname, Query: "host=" + fx.Core.Hostname, Rows: fx.Core.Connections},
		{View: "connections", Text: "host:edge*", Query: "host=edge*", Rows: fx.Edge.Connections},
		// a bare word: a binary, or a host by its name
		{View: "connections", Text: "nginx", Query: "q=nginx", Rows: conn(func(c heartbeat.Conn) bool { return c.Process.Binary == "nginx" })},
		{View: "connections", Text: fx.Old.Hostname, Query: "q=" + fx.Old.Hostname, Rows: fx.Old.Connections},
		{View: "connections", Text: "state:CLOSE_WAIT", Query: "state=CLOSE_WAIT", Rows: anyState(func(c heartbeat.Conn) bool { return c.State == "CLOSE_WAIT" })},
		{View: "connections", Text: "state:TIME_WAIT", Query: "state=TIME_WAIT", Rows: fx.TimeWait},
		{View: "connections", Text: "state:!TIME_WAIT state:!CLOSE_WAIT", Query: "state=%21TIME_WAIT&state=%21CLOSE_WAIT",
			Rows: anyState(func(c heartbeat.Conn) bool { return c.State == "ESTABLISHED" })},
		// a term Connections cannot take is said, and the rest applies
		{View: "connections", Text: "dns:example.org port:30001", Query: "dns=example.org&port=30001", Unapplied: "dns:example.org",
			Rows: conn(func(c heartbeat.Conn) bool { return c.LocalPort == 30001 || c.RemotePort == 30001 })},
		{View: "investigate", Text: "dns:example.org", Query: "dns=example.org", Rows: fx.DNSAnswering},
		{View: "investigate", Text: "dns:*.org", Query: "dns=*.org", Rows: fx.DNSAnswering},
		// a bare word on the events: DNS names too (no binary or host is example.org)
		{View: "investigate", Text: "example.org", Query: "q=example.org", Rows: fx.DNSAnswering},
		{View: "investigate", Text: "answer:" + fx.ConnectAddr, Query: "answer=" + fx.ConnectAddr, Rows: fx.DNSAnswering},
		{View: "investigate", Text: fx.PivotAddr, Query: "addr=" + fx.PivotAddr, Rows: fx.PivotEvents},
	}
}
