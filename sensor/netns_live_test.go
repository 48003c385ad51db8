package sensor_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/procnet"
)

// A named namespace (`ip netns add`) with no process in it still holds the
// sockets made inside it: a UPF's GTP-U listener on UDP 2152 is the telecom
// case. The sensor enters it and reports them with its inode and their
// owner (this process, in the host's namespace), as `ss` run inside the
// namespace does. Once the sockets close and the namespace is deleted, the
// next heartbeat has none of its rows and no error.
func TestNamedNetnsWithoutProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ip netns add needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	name := fmt.Sprintf("nvtest-%d", os.Getpid())
	ipNetns(t, "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ipNetns(t, "exec", name, "ip", "link", "set", "lo", "up")
	path := "/run/netns/" + name
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	ns := st.Ino

	var udp net.PacketConn
	var ln net.Listener
	var conn net.Conn
	err := procnet.InNetns(path, func() (err error) {
		if udp, err = net.ListenPacket("udp4", "0.0.0.0:2152"); err != nil {
			return err
		}
		if ln, err = net.Listen("tcp4", "127.0.0.1:0"); err != nil {
			return err
		}
		conn, err = net.Dial("tcp4", ln.Addr().String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	// This process's own namespace is untouched: only a thread joined.
	if own, _ := os.Readlink("/proc/self/ns/net"); own == fmt.Sprintf("net:[%d]", ns) {
		t.Fatalf("the process's main thread joined %s", name)
	}
	peer, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	closeAll := func() { udp.Close(); conn.Close(); peer.Close(); ln.Close() }
	t.Cleanup(closeAll)

	// The oracle: ss inside the namespace sees the listener, owned by us.
	out, err := exec.Command("ip", "netns", "exec", name, "ss", "-uanpH").Output()
	if err != nil {
		t.Skipf("ss in the namespace: %v", err)
	}
	if !strings.Contains(string(out), ":2152 ") || !strings.Contains(string(out), fmt.Sprintf("pid=%d,", os.Getpid())) {
		t.Fatalf("ss in %s does not list our UDP 2152: %s", name, out)
	}

	withDir := func(dir string) func(*sensor.Config) {
		return func(c *sensor.Config) { c.AllNetns, c.NetnsDir = true, dir }
	}
	s := newSensorIn(t, t.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second, withDir("/run/netns"))
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if h.Sensor.Netns == ns {
		t.Fatalf("the named namespace %d is the sensor's own", ns)
	}
	found := rowsIn(h, ns)
	want := map[string]bool{"udp 2152": true, fmt.Sprint("listener ", port): true, fmt.Sprint("conn ", port): true, "conn peer": true}
	for k := range want {
		if !found[k] {
			t.Errorf("namespace %s (%d): no %s, found %v", name, ns, k, found)
		}
	}
	for _, u := range h.UDPListeners {
		if u.Netns == ns && u.LocalPort == 2152 && (int(u.PID) != os.Getpid() || u.Service != "gtp-u") {
			t.Errorf("the GTP-U listener: pid %d service %q, want %d gtp-u", u.PID, u.Service, os.Getpid())
		}
	}

	// With no folder of named namespaces, no process leads to this one.
	h, err = newSensorIn(t, t.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second, withDir("")).Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if found := rowsIn(h, ns); len(found) != 0 {
		t.Errorf("without the netns folder the namespace was read anyway: %v", found)
	}

	closeAll()
	ipNetns(t, "del", name)
	h, err = s.Heartbeat(time.Now())
	if err != nil {
		t.Fatalf("after the namespace went: %v", err)
	}
	if found := rowsIn(h, ns); len(found) != 0 {
		t.Errorf("rows of the deleted namespace: %v", found)
	}
}

// rowsIn names the socket rows of h in namespace ns.
func rowsIn(h *heartbeat.Heartbeat, ns uint64) map[string]bool {
	found := map[string]bool{}
	for _, u := range h.UDPListeners {
		if u.Netns == ns {
			found[fmt.Sprint("udp ", u.LocalPort)] = true
		}
	}
	for _, l := range h.TCPListeners {
		if l.Netns == ns {
			found[fmt.Sprint("listener ", l.LocalPort)] = true
		}
	}
	for _, c := range h.TCPConnections {
		if c.Netns == ns && c.State == "ESTABLISHED" {
			if _, ok := found[fmt.Sprint("conn ", c.RemotePort)]; ok || found[fmt.Sprint("listener ", c.LocalPort)] {
				found["conn peer"] = true
			}
			found[fmt.Sprint("conn ", c.RemotePort)] = true
		}
	}
	return found
}

func ipNetns(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns %v: %v: %s", args, err, out)
	}
}
