// Package procnet parses the kernel's socket tables in /proc/net.
package procnet

import (
	"net/netip"
	"strconv"

	"github.com/netview/netview/internal/tcpstate"
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

// State is a kernel TCP state number (internal/tcpstate). UDP sockets
// reuse two of them: tcpstate.Close (unconnected) and tcpstate.Established
// (connected).
type State uint8

// valid reports whether s is one of the kernel's states.
func (s State) valid() bool {
	_, ok := tcpstate.Name(uint8(s))
	return ok
}

func (s State) String() string {
	if n, ok := tcpstate.Name(uint8(s)); ok {
		return n
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

	// State is the TCP state; UDP sockets show tcpstate.Close
	// (unconnected) or tcpstate.Established (connected).
	State State

	TxQueue uint32 // TCP: unacked bytes (write_seq-snd_una); UDP: send memory
	RxQueue uint32 // TCP: unread bytes, or the accept backlog when listening; UDP: receive memory
	UID     uint32 // as seen from the reader's user namespace
	Inode   uint64 // 0 for sockets without a file (TIME_WAIT, SYN_RECV request socks)
}
