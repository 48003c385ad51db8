package query_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
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
