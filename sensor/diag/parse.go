package diag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Wire layout, from include/uapi/linux/{netlink,sock_diag,inet_diag,tcp}.h.
// Netlink headers and attributes are host-endian; ports and addresses are
// network order.
const (
	nlmsgHdrLen = 16 // struct nlmsghdr: len u32, type u16, flags u16, seq u32, pid u32
	reqV2Len    = 56 // struct inet_diag_req_v2: family, protocol, ext, pad u8; states u32; inet_diag_sockid (48)
	reqLen      = nlmsgHdrLen + reqV2Len
	diagMsgLen  = 72 // struct inet_diag_msg
	rtaHdrLen   = 4  // struct rtattr: len u16, type u16

	// Offsets inside struct inet_diag_msg.
	offFamily = 0
	offState  = 1
	offSport  = 4  // __be16
	offDport  = 6  // __be16
	offSrc    = 8  // __be32[4]
	offDst    = 24 // __be32[4]
	offCookie = 44 // u32[2], low word first
	offUID    = 64
	offInode  = 68

	inetDiagInfo = 2 // INET_DIAG_INFO: struct tcp_info

	// struct tcp_info: 8 one-byte fields, 24 u32 (rto ... total_retrans),
	// then u64 pacing_rate, max_pacing_rate, bytes_acked, bytes_received
	// (Linux 4.1 and later).
	offBytesAcked    = 120
	offBytesReceived = 128
	tcpInfoMinLen    = offBytesReceived + 8

	nlaTypeMask = 0x3fff // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

var (
	errShort = errors.New("truncated message")
	errAttr  = errors.New("malformed attribute")
)

func align4(n int) int { return (n + 3) &^ 3 }

// putRequest writes a SOCK_DIAG_BY_FAMILY dump request for TCP sockets of
// one family asking for INET_DIAG_INFO into b (reqLen bytes).
func putRequest(b []byte, seq uint32, family uint8, states uint32) {
	clear(b[:reqLen])
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], reqLen)
	ne.PutUint16(b[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], seq)
	r := b[nlmsgHdrLen:]
	r[0] = family
	r[1] = unix.IPPROTO_TCP
	r[2] = 1 << (inetDiagInfo - 1) // idiag_ext is a bitmask of attribute types minus one
	ne.PutUint32(r[4:], states)
	// The socket id stays zero: a dump matches every socket.
}

// parse decodes one datagram of a sock_diag dump and appends its sockets to
// dst. done reports that the dump ended (NLMSG_DONE, or an NLMSG_ERROR,
// which is returned as err). Messages of another sequence number are
// skipped. b is only read during the call: Sock values copy what they need.
func parse(b []byte, seq uint32, dst []Sock) (_ []Sock, done bool, err error) {
	done, err = walk(b, seq, func(typ uint16, payload []byte) error {
		if typ != unix.SOCK_DIAG_BY_FAMILY {
			return fmt.Errorf("unexpected netlink message type %d", typ)
		}
		s, err := parseSock(payload)
		if err != nil {
			return err
		}
		dst = append(dst, s)
		return nil
	})
	return dst, done, err
}

// walk goes through the messages of one datagram of a dump, handing each
// of the dump's own (sequence number seq) to msg by type and payload, and
// reports the end of the dump (NLMSG_DONE, or an NLMSG_ERROR returned as
// err). The sock_diag and rtnetlink dumps share it.
func walk(b []byte, seq uint32, msg func(typ uint16, payload []byte) error) (done bool, err error) {
	ne := binary.NativeEndian
	for len(b) > 0 {
		if len(b) < nlmsgHdrLen {
			return false, fmt.Errorf("netlink header: %w (%d bytes left)", errShort, len(b))
		}
		l := int(ne.Uint32(b[0:]))
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("netlink header: length %d of %d bytes: %w", l, len(b), errShort)
		}
		typ := ne.Uint16(b[4:])
		mseq := ne.Uint32(b[8:])
		payload := b[nlmsgHdrLen:l]
		b = b[min(align4(l), len(b)):]
		if mseq != seq {
			continue
		}
		switch typ {
		case unix.NLMSG_NOOP:
		case unix.NLMSG_DONE:
			// The payload is the dump's return value; negative is an errno.
			if len(payload) >= 4 {
				if e := int32(ne.Uint32(payload)); e < 0 {
					return true, fmt.Errorf("dump: %w", syscall.Errno(-e))
				}
			}
			return true, nil
		case unix.NLMSG_ERROR:
			if len(payload) < 4 {
				return true, fmt.Errorf("NLMSG_ERROR: %w", errShort)
			}
			e := int32(ne.Uint32(payload))
			if e == 0 {
				return true, nil // an ack, not sent for dumps unless asked
			}
			if e > 0 {
				return true, fmt.Errorf("NLMSG_ERROR with invalid code %d", e)
			}
			return true, fmt.Errorf("netlink: %w", syscall.Errno(-e))
		case unix.NLMSG_OVERRUN:
			return true, errors.New("netlink: overrun, data lost")
		default:
			if err := msg(typ, payload); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// attrs hands each attribute (struct rtattr) of a that precedes them to
// attr, by type (flags stripped) and data. Each rtattr length counts its
// header but not the padding to the next one.
func attrs(a []byte, attr func(typ uint16, data []byte)) error {
	ne := binary.NativeEndian
	for len(a) > 0 {
		if len(a) < rtaHdrLen {
			return fmt.Errorf("%w: %d stray bytes", errAttr, len(a))
		}
		l := int(ne.Uint16(a[0:]))
		if l < rtaHdrLen || l > len(a) {
			return fmt.Errorf("%w: length %d of %d bytes", errAttr, l, len(a))
		}
		attr(ne.Uint16(a[2:])&nlaTypeMask, a[rtaHdrLen:l])
		a = a[min(align4(l), len(a)):]
	}
	return nil
}

// parseSock decodes struct inet_diag_msg and its attributes.
func parseSock(m []byte) (Sock, error) {
	var s Sock
	if len(m) < diagMsgLen {
		return s, fmt.Errorf("inet_diag_msg: %w (%d bytes)", errShort, len(m))
	}
	ne := binary.NativeEndian
	be := binary.BigEndian
	sport, dport := be.Uint16(m[offSport:]), be.Uint16(m[offDport:])
	switch m[offFamily] {
	case unix.AF_INET:
		s.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[offSrc:])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(m[offDst:])), dport)
	case unix.AF_INET6:
		s.IPv6 = true
		s.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[offSrc:])), sport)
		s.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(m[offDst:])), dport)
	default:
		return s, fmt.Errorf("inet_diag_msg: address family %d", m[offFamily])
	}
	s.State = m[offState]
	s.Cookie = uint64(ne.Uint32(m[offCookie:])) | uint64(ne.Uint32(m[offCookie+4:]))<<32
	s.UID = ne.Uint32(m[offUID:])
	s.Inode = uint64(ne.Uint32(m[offInode:]))

	// Attributes follow the message at its 4-byte-aligned end.
	err := attrs(m[min(align4(diagMsgLen), len(m)):], func(typ uint16, info []byte) {
		// Kernels before 4.1 send a struct tcp_info without the counters.
		if typ == inetDiagInfo && len(info) >= tcpInfoMinLen {
			s.BytesSent = ne.Uint64(info[offBytesAcked:])
			s.BytesReceived = ne.Uint64(info[offBytesReceived:])
			s.HasBytes = true
		}
	})
	return s, err
}
