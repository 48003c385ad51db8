// Package diag dumps TCP sockets with their byte counters through netlink
// socket diagnostics (INET_DIAG), and network interfaces with their
// addresses through rtnetlink (RTM_GETLINK, RTM_GETADDR), over one netlink
// socket code.
package diag

import (
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnsupported is returned (wrapped) when the kernel has no
// NETLINK_SOCK_DIAG or no TCP diagnostics module.
var ErrUnsupported = errors.New("netlink socket diagnostics unavailable")

var errClosed = errors.New("diag: connection closed")

// Sock is one TCP socket as the kernel reports it.
//
// The counters are in sequence space: BytesSent includes 1 for the SYN of a
// connecting socket and 1 for an acked FIN, BytesReceived 1 for a received
// FIN. Minisockets (TIME_WAIT, orphaned FIN_WAIT2, request sockets) carry no
// tcp_info: HasBytes false, Inode and UID 0. Orphaned full sockets (fd closed,
// still FIN_WAIT1, CLOSING or LAST_ACK) keep UID and counters but report Inode
// 0. The counters vanish with the full socket, so bytes moved after the last
// dump of a closing connection are never seen here.
type Sock struct {
	IPv6          bool
	Local, Remote netip.AddrPort // IPv4 as 4-byte addrs; IPv6 as 16-byte (v4-mapped kept)
	State         uint8          // kernel TCP state number (internal/tcpstate)
	UID           uint32
	Inode         uint64
	Cookie        uint64 // stable id of the socket for its lifetime
	BytesSent     uint64 // tcpi_bytes_acked
	BytesReceived uint64 // tcpi_bytes_received
	HasBytes      bool   // false when no tcp_info with the counters came (minisockets, kernels before 4.1)
}

// recvBufSize matches the kernel's cap on one dump datagram (netlink_dump
// sizes its skbs from the reader's buffer, at most 32 KiB). A longer datagram
// is still detected (MSG_TRUNC) and grows the buffer.
const recvBufSize = 32 << 10

// Conn is one netlink socket, reused between dumps; not safe for concurrent use.
type Conn struct {
	fd     int // -1 after an aborted dump; reopened by the next TCP call
	proto  int // NETLINK_SOCK_DIAG or NETLINK_ROUTE
	closed bool
	seq    uint32
	buf    []byte
	req    [reqLen]byte
}

// Open opens a NETLINK_SOCK_DIAG socket connected to the kernel.
func Open() (*Conn, error) { return open(unix.NETLINK_SOCK_DIAG) }

func open(proto int) (*Conn, error) {
	fd, err := openSocket(proto)
	if err != nil {
		return nil, err
	}
	return &Conn{fd: fd, proto: proto, buf: make([]byte, recvBufSize)}, nil
}

// openSocket opens a netlink socket of proto in the calling thread's
// network namespace: the socket stays in it for its life.
func openSocket(proto int) (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		if errors.Is(err, unix.EAFNOSUPPORT) || errors.Is(err, unix.EPROTONOSUPPORT) {
			return -1, fmt.Errorf("%w: %w", ErrUnsupported, err)
		}
		return -1, fmt.Errorf("diag: socket: %w", err)
	}
	// Connecting to port 0 makes the kernel refuse datagrams from anyone but itself.
	if err := unix.Connect(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("diag: connect: %w", err)
	}
	// A dump always ends, but never let a lost answer block the poller forever.
	tv := unix.Timeval{Sec: 10}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("diag: SO_RCVTIMEO: %w", err)
	}
	return fd, nil
}

// Close releases the socket; TCP fails afterwards.
func (c *Conn) Close() error {
	c.closed = true
	if c.fd < 0 {
		return nil
	}
	err := unix.Close(c.fd)
	c.fd = -1
	return err
}

// TCP appends every TCP socket of the reader's network namespace (both
// families) whose state is in states (a bitmask 1<<tcpstate.X; 0 means all) to
// dst and returns it. On error dst is returned at its original length.
//
// Request sockets (NEW_SYN_RECV) are dumped when SYN_RECV or NEW_SYN_RECV is
// asked for and are reported with State 3 (SYN_RECV), like ss shows them.
// On newer kernels bit 13 (BOUND_INACTIVE, included in 0) adds sockets that
// are bound but neither listening nor connected, reported as State 7 (CLOSE)
// without counters; `ss -a` leaves them out.
func (c *Conn) TCP(states uint32, dst []Sock) ([]Sock, error) {
	if c.closed {
		return dst, errClosed
	}
	if err := c.ensure(); err != nil {
		return dst, err
	}
	if states == 0 {
		states = ^uint32(0)
	}
	n := len(dst)
	var err error
	for _, family := range [...]uint8{unix.AF_INET, unix.AF_INET6} {
		if dst, err = c.dump(family, states, dst); err != nil {
			return dst[:n], err
		}
	}
	return dst, nil
}

// dump runs one SOCK_DIAG_BY_FAMILY dump. After any failure the socket may
// hold the rest of the dump, so it is dropped and reopened on the next call.
func (c *Conn) dump(family uint8, states uint32, dst []Sock) ([]Sock, error) {
	c.seq++
	putRequest(c.req[:], c.seq, family, states)
	ioErr, err := c.exchange(c.req[:reqLen], func(b []byte) (done bool, err error) {
		dst, done, err = parse(b, c.seq, dst)
		return done, err
	})
	switch {
	case ioErr != nil:
		return dst, ioErr
	case errors.Is(err, unix.ENOENT):
		// No inet_diag handler for this family/protocol (tcp_diag not built or loadable).
		return dst, fmt.Errorf("%w: %w", ErrUnsupported, err)
	case err != nil:
		return dst, fmt.Errorf("diag: family %d: %w", family, err)
	}
	return dst, nil
}

// ensure reopens the socket after an aborted dump or a Release, in the
// calling thread's network namespace.
func (c *Conn) ensure() error {
	if c.fd >= 0 {
		return nil
	}
	fd, err := openSocket(c.proto)
	if err != nil {
		return err
	}
	c.fd = fd
	return nil
}

// exchange sends one dump request and hands every datagram of the answer
// to datagram until it reports the dump done. A failure to send or
// receive is ioErr, one datagram refused err; after either the socket may
// hold the rest of the dump, so it is dropped and reopened on the next
// call.
func (c *Conn) exchange(req []byte, datagram func(b []byte) (done bool, err error)) (ioErr, err error) {
	if _, err := unix.Write(c.fd, req); err != nil {
		c.abort()
		return fmt.Errorf("diag: send request: %w", err), nil
	}
	for {
		n, err := recvTrunc(c.fd, c.buf)
		if err != nil {
			c.abort()
			return fmt.Errorf("diag: receive: %w", err), nil
		}
		if n > len(c.buf) {
			c.abort()
			c.buf = make([]byte, (n+4095)&^4095)
			return fmt.Errorf("diag: %d-byte datagram truncated, buffer grown for the next dump", n), nil
		}
		done, err := datagram(c.buf[:n])
		if err != nil {
			c.abort()
			return nil, err
		}
		if done {
			return nil, nil
		}
	}
}

func (c *Conn) abort() {
	unix.Close(c.fd)
	c.fd = -1
}

// recvTrunc reads one datagram into b and returns its full length, which
// exceeds len(b) if it was truncated. It calls recvfrom directly because
// unix.Recvfrom and unix.Recvmsg allocate the sender's address.
func recvTrunc(fd int, b []byte) (int, error) {
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd),
			uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), unix.MSG_TRUNC, 0, 0)
		switch e {
		case 0:
			if n == 0 {
				return 0, errors.New("empty datagram")
			}
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}
