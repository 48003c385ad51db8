package sensor

import (
	"errors"

	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/flows"
	"github.com/netview/netview/sensor/procnet"
)

// diagSource polls TCP sockets through netlink, with byte counters.
type diagSource struct {
	conn  *diag.Conn
	socks []diag.Sock
}

func (d *diagSource) Name() string { return "inet_diag" }

func (d *diagSource) Poll(dst []flows.Observation) ([]flows.Observation, error) {
	var err error
	d.socks, err = d.conn.TCP(0, d.socks[:0])
	if err != nil {
		return dst, err
	}
	for i := range d.socks {
		so := &d.socks[i]
		dst = append(dst, flows.Observation{Local: so.Local, Remote: so.Remote, State: so.State, UID: so.UID, Inode: so.Inode,
			Cookie: so.Cookie, BytesSent: so.BytesSent, BytesReceived: so.BytesReceived, HasBytes: so.HasBytes})
	}
	return dst, nil
}

// procSource polls TCP sockets from /proc/net: states only, no bytes.
type procSource struct {
	fs    procnet.FS
	socks []procnet.Socket
}

func (p *procSource) Name() string { return "proc" }

func (p *procSource) Poll(dst []flows.Observation) ([]flows.Observation, error) {
	var err error
	p.socks, err = p.fs.Sockets(0, p.socks[:0])
	if errors.Is(err, procnet.ErrParse) {
		err = nil // malformed lines are skipped; the rest is good
	}
	for i := range p.socks {
		so := &p.socks[i]
		if so.Proto != procnet.TCP {
			continue
		}
		dst = append(dst, flows.Observation{Local: so.Local, Remote: so.Remote, State: uint8(so.State), UID: so.UID, Inode: so.Inode})
	}
	return dst, err
}
