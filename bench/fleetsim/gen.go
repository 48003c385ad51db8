package fleetsim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
)

// A sensor is one simulated host: its sockets, processes and peers, built
// once, and the state that changes between heartbeats. Only its scheduler
// goroutine touches it. The heartbeat is written straight from this state
// as JSON into a reused buffer: no heartbeat.Heartbeat, no reflection.

type listener struct {
	fam6      bool
	addr      netip.Addr
	port      uint16
	inode     uint64
	proc      int16
	firstSeen int64
	base      bool // never closes
}

type udpSock struct {
	fam6          bool
	local, remote netip.Addr // remote invalid: not connected
	lport, rport  uint16
	inode         uint64
	service       string
	proc          int16
	firstSeen     int64
	ephemeral     bool // a connected client socket, replaced now and then
}

type sctpEP struct {
	port      uint16
	addrs     []netip.Addr
	inode     uint64
	proc      int16
	firstSeen int64
}

type sctpAssoc struct {
	id           uint32
	state        string
	lport, rport uint16
	local        []netip.Addr // the endpoint's
	remote       [2]netip.Addr
	nremote      int
	inode        uint64
	tx, rx       uint32
	proc         int16
	firstSeen    int64
	transient    bool // COOKIE_WAIT for one heartbeat
}

type peer struct {
	addr netip.Addr
	port uint16
	name string
	proc int16 // the client process that talks to it
	// looked: a stable host looked its name up in this pass through its
	// peers.
	looked bool
}

// conn states, indices into heartbeat.States.
const (
	stEstablished = 0
	stSynSent     = 1
	stTimeWait    = 5
	stCloseWait   = 7
)

type conn struct {
	local, remote netip.Addr
	lport, rport  uint16
	out           bool
	state         uint8
	proc          int16
	peer          int16 // outbound: index in peers; -1 inbound
	linger        bool  // TIME_WAIT, CLOSE_WAIT or SYN_SENT: gone at the next heartbeat
	opened        int64 // ms; < 0 when the connection predates the sensor
	firstSeen     int64
	inode         uint64
	tracked       bool // the flow tracker follows it (opened after the sensor started)
	flowID        uuid.UUID
	sent, recv    uint64
	rateS, rateR  uint32 // bytes a second
}

type flowRec struct {
	id            uuid.UUID
	out           bool
	local, remote netip.Addr
	lport, rport  uint16
	proc          int16
	started, end  int64
	sent, recv    uint64
	state         string
}

// Event kinds, indices into heartbeat.EventKinds.
const (
	evConnect = iota
	evAccept
	evListen
	evDNSQuery
	evDNSLookup
	evDNSResolution
	evLSMConnect
)

type eventRec struct {
	id       uuid.UUID
	kind     uint8
	proto    string
	t        int64
	src, dst netip.Addr
	sport    uint16
	dport    uint16
	proc     int16
	qname    string
	qtype    string
	answer   netip.Addr
	state    string
}

type sensor struct {
	idx      int
	id, boot uuid.UUID
	hostname string
	flavor   string
	telecom  bool
	lsm      bool
	source   string
	fam6     bool
	host4    netip.Addr
	host6    netip.Addr
	n3       netip.Addr // telecom: user-plane address
	upstream netip.Addr // DNS server the resolver asks
	started  int64

	// hb is the heartbeat written from this state, its rows reused; its
	// sensor and SCTP endpoints never change.
	hb       heartbeat.Heartbeat
	durs     []uint32     // its connections' duration_secs
	answers  []netip.Addr // its events' answers
	procs    []heartbeat.Process
	resolved int16 // systemd-resolved's proc

	listeners []listener
	lisDirty  bool
	udp       []udpSock
	udpDirty  bool
	eps       []sctpEP
	assocs    []sctpAssoc
	nextAssoc uint32
	inbound   []int // listeners that accept connections from the network
	peers     []peer

	conns      []conn
	base       int // mean established connections
	target     int
	short      int
	churn      float64
	dnsShare   float64
	assocsWant int
	nextInode  uint64
	nextPort   uint16

	// stable: the steady host of a Day (see Config.Stable).
	stable bool
	// pending are the changes to make at the next heartbeat; beacon, once
	// set, calls home every beaconEvery heartbeats (see Change).
	pending []string
	beacon  *peer
	beatN   int
	// A stable host's next peers and (listener, client) pairs, dealt in
	// shuffled passes, so that each is used within a pass.
	outDeck, inDeck []int

	rng    *rand.Rand
	seq    uint64
	last   int64 // ms of the previous heartbeat
	comp   []flowRec
	events []eventRec
	rows   int
}

func uuidFrom(r *rand.Rand) uuid.UUID {
	var u uuid.UUID
	a, b := r.Uint64(), r.Uint64()
	for i := range 8 {
		u[i], u[8+i] = byte(a>>(8*i)), byte(b>>(8*i))
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return u
}

// newSensor builds sensor i of the fleet. Its identity and host layout
// come from (seed, i) only; what happens on it also from startSeq.
func newSensor(cfg *Config, i int, telecom bool, now time.Time) *sensor {
	idr := rand.New(rand.NewPCG(cfg.Seed, uint64(i)*0x9e3779b97f4a7c15+0x632be59bd9b4e019))
	s := &sensor{idx: i, telecom: telecom, seq: cfg.StartSeq - 1, stable: cfg.Stable}
	s.rng = rand.New(rand.NewPCG(cfg.Seed^(cfg.StartSeq*0xbf58476d1ce4e5b9), uint64(i)+0x94d049bb133111eb))
	s.id, s.boot = uuidFrom(idr), uuidFrom(idr)
	nowMS := now.UnixMilli()
	s.started = nowMS - int64(3600_000+idr.IntN(30*86_400_000))
	s.last = nowMS - cfg.Interval.Milliseconds()
	s.flavor = "standard"
	if telecom {
		s.flavor = "telecom"
	}
	switch r := idr.Float64(); {
	case r < 0.7:
		s.source = "ebpf"
	case r < 0.9:
		s.source = "inet_diag"
	default:
		s.source = "proc"
	}
	s.lsm = s.source == "ebpf" && idr.Float64() < 0.8
	s.fam6 = idr.Float64() < 0.15
	s.host4 = netip.AddrFrom4([4]byte{10, byte(i / 64000 % 200), byte(i / 250 % 256), byte(2 + i%250)})
	s.host6 = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x40, byte(i >> 16), byte(i >> 8), byte(i), 0, 0, 0, 0, 0, 0, 0x10})
	s.upstream = netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + idr.IntN(3))})
	s.nextInode = 1_000_000 + idr.Uint64N(50_000_000)
	s.nextPort = uint16(32768 + idr.IntN(20000))

	// Size: most hosts near the mean, a few much busier (log-normal).
	f := min(max(math.Exp(0.6*idr.NormFloat64()), 0.25), 6)
	sh := cfg.Shape
	s.base = int(math.Round(float64(sh.Conns) * f))
	s.target = s.base
	nLis := max(int(math.Round(float64(sh.Listeners)*math.Sqrt(f))), 2)
	nUDP := int(math.Round(float64(sh.UDP) * math.Sqrt(f)))
	s.short = int(math.Round(float64(sh.ShortLived) * f))
	s.churn, s.dnsShare = sh.Churn, sh.DNSShare

	roles := []string{"web", "app", "db", "cache", "edge", "batch", "kafka", "k8s-node"}
	role := roles[idr.IntN(len(roles))]
	if telecom {
		role = []string{"upf", "5gc", "epc"}[idr.IntN(3)]
	}
	s.hostname = fmt.Sprintf("%s-%04d.%s.example.net", role, i, []string{"fra1", "ams2", "lon1", "nyc3", "sfo2"}[idr.IntN(5)])

	procIdx := map[string]int16{}
	addProc := func(a app) int16 {
		if p, ok := procIdx[a.name]; ok {
			return p
		}
		pid := 300 + idr.IntN(400_000)
		s.procs = append(s.procs, heartbeat.Process{PID: uint32(pid), Binary: a.name, BinaryPath: a.path, UID: a.uid})
		procIdx[a.name] = int16(len(s.procs) - 1)
		return int16(len(s.procs) - 1)
	}
	firstSeen := func() int64 { return s.started + int64(idr.IntN(int(nowMS-s.started))) }
	any4, any6 := netip.IPv4Unspecified(), netip.IPv6Unspecified()
	addListener := func(p int16, addr netip.Addr, port uint16, base bool) {
		s.listeners = append(s.listeners, listener{fam6: addr.Is6(), addr: addr, port: port, inode: s.inode(), proc: p, firstSeen: firstSeen(), base: base})
		if !addr.IsLoopback() && !(addr.Is4() && addr.As4()[0] == 127) {
			s.inbound = append(s.inbound, len(s.listeners)-1)
		}
	}
	addUDP := func(p int16, local netip.Addr, port uint16, remote netip.Addr, rport uint16, eph bool) {
		s.udp = append(s.udp, udpSock{fam6: local.Is6(), local: local, lport: port, remote: remote, rport: rport, inode: s.inode(),
			service: heartbeat.ServiceName(port), proc: p, firstSeen: firstSeen(), ephemeral: eph})
	}

	// What every host runs.
	ssh := addProc(appSSHD)
	addListener(ssh, any4, 22, true)
	if s.fam6 {
		addListener(ssh, any6, 22, true)
	}
	s.resolved = addProc(appResolved)
	stub := netip.AddrFrom4([4]byte{127, 0, 0, 53})
	addListener(s.resolved, stub, 53, true)
	addUDP(s.resolved, stub, 53, netip.Addr{}, 0, false)
	chrony := addProc(appChrony)
	addUDP(chrony, any4, 123, netip.Addr{}, 0, false)
	addUDP(chrony, netip.AddrFrom4([4]byte{127, 0, 0, 1}), 323, netip.Addr{}, 0, false)

	var clients []int16 // processes that connect out, one per destination port kind
	var dstPorts []uint16
	if telecom {
		s.n3 = netip.AddrFrom4([4]byte{172, 16, byte(i / 250 % 256), byte(2 + i%250)})
		n2 := netip.AddrFrom4([4]byte{172, 17, byte(i / 250 % 256), byte(2 + i%250)})
		upf := addProc(appUPF)
		addUDP(upf, s.n3, 2152, netip.Addr{}, 0, false)
		addUDP(upf, s.host4, 8805, netip.Addr{}, 0, false)
		smf := addProc(appSMF)
		addUDP(smf, n2, 8805, netip.Addr{}, 0, false)
		addUDP(smf, s.host4, 2123, netip.Addr{}, 0, false)
		addListener(smf, s.host4, 7777, false)
		radius := addProc(appRADIUS)
		addUDP(radius, any4, 1812, netip.Addr{}, 0, false)
		addUDP(radius, any4, 1813, netip.Addr{}, 0, false)
		sctpApps := []app{appAMF}
		if idr.IntN(2) == 0 {
			sctpApps = append(sctpApps, appMME)
		}
		if idr.IntN(2) == 0 {
			sctpApps = append(sctpApps, appHSS)
		}
		for _, a := range sctpApps {
			p := addProc(a)
			for _, port := range a.sctp {
				s.eps = append(s.eps, sctpEP{port: port, addrs: []netip.Addr{s.host4, n2}, inode: s.inode(), proc: p, firstSeen: firstSeen()})
			}
			for _, port := range a.tcp {
				addListener(p, s.host4, port, false)
			}
		}
		s.assocsWant = max(int(math.Round(float64(sh.SCTPAssocs)*math.Sqrt(f))), 1)
		s.nextAssoc = uint32(1 + idr.IntN(5000))
		for range s.assocsWant {
			s.assocs = append(s.assocs, s.newAssoc(idr, firstSeen()))
		}
		clients = append(clients, smf)
		dstPorts = append(dstPorts, 443)
	}
	// Server software, until the host has its listeners.
	for _, k := range idr.Perm(len(serverApps)) {
		if len(s.listeners) >= nLis {
			break
		}
		a := serverApps[k]
		p := addProc(a)
		for _, port := range a.tcp {
			addr := any4
			if s.fam6 && idr.IntN(2) == 0 {
				addr = any6
			}
			addListener(p, addr, port, false)
		}
		for _, d := range a.dsts {
			clients, dstPorts = append(clients, p), append(dstPorts, d)
		}
	}
	if len(s.listeners) < nLis {
		java := addProc(serverApps[3])
		for port := uint16(18080); len(s.listeners) < nLis; port++ {
			addListener(java, any4, port, false)
		}
	}
	for _, k := range idr.Perm(len(clientApps))[:2+idr.IntN(2)] {
		a := clientApps[k]
		p := addProc(a)
		for _, d := range a.dsts {
			clients, dstPorts = append(clients, p), append(dstPorts, d)
		}
	}
	for _, k := range idr.Perm(len(udpApps)) {
		if len(s.udp) >= nUDP {
			break
		}
		a := udpApps[k]
		p := addProc(a)
		for _, port := range a.udp {
			addUDP(p, any4, port, netip.Addr{}, 0, false)
		}
	}
	for len(s.udp) < nUDP {
		addUDP(s.resolved, s.host4, s.port(), s.upstream, 53, true)
	}

	// Peers: the services the host's clients talk to.
	for j, d := range dstPorts {
		names := serviceNames[d]
		if len(names) == 0 {
			names = []string{fmt.Sprintf("svc-%d.prod.internal", d)}
		}
		for range 1 + idr.IntN(2) {
			name := names[idr.IntN(len(names))]
			var addr netip.Addr
			switch {
			case d == 443 || d == 80:
				if s.fam6 && idr.IntN(3) == 0 {
					addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xff, 0xff, 0, byte(idr.IntN(256)), 0, 0, 0, 0, 0, 0, 0, byte(1 + idr.IntN(250))})
				} else {
					addr = netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + idr.IntN(250))})
				}
			default:
				addr = netip.AddrFrom4([4]byte{10, 20, byte(d % 256), byte(1 + idr.IntN(250))})
			}
			s.peers = append(s.peers, peer{addr: addr, port: d, name: name, proc: clients[j]})
		}
	}
	if len(s.peers) == 0 {
		s.peers = append(s.peers, peer{addr: netip.AddrFrom4([4]byte{203, 0, 113, 7}), port: 443, name: "api.example.com", proc: ssh})
	}

	// Room for a busy heartbeat, so that steady state allocates nothing.
	newPer := s.churn*float64(s.base) + float64(s.short)
	s.conns = make([]conn, 0, s.base*5/4+8)
	s.comp = make([]flowRec, 0, int(newPer*2)+8)
	s.events = make([]eventRec, 0, int(newPer*(2+3*s.dnsShare)*1.5)+8)

	// Connections open now: some older than the sensor (age unknown).
	for range s.base {
		var opened int64
		if idr.IntN(10) < 3 {
			opened = -1
		} else {
			lo := max(s.started, nowMS-6*3600_000)
			opened = lo + int64(idr.IntN(int(max(s.last-lo, 1))))
		}
		s.conns = append(s.conns, s.newConn(s.rng, s.rng.IntN(10) < 7, opened))
	}

	// The sensor object, the same in every heartbeat.
	sctpCap := "not_telecom"
	if telecom {
		sctpCap = "available"
	}
	lsm := "unavailable"
	if s.lsm {
		lsm = "available"
	}
	kernel := []string{"6.8.0-45-generic", "6.1.0-26-amd64", "5.15.0-122-generic", "6.12.9-200.fc41.x86_64"}[idr.IntN(4)]
	s.hb.Sensor = heartbeat.Sensor{SensorID: s.id, Hostname: s.hostname, Flavor: s.flavor, Version: "0.9.2", BootID: s.boot,
		StartedAt: msTime(s.started), IntervalSecs: uint32(math.Ceil(cfg.Interval.Seconds())), Kernel: kernel, Netns: 4026531840,
		Capabilities: map[string]string{"flow_source": s.source, "sctp": sctpCap, "lsm": lsm}}
	s.lisDirty, s.udpDirty = true, true
	for k := range s.eps {
		e := &s.eps[k]
		s.hb.SCTPEndpoints = append(s.hb.SCTPEndpoints, heartbeat.SCTPEndpoint{LocalPort: e.port, LocalAddresses: e.addrs, Inode: e.inode,
			Process: s.proc(e.proc), FirstSeen: msTime(e.firstSeen)})
	}
	return s
}

func (s *sensor) inode() uint64 { s.nextInode += 1 + uint64(s.nextInode%7); return s.nextInode }

func (s *sensor) port() uint16 {
	s.nextPort++
	if s.nextPort < 32768 || s.nextPort > 60999 {
		s.nextPort = 32768
	}
	return s.nextPort
}

func (s *sensor) newAssoc(r *rand.Rand, firstSeen int64) sctpAssoc {
	ep := &s.eps[r.IntN(len(s.eps))]
	s.nextAssoc++
	a := sctpAssoc{id: s.nextAssoc, state: "ESTABLISHED", lport: ep.port, local: ep.addrs, inode: ep.inode, proc: ep.proc, firstSeen: firstSeen,
		rport: ep.port, nremote: 1 + r.IntN(2)}
	if ep.port == 3868 {
		a.rport = uint16(32768 + r.IntN(28000))
	}
	g := byte(r.IntN(250))
	for k := range a.nremote {
		a.remote[k] = netip.AddrFrom4([4]byte{10, byte(200 + k), g, byte(1 + r.IntN(250))})
	}
	return a
}

// newConn makes an established connection: outbound to a peer, or inbound
// to one of the listeners.
func (s *sensor) newConn(r *rand.Rand, out bool, opened int64) conn {
	c := conn{state: stEstablished, inode: s.inode(), opened: opened, out: out, peer: -1}
	if len(s.inbound) == 0 {
		c.out = true
	}
	if c.out {
		if s.stable {
			if len(s.outDeck) == 0 {
				for k := range s.peers {
					s.peers[k].looked = false
				}
			}
			c.peer = int16(s.deal(&s.outDeck, len(s.peers)))
		} else {
			c.peer = int16(r.IntN(len(s.peers)))
		}
		s.dial(&c, &s.peers[c.peer])
	} else {
		var li, k int
		if s.stable {
			x := s.deal(&s.inDeck, len(s.inbound)*stableClients)
			li, k = x/stableClients, x%stableClients
		} else {
			li = r.IntN(len(s.inbound))
		}
		l := &s.listeners[s.inbound[li]]
		c.local, c.lport, c.proc, c.rport = l.addr, l.port, l.proc, uint16(32768+r.IntN(28000))
		switch {
		case s.stable:
			// Each listener has the same few clients all day (a load
			// balancer, a peer service), so a new one is news.
			c.local, c.remote = s.host4, netip.AddrFrom4([4]byte{10, byte(100 + k%4), byte(s.idx % 251), byte(1 + k)})
			if l.addr.Is6() {
				c.local, c.remote = netip.AddrFrom16(s.host4.As16()), netip.AddrFrom16(c.remote.As16())
			}
		case l.addr.Is6() && r.IntN(2) == 0:
			c.local = s.host6
			c.remote = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x50, 0, byte(r.IntN(256)), 0, 0, 0, 0, 0, 0, 0, byte(1 + r.IntN(250))})
		case l.addr.Is6():
			// A v4 client on a v6 socket: v4-mapped addresses (tcp6).
			c.local = netip.AddrFrom16(s.host4.As16())
			c.remote = netip.AddrFrom16(netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(1 + r.IntN(254))}).As16())
		default:
			c.local = s.host4
			c.remote = netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
		}
	}
	if opened < 0 {
		c.firstSeen = s.started
	} else {
		c.firstSeen = opened
		c.tracked = true
		c.flowID = uuidFrom(r)
	}
	c.rateS, c.rateR = uint32(r.ExpFloat64()*2000), uint32(r.ExpFloat64()*20000)
	if opened >= 0 {
		age := uint64(max(s.last-opened, 0))
		c.sent, c.recv = age*uint64(c.rateS)/1000+uint64(r.IntN(1500)), age*uint64(c.rateR)/1000+uint64(r.IntN(9000))
	}
	return c
}

// stableClients is how many clients connect to each listener of a stable
// host.
const stableClients = 3

// deal takes the next of 0..n-1 from deck, a new shuffled pass when it is
// empty.
func (s *sensor) deal(deck *[]int, n int) int {
	if len(*deck) == 0 {
		*deck = s.rng.Perm(n)
	}
	x := (*deck)[0]
	*deck = (*deck)[1:]
	return x
}

// dial points the outbound connection c at p.
func (s *sensor) dial(c *conn, p *peer) {
	c.remote, c.rport, c.proc, c.lport = p.addr, p.port, p.proc, s.port()
	c.local = s.host4
	if p.addr.Is6() {
		c.local = s.host6
	}
}

// within is a random time in (s.last, now].
func (s *sensor) within(now int64) int64 {
	if now <= s.last {
		return now
	}
	return s.last + 1 + s.rng.Int64N(now-s.last)
}

func (s *sensor) complete(c *conn, end int64, state string) {
	s.comp = append(s.comp, flowRec{id: c.flowID, out: c.out, local: c.local, remote: c.remote, lport: c.lport, rport: c.rport, proc: c.proc,
		started: max(c.opened, 0), end: max(end, c.opened), sent: c.sent, recv: c.recv, state: state})
}

func (s *sensor) event(kind uint8, t int64, proto string, src netip.Addr, sport uint16, dst netip.Addr, dport uint16, p int16) *eventRec {
	s.events = append(s.events, eventRec{id: uuidFrom(s.rng), kind: kind, t: t, proto: proto, src: src, sport: sport, dst: dst, dport: dport, proc: p})
	return &s.events[len(s.events)-1]
}

// open records the events of a connection opened at t: a name lookup
// before some outbound ones, connect (and the LSM hook's view) or accept.
func (s *sensor) open(c *conn, t int64, refused bool) {
	if !c.out {
		s.event(evAccept, t, "tcp", c.remote, c.rport, c.local, c.lport, c.proc)
		return
	}
	if c.peer >= 0 {
		// A stable host looks each name up at least once a pass.
		if p := &s.peers[c.peer]; (s.rng.Float64() < s.dnsShare || s.stable && !p.looked) && p.name != "" {
			p.looked = true
			s.lookup(c, p.name, t)
		}
	}
	s.connect(c, t, refused)
}

// lookup records the name lookup of c's process that found c's remote
// address just before t: the process asks, the resolver asks upstream,
// and the sensor ties the answer to the connection.
func (s *sensor) lookup(c *conn, name string, t int64) {
	qt := "A"
	if c.remote.Is6() {
		qt = "AAAA"
	}
	e := s.event(evDNSLookup, t-3, "", netip.Addr{}, 0, netip.Addr{}, 0, c.proc)
	e.qname, e.qtype, e.answer = name, qt, c.remote
	e = s.event(evDNSQuery, t-2, "udp", s.host4, s.port(), s.upstream, 53, s.resolved)
	e.qname, e.qtype, e.answer = name, qt, c.remote
	e = s.event(evDNSResolution, t, "", netip.Addr{}, 0, c.remote, c.rport, c.proc)
	e.qname, e.qtype, e.answer = name, qt, c.remote
}

// connect records the connect of outbound c at t (and the LSM hook's view).
func (s *sensor) connect(c *conn, t int64, refused bool) {
	e := s.event(evConnect, t, "tcp", c.local, c.lport, c.remote, c.rport, c.proc)
	if refused {
		e.state = "refused"
	}
	if s.lsm {
		s.event(evLSMConnect, t, "tcp", c.local, c.lport, c.remote, c.rport, c.proc)
	}
}

// step moves the host from the previous heartbeat to now: connections
// close (their flows complete; some linger in TIME_WAIT or CLOSE_WAIT for
// one heartbeat) and as many open, a few connections open and close in
// between, listeners, UDP sockets and SCTP associations change now and then.
func (s *sensor) step(now int64) {
	r := s.rng
	s.comp, s.events = s.comp[:0], s.events[:0]
	dt := uint64(max(now-s.last, 0))
	keep := s.conns[:0]
	estab := 0
	for _, c := range s.conns {
		if c.linger {
			switch {
			case c.state == stCloseWait && c.tracked:
				s.complete(&c, s.within(now), "half-closed")
			case c.state == stSynSent:
				t := s.within(now)
				s.complete(&c, t, "refused")
				s.open(&c, t, true)
			}
			continue
		}
		c.sent += dt * uint64(c.rateS) / 1000
		c.recv += dt * uint64(c.rateR) / 1000
		if r.Float64() < s.churn {
			end := s.within(now)
			switch x := r.IntN(20); {
			case x < 9: // we closed first: TIME_WAIT, no owner, no inode
				if c.tracked {
					s.complete(&c, end, "established")
				}
				c.state, c.linger, c.proc, c.inode, c.tracked = stTimeWait, true, -1, 0, false
				keep = append(keep, c)
			case x < 11: // the peer closed; the process has not yet
				c.state, c.linger = stCloseWait, true
				keep = append(keep, c)
			default:
				if c.tracked {
					state := "established"
					if r.IntN(30) == 0 {
						state = "stale"
					}
					s.complete(&c, end, state)
				}
			}
			continue
		}
		estab++
		keep = append(keep, c)
	}
	s.conns = keep

	// The host's load drifts around its mean.
	if r.IntN(4) == 0 {
		s.target += r.IntN(3) - 1
		s.target = min(max(s.target, s.base*9/10), s.base*11/10+1)
	}
	for estab < s.target {
		t := s.within(now)
		c := s.newConn(r, r.IntN(10) < 7, t)
		if c.out && r.IntN(50) == 0 {
			// Still connecting at the snapshot; refused by the next one.
			c.state, c.linger = stSynSent, true
			c.sent, c.recv = 0, 0
			s.conns = append(s.conns, c)
			continue
		}
		s.open(&c, t, false)
		s.conns = append(s.conns, c)
		estab++
	}
	// Connections opened and closed between two snapshots.
	for range s.short/2 + r.IntN(s.short+1) {
		t0 := s.within(now)
		c := s.newConn(r, r.IntN(10) < 6, t0)
		c.sent, c.recv = uint64(100+r.IntN(4000)), uint64(200+r.IntN(64000))
		state := "established"
		refused := c.out && r.IntN(12) == 0
		if refused {
			state, c.sent, c.recv = "refused", 0, 0
		}
		s.open(&c, t0, refused)
		s.complete(&c, t0+int64(r.IntN(int(max(now-t0, 1)))), state)
	}
	// A service restarts on another port now and then.
	if r.IntN(50) == 0 {
		if k := r.IntN(len(s.listeners)); !s.listeners[k].base {
			l := &s.listeners[k]
			t := s.within(now)
			if port := uint16(20000 + r.IntN(10000)); !s.stable {
				l.port = port // a stable host's service comes back on its port
			}
			l.inode, l.firstSeen = s.inode(), t
			s.event(evListen, t, "tcp", l.addr, l.port, netip.Addr{}, 0, l.proc)
			s.lisDirty = true
		}
	}
	// The resolver replaces its upstream sockets.
	if r.IntN(5) == 0 {
		for k := range s.udp {
			if u := &s.udp[k]; u.ephemeral && r.IntN(2) == 0 {
				u.lport, u.inode, u.firstSeen = s.port(), s.inode(), s.within(now)
				s.udpDirty = true
				break
			}
		}
	}
	// SCTP: an association restarts, a new one is still being set up.
	for k := range s.assocs {
		a := &s.assocs[k]
		if a.transient {
			a.state, a.transient = "ESTABLISHED", false
		}
		a.tx, a.rx = 0, 0
		if r.IntN(8) == 0 {
			a.tx, a.rx = uint32(r.IntN(4096)), uint32(r.IntN(4096))
		}
	}
	if len(s.assocs) > 0 && r.IntN(10) == 0 {
		k := r.IntN(len(s.assocs))
		s.assocs[k] = s.newAssoc(r, s.within(now))
		if r.IntN(2) == 0 {
			s.assocs[k].state, s.assocs[k].transient = "COOKIE_WAIT", true
		}
	}
}

// next makes the sensor's next heartbeat at now (Unix ms) and writes its
// JSON document to b[:0] with enc, the heartbeat package's own Encoder: the
// simulator speaks the format through its one definition. The rows live in
// s.hb, reused from heartbeat to heartbeat (listeners, UDP sockets and SCTP
// endpoints are rebuilt only when they changed). It returns the document,
// the heartbeat's id and seq; s.rows is the rows ingest will write for it.
func (s *sensor) next(b []byte, enc *heartbeat.Encoder, now int64) ([]byte, uuid.UUID, uint64) {
	s.step(now)
	s.change(now)
	s.last = now
	s.seq++
	h := &s.hb
	h.Format, h.HeartbeatID, h.Seq, h.SentAt = heartbeat.Format, uuidFrom(s.rng), s.seq, msTime(now)

	h.TCPConnections, h.ActiveFlows = h.TCPConnections[:0], h.ActiveFlows[:0]
	s.durs = slices.Grow(s.durs[:0], len(s.conns)) // stable: DurationSecs points in
	for k := range s.conns {
		c := &s.conns[k]
		row := heartbeat.Conn{Family: family(c.local), LocalAddress: c.local, LocalPort: c.lport, RemoteAddress: c.remote, RemotePort: c.rport,
			State: heartbeat.States[c.state], Inode: c.inode, Process: s.proc(c.proc), FirstSeen: msTime(c.firstSeen)}
		if c.opened >= 0 {
			s.durs = append(s.durs, uint32(max(now-c.opened, 0)/1000))
			row.DurationSecs = &s.durs[len(s.durs)-1]
		}
		h.TCPConnections = append(h.TCPConnections, row)
		if c.tracked && c.state != stTimeWait {
			h.ActiveFlows = append(h.ActiveFlows, s.flow(&flowRec{id: c.flowID, out: c.out, local: c.local, remote: c.remote, lport: c.lport, rport: c.rport,
				proc: c.proc, started: c.opened, sent: c.sent, recv: c.recv, state: heartbeat.States[c.state]}, false))
		}
	}
	if s.lisDirty {
		h.TCPListeners = h.TCPListeners[:0]
		for k := range s.listeners {
			l := &s.listeners[k]
			h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{Family: family(l.addr), LocalAddress: l.addr, LocalPort: l.port,
				Inode: l.inode, Process: s.proc(l.proc), FirstSeen: msTime(l.firstSeen)})
		}
		s.lisDirty = false
	}
	if s.udpDirty {
		h.UDPListeners = h.UDPListeners[:0]
		for k := range s.udp {
			u := &s.udp[k]
			row := heartbeat.UDPSocket{Family: family(u.local), LocalAddress: u.local, LocalPort: u.lport, Inode: u.inode, Service: u.service,
				Process: s.proc(u.proc), FirstSeen: msTime(u.firstSeen)}
			if u.remote.IsValid() {
				row.RemoteAddress, row.RemotePort = u.remote, u.rport
			}
			h.UDPListeners = append(h.UDPListeners, row)
		}
		s.udpDirty = false
	}
	h.CompletedFlows = h.CompletedFlows[:0]
	for k := range s.comp {
		h.CompletedFlows = append(h.CompletedFlows, s.flow(&s.comp[k], true))
	}
	h.Events = h.Events[:0]
	s.answers = slices.Grow(s.answers[:0], len(s.events)) // stable: Answers point in
	for k := range s.events {
		e := &s.events[k]
		row := heartbeat.Event{EventID: e.id, Kind: heartbeat.EventKinds[e.kind], Time: msTime(e.t), Protocol: e.proto,
			Process: s.proc(e.proc), State: e.state, Source: s.source}
		if e.src.IsValid() {
			row.SrcAddress, row.SrcPort = e.src, e.sport
		}
		if e.dst.IsValid() {
			row.DstAddress, row.DstPort = e.dst, e.dport
		}
		if e.qname != "" {
			s.answers = append(s.answers, e.answer)
			row.QueryName, row.QueryType, row.Answers = e.qname, e.qtype, s.answers[len(s.answers)-1:]
		}
		h.Events = append(h.Events, row)
	}
	h.SCTPAssociations = h.SCTPAssociations[:0]
	for k := range s.assocs {
		a := &s.assocs[k]
		h.SCTPAssociations = append(h.SCTPAssociations, heartbeat.SCTPAssoc{AssocID: a.id, State: a.state, LocalPort: a.lport, RemotePort: a.rport,
			LocalAddresses: a.local, RemoteAddresses: a.remote[:a.nremote], PrimaryAddress: a.remote[0], Inode: a.inode,
			TxQueue: a.tx, RxQueue: a.rx, Process: s.proc(a.proc), FirstSeen: msTime(a.firstSeen)})
	}
	// heartbeats and sensors; a completed flow is a flows row and a
	// network_flow event.
	s.rows = 2 + len(h.TCPConnections) + len(h.TCPListeners) + len(h.UDPListeners) + len(h.ActiveFlows) +
		2*len(h.CompletedFlows) + len(h.Events) + len(h.SCTPAssociations) + len(h.SCTPEndpoints)
	return enc.AppendJSON(b[:0], h), h.HeartbeatID, s.seq
}

// msTime is a Unix millisecond time as the heartbeat carries it.
func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// proc is process p's attribution; p < 0 is none.
func (s *sensor) proc(p int16) heartbeat.Process {
	if p < 0 {
		return heartbeat.Process{}
	}
	return s.procs[p]
}

func family(a netip.Addr) string {
	if a.Is6() {
		return "inet6"
	}
	return "inet"
}

func (s *sensor) flow(f *flowRec, completed bool) heartbeat.Flow {
	src, sp, dst, dp, dir := f.local, f.lport, f.remote, f.rport, "outbound"
	if !f.out {
		src, sp, dst, dp, dir = f.remote, f.rport, f.local, f.lport, "inbound"
	}
	row := heartbeat.Flow{FlowID: f.id, Protocol: "tcp", Direction: dir, SrcAddress: src, SrcPort: sp, DstAddress: dst, DstPort: dp,
		Process: s.proc(f.proc), StartedAt: msTime(f.started), BytesSent: f.sent, BytesReceived: f.recv, State: f.state, Source: s.source}
	if completed {
		row.EndedAt = msTime(f.end)
	}
	return row
}
