package sensor_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/testenv"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/uplink"
)

// TestMain doubles as a socket-holding child process: with
// NETVIEW_SOCKET_CHILD set, the test binary opens a TCP listener, a
// connection to it and a UDP socket, prints their ports, and waits.
func TestMain(m *testing.M) { testenv.Main(m, "NETVIEW_SOCKET_CHILD", child) }

func child() {
	if os.Getenv("NETVIEW_SOCKET_CHILD") == "netns" {
		loUp() // a new network namespace starts with its loopback down
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		panic(err)
	}
	s, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d %d %d\n", ln.Addr().(*net.TCPAddr).Port, c.LocalAddr().(*net.TCPAddr).Port, u.LocalAddr().(*net.UDPAddr).Port)
	io.Copy(io.Discard, os.Stdin) // until the test closes stdin
	c.Close()
	s.Close()
	u.Close()
}

// loUp brings up the loopback interface of the process's namespace.
func loUp() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		panic(err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		panic(err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		panic(err)
	}
}

type sockets struct {
	pid                        int
	listenPort, connPort, udpP uint16
}

// startChild runs the socket-holding child and returns its pid and ports.
func startChild(t *testing.T) sockets { return startChildIn(t, false) }

// startChildIn runs the child, in a network namespace of its own if asked.
func startChildIn(t *testing.T, ownNetns bool) sockets {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "NETVIEW_SOCKET_CHILD=1")
	if ownNetns {
		cmd.Env = append(os.Environ(), "NETVIEW_SOCKET_CHILD=netns")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	}
	stdin, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	var s sockets
	if _, err := fmt.Sscanf(line, "%d %d %d", &s.listenPort, &s.connPort, &s.udpP); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	return s
}

func newSensor(t testing.TB, ingestURL string, interval time.Duration) *sensor.Sensor {
	t.Helper()
	return newSensorIn(t, t.TempDir(), ingestURL, interval)
}

func newSensorIn(t testing.TB, stateDir, ingestURL string, interval time.Duration, opts ...func(*sensor.Config)) *sensor.Sensor {
	t.Helper()
	cfg := sensor.Config{ProcRoot: "/proc", StateDir: stateDir, Link: uplink.Link{URL: ingestURL, Token: ingesttest.Token},
		Flavor: "standard", Interval: interval, PollInterval: 100 * time.Millisecond, SpoolBytes: 64 << 20, MaxBackoff: time.Second,
		StopTimeout: 10 * time.Second}
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ssOwner returns the pid ss reports for the socket with this local port
// (ss -tanpu as the oracle).
func ssOwner(t *testing.T, proto string, port uint16) (pid int, name string) {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		t.Skip("ss (iproute2) is not installed: no oracle to compare with")
	}
	out, err := exec.Command("ss", "-"+proto+"anpH").Output()
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`users:\(\("([^"]+)",pid=(\d+)`)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || !strings.HasSuffix(f[3], ":"+strconv.Itoa(int(port))) {
			continue
		}
		if m := re.FindStringSubmatch(line); m != nil {
			pid, _ = strconv.Atoi(m[2])
			return pid, m[1]
		}
	}
	t.Fatalf("ss shows no %s socket on port %d:\n%s", proto, port, out)
	return 0, ""
}

// The snapshot attributes real sockets to the right process, as ss does.
func TestSnapshotMatchesSS(t *testing.T) {
	ch := startChild(t)
	s := newSensor(t, "http://127.0.0.1:1/v1/heartbeat", time.Second)
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", ch.pid))
	check := func(what string, port uint16, proto string, p heartbeat.Process) {
		t.Helper()
		pid, name := ssOwner(t, proto, port)
		if int(p.PID) != pid || pid != ch.pid || p.Binary != name || p.BinaryPath != exe {
			t.Errorf("%s :%d attributed to pid %d %q %q; ss says pid %d %q (child %d, exe %s)", what, port, p.PID, p.Binary, p.BinaryPath, pid, name, ch.pid, exe)
		}
	}
	var found int
	for _, l := range h.TCPListeners {
		if l.LocalPort == ch.listenPort {
			check("listener", l.LocalPort, "t", l.Process)
			found++
		}
	}
	for _, c := range h.TCPConnections {
		if c.LocalPort == ch.connPort && c.RemotePort == ch.listenPort {
			check("connection", c.LocalPort, "t", c.Process)
			if c.State != "ESTABLISHED" || c.DurationSecs != nil {
				t.Errorf("connection state %s duration %v: want ESTABLISHED, null (open before the sensor)", c.State, c.DurationSecs)
			}
			found++
		}
	}
	for _, u := range h.UDPListeners {
		if u.LocalPort == ch.udpP {
			check("udp", u.LocalPort, "u", u.Process)
			found++
		}
	}
	if found != 3 {
		t.Fatalf("found %d of the child's 3 sockets in the heartbeat", found)
	}
}

// The sockets of a process in a network namespace of its own are rows too,
// with that namespace's inode and their owner; the same addresses in the
// sensor's namespace are other rows. With AllNetns off only the sensor's
// own namespace is read.
func TestSnapshotOtherNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a new network namespace needs root")
	}
	ch := startChildIn(t, true)
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", ch.pid))
	if err != nil {
		t.Fatal(err)
	}
	childNS := fi.Sys().(*syscall.Stat_t).Ino
	all := newSensorIn(t, t.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second, func(c *sensor.Config) { c.AllNetns = true })
	h, err := all.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if childNS == h.Sensor.Netns {
		t.Fatalf("the child shares the sensor's namespace %d", childNS)
	}
	found := map[string]bool{}
	for _, l := range h.TCPListeners {
		if l.Netns == childNS && l.LocalPort == ch.listenPort && int(l.PID) == ch.pid {
			found["listener"] = true
		}
	}
	for _, c := range h.TCPConnections {
		if c.Netns == childNS && int(c.PID) == ch.pid && (c.LocalPort == ch.connPort || c.RemotePort == ch.connPort) && c.State == "ESTABLISHED" {
			found[fmt.Sprint("connection ", c.LocalPort)] = true
		}
	}
	for _, u := range h.UDPListeners {
		if u.Netns == childNS && u.LocalPort == ch.udpP && int(u.PID) == ch.pid {
			found["udp"] = true
		}
	}
	if len(found) != 4 {
		t.Errorf("in the child's namespace %d the heartbeat has %v, want its listener, both ends of its connection and its UDP socket", childNS, found)
	}
	// Its interfaces are read from inside it, entered through the child
	// (/proc/<pid>/ns/net): its lo, up, holding 127.0.0.1/8.
	var lo []heartbeat.Interface
	for _, r := range h.Interfaces {
		if r.Netns == childNS {
			lo = append(lo, r)
		}
	}
	if len(lo) != 1 || lo[0].Name != "lo" || !lo[0].Up || !slices.Contains(lo[0].Addresses, netip.MustParsePrefix("127.0.0.1/8")) {
		t.Errorf("interfaces of the child's namespace: %+v, want its lo up with 127.0.0.1/8", lo)
	}
	own := newSensor(t, "http://127.0.0.1:1/v1/heartbeat", time.Second)
	h, err = own.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range h.TCPListeners {
		if l.Netns != h.Sensor.Netns {
			t.Errorf("with AllNetns off, a listener of namespace %d: %+v", l.Netns, l)
		}
	}
	for _, r := range h.Interfaces {
		if r.Netns != h.Sensor.Netns {
			t.Errorf("with AllNetns off, an interface of namespace %d: %+v", r.Netns, r)
		}
	}
	if len(h.Interfaces) == 0 {
		t.Errorf("no interfaces of the sensor's own namespace")
	}
}

// A connection opened after the sensor started carries its age; one closed
// is gone from the next snapshot and shows as a completed flow.
func TestConnectionLifecycleAcrossHeartbeats(t *testing.T) {
	s := newSensor(t, "http://127.0.0.1:1/v1/heartbeat", time.Second)
	if _, err := s.Heartbeat(time.Now()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := ln.Accept()
	port := uint16(c.LocalAddr().(*net.TCPAddr).Port)
	s.Poll() // what Run does every poll interval
	time.Sleep(1100 * time.Millisecond)
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// By its whole address pair and state: loopback lets a new connection
	// reuse a port pair still in TIME_WAIT (tcp_tw_reuse), and make test
	// once found such a leftover here instead of this connection.
	lport := uint16(ln.Addr().(*net.TCPAddr).Port)
	var conn *heartbeat.Conn
	for i := range h.TCPConnections {
		if c := &h.TCPConnections[i]; c.LocalPort == port && c.RemotePort == lport && c.State == "ESTABLISHED" {
			conn = c
		}
	}
	if conn == nil || conn.DurationSecs == nil || *conn.DurationSecs < 1 || int(conn.PID) != os.Getpid() {
		t.Fatalf("new connection = %+v, want an age of at least 1 s and this pid %d", conn, os.Getpid())
	}
	s.Poll()
	// The peer closes first. Closed first here, the socket may be handed
	// to the kernel's TIME_WAIT handling once our FIN is acknowledged and
	// before the peer's FIN arrives (when the peer is slower than the
	// delayed ACK, as on a loaded machine): the probe then sees it end
	// half-closed, which docs/architecture.md tells.
	srv.Close()
	time.Sleep(20 * time.Millisecond)
	c.Close()
	time.Sleep(50 * time.Millisecond)
	h, err = s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range h.TCPConnections {
		if c.LocalPort == port && c.State == "ESTABLISHED" {
			t.Fatalf("closed connection still ESTABLISHED in the snapshot")
		}
	}
	var done bool
	for _, f := range h.CompletedFlows {
		if f.SrcPort == port && f.Direction == "outbound" && f.State == "established" {
			done = true
		}
	}
	if !done {
		t.Fatalf("no completed outbound flow from :%d in %+v", port, h.CompletedFlows)
	}
}

// The sensor delivers to a real ingest node: what it saw is in the store,
// and while ingest is down heartbeats wait in the spool and arrive in order.
func TestDeliveryThroughDownIngest(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there yet: ingest is down
	state := t.TempDir()
	s := newSensorIn(t, state, "http://"+addr+"/v1/heartbeat", time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	time.Sleep(2500 * time.Millisecond) // two or three heartbeats spool

	n := ingesttest.StartOn(t, addr, ingesttest.Config(), nil)
	deadline := time.Now().Add(30 * time.Second)
	// The spooled heartbeats, then one made since ingest came up: it holds
	// ingest's own listener, attributed to this process.
	attributed := "SELECT count() AS n FROM tcp_listeners WHERE pid = {p:UInt32} AND local_port = {port:UInt16}"
	_, port, _ := net.SplitHostPort(addr)
	for ingesttest.Count(t, n.Store, "SELECT count() AS n FROM heartbeats FINAL") < 4 ||
		ingesttest.Count(t, n.Store, attributed, store.P("p", strconv.Itoa(os.Getpid())), store.P("port", port)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("spooled heartbeats, or one with ingest's listener attributed to this process, never arrived")
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Stopping delivers the final heartbeat instead of leaving it spooled.
	if left, _ := filepath.Glob(filepath.Join(state, "spool", "*.hb")); len(left) != 0 {
		t.Fatalf("stopped with %d heartbeats still spooled: %v", len(left), left)
	}
	seqs := ingesttest.Count(t, n.Store, "SELECT toUInt64(max(seq) - min(seq) + 1 - count()) AS n FROM heartbeats FINAL")
	if seqs != 0 {
		t.Fatalf("%d heartbeats missing between the first and last seq", seqs)
	}
}

// A telecom sensor reports SCTP associations and endpoints where the kernel
// exposes them, and says plainly when it does not.
func TestTelecomSCTPAndCapabilities(t *testing.T) {
	f := func(root, want string, assocs int) {
		t.Helper()
		cfg := sensor.Config{ProcRoot: root, StateDir: t.TempDir(), Link: uplink.Link{URL: "http://127.0.0.1:1/v1/heartbeat", Token: "x"},
			Flavor: "telecom", Interval: time.Second, PollInterval: time.Second, SpoolBytes: 1 << 20}
		s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.Heartbeat(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Sensor.Capabilities["sctp"]; got != want || len(h.SCTPAssociations) != assocs {
			t.Errorf("%s: sctp capability %q with %d associations, want %q with %d", root, got, len(h.SCTPAssociations), want, assocs)
		}
		if h.Sensor.Capabilities["flow_source"] != "proc" {
			t.Errorf("flow_source = %q, want proc for a fixture root", h.Sensor.Capabilities["flow_source"])
		}
		for _, a := range h.SCTPAssociations {
			if len(a.LocalAddresses) == 0 || len(a.RemoteAddresses) == 0 || a.State == "" {
				t.Errorf("association without addresses or state: %+v", a)
			}
		}
	}
	f("procnet/testdata/proc", "available", countAssocs(t, "procnet/testdata/proc/net/sctp/assocs"))
	f("procnet/testdata/nosctp", "unavailable", 0)
}

func countAssocs(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return len(strings.Split(strings.TrimSpace(string(b)), "\n")) - 1 // header
}

// --sensor.site is a label the format takes, or the sensor does not start:
// a site ingest would refuse would cost every heartbeat.
func TestSiteFlag(t *testing.T) {
	for site, want := range map[string]string{"": "", "fra1": "", "lab-1.east_2": "", "Lab1": `sensor: site "Lab1": want a-z`,
		"a b": `sensor: site "a b"`, "-x": `sensor: site "-x"`, strings.Repeat("s", 64): "want 1 to 63 bytes"} {
		fs := flag.NewFlagSet("sensor", flag.ContinueOnError)
		var cfg sensor.Config
		cfg.RegisterFlags(fs)
		if err := fs.Parse([]string{"--sensor.site=" + site, "--sensor.ingest=http://127.0.0.1:1/v1/heartbeat", "--sensor.token=x"}); err != nil {
			t.Fatal(err)
		}
		err := cfg.Validate()
		switch {
		case want == "" && err != nil:
			t.Errorf("site %q: %v", site, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("site %q: got %v, want %q", site, err, want)
		case cfg.Site != site:
			t.Errorf("site %q parsed as %q", site, cfg.Site)
		}
	}
}
