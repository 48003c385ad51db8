package diag

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netview/netview/internal/tcpstate"
)

// These tests talk to the running kernel over loopback.

func openConn(t testing.TB) *Conn {
	t.Helper()
	c, err := Open()
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel has no socket diagnostics: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// listen opens a loopback listener, skipping when the address family is not
// configured (e.g. no ::1 in a container without IPv6).
func listen(t testing.TB, network, addr string) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		if network == "tcp6" {
			t.Skipf("IPv6 loopback [::1] not configured: %v", err)
		}
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

// pair dials ln and returns the client and the accepted server side.
func pair(t testing.TB, ln *net.TCPListener) (client, server *net.TCPConn) {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() { c, err := ln.Accept(); ch <- res{c, err} }()
	c, err := net.Dial(ln.Addr().Network(), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { c.Close(); r.c.Close() })
	return c.(*net.TCPConn), r.c.(*net.TCPConn)
}

// exchange writes n bytes from a to b and reads them fully.
func exchange(t *testing.T, a, b *net.TCPConn, n int) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { _, err := a.Write(bytes.Repeat([]byte{'x'}, n)); errc <- err }()
	if _, err := io.ReadFull(b, make([]byte, n)); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	ap := a.(interface{ AddrPort() netip.AddrPort }).AddrPort()
	if ap.Addr().Is4In6() {
		ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) // Go's 16-byte form of an IPv4 address
	}
	return ap
}

// fdInode returns the inode of the conn's socket from /proc/self/fd.
func fdInode(t *testing.T, c *net.TCPConn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var link string
	var rerr error
	if err := rc.Control(func(fd uintptr) { link, rerr = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd)) }); err != nil {
		t.Fatal(err)
	}
	if rerr != nil {
		t.Fatal(rerr)
	}
	var ino uint64
	if _, err := fmt.Sscanf(link, "socket:[%d]", &ino); err != nil {
		t.Fatalf("readlink %q: %v", link, err)
	}
	return ino
}

func find(socks []Sock, local, remote netip.AddrPort) (Sock, bool) {
	for _, s := range socks {
		if s.Local == local && s.Remote == remote {
			return s, true
		}
	}
	return Sock{}, false
}

func TestLoopback(t *testing.T) {
	for _, tc := range []struct{ network, addr string }{
		{"tcp4", "127.0.0.1:0"},
		{"tcp6", "[::1]:0"},
	} {
		t.Run(tc.network, func(t *testing.T) { testLoopback(t, tc.network, tc.addr) })
	}
}

func testLoopback(t *testing.T, network, addr string) {
	c := openConn(t)
	ln := listen(t, network, addr)
	client, server := pair(t, ln)
	const up, down = 12345, 678
	exchange(t, client, server, up)
	exchange(t, server, client, down)

	lnAddr := addrPort(ln.Addr())
	cl, sv := addrPort(client.LocalAddr()), addrPort(server.LocalAddr())
	if sv != lnAddr || addrPort(client.RemoteAddr()) != lnAddr {
		t.Fatalf("unexpected addresses: listener %v server %v", lnAddr, sv)
	}
	v6 := network == "tcp6"

	// Loopback acks arrive right after the reads, but give them up to a second.
	var socks []Sock
	var cs, ss Sock
	deadline := time.Now().Add(time.Second)
	for {
		var err error
		if socks, err = c.TCP(0, socks[:0]); err != nil {
			t.Fatal(err)
		}
		var ok1, ok2 bool
		cs, ok1 = find(socks, cl, lnAddr)
		ss, ok2 = find(socks, sv, cl)
		if !ok1 || !ok2 {
			t.Fatalf("client (%v) found %v, server (%v) found %v in %d sockets", cl, ok1, sv, ok2, len(socks))
		}
		if cs.BytesSent == up+1 && ss.BytesSent == down || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	check := func(name string, s Sock, sent, recv uint64, conn *net.TCPConn) {
		t.Helper()
		if s.State != tcpstate.Established || s.IPv6 != v6 {
			t.Errorf("%s: state %d ipv6 %v", name, s.State, s.IPv6)
		}
		if !s.HasBytes || s.BytesSent != sent || s.BytesReceived != recv {
			t.Errorf("%s: bytes sent %d received %d (has %v), want %d %d", name, s.BytesSent, s.BytesReceived, s.HasBytes, sent, recv)
		}
		if ino := fdInode(t, conn); s.Inode == 0 || s.Inode != ino {
			t.Errorf("%s: inode %d, /proc/self/fd says %d", name, s.Inode, ino)
		}
		if s.UID != uint32(os.Geteuid()) {
			t.Errorf("%s: uid %d, want %d", name, s.UID, os.Geteuid())
		}
		if s.Cookie == 0 {
			t.Errorf("%s: zero cookie", name)
		}
	}
	// bytes_acked counts sequence space: the connecting side's SYN is one
	// acked byte more than it wrote. The accepting side counts data only.
	check("client", cs, up+1, down, client)
	check("server", ss, down, up, server)
	if cs.Cookie == ss.Cookie {
		t.Errorf("client and server share cookie %x", cs.Cookie)
	}

	zero := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if v6 {
		zero = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	ls, ok := find(socks, lnAddr, zero)
	if !ok || ls.State != tcpstate.Listen {
		t.Fatalf("listener %v: found %v state %d", lnAddr, ok, ls.State)
	}

	// Cookies are stable across dumps.
	again, err := c.TCP(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Sock{cs, ss, ls} {
		got, ok := find(again, want.Local, want.Remote)
		if !ok || got.Cookie != want.Cookie {
			t.Errorf("%v: second dump cookie %x (found %v), first %x", want.Local, got.Cookie, ok, want.Cookie)
		}
	}
}

func TestStateFilter(t *testing.T) {
	c := openConn(t)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	pair(t, ln)
	socks, err := c.TCP(1<<tcpstate.Listen, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sawListener bool
	for _, s := range socks {
		if s.State != tcpstate.Listen {
			t.Errorf("LISTEN-only dump returned %+v", s)
		}
		sawListener = sawListener || s.Local == addrPort(ln.Addr())
	}
	if !sawListener {
		t.Errorf("listener %v missing from %d LISTEN sockets", ln.Addr(), len(socks))
	}

	est, err := c.TCP(1<<tcpstate.Established, socks[:0])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range est {
		if s.State != tcpstate.Established {
			t.Errorf("ESTABLISHED-only dump returned %+v", s)
		}
	}
}

// TestTimeWait checks what a closed connection leaves behind: a TIME_WAIT
// minisocket with no inode, uid or tcp_info, but the cookie of the full socket.
func TestTimeWait(t *testing.T) {
	c := openConn(t)
	ln := listen(t, "tcp4", "127.0.0.1:0")
	client, server := pair(t, ln)
	local, remote := addrPort(client.LocalAddr()), addrPort(client.RemoteAddr())
	socks, err := c.TCP(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	before, ok := find(socks, local, remote)
	if !ok {
		t.Fatal("client socket missing")
	}
	client.Close() // the active closer ends in TIME_WAIT
	io.Copy(io.Discard, server)
	server.Close()

	deadline := time.Now().Add(2 * time.Second)
	for {
		socks, err = c.TCP(0, socks[:0])
		if err != nil {
			t.Fatal(err)
		}
		s, ok := find(socks, local, remote)
		if !ok {
			t.Fatal("client socket vanished instead of entering TIME_WAIT")
		}
		if s.State == tcpstate.TimeWait {
			if s.Inode != 0 || s.UID != 0 || s.HasBytes || s.Cookie != before.Cookie {
				t.Errorf("TIME_WAIT %+v, cookie before %x", s, before.Cookie)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still in state %d", s.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type ssKey struct {
	local, remote netip.AddrPort
	state         uint8
}

var ssStates = map[string]uint8{
	"ESTAB": tcpstate.Established, "SYN-SENT": tcpstate.SynSent, "SYN-RECV": tcpstate.SynRecv,
	"FIN-WAIT-1": tcpstate.FinWait1, "FIN-WAIT-2": tcpstate.FinWait2, "TIME-WAIT": tcpstate.TimeWait,
	"UNCONN": tcpstate.Close, "CLOSE-WAIT": tcpstate.CloseWait, "LAST-ACK": tcpstate.LastAck,
	"LISTEN": tcpstate.Listen, "CLOSING": tcpstate.Closing,
}

// ssDump runs `ss -tanH` and returns the sockets touching one of ports.
func ssDump(t *testing.T, ports map[uint16]bool) map[ssKey]bool {
	t.Helper()
	out, err := exec.Command("ss", "-tanH").Output()
	if err != nil {
		t.Fatalf("ss -tanH: %v", err)
	}
	parse := func(s string) (netip.AddrPort, bool) {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return netip.AddrPort{}, false
		}
		host, port := strings.Trim(s[:i], "[]"), s[i+1:]
		if port == "*" {
			port = "0"
		}
		if host == "*" {
			host = "0.0.0.0"
		}
		a, err1 := netip.ParseAddr(host)
		p, err2 := strconv.ParseUint(port, 10, 16)
		return netip.AddrPortFrom(a, uint16(p)), err1 == nil && err2 == nil
	}
	set := map[ssKey]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 5 {
			continue
		}
		l, ok1 := parse(f[3])
		r, ok2 := parse(f[4])
		st, ok3 := ssStates[f[0]]
		if ok1 && ok2 && ok3 && (ports[l.Port()] || ports[r.Port()]) {
			set[ssKey{l, r, st}] = true
		}
	}
	return set
}

func TestMatchesSS(t *testing.T) {
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) not installed")
	}
	c := openConn(t)
	ports := map[uint16]bool{}
	for _, tc := range []struct{ network, addr string }{{"tcp4", "127.0.0.1:0"}, {"tcp6", "[::1]:0"}} {
		ln, err := net.Listen(tc.network, tc.addr)
		if err != nil {
			t.Logf("%s loopback not available, comparing without it: %v", tc.network, err)
			continue
		}
		t.Cleanup(func() { ln.Close() })
		tl := ln.(*net.TCPListener)
		ports[addrPort(ln.Addr()).Port()] = true
		for range 3 {
			cl, _ := pair(t, tl)
			ports[addrPort(cl.LocalAddr()).Port()] = true
		}
	}

	// Both views are snapshots; retry a few times in case a socket changes state in between.
	var mine, theirs map[ssKey]bool
	for range 5 {
		socks, err := c.TCP(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		mine = map[ssKey]bool{}
		for _, s := range socks {
			if ports[s.Local.Port()] || ports[s.Remote.Port()] {
				mine[ssKey{s.Local, s.Remote, s.State}] = true
			}
		}
		theirs = ssDump(t, ports)
		if len(mine) > 0 && fmt.Sprint(sortedKeys(mine)) == fmt.Sprint(sortedKeys(theirs)) {
			t.Logf("%d sockets agree with ss", len(mine))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("diag and ss differ\ndiag: %v\nss:   %v", sortedKeys(mine), sortedKeys(theirs))
}

func sortedKeys(m map[ssKey]bool) []string {
	var s []string
	for k := range m {
		s = append(s, fmt.Sprintf("%v>%v/%d", k.local, k.remote, k.state))
	}
	slices.Sort(s)
	return s
}

func TestClosed(t *testing.T) {
	c := openConn(t)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.TCP(0, nil); err == nil {
		t.Fatal("TCP after Close succeeded")
	}
}

// manyPairs opens n loopback connection pairs, raising RLIMIT_NOFILE as needed.
func manyPairs(tb testing.TB, n int) {
	tb.Helper()
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		tb.Fatal(err)
	}
	if need := uint64(2*n + 256); lim.Cur < need {
		lim.Cur = need
		lim.Max = max(lim.Max, need)
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			tb.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", need, err)
		}
	}
	ln := listen(tb, "tcp4", "127.0.0.1:0")
	for range n {
		pair(tb, ln)
	}
}

func TestDumpAllocs(t *testing.T) {
	c := openConn(t)
	manyPairs(t, 50)
	socks, err := c.TCP(0, make([]Sock, 0, 4096))
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if socks, err = c.TCP(0, socks[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per dump of %d sockets, want 0", allocs, len(socks))
	}
}

// An aborted dump drops the socket; the next call reopens it transparently.
func TestReopenAfterAbort(t *testing.T) {
	c := openConn(t)
	c.abort()
	if _, err := c.TCP(0, nil); err != nil {
		t.Fatal(err)
	}
	if c.fd < 0 {
		t.Fatal("socket not reopened")
	}
}

func BenchmarkDump(b *testing.B) {
	c := openConn(b)
	manyPairs(b, 1000)
	socks, err := c.TCP(0, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if socks, err = c.TCP(0, socks[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(socks)), "sockets")
}
