package procnet

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/internal/tcpstate"
)

// TestLiveProc reads this machine's /proc with sockets the test owns, and
// cross-checks the TCP ones against iproute2's ss.
func TestLiveProc(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skipf("no /proc/net/tcp on this machine: %v", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	if _, err := client.Write(make([]byte, 100)); err != nil { // left unread: server RxQueue = 100
		t.Fatal(err)
	}
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	udpConn, err := net.DialUDP("udp4", nil, udp.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer udpConn.Close()

	lport := uint16(ln.Addr().(*net.TCPAddr).Port)
	cport := uint16(client.LocalAddr().(*net.TCPAddr).Port)
	uport := uint16(udp.LocalAddr().(*net.UDPAddr).Port)
	upeer := uint16(udpConn.LocalAddr().(*net.UDPAddr).Port)
	lo := netip.MustParseAddr("127.0.0.1")
	uid := uint32(os.Getuid())

	fsys := NewFS("/proc")
	var socks []Socket
	var server4 Socket
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if socks, err = fsys.Sockets(0, socks[:0]); err != nil {
			t.Fatalf("the real /proc must parse cleanly: %v", err)
		}
		server4, _ = find(socks, TCP, netip.AddrPortFrom(lo, lport).String(), tcpstate.Established)
		if server4.RxQueue == 100 || time.Now().After(deadline) {
			break
		}
	}

	f := func(proto Proto, local, remote netip.AddrPort, state State) Socket {
		t.Helper()
		for _, s := range socks {
			if s.Proto == proto && s.Local == local && s.Remote == remote && s.State == state {
				if s.UID != uid || s.Inode == 0 || s.IPv6 {
					t.Errorf("%+v: want uid %d, an inode, IPv4", s, uid)
				}
				return s
			}
		}
		t.Fatalf("no %v %v -> %v in %v among %d sockets", proto, local, remote, state, len(socks))
		return Socket{}
	}
	listener := f(TCP, netip.AddrPortFrom(lo, lport), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), tcpstate.Listen)
	f(TCP, netip.AddrPortFrom(lo, cport), netip.AddrPortFrom(lo, lport), tcpstate.Established)
	srv := f(TCP, netip.AddrPortFrom(lo, lport), netip.AddrPortFrom(lo, cport), tcpstate.Established)
	f(UDP, netip.AddrPortFrom(lo, uport), netip.AddrPortFrom(netip.IPv4Unspecified(), 0), tcpstate.Close)
	f(UDP, netip.AddrPortFrom(lo, upeer), netip.AddrPortFrom(lo, uport), tcpstate.Established)
	if srv.RxQueue != 100 {
		t.Errorf("server RxQueue = %d, want the 100 unread bytes", srv.RxQueue)
	}
	if ino := inodeOf(t, ln.(*net.TCPListener)); listener.Inode != ino {
		t.Errorf("listener inode %d, fstat says %d", listener.Inode, ino)
	}

	// The process's own pid names the same namespace as pid 0.
	self, err := fsys.Netns(0)
	if err != nil {
		t.Fatal(err)
	}
	if mine, err := fsys.Netns(os.Getpid()); err != nil || mine != self || self == 0 {
		t.Errorf("Netns(0) = %d, Netns(getpid) = %d, %v", self, mine, err)
	}
	byPid, err := fsys.Sockets(os.Getpid(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(byPid, TCP, netip.AddrPortFrom(lo, lport).String(), tcpstate.Listen); !ok {
		t.Error("Sockets(getpid) misses the listener")
	}

	if ln6, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Logf("no IPv6 loopback, tcp6 not checked: %v", err)
	} else {
		defer ln6.Close()
		port := uint16(ln6.Addr().(*net.TCPAddr).Port)
		socks, err = fsys.Sockets(0, socks[:0])
		if s, ok := find(socks, TCP, netip.AddrPortFrom(netip.IPv6Loopback(), port).String(), tcpstate.Listen); err != nil || !ok || !s.IPv6 {
			t.Errorf("[::1]:%d LISTEN not found in tcp6 (%v)", port, err)
		}
	}

	if _, _, err := fsys.SCTP(0); err != nil && !errors.Is(err, ErrUnavailable) {
		t.Errorf("SCTP: %v", err)
	}

	t.Run("ss", func(t *testing.T) {
		if _, err := exec.LookPath("ss"); err != nil {
			t.Skip("iproute2's ss is not installed, so /proc cannot be cross-checked against it")
		}
		out, err := exec.Command("ss", "-tanH").Output()
		if err != nil {
			t.Fatalf("ss -tanH: %v", err)
		}
		ours := func(local netip.AddrPort) bool {
			return local.Addr().Unmap() == lo && (local.Port() == lport || local.Port() == cport)
		}
		var fromSS, fromProc []string
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			// State Recv-Q Send-Q Local:Port Peer:Port [Process]
			cols := strings.Fields(sc.Text())
			if len(cols) < 5 || (cols[0] != "LISTEN" && cols[0] != "ESTAB") {
				continue
			}
			local, remote := ssAddrPort(t, cols[3]), ssAddrPort(t, cols[4])
			if ours(local) {
				fromSS = append(fromSS, cols[0]+" "+local.String()+" "+remote.String()+" recvq="+cols[1])
			}
		}
		socks, err := fsys.Sockets(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range socks {
			if s.Proto != TCP || (s.State != tcpstate.Listen && s.State != tcpstate.Established) || !ours(s.Local) {
				continue
			}
			name := "ESTAB"
			if s.State == tcpstate.Listen {
				name = "LISTEN"
			}
			local := netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port())
			remote := netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port())
			fromProc = append(fromProc, name+" "+local.String()+" "+remote.String()+" recvq="+strconv.Itoa(int(s.RxQueue)))
		}
		slices.Sort(fromSS)
		slices.Sort(fromProc)
		if len(fromProc) != 3 || !slices.Equal(fromSS, fromProc) {
			t.Fatalf("ss and /proc disagree on the test's sockets:\n ss:    %q\n /proc: %q", fromSS, fromProc)
		}
		t.Logf("ss and /proc agree on %q", fromProc)
	})
}

// ssAddrPort parses ss's "addr:port", "[v6]:port", "addr%iface:port" and
// the "*" wildcards it prints for a listener's peer.
func ssAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		t.Fatalf("ss address %q", s)
	}
	host, port := strings.Trim(s[:i], "[]"), s[i+1:]
	if j := strings.IndexByte(host, '%'); j >= 0 {
		host = host[:j]
	}
	if host == "*" {
		host = "0.0.0.0"
	}
	var p uint64
	if port != "*" {
		var err error
		if p, err = strconv.ParseUint(port, 10, 16); err != nil {
			t.Fatalf("ss port %q: %v", s, err)
		}
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		t.Fatalf("ss address %q: %v", s, err)
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(p))
}

func inodeOf(t *testing.T, l *net.TCPListener) uint64 {
	t.Helper()
	rc, err := l.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := rc.Control(func(fd uintptr) { err = syscall.Fstat(int(fd), &st) }); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st.Ino
}
