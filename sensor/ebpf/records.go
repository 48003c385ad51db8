package ebpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Record types and flags, as bpf/netview.c writes them.
const (
	recOpen   = 1
	recClose  = 2
	recDNS    = 3
	recLookup = 4

	flagOut      = 0x01
	flagIn       = 0x02
	flagEstab    = 0x04
	flagFinOut   = 0x08
	flagFinIn    = 0x10
	flagFinAcked = 0x20

	afInet  = 2
	afInet6 = 10

	// Sizes of the C structs; records shorter than these are refused.
	flowRecSize   = 112
	dnsRecHead    = 88
	dnsCap        = 512
	lookupRecSize = 56 + 256 + 16 + 16*16
	maxAddrs      = 16
)

var le = binary.LittleEndian // BPF records are in the host's order; amd64 is little-endian

// ErrShort is returned for a record shorter than its type's layout.
var ErrShort = errors.New("ebpf: short record")

// Flow is a TCP socket's open (a connect that reached ESTABLISHED, or an
// accept) or close, as the kernel saw it. Times are CLOCK_MONOTONIC ns.
type Flow struct {
	Close         bool
	Local, Remote netip.AddrPort
	// OldState is the TCP state the socket left for CLOSE.
	OldState uint8
	Flags    uint8
	PID, UID uint32
	// ProcStart is the process's start time (ns since boot), to check that
	// the pid still names the same process when it is looked up later.
	ProcStart uint64
	Comm      [16]byte
	Time      uint64
	// Start is when the connect or the SYN happened, 0 when unknown (the
	// socket predates the probes).
	Start uint64
	Sock  uint64
	// BytesAcked and BytesReceived are tcp_sock's counters at close: they
	// count sequence numbers, so the SYN and FINs are in them.
	BytesAcked, BytesReceived uint64
}

func (f *Flow) Outbound() bool    { return f.Flags&flagOut != 0 }
func (f *Flow) Inbound() bool     { return f.Flags&flagIn != 0 }
func (f *Flow) Established() bool { return f.Flags&flagEstab != 0 }
func (f *Flow) FinOut() bool      { return f.Flags&flagFinOut != 0 }
func (f *Flow) FinIn() bool       { return f.Flags&flagFinIn != 0 }
func (f *Flow) FinAcked() bool    { return f.Flags&flagFinAcked != 0 }

// DNS is a packet a process sent to port 53, 853 or 5353.
type DNS struct {
	Proto         uint8 // 6 (TCP) or 17 (UDP)
	Local, Remote netip.AddrPort
	PID, UID      uint32
	ProcStart     uint64
	Comm          [16]byte
	Time          uint64
	// Size is what the call sent; Data the start of it that was captured.
	// Data points into the reader's buffer: valid only during the call.
	Size uint32
	Data []byte
}

// Lookup is one getaddrinfo call.
type Lookup struct {
	Ret         int32 // getaddrinfo's result: 0 for success
	PID, UID    uint32
	ProcStart   uint64
	Comm        [16]byte
	Start, Time uint64
	// Name points into the reader's buffer: valid only during the call.
	Name  []byte
	Addrs []netip.Addr // reused between calls
}

// decodeFlow reads a flow_rec.
func decodeFlow(b []byte, f *Flow) error {
	if len(b) < flowRecSize {
		return ErrShort
	}
	*f = Flow{
		Close: b[0] == recClose, OldState: b[2], Flags: b[3],
		PID: le.Uint32(b[8:]), UID: le.Uint32(b[12:]),
		Time: le.Uint64(b[16:]), Start: le.Uint64(b[24:]), Sock: le.Uint64(b[32:]),
		BytesAcked: le.Uint64(b[40:]), BytesReceived: le.Uint64(b[48:]), ProcStart: le.Uint64(b[56:]),
	}
	f.Local = netip.AddrPortFrom(addr(b[1], b[64:80]), le.Uint16(b[4:]))
	f.Remote = netip.AddrPortFrom(addr(b[1], b[80:96]), le.Uint16(b[6:]))
	copy(f.Comm[:], b[96:112])
	return nil
}

// decodeDNS reads a dns_rec; d.Data aliases b.
func decodeDNS(b []byte, d *DNS) error {
	if len(b) < dnsRecHead {
		return ErrShort
	}
	*d = DNS{Proto: b[2], PID: le.Uint32(b[8:]), UID: le.Uint32(b[12:]), Time: le.Uint64(b[16:]), ProcStart: le.Uint64(b[24:]),
		Size: le.Uint32(b[84:])}
	d.Local = netip.AddrPortFrom(addr(b[1], b[32:48]), le.Uint16(b[4:]))
	d.Remote = netip.AddrPortFrom(addr(b[1], b[48:64]), le.Uint16(b[6:]))
	copy(d.Comm[:], b[64:80])
	n := int(le.Uint32(b[80:]))
	n = min(n, dnsCap, len(b)-dnsRecHead)
	d.Data = b[dnsRecHead : dnsRecHead+n]
	return nil
}

// decodeLookup reads a lookup_rec; l.Name aliases b, l.Addrs is reused.
func decodeLookup(b []byte, l *Lookup) error {
	if len(b) < lookupRecSize {
		return ErrShort
	}
	addrs := l.Addrs[:0]
	*l = Lookup{Ret: int32(le.Uint32(b[4:])), PID: le.Uint32(b[8:]), UID: le.Uint32(b[12:]),
		Time: le.Uint64(b[16:]), Start: le.Uint64(b[24:]), ProcStart: le.Uint64(b[32:])}
	copy(l.Comm[:], b[40:56])
	name := b[56 : 56+256]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	l.Name = name
	n := min(int(b[1]), maxAddrs)
	fams := b[312:328]
	for i := range n {
		a := addr(fams[i], b[328+16*i:328+16*(i+1)])
		if fams[i] == 0 || !a.IsValid() {
			continue
		}
		addrs = append(addrs, a)
	}
	l.Addrs = addrs
	return nil
}

// addr reads an IPv4 (first 4 bytes) or IPv6 address by family.
func addr(family byte, b []byte) netip.Addr {
	switch family {
	case afInet:
		return netip.AddrFrom4([4]byte(b[:4]))
	case afInet6:
		return netip.AddrFrom16([16]byte(b[:16]))
	}
	return netip.Addr{}
}

// CommString returns a NUL-terminated comm as a string.
func CommString(c *[16]byte) string {
	for i, b := range c {
		if b == 0 {
			return string(c[:i])
		}
	}
	return string(c[:])
}
