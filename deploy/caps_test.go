package deploy

// The sensor's capabilities, tried on this kernel: the sensor's own socket
// resolver (sensor/procs), netlink client (sensor/diag) and named-namespace
// reader (sensor/procnet), run as root with exactly the chosen capabilities,
// against a socket held by another user and a socket in a named network
// namespace no process is in.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/procnet"
	"github.com/netview/netview/sensor/procs"
)

func TestMain(m *testing.M) {
	if os.Getenv("NETVIEW_DEPLOY_HELPER") == "resolve" {
		os.Exit(resolveHelper())
	}
	code := m.Run()
	if scratchDir != "" {
		os.RemoveAll(scratchDir)
	}
	os.Exit(code)
}

// resolved is what the helper found for one socket inode.
type resolved struct {
	PID     uint32 `json:"pid"`
	Exe     string `json:"exe"`
	Netns   uint64 `json:"netns"`
	Diag    bool   `json:"diag"`
	DiagErr string `json:"diag_err"`
	CapEff  string `json:"cap_eff"`
	// Named: the socket of port NETVIEW_DEPLOY_NAMED_PORT was found in the
	// namespace bound at NETVIEW_DEPLOY_NETNS; NamedErr says why not.
	Named    bool   `json:"named"`
	NamedErr string `json:"named_err"`
}

// resolveHelper runs in a child with reduced capabilities: it looks for the
// socket NETVIEW_DEPLOY_INODE as the sensor does, and for the UDP port
// NETVIEW_DEPLOY_NAMED_PORT in the named namespace NETVIEW_DEPLOY_NETNS as
// the sensor reads one (--sensor.netns-dir): by joining it.
func resolveHelper() int {
	ino, err := strconv.ParseUint(os.Getenv("NETVIEW_DEPLOY_INODE"), 10, 64)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var r resolved
	got, _ := procs.NewResolver("/proc").Resolve([]uint64{ino})
	p := got[ino]
	r.PID, r.Exe, r.Netns = p.PID, p.Exe, p.Netns
	if c, err := diag.Open(); err != nil {
		r.DiagErr = err.Error()
	} else {
		socks, err := c.TCP(0, nil)
		if err != nil {
			r.DiagErr = err.Error()
		}
		for _, s := range socks {
			r.Diag = r.Diag || s.Inode == ino
		}
		c.Close()
	}
	port, _ := strconv.ParseUint(os.Getenv("NETVIEW_DEPLOY_NAMED_PORT"), 10, 16)
	socks, err := procnet.NewFS("/proc").SocketsOf(procnet.Namespace{Path: os.Getenv("NETVIEW_DEPLOY_NETNS")}, nil)
	if err != nil {
		r.NamedErr = err.Error()
	}
	for _, s := range socks {
		r.Named = r.Named || (s.Proto == procnet.UDP && s.Local.Port() == uint16(port))
	}
	status, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			r.CapEff = strings.TrimSpace(v)
		}
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// TestSensorCapabilitiesOnThisKernel shows that sensorCaps (the DaemonSet's
// and the unit's set, see checkSensorDaemonSet and checkSystemd) is enough
// for the sensor to name the process behind another user's socket and to
// read a named network namespace no process is in, that each capability in
// it is needed for one of the two, and that netlink socket diagnostics need
// none. It needs root, setpriv(1) to hand out capabilities and ip(8) to
// make the namespace.
func TestSensorCapabilitiesOnThisKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: it runs the sensor's resolver with chosen capabilities against another user's process")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv (util-linux) to run a process with chosen capabilities")
	}

	// A TCP socket held by nobody (uid 65534), and by no one else.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	ino := st.Ino
	holder := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all", "--bounding-set=-all", "sleep", "300")
	holder.ExtraFiles = []*os.File{f}
	if err := holder.Start(); err != nil {
		t.Skipf("cannot start a process as uid 65534: %v", err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	f.Close()
	ln.Close()
	pid := holder.Process.Pid
	for deadline := time.Now().Add(5 * time.Second); ; {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if strings.HasSuffix(exe, "/sleep") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the holder did not become sleep (exe %q)", exe)
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A named namespace with no process in it, as `ip netns add` makes
	// them, holding a UDP socket the test process made inside and keeps:
	// only joining the namespace (setns, CAP_SYS_ADMIN) shows its tables.
	netns := fmt.Sprintf("nvcaps-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", netns).CombinedOutput(); err != nil {
		t.Skipf("needs ip(8) to make a named network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", netns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", netns, err, out)
		}
	})
	netnsPath := "/run/netns/" + netns
	var named net.PacketConn
	// The wildcard address: the new namespace's loopback is down, so
	// 127.0.0.1 is no address of it.
	if err := procnet.InNetns(netnsPath, func() (err error) {
		named, err = net.ListenPacket("udp4", "0.0.0.0:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { named.Close() })
	namedPort := named.LocalAddr().(*net.UDPAddr).Port

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run := func(caps []string) resolved {
		t.Helper()
		bounding := "-all"
		for _, c := range caps {
			bounding += ",+" + strings.ToLower(c)
		}
		cmd := exec.Command(setpriv, "--inh-caps=-all", "--bounding-set="+bounding, "--", self, "-test.run=^$")
		cmd.Env = append(os.Environ(), "NETVIEW_DEPLOY_HELPER=resolve", "NETVIEW_DEPLOY_INODE="+strconv.FormatUint(ino, 10),
			"NETVIEW_DEPLOY_NETNS="+netnsPath, "NETVIEW_DEPLOY_NAMED_PORT="+strconv.Itoa(namedPort))
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("helper with %v: %v\n%s", caps, err, errb.String())
		}
		var r resolved
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("helper with %v: %v: %s", caps, err, out.String())
		}
		return r
	}

	// The chosen set names the process, its binary and network namespace,
	// and reads the named namespace.
	full := run(sensorCaps)
	if full.PID != uint32(pid) || !strings.HasSuffix(full.Exe, "/sleep") || full.Netns == 0 {
		t.Errorf("with %v the sensor's resolver found %+v, want pid %d, exe .../sleep and its netns", sensorCaps, full, pid)
	}
	if !full.Diag {
		t.Errorf("with %v netlink sock_diag did not report the socket: %s", sensorCaps, full.DiagErr)
	}
	if !full.Named {
		t.Errorf("with %v the sensor did not find UDP port %d in %s: %s", sensorCaps, namedPort, netnsPath, full.NamedErr)
	}
	// Each capability is needed: dropping it loses the owner of the other
	// user's socket, or the named namespace's socket, or both.
	for _, drop := range sensorCaps {
		var rest []string
		for _, c := range sensorCaps {
			if c != drop {
				rest = append(rest, c)
			}
		}
		r := run(rest)
		if r.PID != 0 && r.Named {
			t.Errorf("without %s the resolver still found pid %d and the named namespace's port %d (CapEff %s): the capability is not needed", drop, r.PID, namedPort, r.CapEff)
		}
		if drop == "SYS_ADMIN" && r.Named {
			t.Errorf("without SYS_ADMIN the sensor still read %s (CapEff %s): setns should need it", netnsPath, r.CapEff)
		}
	}
	// Netlink needs none; attribution and the named namespace fail without any.
	none := run(nil)
	if !none.Diag || none.PID != 0 || none.Named || none.CapEff != "0000000000000000" {
		t.Errorf("with no capability: %+v, want the socket in the netlink dump, no owner, not the named namespace, CapEff 0", none)
	}
}
