package fleetsim

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
)

// GraphFleet is a fleet whose hosts talk to each other, for tests of the
// network graph. Its hosts are the generator's (none telecom), each in a
// site and reporting its interfaces (eth0 with its addresses, and lo):
//   - an outbound peer on an internal port (not 80 or 443) is a host of the
//     same site that listens on that port, where one does;
//   - the first two hosts of every site hold VIP too (a keepalived address
//     that repeats in every site), and every fifth host of a site talks to
//     it instead of its first internal peer: the address is ambiguous;
//   - hosts at even places in their site see the connections to their
//     listeners as well (the inbound socket and flows mirror the client's),
//     the others' are seen by the client alone.
//
// Everything else (external peers with and without DNS lineage, churn,
// refused and stale flows) is the generator's.
type GraphFleet struct {
	// Sensors are the fleet's sensors, as their heartbeats name them.
	Sensors []heartbeat.Sensor
	sims    []*sensor
	place   []int // place in its site
	enc     heartbeat.Encoder
	buf     []byte
}

// VIP is the address two hosts of every site hold.
var VIP = netip.AddrFrom4([4]byte{10, 99, 0, 50})

// GraphNetns is the network namespace of every row of a GraphFleet.
const GraphNetns = 4026531840

// NewGraphFleet builds n sensors in sites sites (sensor i in site
// "dc<i mod sites>") from seed, with shape (zero members: DefaultShape's).
func NewGraphFleet(seed uint64, n, sites int, shape Shape, now time.Time) (*GraphFleet, error) {
	cfg, _, err := (&Config{Sensors: n, Duration: time.Second, Targets: []string{"127.0.0.1:1"}, Seed: seed, StartSeq: 1,
		TelecomShare: -1, Shape: shape}).withDefaults()
	if err != nil {
		return nil, err
	}
	g := &GraphFleet{}
	bySite := make([][]*sensor, sites)
	for i := range n {
		s := newSensor(&cfg, i, false, now)
		s.hb.Sensor.Site = fmt.Sprintf("dc%d", i%sites)
		g.place = append(g.place, len(bySite[i%sites]))
		bySite[i%sites] = append(bySite[i%sites], s)
		g.sims = append(g.sims, s)
	}
	for _, s := range g.sims {
		site, internal := bySite[s.idx%sites], 0
		for j := range s.peers {
			p := &s.peers[j]
			if p.port == 80 || p.port == 443 {
				continue
			}
			internal++
			if internal == 1 && g.place[s.idx]%5 == 4 {
				p.addr = VIP
				continue
			}
			// The (idx+j)th host of the site that listens on the port.
			var servers []*sensor
			for _, o := range site {
				if o != s && o.listensOn(p.port) {
					servers = append(servers, o)
				}
			}
			if len(servers) > 0 {
				p.addr = servers[(s.idx+j)%len(servers)].host4
			}
		}
	}
	for _, s := range g.sims {
		g.Sensors = append(g.Sensors, s.hb.Sensor)
	}
	return g, nil
}

// listensOn says whether the host has a wildcard listener on port, which
// takes connections to any of its addresses.
func (s *sensor) listensOn(port uint16) bool {
	for _, l := range s.listeners {
		if l.port == port && l.addr.IsUnspecified() {
			return true
		}
	}
	return false
}

// Next makes every sensor's next heartbeat at now, in sensor order.
func (g *GraphFleet) Next(now time.Time) ([]*heartbeat.Heartbeat, error) {
	hbs := make([]*heartbeat.Heartbeat, len(g.sims))
	owner := map[netip.Addr]int{} // host address: the sensor that mirrors its listeners' connections
	for i, s := range g.sims {
		doc, _, _ := s.next(g.buf, &g.enc, now.UnixMilli())
		g.buf = doc
		h, err := heartbeat.Decode(doc)
		if err != nil {
			return nil, fmt.Errorf("graph fleet: sensor %d: %w", i, err)
		}
		addrs := []netip.Prefix{netip.PrefixFrom(s.host4, 16)}
		if s.fam6 {
			addrs = append(addrs, netip.PrefixFrom(s.host6, 64))
		}
		if g.place[i] < 2 {
			addrs = append(addrs, netip.PrefixFrom(VIP, 32))
		}
		mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", byte(i>>16), byte(i>>8), byte(i))
		h.Interfaces = []heartbeat.Interface{{Name: "lo", Index: 1, Up: true, Addresses: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}},
			{Name: "eth0", Index: 2, Up: true, MAC: mac, Addresses: addrs}}
		setNetns(h)
		hbs[i] = h
		if g.place[i]%2 == 0 {
			owner[s.host4] = i
		}
	}
	// The servers' views, added once every client's rows are known.
	conns := make([][]heartbeat.Conn, len(hbs))
	active, completed := make([][]heartbeat.Flow, len(hbs)), make([][]heartbeat.Flow, len(hbs))
	for i, h := range hbs {
		for _, c := range h.TCPConnections {
			if j, ok := owner[c.RemoteAddress.Unmap()]; ok && j != i && c.State == "ESTABLISHED" && c.Process.PID != 0 {
				if l, ok := listenerOf(hbs[j], c.RemotePort); ok {
					conns[j] = append(conns[j], heartbeat.Conn{Family: c.Family, LocalAddress: c.RemoteAddress,
						LocalPort: c.RemotePort, RemoteAddress: c.LocalAddress, RemotePort: c.LocalPort, State: c.State, Inode: mirrorInode(c),
						Netns: GraphNetns, Process: l.Process, FirstSeen: c.FirstSeen, DurationSecs: c.DurationSecs})
				}
			}
		}
		mirror := func(fs []heartbeat.Flow, to [][]heartbeat.Flow) {
			for _, f := range fs {
				j, ok := owner[f.DstAddress.Unmap()]
				if !ok || j == i || f.Direction != "outbound" || f.State == "refused" {
					continue
				}
				if l, ok := listenerOf(hbs[j], f.DstPort); ok {
					m := f
					m.FlowID = uuid.NewSHA1(uuid.NameSpaceOID, f.FlowID[:]) // the same in every heartbeat
					// The server's counts differ by what is in flight between
					// the two ends, as two sensors' snapshots do.
					m.Direction, m.Process, m.Source = "inbound", l.Process, g.sims[j].source
					m.BytesSent, m.BytesReceived = f.BytesReceived+f.BytesReceived/100+1, f.BytesSent-f.BytesSent/100
					to[j] = append(to[j], m)
				}
			}
		}
		mirror(h.ActiveFlows, active)
		mirror(h.CompletedFlows, completed)
	}
	for j, h := range hbs {
		h.TCPConnections = append(h.TCPConnections, conns[j]...)
		h.ActiveFlows = append(h.ActiveFlows, active[j]...)
		h.CompletedFlows = append(h.CompletedFlows, completed[j]...)
	}
	return hbs, nil
}

// listenerOf is h's wildcard listener on port.
func listenerOf(h *heartbeat.Heartbeat, port uint16) (heartbeat.Listener, bool) {
	for _, l := range h.TCPListeners {
		if l.LocalPort == port && l.LocalAddress.IsUnspecified() {
			return l, true
		}
	}
	return heartbeat.Listener{}, false
}

// mirrorInode is the server's socket inode of the client's connection c:
// the same in every heartbeat, and apart from the generator's.
func mirrorInode(c heartbeat.Conn) uint64 {
	sum := sha256.Sum256(fmt.Appendf(nil, "%v %d %v %d", c.LocalAddress, c.LocalPort, c.RemoteAddress, c.RemotePort))
	return 1<<40 | uint64(sum[0])<<24 | uint64(sum[1])<<16 | uint64(sum[2])<<8 | uint64(sum[3])
}

// setNetns puts every row of h in GraphNetns (the generator leaves it
// unknown), so a row's namespace is its sensor's interfaces'.
func setNetns(h *heartbeat.Heartbeat) {
	h.Sensor.Netns = GraphNetns
	for k := range h.TCPConnections {
		h.TCPConnections[k].Netns = GraphNetns
	}
	for k := range h.TCPListeners {
		h.TCPListeners[k].Netns = GraphNetns
	}
	for k := range h.UDPListeners {
		h.UDPListeners[k].Netns = GraphNetns
	}
	for k := range h.ActiveFlows {
		h.ActiveFlows[k].Netns = GraphNetns
	}
	for k := range h.CompletedFlows {
		h.CompletedFlows[k].Netns = GraphNetns
	}
	for k := range h.Events {
		h.Events[k].Netns = GraphNetns
	}
	for k := range h.Interfaces {
		h.Interfaces[k].Netns = GraphNetns
	}
}
