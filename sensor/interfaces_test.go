package sensor

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/procnet"
)

// The rows made of a namespace's links are ones the format takes, however
// odd the links: more addresses than an interface may carry are cut to the
// bound rather than costing the heartbeat, a link without a usable name
// or index is left out, a MAC of any length the kernel gives is written as
// the format wants; and sameInterfaces tells exactly when they would be
// made otherwise.
func TestInterfaceRowsFit(t *testing.T) {
	many := make([]netip.Prefix, heartbeat.MaxIfaceAddrs+5)
	for i := range many {
		many[i] = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 32)
	}
	ib := diag.Link{Index: 4, Name: "ib0", Up: true, HWLen: 20}
	for i := range 20 {
		ib.HW[i] = byte(0xa0 + i)
	}
	links := []diag.Link{
		{Index: 1, Name: "lo", HWLen: 6, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Index: 2, Name: "kube-ipvs0", Addrs: many},
		{Index: 3, Name: ""},                 // no name: left out
		{Index: 1 << 31, Name: "odd"},        // an index the format refuses: left out
		{Index: 5, Name: "waytoolongname16"}, // over IFNAMSIZ: left out
		ib,
		{Index: 6, Name: "wg0", Up: true}, // no link-layer address
	}
	rows := interfaceRows(links, 4026531840)
	if len(rows) != 4 {
		t.Fatalf("%d rows, want lo, kube-ipvs0, ib0, wg0: %+v", len(rows), rows)
	}
	if rows[0].MAC != "00:00:00:00:00:00" || len(rows[1].Addresses) != heartbeat.MaxIfaceAddrs || rows[3].MAC != "" ||
		rows[2].MAC != "a0:a1:a2:a3:a4:a5:a6:a7:a8:a9:aa:ab:ac:ad:ae:af:b0:b1:b2:b3" {
		t.Errorf("rows: lo MAC %q, %d addresses on kube-ipvs0, ib0 MAC %q, wg0 MAC %q", rows[0].MAC, len(rows[1].Addresses), rows[2].MAC, rows[3].MAC)
	}
	h := &heartbeat.Heartbeat{Format: heartbeat.Format, Sensor: heartbeat.Sensor{Hostname: "h", Flavor: "standard"}, Interfaces: rows}
	h.HeartbeatID[0], h.Sensor.SensorID[0], h.Sensor.BootID[0] = 1, 1, 1
	h.SentAt = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	if _, err := heartbeat.Decode(new(heartbeat.Encoder).AppendJSON(nil, h)); err != nil {
		t.Errorf("the format refuses the rows: %v", err)
	}
	if !sameInterfaces(rows, links, 4026531840) {
		t.Errorf("rows differ from the links they were made of")
	}
	for i, change := range []func(l []diag.Link){
		func(l []diag.Link) { l[0].Up = true },
		func(l []diag.Link) { l[0].Name = "lo2" },
		func(l []diag.Link) { l[0].Addrs = nil },
		func(l []diag.Link) { l[0].Addrs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/16")} },
		func(l []diag.Link) { l[5].HW[19] = 0 },
		func(l []diag.Link) { l[6].Index = 9 },
		func(l []diag.Link) { l[2].Name = "eth9" }, // a link that was left out now counts
	} {
		l := append([]diag.Link(nil), links...)
		change(l)
		if sameInterfaces(rows, l, 4026531840) {
			t.Errorf("change %d: sameInterfaces misses it", i)
		}
	}
	if sameInterfaces(rows, links, 4026531841) {
		t.Errorf("another namespace's rows pass for the same")
	}
	if sameInterfaces(rows[:3], links, 4026531840) || sameInterfaces(append(rows, rows[0]), links, 4026531840) {
		t.Errorf("a row more or less passes for the same")
	}
}

// Reading the sensor's own namespace's interfaces again, unchanged,
// allocates nothing: the dump reuses its buffer and the rows are the last
// heartbeat's. (Another namespace costs its thread's few allocations.)
func TestOwnInterfacesAllocs(t *testing.T) {
	fs := procnet.NewFS("/proc")
	own, err := fs.Netns(0)
	if err != nil {
		t.Skipf("no network namespace link: %v", err)
	}
	s := &Sensor{cfg: Config{ProcRoot: "/proc"}, fs: fs, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	spaces := []procnet.Namespace{{Inode: own}}
	h := &heartbeat.Heartbeat{Sensor: heartbeat.Sensor{Capabilities: map[string]string{}}}
	var f ifaces
	f.read(s, h, spaces)
	if h.Sensor.Capabilities["interfaces"] != "available" || len(h.Interfaces) == 0 {
		t.Fatalf("capability %q, %d interfaces", h.Sensor.Capabilities["interfaces"], len(h.Interfaces))
	}
	first := h.Interfaces
	allocs := testing.AllocsPerRun(20, func() {
		h.Interfaces = h.Interfaces[:0]
		f.read(s, h, spaces)
	})
	if allocs != 0 || len(h.Interfaces) != len(first) {
		t.Errorf("%.1f allocations per read of %d unchanged interfaces, want 0", allocs, len(h.Interfaces))
	}
}
