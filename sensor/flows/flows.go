// Package flows follows every TCP connection of a host from connect or
// accept until close by polling the kernel's socket table, and turns what
// it sees into flows and network events.
package flows

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
)

// Observation is one TCP socket as one poll saw it.
type Observation struct {
	Local, Remote netip.AddrPort
	State         uint8
	UID           uint32
	Inode         uint64
	// Cookie identifies the socket for its lifetime when the source has it
	// (netlink); 0 otherwise.
	Cookie        uint64
	BytesSent     uint64
	BytesReceived uint64
	HasBytes      bool
	// Netns is the inode of the network namespace the source read the
	// socket in (the sensor's own); 0 when unknown.
	Netns uint64
}

// Source polls the kernel for every TCP socket.
type Source interface {
	// Poll appends the current TCP sockets to dst.
	Poll(dst []Observation) ([]Observation, error)
	// Name says how flows were observed: inet_diag or proc.
	Name() string
}

// Owner resolves socket inodes to the processes holding them.
type Owner func(inodes []uint64) map[uint64]heartbeat.Process

// key identifies a connection across polls: in one network namespace only
// one socket holds an address pair at a time. The TIME_WAIT remnant of a
// socket keeps the pair (though netlink gives it a new cookie and /proc no
// inode), so a flow is followed through its close.
// key is a connection: its two ends in one network namespace, since two
// containers may each hold the same pair.
type key struct {
	local, remote netip.AddrPort
	netns         uint64
}

type flow struct {
	heartbeat.Flow
	inode      uint64
	cookie     uint64
	sawEstab   bool  // reached ESTABLISHED (or beyond) at some poll
	lastState  uint8 // kernel state at the last poll that saw it
	lastSeen   time.Time
	predates   bool // already open at the tracker's first poll
	attributed bool
	byPoller   bool   // a poll saw it
	byKernel   bool   // the kernel's probes reported it
	sock       uint64 // the kernel's socket address, 0 when unknown
}

// Config tunes a Tracker.
type Config struct {
	// StaleAfter is the longest gap between two polls over which a vanished
	// flow's end can still be judged; beyond it the flow ends "stale".
	StaleAfter time.Duration
	// MaxFlows bounds memory: beyond it the oldest flows end "stale".
	MaxFlows int
	// Netns is the sensor's own network namespace, where a record that
	// names none (0: the kernel did not say) is taken to be.
	Netns uint64
}

// Tracker follows flows between polls. It is not safe for concurrent use.
type Tracker struct {
	cfg       Config
	src       Source
	owner     Owner
	now       func() time.Time
	flows     map[key]*flow
	listeners map[netip.AddrPort]bool
	listening map[uint16]bool // ports with a listener: their connections are inbound
	lastPoll  time.Time
	polls     int
	obs       []Observation
	completed []heartbeat.Flow
	events    []heartbeat.Event
	seen      map[key]bool
	// closed holds the pairs of flows finished at their TIME_WAIT, while
	// the remnant lingers (60 s), so it is not taken for a new flow.
	closed map[key]bool
	// recent indexes completed by pair, until Take: a kernel close that
	// arrives just after a poll finished its flow corrects it in place.
	recent map[key]int
	// kernel says the eBPF probes report connections (see Kernel).
	kernel bool
}

// New returns a tracker reading src; owner may be nil (no attribution).
// now may be nil (time.Now).
func New(cfg Config, src Source, owner Owner, now func() time.Time) *Tracker {
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 10 * time.Second
	}
	if cfg.MaxFlows <= 0 {
		cfg.MaxFlows = 200_000
	}
	if now == nil {
		now = time.Now
	}
	return &Tracker{cfg: cfg, src: src, owner: owner, now: now,
		flows: map[key]*flow{}, listeners: map[netip.AddrPort]bool{}, listening: map[uint16]bool{}, seen: map[key]bool{}, closed: map[key]bool{},
		recent: map[key]int{}}
}

// Source names how the tracker observes flows: the poller's source, or
// "ebpf+<poller>" when the kernel's probes report connections too.
func (t *Tracker) Source() string {
	if t.kernel {
		return "ebpf+" + t.src.Name()
	}
	return t.src.Name()
}

// sourceOf says how a flow was seen: by the probes, by polls, or both.
// "ebpf+inet_diag" is the one combined word of the vocabulary; a flow the
// /proc poller confirmed says "ebpf", the better of the two.
func (t *Tracker) sourceOf(f *flow) string {
	switch {
	case f.byKernel && f.byPoller && t.src.Name() == "inet_diag":
		return "ebpf+inet_diag"
	case f.byKernel:
		return "ebpf"
	}
	return t.src.Name()
}

// complete moves a finished flow to the completed list.
func (t *Tracker) complete(k key, f *flow) {
	f.Source = t.sourceOf(f)
	t.recent[k] = len(t.completed)
	t.completed = append(t.completed, f.Flow)
}

func (t *Tracker) keyOf(netns uint64, local, remote netip.AddrPort) key {
	return key{local: local, remote: remote, netns: cmp.Or(netns, t.cfg.Netns)}
}

// reused reports whether o is a new socket on the pair of f: a different
// live socket (cookie or inode changed, not the TIME_WAIT remnant).
func reused(f *flow, o *Observation) bool {
	if o.State == tcpstate.TimeWait {
		return false
	}
	return (o.Cookie != 0 && f.cookie != 0 && o.Cookie != f.cookie) ||
		(o.Inode != 0 && f.inode != 0 && o.Inode != f.inode)
}

// Poll reads the socket table once and updates every flow: new ones start
// (network_connect or network_accept), vanished ones complete with their
// final state, new listeners give network_listen.
func (t *Tracker) Poll() error {
	now := t.now().UTC()
	var err error
	t.obs, err = t.src.Poll(t.obs[:0])
	if err != nil {
		return err
	}
	first := t.polls == 0
	gap := now.Sub(t.lastPoll)
	t.polls++
	t.lastPoll = now

	// Listeners first: they decide the direction of new connections.
	clear(t.listening)
	for i := range t.obs {
		o := &t.obs[i]
		if o.State != tcpstate.Listen {
			continue
		}
		t.listening[o.Local.Port()] = true
		if !t.listeners[o.Local] && !first {
			t.events = append(t.events, t.event("network_listen", now, o, o.Local, netip.AddrPort{}))
		}
	}
	clear(t.listeners)
	for i := range t.obs {
		if t.obs[i].State == tcpstate.Listen {
			t.listeners[t.obs[i].Local] = true
		}
	}

	clear(t.seen)
	var fresh []*flow
	for i := range t.obs {
		o := &t.obs[i]
		if o.State == tcpstate.Listen || o.State == tcpstate.Close {
			continue
		}
		k := t.keyOf(o.Netns, o.Local, o.Remote)
		f := t.flows[k]
		if o.State == tcpstate.TimeWait {
			t.timeWait(k, f, o, now, first)
			continue
		}
		if f != nil && reused(f, o) { // closed and reopened between two polls
			t.finish(k, f, now, gap)
			f = nil
		}
		if f == nil {
			f = t.start(o, now, first)
			t.flows[k] = f
			fresh = append(fresh, f)
		}
		t.seen[k] = true
		f.byPoller = true
		f.lastState, f.lastSeen = o.State, now
		if o.State != tcpstate.SynSent && o.State != tcpstate.SynRecv && o.State != tcpstate.NewSynRecv {
			f.sawEstab = true
		}
		if o.HasBytes {
			f.BytesSent, f.BytesReceived = payload(f.Direction, o)
		}
		f.State = stateName(o.State)
		if o.State != tcpstate.TimeWait {
			f.inode, f.cookie = o.Inode, o.Cookie
		}
	}
	t.attribute(fresh)
	for k, f := range t.flows {
		if !t.seen[k] {
			t.finish(k, f, now, gap)
			delete(t.flows, k)
		}
	}
	for k := range t.closed {
		if !t.seen[k] {
			delete(t.closed, k)
		}
	}
	t.bound(now)
	return nil
}

// timeWait handles a socket in TIME_WAIT: both sides have closed, so its
// flow ends now, cleanly. A TIME_WAIT nobody saw open is a connection that
// opened and closed between two polls: it is recorded too, with what little
// is known (no bytes, no process: the kernel keeps neither).
func (t *Tracker) timeWait(k key, f *flow, o *Observation, now time.Time, first bool) {
	t.seen[k] = true
	if t.closed[k] {
		return
	}
	t.closed[k] = true
	if f == nil {
		if first {
			return // closed before the tracker started
		}
		f = t.start(o, now, false)
		f.sawEstab = true
		t.attribute([]*flow{f})
	}
	f.sawEstab, f.lastState, f.byPoller = true, tcpstate.TimeWait, true
	f.EndedAt = now
	f.State = "established"
	t.complete(k, f)
	delete(t.flows, k)
}

// start begins a flow first seen at now.
func (t *Tracker) start(o *Observation, now time.Time, first bool) *flow {
	f := &flow{predates: first, inode: o.Inode, cookie: o.Cookie, byPoller: true}
	f.FlowID = uuid.New()
	f.Protocol = "tcp"
	f.Source = t.src.Name()
	f.StartedAt = now
	f.UID = o.UID
	f.Netns = o.Netns
	f.orient(t.listening[o.Local.Port()] && o.State != tcpstate.SynSent, o.Local, o.Remote)
	return f
}

// orient sets the direction and which end is src (the side that opened
// the connection) from this host's end and the peer's.
func (f *flow) orient(inbound bool, local, remote netip.AddrPort) {
	if inbound {
		f.Direction = "inbound"
		f.SrcAddress, f.SrcPort = remote.Addr().Unmap(), remote.Port()
		f.DstAddress, f.DstPort = local.Addr().Unmap(), local.Port()
		return
	}
	f.Direction = "outbound"
	f.SrcAddress, f.SrcPort = local.Addr().Unmap(), local.Port()
	f.DstAddress, f.DstPort = remote.Addr().Unmap(), remote.Port()
}

// payload turns the kernel's counters (tcpi_bytes_acked, _received, which
// count sequence numbers) into bytes of data: the opener's SYN, and each
// FIN once acknowledged or received, take one sequence number each.
func payload(direction string, o *Observation) (sent, received uint64) {
	sent, received = o.BytesSent, o.BytesReceived
	less := func(v *uint64) {
		if *v > 0 {
			*v--
		}
	}
	if direction == "outbound" {
		less(&sent) // our SYN
	}
	switch o.State {
	case tcpstate.FinWait2, tcpstate.TimeWait: // our FIN acknowledged
		less(&sent)
	}
	switch o.State {
	case tcpstate.CloseWait, tcpstate.LastAck, tcpstate.Closing, tcpstate.TimeWait: // the peer's FIN received
		less(&received)
	}
	return sent, received
}

// attribute asks the owner for the processes behind new flows and emits
// their connect/accept events with whatever attribution was found.
func (t *Tracker) attribute(fresh []*flow) {
	if len(fresh) == 0 {
		return
	}
	var owners map[uint64]heartbeat.Process
	if t.owner != nil {
		inodes := make([]uint64, 0, len(fresh))
		for _, f := range fresh {
			if f.inode != 0 {
				inodes = append(inodes, f.inode)
			}
		}
		owners = t.owner(inodes)
	}
	for _, f := range fresh {
		if p, ok := owners[f.inode]; ok {
			uid := f.UID
			f.Process = p
			f.UID = uid // the socket's owner uid, as the kernel reports it
			f.attributed = true
		}
		if f.predates {
			continue
		}
		kind := "network_connect"
		if f.Direction == "inbound" {
			kind = "network_accept"
		}
		t.events = append(t.events, heartbeat.Event{
			EventID: uuid.New(), Kind: kind, Time: f.StartedAt, Protocol: "tcp",
			SrcAddress: f.SrcAddress, SrcPort: f.SrcPort, DstAddress: f.DstAddress, DstPort: f.DstPort, Netns: f.Netns,
			Process: f.Process, Source: f.Source,
		})
	}
}

// finish completes a flow that vanished between the last two polls. Its
// end is placed at this poll, within one poll interval of the truth.
func (t *Tracker) finish(k key, f *flow, now time.Time, gap time.Duration) {
	f.EndedAt = now
	f.State = finalState(f, gap > t.cfg.StaleAfter)
	t.complete(k, f)
}

// finalState judges how a vanished flow ended from the last state seen.
func finalState(f *flow, lostSight bool) string {
	switch {
	case lostSight:
		return "stale" // the tracker did not look for too long to tell
	case !f.sawEstab:
		return "refused" // never got past the handshake
	case f.lastState == tcpstate.FinWait1 || f.lastState == tcpstate.FinWait2:
		// We had closed, the peer never did, and the socket went without
		// the TIME_WAIT of a clean close: reset or timed out. (CLOSE_WAIT
		// then gone is the ordinary passive close: no TIME_WAIT on that side.)
		return "half-closed"
	default:
		return "established"
	}
}

// bound ends the oldest flows as stale when there are too many.
func (t *Tracker) bound(now time.Time) {
	excess := len(t.flows) - t.cfg.MaxFlows
	if excess <= 0 {
		return
	}
	keys := make([]key, 0, len(t.flows))
	for k := range t.flows {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int { return t.flows[a].StartedAt.Compare(t.flows[b].StartedAt) })
	for _, k := range keys[:excess] {
		f := t.flows[k]
		f.EndedAt, f.State = now, "stale"
		t.complete(k, f)
		delete(t.flows, k)
	}
}

func (t *Tracker) event(kind string, now time.Time, o *Observation, src, dst netip.AddrPort) heartbeat.Event {
	e := heartbeat.Event{EventID: uuid.New(), Kind: kind, Time: now, Protocol: "tcp", Netns: o.Netns, Source: t.src.Name()}
	e.UID = o.UID
	if src.IsValid() {
		e.SrcAddress, e.SrcPort = src.Addr().Unmap(), src.Port()
	}
	if dst.IsValid() {
		e.DstAddress, e.DstPort = dst.Addr().Unmap(), dst.Port()
	}
	if t.owner != nil && o.Inode != 0 {
		if p, ok := t.owner([]uint64{o.Inode})[o.Inode]; ok {
			uid := e.UID
			e.Process = p
			e.UID = uid
		}
	}
	return e
}

// Active returns the flows open now, for the heartbeat.
func (t *Tracker) Active() []heartbeat.Flow {
	out := make([]heartbeat.Flow, 0, len(t.flows))
	for _, f := range t.flows {
		f.Source = t.sourceOf(f)
		out = append(out, f.Flow)
	}
	return out
}

// FirstSeen reports when the tracker first saw the connection local→remote
// in namespace netns:
// ok is false when it does not follow it, and the time is zero when the
// connection was already open at the tracker's first poll.
func (t *Tracker) FirstSeen(netns uint64, local, remote netip.AddrPort) (first time.Time, ok bool) {
	f := t.flows[t.keyOf(netns, local, remote)]
	if f == nil {
		return time.Time{}, false
	}
	if f.predates {
		return time.Time{}, true
	}
	return f.StartedAt, true
}

// Take returns the flows completed and the events derived since the last
// call, and forgets them.
func (t *Tracker) Take() (completed []heartbeat.Flow, events []heartbeat.Event) {
	completed, events = t.completed, t.events
	// The next interval starts with room for as many as this one had, so a
	// busy host does not regrow (and copy) tens of thousands of rows from
	// nothing every interval (seen in the sensor's CPU profile).
	t.completed = make([]heartbeat.Flow, 0, len(completed))
	t.events = make([]heartbeat.Event, 0, len(events))
	clear(t.recent)
	return completed, events
}

// stateName is the live state a flow reports. A number the kernel does not
// use reads as CLOSE, a word the heartbeat's decoder accepts, rather than
// one it would reject.
func stateName(s uint8) string {
	if n, ok := tcpstate.Name(s); ok {
		return n
	}
	return "CLOSE"
}
