package flows

import (
	"net/netip"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
)

// KernelFlow is a connection's open or close as the kernel's probes saw it
// (sensor/ebpf): exact in time, process, bytes and end, even for
// connections that open and close between two polls.
type KernelFlow struct {
	// Close is false for an open: a connect that reached ESTABLISHED, or
	// an accept that returned.
	Close         bool
	Local, Remote netip.AddrPort
	// Outbound and Inbound say how it was made; neither when the probes
	// did not see it start.
	Outbound, Inbound bool
	Process           heartbeat.Process // PID 0 when unknown
	Start             time.Time         // zero when unknown
	Time              time.Time
	Sock              uint64 // the socket's address, its identity while it lives
	// Netns is the inode of the socket's network namespace, 0 when the
	// probes could not read it.
	Netns uint64
	// At close: what the socket went through, and tcp_sock's counters.
	Established, FinOut, FinIn, FinAcked bool
	BytesAcked, BytesReceived            uint64
}

// UseKernel tells the tracker that the kernel's probes report connections,
// so flows say so in their source.
func (t *Tracker) UseKernel() { t.kernel = true }

// Kernel takes one record of the probes. A connection the polls also see
// is one flow, reported once: whichever sees it first starts it (and gives
// the connect or accept event), the other adds what it knows. It reports
// whether the record started a flow.
func (t *Tracker) Kernel(k *KernelFlow) (started bool) {
	key := t.keyOf(k.Netns, k.Local, k.Remote)
	f := t.flows[key]
	if f != nil && f.sock != 0 && k.Sock != 0 && f.sock != k.Sock {
		// A new socket on the pair: the old one's close was lost.
		t.finish(key, f, k.Time, 0)
		delete(t.flows, key)
		f = nil
	}
	if f == nil {
		if i, ok := t.recent[key]; ok && (k.Start.IsZero() || !k.Start.After(t.completed[i].EndedAt)) {
			// A poll finished it a moment before this record came.
			t.correct(&t.completed[i], k)
			return false
		}
		if k.Close && t.closed[key] && k.Start.IsZero() {
			return false // finished at its TIME_WAIT and already reported
		}
		f = t.kernelStart(k)
		started = true
		if !k.Close {
			t.flows[key] = f
			return started
		}
	}
	f.byKernel = true
	if k.Sock != 0 {
		f.sock = k.Sock
	}
	if f.Netns == 0 {
		f.Netns = k.Netns // a poll that started it did not know its namespace
	}
	if !f.attributed && k.Process.PID != 0 {
		f.Process, f.attributed = k.Process, true
	}
	if !k.Close {
		if !f.predates && !k.Start.IsZero() && k.Start.Before(f.StartedAt) {
			f.StartedAt = k.Start // the poll saw it later than it began
		}
		return started
	}
	f.EndedAt = k.Time
	if f.EndedAt.Before(f.StartedAt) {
		f.EndedAt = f.StartedAt
	}
	f.State = KernelFinalState(k)
	f.BytesSent, f.BytesReceived = kernelPayload(f.Direction == "outbound", k)
	t.complete(key, f)
	delete(t.flows, key)
	// Its TIME_WAIT remnant, if a poll sees it, is this flow.
	t.closed[key] = true
	return started
}

// kernelStart begins a flow the polls have not seen, with its connect or
// accept event (refused, for a connect the kernel closed unanswered).
func (t *Tracker) kernelStart(k *KernelFlow) *flow {
	f := &flow{byKernel: true, sock: k.Sock, sawEstab: true, lastState: tcpstate.Established, attributed: k.Process.PID != 0}
	f.FlowID = uuid.New()
	f.Protocol = "tcp"
	f.Process = k.Process
	f.Netns = k.Netns
	f.StartedAt = k.Start
	f.predates = k.Start.IsZero()
	if f.predates {
		f.StartedAt = k.Time
	}
	f.lastSeen = k.Time
	f.State = stateName(tcpstate.Established)
	inbound := k.Inbound || !k.Outbound && t.listening[k.Local.Port()]
	f.orient(inbound, k.Local, k.Remote)
	f.Source = "ebpf"
	if !f.predates {
		kind := "network_connect"
		if inbound {
			kind = "network_accept"
		}
		e := heartbeat.Event{
			EventID: uuid.New(), Kind: kind, Time: f.StartedAt, Protocol: "tcp",
			SrcAddress: f.SrcAddress, SrcPort: f.SrcPort, DstAddress: f.DstAddress, DstPort: f.DstPort, Netns: f.Netns,
			Process: f.Process, Source: "ebpf",
		}
		if k.Close && !k.Established {
			e.State = "refused"
		}
		t.events = append(t.events, e)
	}
	return f
}

// correct replaces a poll's judgement of a just-finished flow with the
// kernel's.
func (t *Tracker) correct(c *heartbeat.Flow, k *KernelFlow) {
	if c.PID == 0 && k.Process.PID != 0 {
		c.Process = k.Process
	}
	if c.Netns == 0 {
		c.Netns = k.Netns
	}
	if t.src.Name() == "inet_diag" {
		c.Source = "ebpf+inet_diag"
	} else {
		c.Source = "ebpf"
	}
	if !k.Close {
		return
	}
	if !k.Time.Before(c.StartedAt) {
		c.EndedAt = k.Time
	}
	c.State = KernelFinalState(k)
	c.BytesSent, c.BytesReceived = kernelPayload(c.Direction == "outbound", k)
}

// KernelFinalState judges how a connection ended from what the kernel saw
// it go through, with the same words and meaning as the polls' judgement
// (finalState), but exact:
//
//   - refused: it never reached ESTABLISHED (reset or timed out in the
//     handshake);
//   - established: both sides sent their FIN (a clean close), or neither
//     did (a reset of an open connection, as polling calls it);
//   - half-closed: exactly one side had closed when it ended (a reset or a
//     timeout after a FIN: FIN_WAIT without the peer's FIN, or CLOSE_WAIT
//     without our own).
func KernelFinalState(k *KernelFlow) string {
	switch {
	case !k.Established:
		return "refused"
	case k.FinOut == k.FinIn:
		return "established"
	default:
		return "half-closed"
	}
}

// kernelPayload turns tcp_sock's counters into bytes of data: the
// opener's SYN (counted in bytes_acked once acknowledged), an acknowledged
// FIN of ours and a received FIN of the peer each take one sequence number.
func kernelPayload(outbound bool, k *KernelFlow) (sent, received uint64) {
	sent, received = k.BytesAcked, k.BytesReceived
	less := func(v *uint64) {
		if *v > 0 {
			*v--
		}
	}
	if outbound && k.Established {
		less(&sent)
	}
	if k.FinAcked {
		less(&sent)
	}
	if k.FinIn {
		less(&received)
	}
	return sent, received
}
