package sensor

import (
	"errors"
	"net/netip"
	"time"

	"github.com/netview/netview/internal/heartbeat"
	"github.com/netview/netview/sensor/procnet"
)

// sockKey identifies a socket across heartbeats.
type sockKey struct {
	local, remote netip.AddrPort
	inode         uint64
	udp           bool
}

// snapshot reads the socket tables at heartbeat time and remembers when
// each socket was first seen, so connections carry their age; those
// already open at the sensor's first snapshot predate it (zero time).
type snapshot struct {
	socks  []procnet.Socket
	inodes []uint64
	seen   map[sockKey]time.Time
	taken  bool
}

func (sn *snapshot) read(s *Sensor, h *heartbeat.Heartbeat, now time.Time) error {
	socks, err := s.fs.Sockets(0, sn.socks[:0])
	sn.socks = socks
	if err != nil {
		if !errors.Is(err, procnet.ErrParse) {
			return err
		}
		s.log.Warn("socket table has malformed lines; they are skipped", "err", err)
	}
	if ns, err := s.fs.Netns(0); err == nil {
		h.Sensor.Netns = ns
	}
	sn.inodes = sn.inodes[:0]
	for i := range socks {
		if socks[i].Inode != 0 {
			sn.inodes = append(sn.inodes, socks[i].Inode)
		}
	}
	owners, _ := s.res.Resolve(sn.inodes)

	next := make(map[sockKey]time.Time, len(socks))
	for i := range socks {
		so := &socks[i]
		k := sockKey{local: so.Local, remote: so.Remote, inode: so.Inode, udp: so.Proto == procnet.UDP}
		first, ok := sn.seen[k]
		if !ok && sn.taken {
			first = now
			if t, tracked := s.tracker.FirstSeen(so.Local, so.Remote); tracked {
				first = t
			}
		}
		next[k] = first
		var p heartbeat.Process
		if o, ok := owners[so.Inode]; ok && so.Inode != 0 {
			p = process(o)
		}
		p.UID = so.UID // the socket's owner, as the kernel reports it
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
				Inode: so.Inode, Netns: h.Sensor.Netns, Service: heartbeat.ServiceName(so.Local.Port()),
				Process: p, FirstSeen: seenAt,
			})
		case so.State == procnet.Listen:
			h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{
				Family: family, LocalAddress: so.Local.Addr(), LocalPort: so.Local.Port(),
				Inode: so.Inode, Netns: h.Sensor.Netns, Process: p, FirstSeen: seenAt,
			})
		default:
			c := heartbeat.Conn{
				Family: family, LocalAddress: so.Local.Addr(), LocalPort: so.Local.Port(),
				RemoteAddress: so.Remote.Addr(), RemotePort: so.Remote.Port(), State: so.State.String(),
				Inode: so.Inode, Netns: h.Sensor.Netns, Process: p, FirstSeen: seenAt,
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

// remoteOrZero leaves the remote of an unconnected UDP socket empty.
func remoteOrZero(ap netip.AddrPort) netip.Addr {
	if ap.Port() == 0 && ap.Addr().IsUnspecified() {
		return netip.Addr{}
	}
	return ap.Addr()
}
