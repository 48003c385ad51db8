package sensor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/procnet"
	"github.com/netview/netview/sql/schema"
)

// A named namespace (`ip netns add`) with no process in it still holds the
// sockets made inside it: a UPF's GTP-U listener on UDP 2152 is the telecom
// case. The sensor enters it and reports them with its inode and their
// owner (this process, in the host's namespace), as `ss` run inside the
// namespace does. Once the sockets close and the namespace is deleted, the
// next heartbeat has none of its rows and no error.
func TestNamedNetnsWithoutProcess(t *testing.T) {
	name, ns := namedNetns(t, "nvtest")
	ipNetns(t, "exec", name, "ip", "link", "set", "lo", "up")
	path := "/run/netns/" + name

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

// The sensor reports the interfaces of a named namespace as ip(8) set them
// (one end of a veth pair, its MAC, up, its addresses with their lengths;
// lo down), with the namespace's inode, and those of its own namespace
// (the pair's other end); the site it is given; and a heartbeat the
// format takes. Unchanged interfaces are sent again from the rows already
// made; a new address shows in the next heartbeat, and a deleted
// namespace's interfaces are gone from the one after.
func TestNamedNetnsInterfaces(t *testing.T) {
	name, ns := namedNetns(t, "nvif")         // deleting it takes the pair with it
	host := fmt.Sprintf("nvh%d", os.Getpid()) // the pair's end in the sensor's namespace
	ipRun(t, "link", "add", host, "address", "02:00:5e:00:53:02", "type", "veth", "peer", "name", "nv0", "address", "02:00:5e:00:53:01", "netns", name)
	ipRun(t, "-n", name, "addr", "add", "10.0.0.5/24", "dev", "nv0")
	ipRun(t, "-n", name, "addr", "add", "2001:db8::5/64", "dev", "nv0", "nodad")
	ipRun(t, "-n", name, "link", "set", "nv0", "up")

	s := newSensorIn(t, t.TempDir(), "http://127.0.0.1:1/v1/heartbeat", time.Second, func(c *sensor.Config) {
		c.AllNetns, c.NetnsDir, c.Site = true, "/run/netns", "lab-1.east"
	})
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if h.Sensor.Site != "lab-1.east" || h.Sensor.Capabilities["interfaces"] != "available" {
		t.Errorf("site %q, interfaces capability %q", h.Sensor.Site, h.Sensor.Capabilities["interfaces"])
	}
	in := func(h *heartbeat.Heartbeat, netns uint64, iface string) (heartbeat.Interface, int) {
		n, at := 0, -1
		for i, r := range h.Interfaces {
			if r.Netns == netns && r.Name == iface {
				n, at = n+1, i
			}
		}
		if n != 1 {
			t.Fatalf("%d rows of %s in namespace %d, want 1: %+v", n, iface, netns, h.Interfaces)
		}
		return h.Interfaces[at], at
	}
	global := func(r heartbeat.Interface) (out []string) {
		for _, p := range r.Addresses {
			if !p.Addr().IsLinkLocalUnicast() { // fe80:: comes with the link going up
				out = append(out, p.String())
			}
		}
		return out
	}
	nv, at := in(h, ns, "nv0")
	if !nv.Up || nv.MAC != "02:00:5e:00:53:01" || nv.Index < 2 || fmt.Sprint(global(nv)) != "[10.0.0.5/24 2001:db8::5/64]" {
		t.Errorf("nv0 in %s: %+v", name, nv)
	}
	if lo, _ := in(h, ns, "lo"); lo.Up || lo.Index != 1 || len(lo.Addresses) != 0 {
		t.Errorf("lo in %s: %+v, want down without addresses", name, lo)
	}
	if own, _ := in(h, h.Sensor.Netns, host); own.Up || own.MAC != "02:00:5e:00:53:02" {
		t.Errorf("%s in the sensor's namespace: %+v, want down with its MAC", host, own)
	}
	// What the sensor sends, the format takes, interfaces and site whole.
	back, err := heartbeat.Decode(new(heartbeat.Encoder).AppendJSON(nil, h))
	if err != nil {
		t.Fatalf("the heartbeat is refused: %v", err)
	}
	if back.Sensor.Site != h.Sensor.Site || len(back.Interfaces) != len(h.Interfaces) || fmt.Sprint(back.Interfaces[at]) != fmt.Sprint(nv) {
		t.Errorf("decoded: site %q, %d interfaces (sent %d), nv0 %+v", back.Sensor.Site, len(back.Interfaces), len(h.Interfaces), back.Interfaces[at])
	}

	// Ingest stores them: the namespace's address resolves, within the
	// sensor's site, to this sensor, the namespace and nv0.
	n := ingesttest.Start(t, ingesttest.Config(), nil)
	n.Send(h)
	var who proto.ColStr
	var got []string
	err = n.Store.Select(context.Background(), store.Query{
		SQL: `SELECT concat(resolution, ' ', toString(candidates[1].1), ' ', toString(candidates[1].2), ' ', arrayStringConcat(candidates[1].3, ',')) AS who
		      FROM (` + schema.ResolveAddress + `)`,
		Params: []store.Param{store.P("site", "lab-1.east"), store.P("address", "10.0.0.5"),
			store.P("at", h.SentAt.Format("2006-01-02 15:04:05.000")), store.P("slack_secs", "30")},
	}, proto.Results{{Name: "who", Data: &who}}, func(rows int) error {
		for i := range rows {
			got = append(got, who.Row(i))
		}
		return nil
	})
	if want := fmt.Sprintf("resolved %s %d nv0", h.Sensor.SensorID, ns); err != nil || len(got) != 1 || got[0] != want {
		t.Errorf("10.0.0.5 in lab-1.east resolves to %q (%v), want %q", got, err, want)
	}

	// Unchanged: the same rows again, not made anew.
	h2, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if nv2, _ := in(h2, ns, "nv0"); len(nv2.Addresses) == 0 || &nv2.Addresses[0] != &nv.Addresses[0] {
		t.Errorf("unchanged interfaces were made anew")
	}
	ipRun(t, "-n", name, "addr", "add", "10.0.0.6/24", "dev", "nv0")
	h3, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if nv3, _ := in(h3, ns, "nv0"); fmt.Sprint(global(nv3)) != "[10.0.0.5/24 10.0.0.6/24 2001:db8::5/64]" {
		t.Errorf("after adding 10.0.0.6: %v", nv3.Addresses)
	}
	if fmt.Sprint(global(nv)) != "[10.0.0.5/24 2001:db8::5/64]" {
		t.Errorf("the first heartbeat's rows changed under it: %v", nv.Addresses)
	}

	ipNetns(t, "del", name)
	h4, err := s.Heartbeat(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range h4.Interfaces {
		if r.Netns == ns {
			t.Errorf("after the namespace was deleted: %+v", r)
		}
	}
	// Nothing of the sensor's holds the namespace alive: the kernel
	// destroys it, and the pair with it (the host's end goes last, from a
	// work queue).
	for end := time.Now().Add(10 * time.Second); exec.Command("ip", "link", "show", host).Run() == nil; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%s is still there 10 s after its namespace was deleted: something holds the namespace", host)
		}
	}
}

func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
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

// namedNetns makes a named network namespace (`ip netns add`) for the
// test, deleted at its end, and returns its name and inode; it skips
// without root or ip.
func namedNetns(t *testing.T, prefix string) (string, uint64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ip netns add needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	name := fmt.Sprintf("%s-%d", prefix, os.Getpid())
	ipNetns(t, "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	var st syscall.Stat_t
	if err := syscall.Stat("/run/netns/"+name, &st); err != nil {
		t.Fatal(err)
	}
	return name, st.Ino
}

func ipNetns(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"netns"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip netns %v: %v: %s", args, err, out)
	}
}
