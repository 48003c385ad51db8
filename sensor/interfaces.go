package sensor

import (
	"net/netip"
	"slices"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/procnet"
)

// ifaces reads the interfaces of every namespace the snapshot reads, by
// rtnetlink from inside each: the sensor's own through a socket it keeps,
// every other one through a socket opened on a thread that joined it
// (procnet.InNetns) and closed before the thread ends, since a socket
// kept there would hold a container's namespace alive after its last
// process.
//
// They are sent in every heartbeat, not only when they changed: ingest is
// stateless, a heartbeat may be lost or stripped of its snapshots, and
// host_addresses' last_seen must move while an address is held. What is
// kept from one heartbeat to the next is the work: each namespace's dump
// goes into its own buffer (diag.Links then reuses its names and address
// lists), and while a namespace's interfaces are as before its rows of the
// last heartbeat are sent again, so a warm read allocates little more than
// the heartbeat's own slice.
type ifaces struct {
	own, foreign *diag.Conn
	links        map[uint64][]diag.Link
	rows         map[uint64][]heartbeat.Interface
	seen         map[uint64]bool
}

// read appends the interfaces of spaces (spaces[0] the sensor's own) to h
// and says in the capability "interfaces" how that went.
func (f *ifaces) read(s *Sensor, h *heartbeat.Heartbeat, spaces []procnet.Namespace) {
	if s.cfg.ProcRoot != "/proc" {
		// Netlink answers for this host, not the one under --sensor.proc.
		h.Sensor.Capabilities["interfaces"] = "unavailable: --sensor.proc is not /proc"
		return
	}
	if f.links == nil {
		f.links, f.rows, f.seen = map[uint64][]diag.Link{}, map[uint64][]heartbeat.Interface{}, map[uint64]bool{}
	}
	if f.own == nil {
		c, err := diag.OpenRoute() // tried again next heartbeat
		if err != nil {
			h.Sensor.Capabilities["interfaces"] = capValue("unavailable: " + err.Error())
			return
		}
		f.own = c
	}
	status := "available"
	clear(f.seen)
	for i, ns := range spaces {
		buf := f.links[ns.Inode][:0]
		var err error
		if i == 0 {
			buf, err = f.own.Links(buf)
		} else {
			buf, err = f.foreignLinks(s.fs.NetnsPath(ns), buf)
		}
		f.links[ns.Inode] = buf
		if err != nil {
			if i == 0 {
				status = capValue("error: " + err.Error())
			}
			// Another namespace may have gone since it was listed.
			s.log.Debug("interfaces of a namespace not read", "netns", ns.Inode, "err", err)
			continue
		}
		f.seen[ns.Inode] = true
		rows := f.rows[ns.Inode]
		if !sameInterfaces(rows, buf, ns.Inode) {
			rows = interfaceRows(buf, ns.Inode)
			f.rows[ns.Inode] = rows
		}
		if room := heartbeat.MaxInterfaces - len(h.Interfaces); len(rows) > room {
			// The format's bound: the rest of the heartbeat must not be
			// refused for them.
			rows = rows[:room]
			status = "truncated: more than 4096 interfaces"
		}
		h.Interfaces = append(h.Interfaces, rows...)
	}
	for ino := range f.links {
		if !f.seen[ino] {
			delete(f.links, ino)
			delete(f.rows, ino)
		}
	}
	h.Sensor.Capabilities["interfaces"] = status
}

// foreignLinks dumps the links of the namespace at path from a thread that
// joined it, and releases the socket there.
func (f *ifaces) foreignLinks(path string, buf []diag.Link) ([]diag.Link, error) {
	if f.foreign == nil {
		c, err := diag.OpenRoute()
		if err != nil {
			return buf, err
		}
		c.Release() // opened here, in the sensor's namespace; reopened inside
		f.foreign = c
	}
	err := procnet.InNetns(path, func() error {
		defer f.foreign.Release()
		var err error
		buf, err = f.foreign.Links(buf)
		return err
	})
	return buf, err
}

// interfaceRows makes the heartbeat's rows of one namespace's links, each
// within the format's limits.
func interfaceRows(links []diag.Link, netns uint64) []heartbeat.Interface {
	out := make([]heartbeat.Interface, 0, len(links))
	for i := range links {
		l := &links[i]
		if !usable(l) {
			continue
		}
		r := heartbeat.Interface{Netns: netns, Name: l.Name, Index: l.Index, Up: l.Up}
		if l.HWLen > 0 {
			var b [heartbeat.MaxMAC]byte
			r.MAC = string(appendMAC(b[:0], l.HW[:l.HWLen]))
		}
		if as := addrsOf(l); len(as) > 0 {
			r.Addresses = slices.Clone(as) // l's are the next dump's buffer
		}
		out = append(out, r)
	}
	return out
}

// usable reports whether l has a name and an index the format takes (the
// kernel gives no other).
func usable(l *diag.Link) bool {
	return l.Name != "" && len(l.Name) <= heartbeat.MaxIfName && l.Index > 0 && l.Index <= 1<<31-1
}

// addrsOf is l's addresses within the format's bound on one interface.
func addrsOf(l *diag.Link) []netip.Prefix {
	return l.Addrs[:min(len(l.Addrs), heartbeat.MaxIfaceAddrs)]
}

// sameInterfaces reports whether rows are what interfaceRows would make of
// links, without making them.
func sameInterfaces(rows []heartbeat.Interface, links []diag.Link, netns uint64) bool {
	j := 0
	for i := range links {
		l := &links[i]
		if !usable(l) {
			continue
		}
		if j >= len(rows) {
			return false
		}
		r := &rows[j]
		j++
		var b [heartbeat.MaxMAC]byte
		if r.Netns != netns || r.Name != l.Name || r.Index != l.Index || r.Up != l.Up ||
			r.MAC != string(appendMAC(b[:0], l.HW[:l.HWLen])) ||
			!slices.Equal(r.Addresses, addrsOf(l)) {
			return false
		}
	}
	return j == len(rows)
}

// appendMAC writes hw as the format does: lower-case hex bytes separated
// by colons.
func appendMAC(b, hw []byte) []byte {
	const digits = "0123456789abcdef"
	for i, c := range hw {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, digits[c>>4], digits[c&15])
	}
	return b
}

// capValue cuts a capability value to the format's 256 bytes.
func capValue(v string) string { return v[:min(len(v), heartbeat.MaxCapValue)] }
