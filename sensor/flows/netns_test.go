package flows

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
)

const (
	hostNs      = 4026531840 // the sensor's namespace, as its polls read it
	containerNs = 4026532555 // another one, only the probes see
)

// inNs puts observations in the sensor's namespace, as the sources do.
func inNs(list ...Observation) []Observation {
	for i := range list {
		list[i].Netns = hostNs
	}
	return list
}

// A flow and the events the polls give carry the namespace the source read
// the socket in: listen, accept, the active flow and the completed one.
func TestPolledFlowsCarryTheirNetns(t *testing.T) {
	listener := obs(srv, netip.AddrPort{}, tcpstate.Listen, 1)
	conn := obs(srv, client, tcpstate.Established, 2)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	src := &script{polls: [][]Observation{inNs(), inNs(listener), inNs(listener, conn), inNs(listener)}}
	tr := New(Config{}, src, nil, func() time.Time { return now })
	for range 3 {
		if err := tr.Poll(); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Second)
	}
	if a := tr.Active(); len(a) != 1 || a[0].Netns != hostNs {
		t.Fatalf("active %+v, want one flow in %d", a, hostNs)
	}
	if err := tr.Poll(); err != nil {
		t.Fatal(err)
	}
	done, events := tr.Take()
	if len(done) != 1 || done[0].Netns != hostNs {
		t.Fatalf("completed %+v, want one flow in %d", done, hostNs)
	}
	kinds := map[string]uint64{}
	for _, e := range events {
		kinds[e.Kind] = e.Netns
	}
	if len(kinds) != 2 || kinds["network_listen"] != hostNs || kinds["network_accept"] != hostNs {
		t.Fatalf("events %+v, want a listen and an accept in %d", events, hostNs)
	}
}

// A connection only the probes saw keeps the namespace they read from its
// socket, not the sensor's; one a poll started without knowing it learns
// it from the probes' record.
func TestKernelFlowsCarryTheirNetns(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	src := &diagScript{script{polls: [][]Observation{inNs(), {obs(client, srv, tcpstate.Established, 7)}}}}
	tr := New(Config{Netns: hostNs}, src, nil, func() time.Time { return now })
	tr.UseKernel()
	tr.Poll()
	p := heartbeat.Process{PID: 42, Binary: "curl"}
	tr.Kernel(&KernelFlow{Local: client, Remote: peer, Outbound: true, Process: p, Start: now, Time: now, Sock: 1, Netns: containerNs})
	tr.Kernel(&KernelFlow{Close: true, Local: client, Remote: peer, Outbound: true, Process: p, Start: now,
		Time: now.Add(time.Millisecond), Sock: 1, Established: true, Netns: containerNs})
	now = now.Add(time.Second)
	tr.Poll() // sees client→srv, with no namespace
	tr.Kernel(&KernelFlow{Local: client, Remote: srv, Outbound: true, Process: p, Start: now.Add(-time.Millisecond), Time: now, Sock: 2, Netns: hostNs})
	done, events := tr.Take()
	if len(done) != 1 || done[0].Netns != containerNs {
		t.Fatalf("completed %+v, want the probes' flow in %d", done, containerNs)
	}
	if len(events) != 2 || events[0].Kind != "network_connect" || events[0].Netns != containerNs {
		t.Fatalf("events %+v, want the probes' connect in %d first", events, containerNs)
	}
	if a := tr.Active(); len(a) != 1 || a[0].Netns != hostNs {
		t.Fatalf("active %+v, want the polled flow, in %d from the probes", a, hostNs)
	}
}

// Two containers may each hold the same pair of addresses: the probes'
// records of the two are two flows, each in its namespace, not one.
func TestSamePairInTwoNamespaces(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	tr := New(Config{Netns: hostNs}, &diagScript{script{polls: [][]Observation{inNs()}}}, nil, func() time.Time { return now })
	tr.UseKernel()
	tr.Poll()
	for i, ns := range []uint64{containerNs, containerNs + 1} {
		p := heartbeat.Process{PID: uint32(40 + i), Binary: "curl"}
		tr.Kernel(&KernelFlow{Local: client, Remote: peer, Outbound: true, Process: p, Start: now, Time: now, Sock: uint64(1 + i), Netns: ns})
	}
	a := tr.Active()
	if len(a) != 2 || a[0].Netns == a[1].Netns || a[0].PID == a[1].PID {
		t.Fatalf("active %+v, want two flows of %s -> %s, one in each namespace", a, client, peer)
	}
}
