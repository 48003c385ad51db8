package flows

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
)

// script is a Source that replays socket tables given by the test: the
// state machine's input, written out, for the cases real sockets cannot
// stage on demand (a tracker that stopped looking, a reused pair).
type script struct{ polls [][]Observation }

func (s *script) Name() string { return "proc" }
func (s *script) Poll(dst []Observation) ([]Observation, error) {
	p := s.polls[0]
	s.polls = s.polls[1:]
	return append(dst, p...), nil
}

var (
	srv    = netip.MustParseAddrPort("127.0.0.1:8080")
	client = netip.MustParseAddrPort("127.0.0.1:40000")
	peer   = netip.MustParseAddrPort("10.0.0.9:443")
)

func obs(local, remote netip.AddrPort, state uint8, inode uint64) Observation {
	return Observation{Local: local, Remote: remote, State: state, Inode: inode}
}

func run(t *testing.T, gap time.Duration, polls ...[]Observation) ([]heartbeat.Flow, []heartbeat.Event, *Tracker) {
	t.Helper()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tr := New(Config{StaleAfter: 10 * time.Second}, &script{polls: polls}, func(inodes []uint64) map[uint64]heartbeat.Process {
		out := map[uint64]heartbeat.Process{}
		for _, i := range inodes {
			out[i] = heartbeat.Process{PID: uint32(i), Binary: "app"}
		}
		return out
	}, func() time.Time { return now })
	for range polls {
		if err := tr.Poll(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(gap)
	}
	done, events := tr.Take()
	return done, events, tr
}

func TestFinalStates(t *testing.T) {
	listener := obs(srv, netip.AddrPort{}, tcpstate.Listen, 1)
	f := func(name string, gap time.Duration, want string, polls ...[]Observation) {
		t.Helper()
		done, _, _ := run(t, gap, append([][]Observation{{listener}}, polls...)...)
		if len(done) != 1 || done[0].State != want {
			t.Errorf("%s: completed %+v, want one flow ending %s", name, done, want)
		}
	}
	sec := time.Second
	f("clean close through TIME_WAIT", sec, "established",
		[]Observation{listener, obs(client, peer, tcpstate.Established, 7)}, []Observation{listener, obs(client, peer, tcpstate.TimeWait, 0)})
	f("closed between polls", sec, "established",
		[]Observation{listener, obs(client, peer, tcpstate.Established, 7)}, []Observation{listener})
	f("never established", sec, "refused",
		[]Observation{listener, obs(client, peer, tcpstate.SynSent, 7)}, []Observation{listener})
	f("half closed then reset", sec, "half-closed",
		[]Observation{listener, obs(client, peer, tcpstate.Established, 7)}, []Observation{listener, obs(client, peer, tcpstate.FinWait2, 7)}, []Observation{listener})
	f("passive close", sec, "established",
		[]Observation{listener, obs(client, peer, tcpstate.CloseWait, 7)}, []Observation{listener})
	f("tracker looked away too long", 30*sec, "stale",
		[]Observation{listener, obs(client, peer, tcpstate.Established, 7)}, []Observation{listener})
}

func TestEventsAndDirection(t *testing.T) {
	inbound := obs(srv, netip.MustParseAddrPort("127.0.0.1:50000"), tcpstate.Established, 8)
	outbound := obs(client, peer, tcpstate.SynSent, 9)
	_, events, tr := run(t, time.Second,
		[]Observation{obs(srv, netip.AddrPort{}, tcpstate.Listen, 1)},
		[]Observation{obs(srv, netip.AddrPort{}, tcpstate.Listen, 1), inbound, outbound, obs(netip.MustParseAddrPort("0.0.0.0:9090"), netip.AddrPort{}, tcpstate.Listen, 2)},
	)
	kinds := map[string]heartbeat.Event{}
	for _, e := range events {
		kinds[e.Kind] = e
	}
	if e := kinds["network_accept"]; e.SrcPort != 50000 || e.DstPort != 8080 || e.PID != 8 {
		t.Errorf("accept = %+v, want from :50000 to :8080 by pid 8", e)
	}
	if e := kinds["network_connect"]; e.DstAddress != peer.Addr() || e.DstPort != 443 || e.PID != 9 {
		t.Errorf("connect = %+v, want to %s by pid 9", e, peer)
	}
	if e := kinds["network_listen"]; e.SrcPort != 9090 || e.PID != 2 {
		t.Errorf("listen = %+v, want :9090 by pid 2 (and none for the listener already there)", e)
	}
	if len(events) != 3 {
		t.Errorf("events = %d, want 3", len(events))
	}
	active := tr.Active()
	if len(active) != 2 {
		t.Fatalf("active flows = %d, want 2", len(active))
	}
}

// Sockets open at the first poll predate the tracker: no events, no age.
func TestPredatingFlows(t *testing.T) {
	c := obs(client, peer, tcpstate.Established, 7)
	_, events, tr := run(t, time.Second, []Observation{c}, []Observation{c})
	if len(events) != 0 {
		t.Errorf("events for predating flows: %+v", events)
	}
	if first, ok := tr.FirstSeen(0, client, peer); !ok || !first.IsZero() {
		t.Errorf("FirstSeen = %v %v, want known and zero (predates)", first, ok)
	}
}

// A connection that opened and closed between two polls leaves only its
// TIME_WAIT: it is still recorded, once, however long the remnant lingers.
func TestShortConnectionSeenOnlyInTimeWait(t *testing.T) {
	tw := obs(client, peer, tcpstate.TimeWait, 0)
	done, events, _ := run(t, time.Second, []Observation{}, []Observation{tw}, []Observation{tw}, []Observation{tw})
	if len(done) != 1 || done[0].State != "established" || done[0].DstPort != 443 {
		t.Fatalf("completed = %+v, want one established flow to :443", done)
	}
	if len(events) != 1 || events[0].Kind != "network_connect" {
		t.Fatalf("events = %+v, want one network_connect", events)
	}
}

// The same address pair reused by a new socket between two polls is a new
// flow, and the old one ends.
func TestReusedPairIsNewFlow(t *testing.T) {
	done, _, tr := run(t, time.Second, []Observation{}, []Observation{obs(client, peer, tcpstate.Established, 7)}, []Observation{obs(client, peer, tcpstate.Established, 8)})
	if len(done) != 1 || len(tr.Active()) != 1 || done[0].FlowID == tr.Active()[0].FlowID {
		t.Fatalf("completed %d, active %d: want the first flow ended and a new one open", len(done), len(tr.Active()))
	}
}

func TestMaxFlowsBoundsMemory(t *testing.T) {
	var table []Observation
	for i := range 50 {
		table = append(table, obs(netip.AddrPortFrom(client.Addr(), uint16(40000+i)), peer, tcpstate.Established, uint64(i+1)))
	}
	now := time.Now()
	tr := New(Config{MaxFlows: 10}, &script{polls: [][]Observation{table}}, nil, func() time.Time { return now })
	if err := tr.Poll(); err != nil {
		t.Fatal(err)
	}
	done, _ := tr.Take()
	if len(tr.Active()) != 10 || len(done) != 40 || done[0].State != "stale" {
		t.Fatalf("active %d, ended %d (%s): want 10 kept and 40 ended stale", len(tr.Active()), len(done), done[0].State)
	}
}
