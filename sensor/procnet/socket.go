// Package procnet parses the kernel's socket tables in /proc/net.
package procnet

import (
	"net/netip"
	"strconv"
)

// Proto is the transport protocol of a socket table.
type Proto uint8

// Protocols with a table in /proc/net.
const (
	TCP Proto = 1
	UDP Proto = 2
)

func (p Proto) String() string {
	switch p {
	case TCP:
		return "tcp"
	case UDP:
		return "udp"
	}
	return "proto(" + strconv.Itoa(int(p)) + ")"
}

// State is a kernel TCP state number (include/net/tcp_states.h). UDP
// sockets reuse two of them: Close (unconnected) and Established (connected).
type State uint8

// Kernel TCP states.
const (
	Established State = 1
	SynSent     State = 2
	SynRecv     State = 3
	FinWait1    State = 4
	FinWait2    State = 5
	TimeWait    State = 6
	Close       State = 7
	CloseWait   State = 8
	LastAck     State = 9
	Listen      State = 10
	Closing     State = 11
	NewSynRecv  State = 12
)

var stateNames = [...]string{
	Established: "ESTABLISHED",
	SynSent:     "SYN_SENT",
	SynRecv:     "SYN_RECV",
	FinWait1:    "FIN_WAIT1",
	FinWait2:    "FIN_WAIT2",
	TimeWait:    "TIME_WAIT",
	Close:       "CLOSE",
	CloseWait:   "CLOSE_WAIT",
	LastAck:     "LAST_ACK",
	Listen:      "LISTEN",
	Closing:     "CLOSING",
	NewSynRecv:  "NEW_SYN_RECV",
}

// valid reports whether s is one of the kernel's states 1..12.
func (s State) valid() bool { return s >= Established && s <= NewSynRecv }

func (s State) String() string {
	if s.valid() {
		return stateNames[s]
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// Socket is one line of a /proc/net/{tcp,tcp6,udp,udp6} table.
type Socket struct {
	Proto Proto
	IPv6  bool // read from tcp6/udp6

	// Local and Remote hold 4-byte addresses for the tcp/udp tables and
	// 16-byte ones for tcp6/udp6, where an IPv4 peer of a dual-stack socket
	// stays v4-mapped (::ffff:a.b.c.d); callers that want IPv4 call Unmap.
	Local  netip.AddrPort
	Remote netip.AddrPort

	// State is the TCP state; UDP sockets show Close (unconnected) or
	// Established (connected).
	State State

	TxQueue uint32 // TCP: unacked bytes (write_seq-snd_una); UDP: send memory
	RxQueue uint32 // TCP: unread bytes, or the accept backlog when listening; UDP: receive memory
	UID     uint32 // as seen from the reader's user namespace
	Inode   uint64 // 0 for sockets without a file (TIME_WAIT, SYN_RECV request socks)
}
