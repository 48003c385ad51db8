package diag

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// Link is one network interface of a namespace, as rtnetlink reports it.
type Link struct {
	Index uint32
	Name  string
	Up    bool // IFF_UP: administratively up
	// HW is the link-layer address, HWLen bytes of it; 0 for links
	// without one (tunnels, wireguard).
	HW    [32]byte
	HWLen uint8
	// Addrs are the link's addresses with their prefix length, IPv4 as
	// 4-byte addresses, in the kernel's order.
	Addrs []netip.Prefix
}

// Wire layout of rtnetlink, from include/uapi/linux/{rtnetlink,if_link,
// if_addr}.h; host-endian like the rest of netlink.
const (
	ifinfoLen = 16 // struct ifinfomsg: family u8, pad u8, type u16, index i32, flags u32, change u32
	ifaddrLen = 8  // struct ifaddrmsg: family, prefixlen, flags, scope u8; index u32

	iflaAddress = 1 // IFLA_ADDRESS: the link-layer address
	iflaIfname  = 3 // IFLA_IFNAME: NUL-terminated
	ifaAddress  = 1 // IFA_ADDRESS: the address, or the peer's on point-to-point links
	ifaLocal    = 2 // IFA_LOCAL: the local address where it differs
)

// OpenRoute opens a NETLINK_ROUTE socket in the calling thread's network
// namespace; its Links are that namespace's interfaces.
func OpenRoute() (*Conn, error) { return open(unix.NETLINK_ROUTE) }

// Release closes the socket but keeps the Conn and its buffers: the next
// call opens another, in the namespace of the thread that makes it. A
// socket opened inside another namespace holds that namespace alive, so
// one used there is released before its thread leaves.
func (c *Conn) Release() {
	if c.fd >= 0 {
		c.abort()
	}
}

// Links appends the interfaces of the socket's network namespace, with
// their addresses, to dst (which the caller may reuse) and returns it. It
// runs two dumps, RTM_GETLINK then RTM_GETADDR; an address whose link the
// first did not list (added in between) is left out. Reusing dst, a
// warm call allocates only for a link whose name changed or whose address
// list outgrew the one of the link at its place before. On error dst is
// returned at its original length.
func (c *Conn) Links(dst []Link) ([]Link, error) {
	if c.closed {
		return dst, errClosed
	}
	if err := c.ensure(); err != nil {
		return dst, err
	}
	n := len(dst)
	c.seq++
	putDump(c.req[:], c.seq, unix.RTM_GETLINK, ifinfoLen)
	ioErr, err := c.exchange(c.req[:nlmsgHdrLen+ifinfoLen], func(b []byte) (bool, error) {
		return walk(b, c.seq, func(typ uint16, m []byte) error {
			if typ != unix.RTM_NEWLINK {
				return fmt.Errorf("unexpected rtnetlink message type %d", typ)
			}
			var err error
			dst, err = parseLink(m, dst)
			return err
		})
	})
	if err == nil && ioErr == nil {
		links := dst[n:]
		c.seq++
		putDump(c.req[:], c.seq, unix.RTM_GETADDR, ifaddrLen)
		ioErr, err = c.exchange(c.req[:nlmsgHdrLen+ifaddrLen], func(b []byte) (bool, error) {
			return walk(b, c.seq, func(typ uint16, m []byte) error {
				if typ != unix.RTM_NEWADDR {
					return fmt.Errorf("unexpected rtnetlink message type %d", typ)
				}
				return parseAddr(m, links)
			})
		})
	}
	switch {
	case ioErr != nil:
		return dst[:n], ioErr
	case err != nil:
		return dst[:n], fmt.Errorf("diag: rtnetlink: %w", err)
	}
	return dst, nil
}

// putDump writes a dump request of type typ for every family, its
// message (ifinfomsg or ifaddrmsg, of body bytes) all zero, into b.
func putDump(b []byte, seq uint32, typ uint16, body int) {
	clear(b[:nlmsgHdrLen+body])
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(nlmsgHdrLen+body))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
}

// parseLink appends the link of one RTM_NEWLINK message to dst. The link
// at its place in dst's spare capacity (the previous dump's, usually the
// same interface) lends its name and address list, so a warm dump of
// unchanged links allocates nothing; a caller that keeps a Link's Addrs
// past the next call into the same dst copies them.
func parseLink(m []byte, dst []Link) ([]Link, error) {
	if len(m) < ifinfoLen {
		return dst, fmt.Errorf("ifinfomsg: %w (%d bytes)", errShort, len(m))
	}
	ne := binary.NativeEndian
	var old Link
	if len(dst) < cap(dst) {
		old = dst[:len(dst)+1][len(dst)]
	}
	l := Link{Index: ne.Uint32(m[4:]), Up: ne.Uint32(m[8:])&unix.IFF_UP != 0, Addrs: old.Addrs[:0]}
	err := attrs(m[ifinfoLen:], func(typ uint16, data []byte) {
		switch typ {
		case iflaIfname:
			name := data
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			if string(name) == old.Name {
				l.Name = old.Name
			} else {
				l.Name = string(name)
			}
		case iflaAddress:
			l.HWLen = uint8(copy(l.HW[:], data))
		}
	})
	if err != nil {
		return dst, err
	}
	return append(dst, l), nil
}

// parseAddr adds the address of one RTM_NEWADDR message to its link in
// links. IFA_LOCAL is the interface's own address where it is given (on a
// point-to-point link IFA_ADDRESS is the peer's), as ip(8) reads it.
func parseAddr(m []byte, links []Link) error {
	if len(m) < ifaddrLen {
		return fmt.Errorf("ifaddrmsg: %w (%d bytes)", errShort, len(m))
	}
	family, bits, index := m[0], int(m[1]), binary.NativeEndian.Uint32(m[4:])
	var local, addr netip.Addr
	err := attrs(m[ifaddrLen:], func(typ uint16, data []byte) {
		var a netip.Addr
		switch {
		case family == unix.AF_INET && len(data) == 4:
			a = netip.AddrFrom4([4]byte(data))
		case family == unix.AF_INET6 && len(data) == 16:
			a = netip.AddrFrom16([16]byte(data))
		default:
			return
		}
		switch typ {
		case ifaLocal:
			local = a
		case ifaAddress:
			addr = a
		}
	})
	if err != nil {
		return err
	}
	if local.IsValid() {
		addr = local
	}
	if !addr.IsValid() {
		return nil // a family this does not read (none today)
	}
	// Not addr.Prefix, which masks: the host's own address is kept.
	p := netip.PrefixFrom(addr, bits)
	if !p.IsValid() {
		return fmt.Errorf("address %s: prefix length %d", addr, bits)
	}
	for i := range links {
		if links[i].Index == index {
			links[i].Addrs = append(links[i].Addrs, p)
			return nil
		}
	}
	return nil
}
