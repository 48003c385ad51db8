// Package tcpstate holds the kernel's TCP state numbers and names
// (include/net/tcp_states.h), which /proc/net/tcp, inet_diag and the
// heartbeat all speak.
package tcpstate

import "slices"

// The constants are untyped so that each reader compares them with its own
// state field (procnet.State, a netlink uint8) without conversions.
const (
	Established = 1
	SynSent     = 2
	SynRecv     = 3
	FinWait1    = 4
	FinWait2    = 5
	TimeWait    = 6
	Close       = 7
	CloseWait   = 8
	LastAck     = 9
	Listen      = 10
	Closing     = 11
	NewSynRecv  = 12
)

var names = [...]string{
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

// Name returns the kernel's name of state s, and false for a number the
// kernel does not use (0, or above NewSynRecv), whose spelling each caller
// chooses for itself.
func Name(s uint8) (string, bool) {
	if s < Established || s > NewSynRecv {
		return "", false
	}
	return names[s], true
}

// Names returns the names in kernel order, Established first. The slice
// is the caller's own, so a vocabulary can drop what it never carries.
func Names() []string { return slices.Clone(names[Established:]) }
