package sensor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/loopback"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/uplink"
)

// These tests load the real eBPF probes and drive real sockets and
// processes on loopback. The sensor's poll interval is an hour: whatever
// they find, the kernel's probes reported.

// ebpfSensor returns a sensor with --sensor.ebpf=on, or skips where the
// probes cannot load for a stated reason.
func ebpfSensor(t *testing.T) *sensor.Sensor {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading eBPF probes needs root")
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skip("the kernel has no BTF (/sys/kernel/btf/vmlinux): the probes need it")
	}
	cfg := sensor.Config{ProcRoot: "/proc", StateDir: t.TempDir(), Link: uplink.Link{URL: "http://127.0.0.1:1/v1/heartbeat", Token: "x"},
		Flavor: "standard", Interval: time.Hour, PollInterval: time.Hour, SpoolBytes: 1 << 20, EBPF: "on"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func beat(t *testing.T, s *sensor.Sensor) *heartbeat.Heartbeat {
	t.Helper()
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// helper runs this test binary as a child doing what TestEBPFHelper does
// for role, and returns its pid and output.
func helper(t *testing.T, role string, env ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestEBPFHelper$")
	cmd.Env = append(append(os.Environ(), "NETVIEW_EBPF_HELPER="+role), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("helper %s: %v\n%s", role, err, out.String())
	}
	return cmd.Process.Pid, out.String()
}

// TestEBPFHelper is not a test: it is the body of the child processes the
// tests below start (it does nothing unless NETVIEW_EBPF_HELPER is set).
func TestEBPFHelper(t *testing.T) {
	role := os.Getenv("NETVIEW_EBPF_HELPER")
	switch role {
	case "":
		t.Skip("run by the eBPF tests as their child process")
	case "connect":
		// 100 connections, each open for well under 10 ms: write n bytes,
		// read 50, close. Prints "port n" per connection.
		addr := os.Getenv("NETVIEW_ADDR")
		for i := range 100 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			n := 100 + 7*i
			c.Write(make([]byte, n))
			io.ReadFull(c, make([]byte, 50))
			c.Close()
			fmt.Println(c.LocalAddr().(*net.TCPAddr).Port, n)
		}
	case "resolve":
		// getaddrinfo through the C library (GODEBUG=netdns=cgo), then a
		// connection to an address it returned.
		addrs, err := net.LookupHost("localhost")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("answers", strings.Join(addrs, ","))
		c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("NETVIEW_PORT")))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("port", c.LocalAddr().(*net.TCPAddr).Port)
		c.Close()
	case "sensor":
		// A sensor (for the cost benchmark) until stdin closes.
		cfg := sensor.Config{ProcRoot: "/proc", StateDir: os.Getenv("NETVIEW_STATE"), Link: uplink.Link{URL: "http://127.0.0.1:1/v1/heartbeat", Token: "x"}, Flavor: "standard", Interval: 15 * time.Second, PollInterval: time.Second, SpoolBytes: 64 << 20,
			MaxBackoff: time.Minute, StopTimeout: time.Millisecond, EBPF: os.Getenv("NETVIEW_MODE")}
		s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		ctx, cancel := context.WithCancel(context.Background())
		go func() { io.Copy(io.Discard, os.Stdin); cancel() }()
		// NETVIEW_CPUPROFILE=FILE profiles the sensor under the benchmark's
		// load (how docs/performance.md's lesson was found).
		if f := os.Getenv("NETVIEW_CPUPROFILE"); f != "" {
			out, err := os.Create(f)
			if err == nil {
				pprof.StartCPUProfile(out)
			}
		}
		fmt.Println("ready")
		s.Run(ctx)
		pprof.StopCPUProfile() // before os.Exit, which runs no defers
	case "load":
		// New connections at NETVIEW_RATE per second for NETVIEW_SECS
		// seconds, both ends in this process: write 100 bytes, read 50.
		rate, _ := strconv.Atoi(os.Getenv("NETVIEW_RATE"))
		secs, _ := strconv.Atoi(os.Getenv("NETVIEW_SECS"))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		go loopback.Serve(ln, func(c net.Conn) {
			io.ReadFull(c, make([]byte, 100))
			c.Write(make([]byte, 50))
			io.Copy(io.Discard, c)
			c.Close()
		})
		// Open loop: each tick's connection runs on its own, so one slow
		// connection does not hold back the next (a closed loop of serial
		// connections fell short of the rate on a loaded machine).
		fmt.Println("start")
		// Connection i is due at start + i/rate: a ticker drops the ticks a
		// busy loop misses, and fell short of the rate on this machine.
		var n, failed atomic.Int64
		var wg sync.WaitGroup
		start, total := time.Now(), rate*secs
		for i := range total {
			time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					failed.Add(1)
					return
				}
				c.Write(make([]byte, 100))
				io.ReadFull(c, make([]byte, 50))
				c.Close()
				n.Add(1)
			}()
		}
		wg.Wait()
		fmt.Println("connections", n.Load(), "failed", failed.Load())
	case "fallback":
		// A sensor where eBPF is refused (this child runs without
		// privileges): print its log and its capabilities.
		var log bytes.Buffer
		cfg := sensor.Config{ProcRoot: "/proc", StateDir: os.Getenv("NETVIEW_STATE"), Link: uplink.Link{URL: "http://127.0.0.1:1/v1/heartbeat", Token: "x"}, Flavor: "standard", Interval: time.Hour, PollInterval: time.Hour, SpoolBytes: 1 << 20, EBPF: os.Getenv("NETVIEW_MODE")}
		s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(&log, nil)))
		if err != nil {
			fmt.Println("new:", err)
			return
		}
		h, err := s.Heartbeat(time.Now())
		if err != nil {
			fmt.Println("heartbeat:", err)
			os.Exit(1)
		}
		b, _ := json.Marshal(h.Sensor.Capabilities)
		fmt.Printf("log: %scapabilities: %s\n", log.String(), b)
	}
	os.Exit(0)
}

// Short connections that open and close between two polls all appear as
// completed flows with their process, bytes and final state, once each,
// with their connect and accept events.
func TestEBPFShortConnectionsBetweenPolls(t *testing.T) {
	s := ebpfSensor(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvPort := uint16(ln.Addr().(*net.TCPAddr).Port)
	go loopback.Serve(ln, func(c net.Conn) {
		// Read what the client sends until it half-closes... it does
		// not: it reads our 50 bytes, then closes.
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		total := 0
		for total < 100 {
			n, err := c.Read(buf)
			total += n
			if err != nil {
				break
			}
		}
		c.Write(make([]byte, 50))
		io.Copy(io.Discard, c) // until the client's FIN
		c.Close()
	})
	first := beat(t, s)
	if got := first.Sensor.Capabilities["ebpf"]; got != "active" {
		t.Fatalf("ebpf capability %q, want active", got)
	}
	pid, out := helper(t, "connect", "NETVIEW_ADDR="+ln.Addr().String())
	want := map[uint16]uint64{} // client port -> bytes it sent
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var p uint16
		var n uint64
		if _, err := fmt.Sscan(line, &p, &n); err == nil {
			want[p] = n
		}
	}
	if len(want) != 100 {
		t.Fatalf("helper made %d connections, want 100:\n%s", len(want), out)
	}
	// The server closes after the client: wait for its sockets to close.
	time.Sleep(200 * time.Millisecond)
	h := beat(t, s)
	out2, in := map[uint16]heartbeat.Flow{}, map[uint16]heartbeat.Flow{}
	for _, f := range h.CompletedFlows {
		if f.DstPort != srvPort {
			continue
		}
		m := out2
		if f.Direction == "inbound" {
			m = in
		}
		if _, dup := m[f.SrcPort]; dup {
			t.Errorf("flow %s :%d reported twice", f.Direction, f.SrcPort)
		}
		m[f.SrcPort] = f
	}
	comm := filepath.Base(os.Args[0])
	comm = comm[:min(len(comm), 15)]
	for port, n := range want {
		o, ok := out2[port]
		if !ok {
			t.Errorf("no outbound flow from :%d", port)
			continue
		}
		if o.State != "established" || o.BytesSent != n || o.BytesReceived != 50 || int(o.PID) != pid || o.Binary != comm || o.Source != "ebpf" {
			t.Errorf("outbound :%d = %s sent %d received %d pid %d %q source %s; want established, %d, 50, pid %d %q, ebpf",
				port, o.State, o.BytesSent, o.BytesReceived, o.PID, o.Binary, o.Source, n, pid, comm)
		}
		if o.BinaryPath == "" && processAlive(pid) {
			t.Errorf("outbound :%d has no binary path", port)
		}
		i, ok := in[port]
		if !ok {
			t.Errorf("no inbound flow from :%d", port)
			continue
		}
		if i.State != "established" || i.BytesReceived != n || i.BytesSent != 50 || int(i.PID) != os.Getpid() {
			t.Errorf("inbound :%d = %s sent %d received %d pid %d; want established, 50, %d, pid %d",
				port, i.State, i.BytesSent, i.BytesReceived, i.PID, n, os.Getpid())
		}
		if o.EndedAt.Before(o.StartedAt) || o.EndedAt.Sub(o.StartedAt) > time.Second {
			t.Errorf("outbound :%d from %v to %v: want a short flow", port, o.StartedAt, o.EndedAt)
		}
	}
	connects, accepts := 0, 0
	for _, e := range h.Events {
		if e.DstPort != srvPort {
			continue
		}
		if _, ok := want[e.SrcPort]; !ok {
			continue
		}
		switch {
		case e.Kind == "network_connect" && int(e.PID) == pid:
			connects++
		case e.Kind == "network_accept" && int(e.PID) == os.Getpid():
			accepts++
		}
	}
	if connects != 100 || accepts != 100 {
		t.Errorf("%d network_connect and %d network_accept events, want 100 each", connects, accepts)
	}
	if h.Sensor.Capabilities["ebpf_lost_events"] != "0" {
		t.Errorf("ebpf_lost_events = %q, want 0", h.Sensor.Capabilities["ebpf_lost_events"])
	}
}

func processAlive(pid int) bool { _, err := os.Stat("/proc/" + strconv.Itoa(pid)); return err == nil }

// A connect to a closed port ends refused, with a refused connect event.
func TestEBPFRefusedConnect(t *testing.T) {
	s := ebpfSensor(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close() // nothing listens there now: the kernel answers with a reset
	beat(t, s)
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		t.Fatalf("connect to %s succeeded", addr)
	}
	h := beat(t, s)
	var flow *heartbeat.Flow
	for i, f := range h.CompletedFlows {
		if f.DstPort == port && f.Direction == "outbound" {
			flow = &h.CompletedFlows[i]
		}
	}
	if flow == nil || flow.State != "refused" || int(flow.PID) != os.Getpid() || flow.BytesSent != 0 {
		t.Fatalf("flow to :%d = %+v, want refused, from this process", port, flow)
	}
	var ev bool
	for _, e := range h.Events {
		if e.Kind == "network_connect" && e.DstPort == port && e.State == "refused" && e.SrcPort == flow.SrcPort {
			ev = true
		}
	}
	if !ev {
		t.Errorf("no refused network_connect event to :%d in %+v", port, h.Events)
	}
}

// getaddrinfo in a real program is a dns_lookup with its name, answers and
// process.
func TestEBPFGetaddrinfoLookup(t *testing.T) {
	s := ebpfSensor(t)
	if _, err := exec.LookPath("getent"); err != nil {
		t.Skip("getent (libc-bin) is not installed")
	}
	beat(t, s)
	cmd := exec.Command("getent", "ahosts", "localhost")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("getent: %v\n%s", err, out)
	}
	h := beat(t, s)
	for _, e := range h.Events {
		if e.Kind == "dns_lookup" && int(e.PID) == cmd.Process.Pid {
			if e.QueryName != "localhost" || e.Binary != "getent" || !slicesContains(e.Answers, "127.0.0.1") {
				t.Fatalf("lookup = %+v, want localhost -> 127.0.0.1 by getent", e)
			}
			if !strings.HasPrefix(h.Sensor.Capabilities["dns"], "active") {
				t.Errorf("dns capability %q", h.Sensor.Capabilities["dns"])
			}
			return
		}
	}
	t.Fatalf("no dns_lookup from getent (pid %d) in %+v", cmd.Process.Pid, h.Events)
}

func slicesContains(a []netip.Addr, s string) bool {
	for _, x := range a {
		if x.String() == s {
			return true
		}
	}
	return false
}

// dnsQuery builds a query for name and type.
func dnsQuery(name string, qtype uint16) []byte {
	b := []byte{0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, l := range strings.Split(name, ".") {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0, byte(qtype>>8), byte(qtype), 0, 1)
}

// A free loopback address for a port-53 listener: a resolver may already
// hold 127.0.0.1:53 or 127.0.0.53:53.
func dnsListener(t *testing.T) (net.PacketConn, net.Listener, netip.Addr) {
	t.Helper()
	for i := 2; i < 60; i++ {
		a := netip.AddrFrom4([4]byte{127, 53, 7, byte(i)})
		u, err := net.ListenPacket("udp", netip.AddrPortFrom(a, 53).String())
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", netip.AddrPortFrom(a, 53).String())
		if err != nil {
			u.Close()
			continue
		}
		t.Cleanup(func() { u.Close(); l.Close() })
		return u, l, a
	}
	t.Skip("no free 127.53.7.x:53 to listen on")
	return nil, nil, netip.Addr{}
}

// DNS queries sent to port 53 are dns_query events with name and type:
// over UDP by sendto and by write on a connected socket, and over TCP by
// writev (length and message in two segments, as the C library does).
func TestEBPFDNSQuery(t *testing.T) {
	s := ebpfSensor(t)
	_, tl, a := dnsListener(t)
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	beat(t, s)
	server := netip.AddrPortFrom(a, 53)
	u, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.WriteToUDPAddrPort(dnsQuery("sendto.netview.test", 28), server); err != nil { // sendto
		t.Fatal(err)
	}
	cu, err := net.Dial("udp", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer cu.Close()
	cu.Write(dnsQuery("write.netview.test", 1)) // write
	ct, err := net.Dial("tcp", server.String())
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	q := dnsQuery("tcp.netview.test", 16)
	bufs := net.Buffers{{byte(len(q) >> 8), byte(len(q))}, q}
	if _, err := bufs.WriteTo(ct); err != nil { // writev
		t.Fatal(err)
	}
	h := beat(t, s)
	want := map[string]string{"sendto.netview.test": "AAAA/udp", "write.netview.test": "A/udp", "tcp.netview.test": "TXT/tcp"}
	for _, e := range h.Events {
		if e.Kind != "dns_query" || e.DstAddress != a || e.DstPort != 53 {
			continue
		}
		if w, ok := want[e.QueryName]; ok && w == e.QueryType+"/"+e.Protocol && int(e.PID) == os.Getpid() {
			delete(want, e.QueryName)
		}
	}
	if len(want) > 0 {
		t.Fatalf("dns_query events missing for %v among %+v", want, h.Events)
	}
}

// A getaddrinfo followed by a connection to one of its answers is a
// dns_resolution naming the host the connection was made for.
func TestEBPFResolutionJoinsLookupToConnect(t *testing.T) {
	s := ebpfSensor(t)
	out, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Skip("the test binary needs cgo to call the C library's getaddrinfo")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go loopback.Serve(ln, func(c net.Conn) { c.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	beat(t, s)
	pid, res := helper(t, "resolve", "GODEBUG=netdns=cgo", "NETVIEW_PORT="+strconv.Itoa(port))
	var local uint16
	sc := bufio.NewScanner(strings.NewReader(res))
	for sc.Scan() {
		fmt.Sscanf(sc.Text(), "port %d", &local)
	}
	h := beat(t, s)
	var lookup, resolution bool
	for _, e := range h.Events {
		if int(e.PID) != pid {
			continue
		}
		switch e.Kind {
		case "dns_lookup":
			lookup = e.QueryName == "localhost"
		case "dns_resolution":
			if e.QueryName != "localhost" || e.DstAddress.String() != "127.0.0.1" || int(e.DstPort) != port || e.SrcPort != local ||
				!slicesContains(e.Answers, "127.0.0.1") {
				t.Errorf("resolution = %+v, want localhost for 127.0.0.1:%d from :%d", e, port, local)
			}
			resolution = true
		}
	}
	if !lookup || !resolution {
		t.Fatalf("helper pid %d: lookup %v, resolution %v in %+v\n%s", pid, lookup, resolution, h.Events, res)
	}
}

// Where the probes are refused (here: a child without privileges), the
// sensor polls, says so in one log line and in its ebpf capability; with
// --sensor.ebpf=on it does not start.
func TestEBPFRefusedFallsBackToPolling(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child without privileges")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	// The child runs as nobody: it needs a binary and a state folder it can use.
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755) // t.TempDir makes both levels 0700
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "sensor.test")
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(mode string) string {
		state := filepath.Join(dir, "state-"+mode)
		os.Mkdir(state, 0o777)
		os.Chmod(state, 0o777)
		cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
			bin, "-test.run=^TestEBPFHelper$")
		cmd.Env = append(os.Environ(), "NETVIEW_EBPF_HELPER=fallback", "NETVIEW_STATE="+state, "NETVIEW_MODE="+mode)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child (%s): %v\n%s", mode, err, out)
		}
		return string(out)
	}
	out := run("auto")
	t.Logf("child without privileges:\n%s", out)
	if !strings.Contains(out, `msg="eBPF probes unavailable, following flows by polling only"`) {
		t.Errorf("no fallback log line in:\n%s", out)
	}
	_, caps, _ := strings.Cut(out, "capabilities: ")
	var c map[string]string
	if err := json.Unmarshal([]byte(strings.TrimSpace(caps)), &c); err != nil {
		t.Fatalf("capabilities: %v\n%s", err, out)
	}
	if !strings.HasPrefix(c["ebpf"], "unavailable: ") || c["flow_source"] != "inet_diag" || !strings.HasPrefix(c["lsm"], "unavailable") ||
		c["ebpf_probes"] != "" || !strings.HasPrefix(c["dns"], "unavailable") {
		t.Errorf("capabilities %v: want ebpf unavailable with a reason, flow_source inet_diag, lsm and dns unavailable", c)
	}
	if out := run("on"); !strings.Contains(out, "new: sensor: ebpf:") {
		t.Errorf("--sensor.ebpf=on without privileges started anyway:\n%s", out)
	}
}

// The sensor's metrics say what its capabilities say: the probes attached
// and the kernel records lost.
func TestEBPFMetricsMatchCapabilities(t *testing.T) {
	s := ebpfSensor(t)
	c := beat(t, s).Sensor.Capabilities
	var b bytes.Buffer
	s.Metrics().WritePrometheus(&b)
	m := b.String()
	for _, want := range []string{
		fmt.Sprintf("netview_sensor_ebpf_probes_active %d\n", len(strings.Split(c["ebpf_probes"], ","))),
		"netview_sensor_ebpf_lost_events_total " + c["ebpf_lost_events"] + "\n",
	} {
		if c["ebpf_probes"] == "" || !strings.Contains(m, want) {
			t.Errorf("metrics lack %q (capabilities %v):\n%s", want, c, m)
		}
	}
}
