package sensor

import (
	"errors"
	"net/netip"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/tcpstate"
	"github.com/netview/netview/sensor/procnet"
)

// sockKey identifies a socket across heartbeats. Two namespaces may hold
// sockets of the same addresses: the namespace is part of the key.
type sockKey struct {
	local, remote netip.AddrPort
	inode, netns  uint64
	udp           bool
}

// snapshot reads the socket tables at heartbeat time and remembers when
// each socket was first seen, so connections carry their age; those
// already open at the sensor's first snapshot predate it (zero time).
type snapshot struct {
	socks  []procnet.Socket
	netns  []uint64 // of each of socks
	inodes []uint64
	spaces []procnet.Namespace
	seen   map[sockKey]time.Time
	taken  bool
	ifaces ifaces
}

// read takes the sockets of every network namespace: the sensor's own (its
// tables, /proc/net), each other one that has a process, through
// /proc/<pid>/net of a process in it, and each named one with none (under
// cfg.NetnsDir), by entering it. So containers' sockets are rows too, each
// with its namespace's inode. Only the sensor's own tables failing is an
// error: a namespace whose last process exits between listing and reading,
// or one deleted meanwhile, is passed over.
func (sn *snapshot) read(s *Sensor, h *heartbeat.Heartbeat, now time.Time) error {
	if ns, err := s.fs.Netns(0); err == nil {
		h.Sensor.Netns = ns
	}
	sn.spaces = append(sn.spaces[:0], procnet.Namespace{Inode: h.Sensor.Netns}) // pid 0: the sensor's own
	// Without its own namespace's inode the sensor cannot tell its own
	// tables from another's: it reads only its own then.
	if s.cfg.AllNetns && h.Sensor.Netns != 0 {
		sn.spaces, _ = s.fs.Namespaces(sn.spaces)
		var err error
		if sn.spaces, err = s.fs.Named(s.cfg.NetnsDir, sn.spaces); err != nil {
			s.log.Debug("named namespaces not listed", "dir", s.cfg.NetnsDir, "err", err)
		}
	}
	socks := sn.socks[:0]
	sn.netns = sn.netns[:0]
	for i, ns := range sn.spaces {
		var err error
		socks, err = s.fs.SocketsOf(ns, socks)
		switch {
		case err == nil:
		case errors.Is(err, procnet.ErrParse):
			s.log.Warn("socket table has malformed lines; they are skipped", "netns", ns.Inode, "err", err)
		case i == 0:
			return err
		default:
			s.log.Debug("namespace passed over", "netns", ns.Inode, "pid", ns.PID, "path", ns.Path, "err", err)
		}
		for len(sn.netns) < len(socks) {
			sn.netns = append(sn.netns, ns.Inode)
		}
	}
	sn.socks = socks
	sn.ifaces.read(s, h, sn.spaces)
	sn.inodes = sn.inodes[:0]
	for i := range socks {
		if socks[i].Inode != 0 {
			sn.inodes = append(sn.inodes, socks[i].Inode)
		}
	}
	assocs, eps := sn.sctp(s, h)
	for _, a := range assocs {
		sn.inodes = append(sn.inodes, a.Inode)
	}
	for _, e := range eps {
		sn.inodes = append(sn.inodes, e.Inode)
	}
	owners, _ := s.res.Resolve(sn.inodes)
	owner := func(inode uint64, uid uint32) heartbeat.Process {
		var p heartbeat.Process
		if o, ok := owners[inode]; ok && inode != 0 {
			p = process(o)
		}
		p.UID = uid // the socket's owner, as the kernel reports it
		return p
	}
	for _, a := range assocs {
		h.SCTPAssociations = append(h.SCTPAssociations, heartbeat.SCTPAssoc{
			AssocID: a.AssocID, State: a.State.String(), LocalPort: a.LocalPort, RemotePort: a.RemotePort,
			LocalAddresses: a.LocalAddrs, RemoteAddresses: a.RemoteAddrs, PrimaryAddress: a.Primary,
			Inode: a.Inode, Netns: h.Sensor.Netns, TxQueue: a.TxQueue, RxQueue: a.RxQueue, Process: owner(a.Inode, a.UID),
		})
	}
	for _, e := range eps {
		h.SCTPEndpoints = append(h.SCTPEndpoints, heartbeat.SCTPEndpoint{
			LocalPort: e.LocalPort, LocalAddresses: e.LocalAddrs, Inode: e.Inode, Netns: h.Sensor.Netns, Process: owner(e.Inode, e.UID),
		})
	}

	next := make(map[sockKey]time.Time, len(socks))
	for i := range socks {
		so := &socks[i]
		netns := sn.netns[i]
		k := sockKey{local: so.Local, remote: so.Remote, inode: so.Inode, netns: netns, udp: so.Proto == procnet.UDP}
		first, ok := sn.seen[k]
		if !ok && sn.taken {
			first = now
			// The tracker follows every namespace the probes see.
			if t, tracked := s.tracker.FirstSeen(netns, so.Local, so.Remote); tracked {
				first = t
			}
		}
		next[k] = first
		p := owner(so.Inode, so.UID)
		family := "inet"
		if so.IPv6 {
			family = "inet6"
		}
		seenAt := first
		if seenAt.IsZero() {
			seenAt = s.started
		}
		switch {
		case so.Proto == procnet.UDP:
			h.UDPListeners = append(h.UDPListeners, heartbeat.UDPSocket{
				Family: family, LocalAddress: so.Local.Addr(), LocalPort: so.Local.Port(),
				RemoteAddress: remoteOrZero(so.Remote), RemotePort: so.Remote.Port(),
				Inode: so.Inode, Netns: netns, Service: heartbeat.ServiceName(so.Local.Port()),
				Process: p, FirstSeen: seenAt,
			})
		case so.State == tcpstate.Listen:
			h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{
				Family: family, LocalAddress: so.Local.Addr(), LocalPort: so.Local.Port(),
				Inode: so.Inode, Netns: netns, Process: p, FirstSeen: seenAt,
			})
		default:
			c := heartbeat.Conn{
				Family: family, LocalAddress: so.Local.Addr(), LocalPort: so.Local.Port(),
				RemoteAddress: so.Remote.Addr(), RemotePort: so.Remote.Port(), State: so.State.String(),
				Inode: so.Inode, Netns: netns, Process: p, FirstSeen: seenAt,
			}
			if !first.IsZero() {
				d := uint32(max(0, now.Sub(first)/time.Second))
				c.DurationSecs = &d
			}
			h.TCPConnections = append(h.TCPConnections, c)
		}
	}
	sn.seen, sn.taken = next, true
	return nil
}

// sctp reads SCTP associations and endpoints for telecom sensors and says
// in the heartbeat's capabilities whether the kernel exposes them.
func (sn *snapshot) sctp(s *Sensor, h *heartbeat.Heartbeat) ([]procnet.SCTPAssoc, []procnet.SCTPEndpoint) {
	if s.cfg.Flavor != "telecom" {
		h.Sensor.Capabilities["sctp"] = "not_telecom"
		return nil, nil
	}
	assocs, eps, err := s.fs.SCTP(0)
	switch {
	case errors.Is(err, procnet.ErrUnavailable):
		h.Sensor.Capabilities["sctp"] = "unavailable"
		return nil, nil
	case err != nil && !errors.Is(err, procnet.ErrParse):
		msg := "error: " + err.Error()
		h.Sensor.Capabilities["sctp"] = msg[:min(len(msg), 200)] // ingest caps values at 256 bytes
		return nil, nil
	case err != nil:
		s.log.Warn("SCTP tables have malformed lines; they are skipped", "err", err)
	}
	h.Sensor.Capabilities["sctp"] = "available"
	return assocs, eps
}

// remoteOrZero leaves the remote of an unconnected UDP socket empty.
func remoteOrZero(ap netip.AddrPort) netip.Addr {
	if ap.Port() == 0 && ap.Addr().IsUnspecified() {
		return netip.Addr{}
	}
	return ap.Addr()
}
