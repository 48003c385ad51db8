package sensor_test

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/testenv"
	"github.com/netview/netview/sensor"
)

// These tests run real Podman containers from a folder holding a static
// busybox (no image can be pulled on the test machines) and check what the
// sensor's heartbeat says about their sockets, against what Podman says
// about the containers.

// podmanBin returns the podman binary, or skips: `make test` installs
// Podman, runc and busybox-static and sets NETVIEW_REQUIRE_CONTAINERS,
// under which a missing piece fails instead.
func podmanBin(t *testing.T) string {
	t.Helper()
	podman, err := exec.LookPath("podman")
	var missing string
	switch {
	case os.Geteuid() != 0:
		missing = "the tests are not run as root (rootful Podman, and the sensor reads every process's namespace)"
	case err != nil:
		missing = "podman is not installed (Debian package podman)"
	case !found("runc"):
		missing = "runc is not installed (Debian package runc; crun refuses hybrid cgroup hosts)"
	case !staticELF("/bin/busybox"):
		missing = "/bin/busybox is missing or not statically linked (Debian package busybox-static)"
	}
	testenv.Require(t, "NETVIEW_REQUIRE_CONTAINERS", "the container tests need Podman, runc and a static busybox", missing)
	return podman
}

func found(name string) bool { _, err := exec.LookPath(name); return err == nil }

// staticELF reports whether path is an ELF executable without an
// interpreter: copied alone into a container's root, it still runs.
func staticELF(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// busyboxRoot makes a container root folder: bin/busybox and the applets
// the tests run.
func busyboxRoot(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(filepath.Join(bin, "busybox"), os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	for _, applet := range []string{"sh", "httpd", "nc", "sleep"} {
		if err := os.Symlink("busybox", filepath.Join(bin, applet)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// podmanRun runs podman with runc and returns its trimmed output.
func podmanRun(t *testing.T, podman string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, podman, append([]string{"--runtime", "runc"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// ctr is a running container as Podman reports it.
type ctr struct {
	name, id string
	pid      int    // its first process, on the host
	netns    uint64 // inode of /proc/<pid>/ns/net
}

// startContainer runs cmd in a new container named name on network
// ("none": loopback only; "": Podman's default bridge), removed when the
// test ends.
func startContainer(t *testing.T, podman, name, network string, cmd ...string) ctr {
	t.Helper()
	root := busyboxRoot(t)
	// Registered before the run, so that a half-made container goes too;
	// -t 0 kills at once (sh as pid 1 ignores SIGTERM: 10 s otherwise).
	t.Cleanup(func() { exec.Command(podman, "--runtime", "runc", "rm", "-f", "-t", "0", name).Run() })
	args := []string{"run", "-d", "--name", name,
		// Podman's default limits are above the test machines' hard ones:
		// the container would fail with setrlimit EPERM.
		"--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"}
	if network != "" {
		args = append(args, "--network", network)
	}
	args = append(append(args, "--rootfs", root), cmd...)
	out := podmanRun(t, podman, args...)
	c := ctr{name: name, id: out[strings.LastIndexByte(out, '\n')+1:]}
	pid, err := strconv.Atoi(podmanRun(t, podman, "inspect", "--format", "{{.State.Pid}}", name))
	if err != nil || pid <= 0 {
		t.Fatalf("podman inspect %s: pid %d, %v", name, pid, err)
	}
	c.pid, c.netns = pid, netnsOf(t, pid)
	return c
}

func netnsOf(t *testing.T, pid int) uint64 {
	t.Helper()
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

// inNetns reports whether pid lives in the network namespace netns.
func inNetns(pid uint32, netns uint64) bool {
	fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
	return err == nil && fi.Sys().(*syscall.Stat_t).Ino == netns
}

// ownedBy says what is wrong with p as the owner of a socket of c, or "".
func ownedBy(p heartbeat.Process, c ctr) string {
	switch {
	case p.ContainerID != c.id || p.ContainerRuntime != "podman" || p.ContainerName != c.name:
		return fmt.Sprintf("container %q runtime %q name %q, want %q podman %q", p.ContainerID, p.ContainerRuntime, p.ContainerName, c.id, c.name)
	case !inNetns(p.PID, c.netns):
		return fmt.Sprintf("pid %d, not a process of the container's namespace %d", p.PID, c.netns)
	}
	return ""
}

// heartbeatUntil takes heartbeats from a sensor reading every namespace
// until problems finds none, or for 15 s, and reports the last problems:
// the containers' own processes open their sockets a moment after start.
func heartbeatUntil(t *testing.T, problems func(h *heartbeat.Heartbeat) []string) {
	t.Helper()
	s := newSensorIn(t, t.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second, func(c *sensor.Config) { c.AllNetns = true })
	deadline := time.Now().Add(15 * time.Second)
	for {
		h, err := s.Heartbeat(time.Now())
		if err != nil {
			t.Fatal(err)
		}
		p := problems(h)
		if len(p) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s the heartbeat still has:\n%s", strings.Join(p, "\n"))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Two containers with only loopback each listen on 127.0.0.1:8080 and hold
// a connection to it from inside: the heartbeat has each container's
// listener and both ends of its connection as rows of their own, in the
// container's namespace, owned by the container's processes with Podman's
// id and name for them.
func TestContainerLoopbackPodman(t *testing.T) {
	podman := podmanBin(t)
	lo := netip.MustParseAddr("127.0.0.1")
	// httpd is the container's first process, the pid Podman reports; nc
	// connects a second later (httpd listens by then) and holds the
	// connection open while sleep holds its stdin, httpd's forked child
	// serving the other end.
	script := "(sleep 1; sleep 600 | nc 127.0.0.1 8080) & exec httpd -f -p 127.0.0.1:8080"
	var cs []ctr
	for _, n := range []string{"a", "b"} {
		cs = append(cs, startContainer(t, podman, fmt.Sprintf("netview-test-%d-%s", os.Getpid(), n), "none", "/bin/sh", "-c", script))
	}
	if cs[0].netns == cs[1].netns {
		t.Fatalf("both containers in namespace %d", cs[0].netns)
	}
	heartbeatUntil(t, func(h *heartbeat.Heartbeat) (bad []string) {
		for _, c := range cs {
			if c.netns == h.Sensor.Netns {
				return []string{fmt.Sprintf("%s shares the sensor's namespace %d", c.name, c.netns)}
			}
			var listeners, clients, servers int
			for _, l := range h.TCPListeners {
				if l.Netns != c.netns {
					continue
				}
				if l.LocalAddress != lo || l.LocalPort != 8080 {
					bad = append(bad, fmt.Sprintf("%s: unexpected listener %s:%d", c.name, l.LocalAddress, l.LocalPort))
					continue
				}
				listeners++
				if w := ownedBy(l.Process, c); w != "" || int(l.PID) != c.pid {
					bad = append(bad, fmt.Sprintf("%s: listener of pid %d (Podman says %d) %s", c.name, l.PID, c.pid, w))
				}
			}
			for _, k := range h.TCPConnections {
				if k.Netns != c.netns || k.State != "ESTABLISHED" || k.LocalAddress != lo || k.RemoteAddress != lo {
					continue
				}
				switch {
				case k.RemotePort == 8080:
					clients++ // nc's end
				case k.LocalPort == 8080:
					servers++ // httpd's child's end
				default:
					continue
				}
				if w := ownedBy(k.Process, c); w != "" {
					bad = append(bad, fmt.Sprintf("%s: connection :%d->:%d %s", c.name, k.LocalPort, k.RemotePort, w))
				}
			}
			if listeners != 1 || clients != 1 || servers != 1 {
				bad = append(bad, fmt.Sprintf("%s (namespace %d): %d listeners, %d client and %d server ends of an established connection on 127.0.0.1:8080, want one each",
					c.name, c.netns, listeners, clients, servers))
			}
		}
		return bad
	})
}

// A container on Podman's default bridge connects to a listener this test
// opens on the host's bridge address: the container's end is a row in its
// namespace with its identity, the host's end a row in the sensor's
// namespace owned by this test process, outside any container.
func TestContainerToHostPodman(t *testing.T) {
	podman := podmanBin(t)
	c := startContainer(t, podman, fmt.Sprintf("netview-test-%d-bridge", os.Getpid()), "", "/bin/sleep", "600")
	info := strings.Fields(podmanRun(t, podman, "inspect", "--format", "{{.NetworkSettings.Gateway}} {{.NetworkSettings.IPAddress}}", c.name))
	if len(info) != 2 {
		t.Fatalf("podman inspect %s: gateway and address %q", c.name, info)
	}
	gw, ip := netip.MustParseAddr(info[0]), netip.MustParseAddr(info[1])
	// On the bridge's address only: the traffic stays between the host and
	// the container the test made.
	ln, err := net.Listen("tcp", net.JoinHostPort(gw.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	podmanRun(t, podman, "exec", "-d", c.name, "/bin/sh", "-c", fmt.Sprintf("sleep 600 | nc %s %d", gw, port))
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(15 * time.Second))
	srv, err := ln.Accept()
	if err != nil {
		t.Fatalf("the container's nc never connected to %s:%d: %v", gw, port, err)
	}
	defer srv.Close()
	peer := srv.RemoteAddr().(*net.TCPAddr).AddrPort()
	if peer.Addr().Unmap() != ip {
		t.Fatalf("connection from %s, want the container's %s", peer, ip)
	}
	heartbeatUntil(t, func(h *heartbeat.Heartbeat) (bad []string) {
		var inside, outside int
		for _, k := range h.TCPConnections {
			if k.State != "ESTABLISHED" {
				continue
			}
			switch {
			case k.Netns == c.netns && k.LocalAddress == ip && k.LocalPort == peer.Port() && k.RemoteAddress == gw && k.RemotePort == port:
				inside++
				if w := ownedBy(k.Process, c); w != "" {
					bad = append(bad, "the container's end: "+w)
				}
			case k.Netns == h.Sensor.Netns && k.LocalAddress == gw && k.LocalPort == port && k.RemoteAddress == ip && k.RemotePort == peer.Port():
				outside++
				if int(k.PID) != os.Getpid() || k.ContainerID != "" || k.ContainerName != "" {
					bad = append(bad, fmt.Sprintf("the host's end: pid %d container %q %q, want this test's pid %d outside any container", k.PID, k.ContainerID, k.ContainerName, os.Getpid()))
				}
			}
		}
		if inside != 1 || outside != 1 {
			bad = append(bad, fmt.Sprintf("%d container ends (namespace %d, %s:%d) and %d host ends (namespace %d, %s:%d) of the connection, want one each",
				inside, c.netns, ip, peer.Port(), outside, h.Sensor.Netns, gw, port))
		}
		return bad
	})
}

// Inside a container with only loopback, a connection that opens and
// closes between two heartbeats, too fast for any poll (the sensor polls
// hourly here), is a completed flow from the kernel probes with the
// container's namespace, id and name, and so are its connect and accept
// events; a listener that opens and closes there is no flow at all (it
// once came out as an established flow to 0.0.0.0:0).
func TestContainerShortConnectionPodman(t *testing.T) {
	podman := podmanBin(t)
	s := ebpfSensor(t)
	beat(t, s)
	c := startContainer(t, podman, fmt.Sprintf("netview-test-%d-short", os.Getpid()), "none", "/bin/httpd", "-f", "-p", "127.0.0.1:8080")
	// httpd answers the line with 400 and closes; nc exits on that. The
	// listener on 18777 lives a second and is killed.
	podmanRun(t, podman, "exec", c.name, "/bin/sh", "-c",
		"sleep 1; echo x | nc 127.0.0.1 8080; nc -l -p 18777 & sleep 1; kill $!")
	var flows, connects, accepts int
	var bad []string
	for deadline := time.Now().Add(10 * time.Second); flows < 2 || connects < 1 || accepts < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s: %d completed flows, %d connects and %d accepts of the container's connection to 127.0.0.1:8080 (namespace %d), want 2, 1 and 1", flows, connects, accepts, c.netns)
		}
		time.Sleep(300 * time.Millisecond)
		h := beat(t, s)
		for _, f := range append(h.ActiveFlows, h.CompletedFlows...) {
			if f.Netns != c.netns {
				continue
			}
			if f.SrcPort == 18777 || f.DstPort == 18777 || f.DstPort == 0 || !f.DstAddress.IsLoopback() {
				bad = append(bad, fmt.Sprintf("a flow of the container that is not its connection: %s:%d -> %s:%d %s", f.SrcAddress, f.SrcPort, f.DstAddress, f.DstPort, f.State))
			}
		}
		for _, f := range h.CompletedFlows {
			if f.Netns == c.netns && (f.DstPort == 8080 || f.SrcPort == 8080) && f.Source == "ebpf" {
				flows++ // nc's end and httpd's
				if w := identityOf(f.Process, c); w != "" {
					bad = append(bad, fmt.Sprintf("flow %s:%d -> %s:%d: %s", f.SrcAddress, f.SrcPort, f.DstAddress, f.DstPort, w))
				}
			}
		}
		for _, e := range h.Events {
			if e.Netns != c.netns || (e.DstPort != 8080 && e.SrcPort != 8080) {
				continue
			}
			switch e.Kind {
			case "network_connect":
				connects++
			case "network_accept":
				accepts++
			default:
				continue
			}
			if w := identityOf(e.Process, c); w != "" {
				bad = append(bad, fmt.Sprintf("%s event: %s", e.Kind, w))
			}
		}
	}
	if len(bad) > 0 {
		t.Error(strings.Join(bad, "\n"))
	}
}

// identityOf says what is wrong with p as a process of c that may have
// exited since (nc has): c's identity and some pid, or "".
func identityOf(p heartbeat.Process, c ctr) string {
	if p.PID == 0 || p.ContainerID != c.id || p.ContainerRuntime != "podman" || p.ContainerName != c.name {
		return fmt.Sprintf("pid %d container %q runtime %q name %q, want %q podman %q", p.PID, p.ContainerID, p.ContainerRuntime, p.ContainerName, c.id, c.name)
	}
	return ""
}

// Two containers on Podman's bridge, b connecting to a's listener: each
// end is a row in its own container's namespace with that container's
// identity, and each namespace's listeners and established connections
// are exactly what `ss -tanp` run inside it lists (nsenter -n -t PID, the
// oracle), each owned by one of the processes ss names for it.
func TestContainerToContainerPodman(t *testing.T) {
	podman := podmanBin(t)
	if _, err := exec.LookPath("nsenter"); err != nil {
		t.Skip("nsenter (util-linux) is not installed: no oracle inside the namespaces")
	}
	a := startContainer(t, podman, fmt.Sprintf("netview-test-%d-srv", os.Getpid()), "", "/bin/httpd", "-f", "-p", "0.0.0.0:8080")
	b := startContainer(t, podman, fmt.Sprintf("netview-test-%d-cli", os.Getpid()), "", "/bin/sleep", "600")
	aIP := netip.MustParseAddr(podmanRun(t, podman, "inspect", "--format", "{{.NetworkSettings.IPAddress}}", a.name))
	podmanRun(t, podman, "exec", "-d", b.name, "/bin/sh", "-c", fmt.Sprintf("sleep 600 | nc %s 8080", aIP))
	heartbeatUntil(t, func(h *heartbeat.Heartbeat) (bad []string) {
		toA := 0
		for _, c := range []ctr{a, b} {
			oracle := ssSockets(t, c.pid)
			seen := map[string]bool{}
			check := func(key string, p heartbeat.Process) {
				seen[key] = true
				switch pids, ok := oracle[key]; {
				case !ok:
					bad = append(bad, fmt.Sprintf("%s: %s is not in ss inside the namespace", c.name, key))
				case !pids[int(p.PID)]:
					bad = append(bad, fmt.Sprintf("%s: %s owned by pid %d, ss says %v", c.name, key, p.PID, pids))
				case identityOf(p, c) != "":
					bad = append(bad, fmt.Sprintf("%s: %s: %s", c.name, key, identityOf(p, c)))
				}
			}
			for _, l := range h.TCPListeners {
				if l.Netns == c.netns {
					check(fmt.Sprintf("LISTEN %s:%d", l.LocalAddress, l.LocalPort), l.Process)
				}
			}
			for _, k := range h.TCPConnections {
				if k.Netns == c.netns && k.State == "ESTABLISHED" {
					check(fmt.Sprintf("ESTAB %s:%d %s:%d", k.LocalAddress, k.LocalPort, k.RemoteAddress, k.RemotePort), k.Process)
					if k.RemoteAddress == aIP && k.RemotePort == 8080 || k.LocalAddress == aIP && k.LocalPort == 8080 {
						toA++
					}
				}
			}
			for key := range oracle {
				if !seen[key] {
					bad = append(bad, fmt.Sprintf("%s: ss inside the namespace lists %s, the heartbeat does not", c.name, key))
				}
			}
		}
		if toA != 2 {
			bad = append(bad, fmt.Sprintf("%d ends of b's connection to %s:8080 in the two containers' namespaces, want 2", toA, aIP))
		}
		return bad
	})
}

// ssSockets lists the TCP listeners and established connections that ss
// shows in the network namespace of pid, each with the pids it names.
func ssSockets(t *testing.T, pid int) map[string]map[int]bool {
	t.Helper()
	out, err := exec.Command("nsenter", "-n", "-t", strconv.Itoa(pid), "ss", "-tanpH").Output()
	if err != nil {
		t.Fatalf("ss in the namespace of %d: %v", pid, err)
	}
	owner := regexp.MustCompile(`pid=(\d+)`)
	got := map[string]map[int]bool{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		var key string
		switch f[0] {
		case "LISTEN":
			key = "LISTEN " + f[3]
		case "ESTAB":
			key = "ESTAB " + f[3] + " " + f[4]
		default:
			continue
		}
		pids := map[int]bool{}
		for _, m := range owner.FindAllStringSubmatch(line, -1) {
			n, _ := strconv.Atoi(m[1])
			pids[n] = true
		}
		got[key] = pids
	}
	return got
}
