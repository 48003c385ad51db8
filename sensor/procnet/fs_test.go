package procnet

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/netview/netview/internal/tcpstate"
)

func find(socks []Socket, proto Proto, local string, state State) (Socket, bool) {
	for _, s := range socks {
		if s.Proto == proto && s.Local == ap(local) && s.State == state {
			return s, true
		}
	}
	return Socket{}, false
}

func TestSocketsFixture(t *testing.T) {
	littleEndianOnly(t)
	socks, err := NewFS("testdata/proc").Sockets(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	states := map[State]bool{}
	for _, s := range socks {
		name := s.Proto.String()
		if s.IPv6 {
			name += "6"
		}
		count[name]++
		if s.Proto == TCP && !s.IPv6 {
			states[s.State] = true
		}
		if s.IPv6 != s.Local.Addr().Is6() || s.IPv6 != s.Remote.Addr().Is6() {
			t.Errorf("%+v: address family does not match its table", s)
		}
	}
	if want := (map[string]int{"tcp": 14, "tcp6": 7, "udp": 7, "udp6": 5}); !equalMaps(count, want) {
		t.Errorf("sockets per table = %v, want %v", count, want)
	}
	for st := State(tcpstate.Established); st <= tcpstate.NewSynRecv; st++ {
		if !states[st] {
			t.Errorf("fixture tcp has no %v socket", st)
		}
	}

	f := func(proto Proto, local string, state State, want Socket) {
		t.Helper()
		got, ok := find(socks, proto, local, state)
		if !ok {
			t.Fatalf("no %v socket %s in %v", proto, local, state)
		}
		want.Proto, want.Local, want.State = proto, ap(local), state
		want.IPv6 = want.Local.Addr().Is6()
		if got != want {
			t.Fatalf("\n got %+v\nwant %+v", got, want)
		}
	}
	f(TCP, "127.0.0.1:8080", tcpstate.Listen, Socket{Remote: ap("0.0.0.0:0"), Inode: 121917})
	f(TCP, "10.0.2.15:50006", tcpstate.TimeWait, Socket{Remote: ap("93.184.216.34:443")})
	f(TCP, "10.0.2.15:50002", tcpstate.FinWait1, Socket{Remote: ap("93.184.216.34:443"), TxQueue: 100000, UID: 1000, Inode: 5000000000})
	f(TCP, "10.0.2.15:22", tcpstate.SynRecv, Socket{Remote: ap("192.168.1.20:61000")})
	f(TCP, "10.0.2.15:8080", tcpstate.CloseWait, Socket{Remote: ap("10.0.2.2:51234"), RxQueue: 0x2000, UID: 33, Inode: 131001})
	f(TCP, "[::ffff:127.0.0.1]:8443", tcpstate.Established, Socket{Remote: ap("[::ffff:127.0.0.1]:59674"), Inode: 121924})
	f(TCP, "[2001:db8:85a3::8a2e:370:7334]:443", tcpstate.Established, Socket{Remote: ap("[2001:db8:1:2:3:4:5:6]:51000"),
		TxQueue: 0x2C0, RxQueue: 0x1F, UID: 1000, Inode: 98765432101})
	f(UDP, "0.0.0.0:2152", tcpstate.Close, Socket{Remote: ap("0.0.0.0:0"), RxQueue: 0xD00, Inode: 121925})
	f(UDP, "10.0.0.5:2152", tcpstate.Established, Socket{Remote: ap("10.0.0.9:2152"), TxQueue: 0x340, Inode: 121930})
	f(UDP, "10.0.0.5:8805", tcpstate.Close, Socket{Remote: ap("0.0.0.0:0"), Inode: 121931})
	f(UDP, "0.0.0.0:1812", tcpstate.Close, Socket{Remote: ap("0.0.0.0:0"), UID: 998, Inode: 121932})
	f(UDP, "0.0.0.0:1813", tcpstate.Close, Socket{Remote: ap("0.0.0.0:0"), UID: 998, Inode: 121933})
	f(UDP, "127.0.0.53:53", tcpstate.Close, Socket{Remote: ap("0.0.0.0:0"), UID: 101, Inode: 17320})
	f(UDP, "127.0.0.1:44758", tcpstate.Established, Socket{Remote: ap("127.0.0.1:8805"), UID: 1000, Inode: 121926})
	f(UDP, "[::]:8805", tcpstate.Close, Socket{Remote: ap("[::]:0"), Inode: 121941})
	f(UDP, "[::1]:41564", tcpstate.Established, Socket{Remote: ap("[::1]:53"), UID: 1000, Inode: 121928})
}

func equalMaps(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestSocketsReusesDst(t *testing.T) {
	dst := make([]Socket, 1, 64)
	dst[0].Inode = 42
	got, err := NewFS("testdata/proc").Sockets(0, dst)
	if err != nil || len(got) != 34 || got[0].Inode != 42 || &got[0] != &dst[0] {
		t.Fatalf("len %d, err %v, reused %v", len(got), err, &got[0] == &dst[0])
	}
}

func TestSocketsPerPid(t *testing.T) {
	littleEndianOnly(t)
	fsys := NewFS("testdata/proc")
	// Only tcp exists for pid 1234: the missing tables are no error.
	socks, err := fsys.Sockets(1234, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Proto: TCP, Local: ap("0.0.0.0:80"), Remote: ap("0.0.0.0:0"), State: tcpstate.Listen, UID: 101, Inode: 4026532300},
		{Proto: TCP, Local: ap("172.17.0.2:80"), Remote: ap("172.17.0.1:40000"), State: tcpstate.Established, UID: 101, Inode: 4026532301},
	}
	if len(socks) != 2 || socks[0] != want[0] || socks[1] != want[1] {
		t.Fatalf("got %+v", socks)
	}
	// A pid that is gone has no tables at all.
	if _, err := fsys.Sockets(999, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Sockets(999) err = %v, want fs.ErrNotExist", err)
	}
	if _, err := fsys.Sockets(-1, nil); err == nil {
		t.Error("Sockets(-1) gave no error")
	}
}

func TestSocketsNamesBadFile(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	good := "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n"
	for name, body := range map[string]string{
		"tcp":  tcpHeader + good + "oops\n" + good,
		"udp6": tcp6Header + "   0: 0100007F:1F90\n",
	} {
		if err := os.WriteFile(filepath.Join(root, "net", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	socks, err := NewFS(root).Sockets(0, nil)
	if len(socks) != 2 || !errors.Is(err, ErrParse) {
		t.Fatalf("got %d sockets, err %v", len(socks), err)
	}
	var lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var pe *ParseError
		if !errors.As(e, &pe) {
			t.Fatalf("%v is not a *ParseError", e)
		}
		lines = append(lines, filepath.Base(pe.File)+":"+strconv.Itoa(pe.Lines[0].Line))
	}
	if len(lines) != 2 || lines[0] != "tcp:3" || lines[1] != "udp6:2" {
		t.Errorf("errors name %v, want [tcp:3 udp6:2]", lines)
	}
}

func TestNetns(t *testing.T) {
	fsys := NewFS("testdata/proc")
	f := func(pid int, want uint64) {
		t.Helper()
		got, err := fsys.Netns(pid)
		if err != nil || got != want {
			t.Fatalf("Netns(%d) = %d, %v; want %d", pid, got, err, want)
		}
	}
	f(0, 4026531840)
	f(1234, 4026532200)
	if _, err := fsys.Netns(999); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Netns(999) err = %v", err)
	}

	for _, link := range []string{"pipe:[4026531840]", "net:[]", "net:[12", "net:[-1]", "net:[18446744073709551616]"} {
		root := t.TempDir()
		if err := os.MkdirAll(filepath.Join(root, "self", "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(link, filepath.Join(root, "self", "ns", "net")); err != nil {
			t.Fatal(err)
		}
		if _, err := NewFS(root).Netns(0); !errors.Is(err, ErrParse) {
			t.Errorf("link %q: err = %v, want ErrParse", link, err)
		}
	}
}

// TestSocketsConcurrent backs the claim that an FS may be shared: buffers
// come from a pool per call (run with -race).
func TestSocketsConcurrent(t *testing.T) {
	fsys := NewFS("testdata/proc")
	want, err := fsys.Sockets(0, nil)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []Socket)
	for range 8 {
		go func() {
			var got []Socket
			for range 50 {
				got, _ = fsys.Sockets(0, got[:0])
			}
			done <- got
		}()
	}
	for range 8 {
		if got := <-done; !slices.Equal(got, want) {
			t.Fatal("concurrent reads disagree")
		}
	}
}

// Namespaces finds each namespace once, under its lowest pid, and passes
// over what is not a process or has no readable namespace link.
func TestNamespaces(t *testing.T) {
	root := t.TempDir()
	for pid, link := range map[string]string{"1": "net:[100]", "7": "net:[200]", "3": "net:[200]", "9": "net:[100]", "12": "bogus"} {
		if err := os.MkdirAll(filepath.Join(root, pid, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(link, filepath.Join(root, pid, "ns", "net")); err != nil {
			t.Fatal(err)
		}
	}
	for _, dir := range []string{"net", "self", "15"} { // not pids, or a pid without ns
		os.MkdirAll(filepath.Join(root, dir), 0o755)
	}
	got, err := NewFS(root).Namespaces(nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(got, func(a, b Namespace) int { return int(a.Inode) - int(b.Inode) })
	if want := []Namespace{{Inode: 100, PID: 1}, {Inode: 200, PID: 3}}; !slices.Equal(got, want) {
		t.Errorf("Namespaces = %v, want %v", got, want)
	}
	// On the real /proc, this process's own namespace is among them.
	own, err := NewFS("/proc").Netns(0)
	if err != nil {
		t.Fatal(err)
	}
	real, err := NewFS("/proc").Namespaces(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(real, func(n Namespace) bool { return n.Inode == own }) {
		t.Errorf("the real /proc's namespaces %v miss our own %d", real, own)
	}
}
