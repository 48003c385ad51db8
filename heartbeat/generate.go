package heartbeat

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/google/uuid"
)

// The generator's UDP sockets belong to a user-plane function running in a
// Kubernetes pod, as telecom network functions do.
const (
	upfContainer = "4f1c2a9b8e7d6c5b4a3928170615f4e3d2c1b0a99887766554433221100ffeed"
	upfPod       = "7d2c1e0a-3b4f-4c5d-8e9f-0a1b2c3d4e5f"
)

// Shape says how much a generated heartbeat holds.
type Shape struct {
	Conns, Listeners, UDP, ActiveFlows, CompletedFlows, Events int
	Telecom                                                    bool
}

// Generator makes realistic heartbeats for one sensor: stable listeners, a
// pool of connections that churns between heartbeats, flows and events. It
// feeds tests and the benchmarks; it is not used by the product.
type Generator struct {
	Sensor Sensor
	Shape  Shape
	seq    uint64
	rng    *rand.Rand
	conns  []Conn
}

var binaries = []struct{ name, path string }{
	{"nginx", "/usr/sbin/nginx"}, {"sshd", "/usr/sbin/sshd"}, {"postgres", "/usr/lib/postgresql/15/bin/postgres"},
	{"curl", "/usr/bin/curl"}, {"python3", "/usr/bin/python3.11"}, {"java", "/usr/lib/jvm/java-17/bin/java"},
	{"envoy", "/usr/local/bin/envoy"}, {"redis-server", "/usr/bin/redis-server"},
}

// NewGenerator returns a generator for a new sensor with a seeded RNG.
func NewGenerator(seed uint64, shape Shape) *Generator {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	flavor := "standard"
	if shape.Telecom {
		flavor = "telecom"
	}
	id := uuidFrom(rng)
	return &Generator{
		rng:   rng,
		Shape: shape,
		Sensor: Sensor{
			SensorID: id, Hostname: fmt.Sprintf("host-%s", id.String()[:8]), Flavor: flavor, Version: "0.1.0",
			BootID: uuidFrom(rng), StartedAt: time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond), IntervalSecs: 15,
			Kernel: "6.18.0",
		},
	}
}

func uuidFrom(r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	for i := range u {
		u[i] = byte(r.Uint32())
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

func (g *Generator) addr() netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(g.rng.IntN(4)), byte(g.rng.IntN(256)), byte(1 + g.rng.IntN(254))})
}

func (g *Generator) proc() Process {
	b := binaries[g.rng.IntN(len(binaries))]
	return Process{PID: uint32(100 + g.rng.IntN(30000)), Binary: b.name, BinaryPath: b.path, UID: uint32(g.rng.IntN(2) * 1000)}
}

// Seq is the sequence number of the last heartbeat made.
func (g *Generator) Seq() uint64 { return g.seq }

// Next makes the sensor's next heartbeat, sent at now. About a tenth of the
// connections close and as many open between two heartbeats.
func (g *Generator) Next(now time.Time) *Heartbeat {
	g.seq++
	now = now.UTC().Truncate(time.Millisecond)
	s := g.Shape
	h := &Heartbeat{Format: Format, HeartbeatID: uuidFrom(g.rng), Seq: g.seq, SentAt: now, Sensor: g.Sensor}
	keep := g.conns[:0]
	for _, c := range g.conns {
		if g.rng.IntN(10) != 0 {
			keep = append(keep, c)
		}
	}
	g.conns = keep
	for len(g.conns) < s.Conns {
		var d *uint32
		if g.seq > 1 {
			v := uint32(g.rng.IntN(15))
			d = &v
		}
		g.conns = append(g.conns, Conn{
			Family: "inet", LocalAddress: netip.MustParseAddr("10.9.0.1"), LocalPort: uint16(32768 + g.rng.IntN(28000)),
			RemoteAddress: g.addr(), RemotePort: []uint16{443, 5432, 6379, 80, 22}[g.rng.IntN(5)],
			State: "ESTABLISHED", Inode: g.rng.Uint64N(1 << 32), Process: g.proc(), FirstSeen: now, DurationSecs: d,
		})
	}
	h.TCPConnections = append([]Conn(nil), g.conns...)
	for i := range s.Listeners {
		h.TCPListeners = append(h.TCPListeners, Listener{Family: "inet", LocalAddress: netip.IPv4Unspecified(), LocalPort: uint16(8000 + i),
			Inode: uint64(1000 + i), Process: Process{PID: uint32(200 + i), Binary: "nginx", BinaryPath: "/usr/sbin/nginx", UID: 33, Unit: "nginx.service"}})
	}
	udpPorts := []uint16{53, 123, 5353}
	if s.Telecom {
		udpPorts = []uint16{2152, 8805, 1812, 1813}
	}
	for i := range s.UDP {
		p := udpPorts[i%len(udpPorts)]
		h.UDPListeners = append(h.UDPListeners, UDPSocket{Family: "inet", LocalAddress: netip.IPv4Unspecified(), LocalPort: p + uint16(i/len(udpPorts))*1000,
			Inode: uint64(5000 + i), Service: ServiceName(p), Process: Process{PID: 300, Binary: "upf", BinaryPath: "/opt/upf/bin/upf",
				ContainerID: upfContainer, ContainerRuntime: "containerd", PodUID: upfPod,
				ContainerName: "upf", ContainerImage: "registry.example/telecom/upf:2.4", Pod: "upf-0", PodNamespace: "telecom"}})
	}
	for range s.ActiveFlows {
		h.ActiveFlows = append(h.ActiveFlows, g.flow(now, false))
	}
	for range s.CompletedFlows {
		h.CompletedFlows = append(h.CompletedFlows, g.flow(now, true))
	}
	kinds := EventKinds
	for i := range s.Events {
		e := Event{EventID: uuidFrom(g.rng), Kind: kinds[i%len(kinds)], Time: now.Add(-time.Duration(g.rng.IntN(15000)) * time.Millisecond),
			Protocol: "tcp", SrcAddress: netip.MustParseAddr("10.9.0.1"), SrcPort: uint16(40000 + i), DstAddress: g.addr(), DstPort: 443, Process: g.proc(), Source: "proc"}
		if e.Kind == "dns_query" || e.Kind == "dns_lookup" || e.Kind == "dns_resolution" {
			e.Protocol, e.DstPort, e.QueryName, e.QueryType = "udp", 53, fmt.Sprintf("svc-%d.example.com", g.rng.IntN(100)), "A"
			e.Answers = []netip.Addr{g.addr()}
		}
		h.Events = append(h.Events, e)
	}
	return h
}

func (g *Generator) flow(now time.Time, done bool) Flow {
	start := now.Add(-time.Duration(1+g.rng.IntN(60000)) * time.Millisecond)
	f := Flow{FlowID: uuidFrom(g.rng), Protocol: "tcp", Direction: Directions[g.rng.IntN(2)],
		SrcAddress: netip.MustParseAddr("10.9.0.1"), SrcPort: uint16(32768 + g.rng.IntN(28000)), DstAddress: g.addr(), DstPort: 443,
		Process: g.proc(), StartedAt: start, BytesSent: g.rng.Uint64N(1 << 20), BytesReceived: g.rng.Uint64N(1 << 24), State: "ESTABLISHED", Source: "proc"}
	if done {
		f.EndedAt = now.Add(-time.Duration(g.rng.IntN(1000)) * time.Millisecond)
		if f.EndedAt.Before(start) {
			f.EndedAt = start
		}
		f.State = FinalStates[g.rng.IntN(len(FinalStates))]
	}
	return f
}

// ServicePorts names well-known ports, telecom ones first. It is the one
// list of service names: the sensor names UDP sockets by it (ServiceName)
// and the query service names TCP listening ports by it.
var ServicePorts = []struct {
	Port uint16
	Name string
}{
	{2152, "gtp-u"}, {8805, "pfcp"}, {1812, "radius"}, {1813, "radius-acct"}, {2123, "gtp-c"},
	{53, "dns"}, {123, "ntp"}, {5353, "mdns"}, {67, "dhcp"}, {68, "dhcp"},
	{161, "snmp"}, {162, "snmp"}, {514, "syslog"},
}

// ServiceName names a well-known port from ServicePorts; "" when unknown.
func ServiceName(port uint16) string {
	for _, s := range ServicePorts {
		if s.Port == port {
			return s.Name
		}
	}
	return ""
}
