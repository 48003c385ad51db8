package diag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netview/netview/internal/tcpstate"
)

// Builders for crafted datagrams: the layout mirrors what the kernel sends.

func nlmsg(typ uint16, seq uint32, payload []byte) []byte {
	l := nlmsgHdrLen + len(payload)
	b := make([]byte, align4(l))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(l))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], unix.NLM_F_MULTI)
	ne.PutUint32(b[8:], seq)
	copy(b[nlmsgHdrLen:], payload)
	return b
}

func rtattr(typ uint16, data []byte) []byte {
	l := rtaHdrLen + len(data)
	b := make([]byte, align4(l))
	binary.NativeEndian.PutUint16(b[0:], uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[rtaHdrLen:], data)
	return b
}

// tcpInfo returns a struct tcp_info of n bytes carrying the two counters
// when they fit.
func tcpInfo(n int, sent, recv uint64) []byte {
	b := make([]byte, n)
	if n >= tcpInfoMinLen {
		binary.NativeEndian.PutUint64(b[offBytesAcked:], sent)
		binary.NativeEndian.PutUint64(b[offBytesReceived:], recv)
	}
	return b
}

func diagMsg(s Sock, attrs ...[]byte) []byte {
	m := make([]byte, diagMsgLen)
	m[offFamily] = unix.AF_INET
	if s.IPv6 {
		m[offFamily] = unix.AF_INET6
	}
	m[offState] = s.State
	binary.BigEndian.PutUint16(m[offSport:], s.Local.Port())
	binary.BigEndian.PutUint16(m[offDport:], s.Remote.Port())
	src, dst := s.Local.Addr().AsSlice(), s.Remote.Addr().AsSlice()
	copy(m[offSrc:], src)
	copy(m[offDst:], dst)
	ne := binary.NativeEndian
	ne.PutUint32(m[offCookie:], uint32(s.Cookie))
	ne.PutUint32(m[offCookie+4:], uint32(s.Cookie>>32))
	ne.PutUint32(m[offUID:], s.UID)
	ne.PutUint32(m[offInode:], uint32(s.Inode))
	for _, a := range attrs {
		m = append(m, a...)
	}
	return m
}

func done(seq uint32, ret int32) []byte {
	return nlmsg(unix.NLMSG_DONE, seq, binary.NativeEndian.AppendUint32(nil, uint32(ret)))
}

func errMsg(seq uint32, code int32) []byte {
	p := make([]byte, unix.SizeofNlMsgerr)
	binary.NativeEndian.PutUint32(p, uint32(code))
	return nlmsg(unix.NLMSG_ERROR, seq, p)
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

var (
	sock4 = Sock{
		Local:  netip.MustParseAddrPort("10.0.0.1:443"),
		Remote: netip.MustParseAddrPort("192.168.1.20:51000"),
		State:  tcpstate.Established, UID: 1000, Inode: 4242, Cookie: 0x1_0000_0002,
		BytesSent: 12345, BytesReceived: 678, HasBytes: true,
	}
	sock6 = Sock{
		IPv6:   true,
		Local:  netip.MustParseAddrPort("[2001:db8::1]:8080"),
		Remote: netip.MustParseAddrPort("[::ffff:10.1.2.3]:40000"),
		State:  tcpstate.CloseWait, UID: 0, Inode: 0xffffffff, Cookie: 0xffffffffffffffff,
		BytesSent: 1 << 40, BytesReceived: 7, HasBytes: true,
	}
)

func TestParse(t *testing.T) {
	const seq = 7
	f := func(name string, in []byte, want []Sock, wantDone bool) {
		t.Helper()
		got, d, err := parse(in, seq, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d != wantDone {
			t.Fatalf("%s: done = %v, want %v", name, d, wantDone)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %d socks, want %d: %+v", name, len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%s: sock %d\n got %+v\nwant %+v", name, i, got[i], want[i])
			}
		}
	}
	info := rtattr(inetDiagInfo, tcpInfo(280, sock4.BytesSent, sock4.BytesReceived))
	info6 := rtattr(inetDiagInfo, tcpInfo(tcpInfoMinLen, sock6.BytesSent, sock6.BytesReceived))
	shutdown := rtattr(8, []byte{3}) // INET_DIAG_SHUTDOWN, one byte padded to four
	pad := rtattr(14, nil)           // INET_DIAG_PAD before a 64-bit aligned INFO

	f("empty", nil, nil, false)
	f("v4 with info", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, shutdown, info)), []Sock{sock4}, false)
	f("v6 with pad", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock6, shutdown, pad, info6)), []Sock{sock6}, false)
	f("multi then done", cat(
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, info)),
		nlmsg(unix.NLMSG_NOOP, seq, nil),
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock6, info6)),
		done(seq, 0),
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, info)), // after DONE: ignored
	), []Sock{sock4, sock6}, true)
	f("stale sequence skipped", cat(
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq-1, diagMsg(sock4, info)),
		done(seq-1, 0),
		nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock6, info6)),
	), []Sock{sock6}, false)
	f("ack ends", errMsg(seq, 0), nil, true)

	// Old kernels: tcp_info without the counters, or no INFO at all (TIME_WAIT, request sockets).
	old := sock4
	old.BytesSent, old.BytesReceived, old.HasBytes = 0, 0, false
	f("short tcp_info", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, rtattr(inetDiagInfo, tcpInfo(104, 0, 0)))), []Sock{old}, false)
	f("one byte short", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, rtattr(inetDiagInfo, tcpInfo(tcpInfoMinLen-1, 0, 0)))), []Sock{old}, false)
	f("no info", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, shutdown)), []Sock{old}, false)
	f("nested flag masked", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, rtattr(inetDiagInfo|0x8000, tcpInfo(200, 12345, 678)))), []Sock{sock4}, false)
}

func TestParseErrors(t *testing.T) {
	const seq = 3
	good := nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, rtattr(inetDiagInfo, tcpInfo(232, 1, 2))))
	f := func(name string, in []byte, want error) {
		t.Helper()
		got, _, err := parse(in, seq, nil)
		if err == nil {
			t.Fatalf("%s: no error, got %+v", name, got)
		}
		if want != nil && !errors.Is(err, want) {
			t.Fatalf("%s: error %v, want %v", name, err, want)
		}
	}
	for n := 1; n < len(good); n++ {
		if _, _, err := parse(good[:n], seq, nil); err == nil {
			t.Fatalf("truncated to %d of %d bytes: no error", n, len(good))
		}
	}
	withLen := func(b []byte, l uint32) []byte {
		b = append([]byte(nil), b...)
		binary.NativeEndian.PutUint32(b, l)
		return b
	}
	f("header only partly there", good[:nlmsgHdrLen-1], errShort)
	f("length below header", withLen(good, 8), errShort)
	f("length zero", withLen(good, 0), errShort)
	f("length past datagram", withLen(good, uint32(len(good)+4)), errShort)
	f("length huge", withLen(good, 0xffffffff), errShort)
	f("diag msg short", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, make([]byte, diagMsgLen-1)), errShort)
	f("unknown family", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, make([]byte, diagMsgLen)), nil)
	f("errno", errMsg(seq, -int32(syscall.EPERM)), syscall.EPERM)
	f("errno after data", cat(good, errMsg(seq, -int32(syscall.ENOBUFS))), syscall.ENOBUFS)
	f("error too short", nlmsg(unix.NLMSG_ERROR, seq, []byte{1, 2}), errShort)
	f("positive error code", errMsg(seq, 5), nil)
	f("done with errno", done(seq, -int32(syscall.ENOENT)), syscall.ENOENT)
	f("overrun", nlmsg(unix.NLMSG_OVERRUN, seq, nil), nil)
	f("unknown type", nlmsg(99, seq, nil), nil)

	// Attributes: one that overruns the message, one shorter than its own header, stray bytes.
	overrun := diagMsg(sock4, rtattr(inetDiagInfo, tcpInfo(200, 1, 2)))
	binary.NativeEndian.PutUint16(overrun[diagMsgLen:], 204+8)
	f("attr overruns message", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, overrun), errAttr)
	tiny := diagMsg(sock4, rtattr(8, []byte{1}))
	binary.NativeEndian.PutUint16(tiny[diagMsgLen:], 2)
	f("attr shorter than header", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, tiny), errAttr)
	f("stray attr bytes", nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, append(diagMsg(sock4), 1, 2)), errAttr)
}

// FuzzParse feeds arbitrary datagrams to the parser: it may reject them but
// must not panic, and whatever it accepts must be self-consistent.
func FuzzParse(f *testing.F) {
	const seq = 1
	info := rtattr(inetDiagInfo, tcpInfo(280, 9, 10))
	f.Add(cat(nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, info)), done(seq, 0)))
	f.Add(cat(nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock6, rtattr(14, nil), info)), errMsg(seq, -1)))
	f.Add(nlmsg(unix.SOCK_DIAG_BY_FAMILY, seq, diagMsg(sock4, rtattr(inetDiagInfo, tcpInfo(104, 0, 0)))))
	f.Add(done(seq, -2))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		socks, _, err := parse(b, seq, nil)
		if err == nil && len(socks)*(nlmsgHdrLen+diagMsgLen) > len(b) {
			t.Fatalf("%d socks from %d bytes", len(socks), len(b))
		}
		for _, s := range socks {
			if s.Local.Addr().Is6() != s.IPv6 || s.Remote.Addr().Is6() != s.IPv6 {
				t.Fatalf("family mismatch: %+v", s)
			}
			if !s.HasBytes && (s.BytesSent != 0 || s.BytesReceived != 0) {
				t.Fatalf("bytes without HasBytes: %+v", s)
			}
		}
	})
}

func TestPutRequest(t *testing.T) {
	var b [reqLen]byte
	putRequest(b[:], 9, unix.AF_INET6, 1<<tcpstate.Listen)
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != 72 || ne.Uint16(b[4:]) != 20 || ne.Uint16(b[6:]) != 0x301 || ne.Uint32(b[8:]) != 9 {
		t.Fatalf("header % x", b[:16])
	}
	if b[16] != 10 || b[17] != 6 || b[18] != 2 || ne.Uint32(b[20:]) != 1<<10 {
		t.Fatalf("request % x", b[16:24])
	}
}
