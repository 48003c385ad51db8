package flows

import (
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
)

// diagScript is a script that names itself inet_diag, as the netlink
// poller does.
type diagScript struct{ script }

func (s *diagScript) Name() string { return "inet_diag" }

func TestKernelFinalState(t *testing.T) {
	f := func(k KernelFlow, want string) {
		t.Helper()
		if got := KernelFinalState(&k); got != want {
			t.Errorf("%+v: %s, want %s", k, got, want)
		}
	}
	f(KernelFlow{}, "refused")                                                 // reset or timed out in the handshake
	f(KernelFlow{FinOut: true}, "refused")                                     // closed before it was answered
	f(KernelFlow{Established: true, FinOut: true, FinIn: true}, "established") // clean close
	f(KernelFlow{Established: true}, "established")                            // reset while open
	f(KernelFlow{Established: true, FinOut: true}, "half-closed")              // FIN_WAIT, the peer never closed
	f(KernelFlow{Established: true, FinIn: true}, "half-closed")               // CLOSE_WAIT, then reset
}

func TestKernelPayload(t *testing.T) {
	// An outbound flow that sent 10 and received 5 bytes, then closed
	// cleanly: bytes_acked counts its SYN and FIN, bytes_received the
	// peer's FIN.
	k := KernelFlow{Established: true, FinOut: true, FinIn: true, FinAcked: true, BytesAcked: 12, BytesReceived: 6}
	if s, r := kernelPayload(true, &k); s != 10 || r != 5 {
		t.Errorf("outbound: sent %d received %d, want 10 and 5", s, r)
	}
	// The accepting side's SYN-ACK is not in its counter.
	if s, r := kernelPayload(false, &k); s != 11 || r != 5 {
		t.Errorf("inbound: sent %d received %d, want 11 and 5", s, r)
	}
	// An unacknowledged FIN is not in bytes_acked.
	k = KernelFlow{Established: true, FinOut: true, BytesAcked: 11}
	if s, _ := kernelPayload(true, &k); s != 10 {
		t.Errorf("FIN not acked: sent %d, want 10", s)
	}
}

// A connection that the poller and the probes both see is one flow, with
// one connect event, whose source says both saw it.
func TestKernelAndPollerReportOnce(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	src := &diagScript{script{polls: [][]Observation{
		{},
		{obs(client, peer, tcpstate.Established, 7)},
		{obs(client, peer, tcpstate.Established, 7)},
	}}}
	tr := New(Config{}, src, nil, func() time.Time { return now })
	tr.UseKernel()
	tr.Poll()
	p := heartbeat.Process{PID: 42, Binary: "curl"}
	tr.Kernel(&KernelFlow{Local: client, Remote: peer, Outbound: true, Process: p, Start: now.Add(100 * time.Millisecond), Time: now.Add(110 * time.Millisecond), Sock: 1})
	now = now.Add(time.Second)
	tr.Poll()
	if a := tr.Active(); len(a) != 1 || a[0].Source != "ebpf+inet_diag" || a[0].PID != 42 {
		t.Fatalf("active %+v, want one flow seen by both, of pid 42", a)
	}
	now = now.Add(time.Second)
	tr.Poll()
	tr.Kernel(&KernelFlow{Close: true, Local: client, Remote: peer, Outbound: true, Process: p, Start: now.Add(-time.Second),
		Time: now.Add(500 * time.Millisecond), Sock: 1, Established: true, FinOut: true, FinIn: true, FinAcked: true, BytesAcked: 102, BytesReceived: 51})
	// Its TIME_WAIT remnant at the next poll is not a new flow.
	src.polls = append(src.polls, []Observation{obs(client, peer, tcpstate.TimeWait, 0)})
	now = now.Add(time.Second)
	tr.Poll()
	done, events := tr.Take()
	if len(done) != 1 || done[0].State != "established" || done[0].BytesSent != 100 || done[0].BytesReceived != 50 ||
		done[0].Source != "ebpf+inet_diag" || !done[0].StartedAt.Equal(time.Date(2026, 11, 25, 12, 0, 0, 100e6, time.UTC)) {
		t.Fatalf("completed %+v, want one clean flow of 100/50 bytes seen by both, started when the kernel saw it", done)
	}
	if len(events) != 1 || events[0].Kind != "network_connect" || events[0].Source != "ebpf" || events[0].PID != 42 {
		t.Fatalf("events %+v, want one connect from the probes", events)
	}
}

// A poll that finds a connection gone just before its close record is
// handled: the record corrects the poll's judgement instead of adding a
// second flow.
func TestKernelCloseCorrectsAPollsJudgement(t *testing.T) {
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	src := &diagScript{script{polls: [][]Observation{{}, {obs(client, peer, tcpstate.FinWait1, 7)}, {}}}}
	tr := New(Config{}, src, nil, func() time.Time { return now })
	tr.UseKernel()
	tr.Poll()
	now = now.Add(time.Second)
	tr.Poll()
	now = now.Add(time.Second)
	tr.Poll() // gone: polling judges half-closed
	tr.Kernel(&KernelFlow{Close: true, Local: client, Remote: peer, Start: now.Add(-1500 * time.Millisecond), Time: now.Add(-10 * time.Millisecond),
		Established: true, FinOut: true, FinIn: true, FinAcked: true, BytesAcked: 1, BytesReceived: 1})
	done, _ := tr.Take()
	if len(done) != 1 || done[0].State != "established" || done[0].Source != "ebpf+inet_diag" || !done[0].EndedAt.Equal(now.Add(-10*time.Millisecond)) {
		t.Fatalf("completed %+v, want the one flow, corrected to the kernel's clean close", done)
	}
}
