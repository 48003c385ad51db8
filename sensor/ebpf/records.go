package ebpf

import (
	"encoding/binary"
	"errors"
	"net/netip"
)

// Record types and flags, as bpf/records.h defines them.
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

	// Linux's address families, as the family bytes hold them.
	afInet  = 2
	afInet6 = 10
)

// Where the decoding finds each field of the structs in bpf/records.h, and
// the structs' sizes (records shorter than these are refused). Nothing
// generates these from the C: layout_test.go compiles the header and fails
// when they disagree.
const (
	recTypeAt = 0 // every record starts with its type, which dispatch switches on

	// struct flow_rec
	flowRecFamily   = 1
	flowRecOldState = 2
	flowRecFlags    = 3
	flowRecSport    = 4
	flowRecDport    = 6
	flowRecPID      = 8
	flowRecUID      = 12
	flowRecTS       = 16
	flowRecStart    = 24
	flowRecSk       = 32
	flowRecAcked    = 40
	flowRecReceived = 48
	flowRecPStart   = 56
	flowRecSaddr    = 64
	flowRecDaddr    = 80
	flowRecComm     = 96
	flowRecNetns    = 112
	flowRecSize     = 120

	// struct dns_rec: a fixed head, then up to dnsCap bytes of the message
	dnsRecFamily   = 1
	dnsRecProto    = 2
	dnsRecSport    = 4
	dnsRecDport    = 6
	dnsRecPID      = 8
	dnsRecUID      = 12
	dnsRecTS       = 16
	dnsRecPStart   = 24
	dnsRecSaddr    = 32
	dnsRecDaddr    = 48
	dnsRecComm     = 64
	dnsRecLen      = 80
	dnsRecSendSize = 84
	dnsRecNetns    = 88
	dnsRecData     = 96
	dnsCap         = 512

	// struct lookup_rec
	lookupRecNaddr  = 1
	lookupRecRet    = 4
	lookupRecPID    = 8
	lookupRecUID    = 12
	lookupRecTS     = 16
	lookupRecStart  = 24
	lookupRecPStart = 32
	lookupRecComm   = 40
	lookupRecName   = 56
	lookupRecFam    = 312
	lookupRecAddrs  = 328
	lookupRecNetns  = 584
	lookupRecSize   = 592
	nameCap         = 256
	maxAddrs        = 16

	commLen = 16
	addrLen = 16 // an IPv4 address fills the first 4
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
	// Netns is the inode of the socket's network namespace (0: unknown):
	// the probes see every namespace's sockets, the polls only the sensor's.
	Netns uint64
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
	Netns         uint64 // of the sending socket
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
	Netns       uint64 // of the calling process
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
		Close: b[recTypeAt] == recClose, OldState: b[flowRecOldState], Flags: b[flowRecFlags],
		PID: le.Uint32(b[flowRecPID:]), UID: le.Uint32(b[flowRecUID:]),
		Time: le.Uint64(b[flowRecTS:]), Start: le.Uint64(b[flowRecStart:]), Sock: le.Uint64(b[flowRecSk:]),
		BytesAcked: le.Uint64(b[flowRecAcked:]), BytesReceived: le.Uint64(b[flowRecReceived:]), ProcStart: le.Uint64(b[flowRecPStart:]),
		Netns: le.Uint64(b[flowRecNetns:]),
	}
	fam := b[flowRecFamily]
	f.Local = netip.AddrPortFrom(addr(fam, b[flowRecSaddr:flowRecSaddr+addrLen]), le.Uint16(b[flowRecSport:]))
	f.Remote = netip.AddrPortFrom(addr(fam, b[flowRecDaddr:flowRecDaddr+addrLen]), le.Uint16(b[flowRecDport:]))
	copy(f.Comm[:], b[flowRecComm:flowRecComm+commLen])
	return nil
}

// decodeDNS reads a dns_rec; d.Data aliases b.
func decodeDNS(b []byte, d *DNS) error {
	if len(b) < dnsRecData {
		return ErrShort
	}
	*d = DNS{Proto: b[dnsRecProto], PID: le.Uint32(b[dnsRecPID:]), UID: le.Uint32(b[dnsRecUID:]),
		Time: le.Uint64(b[dnsRecTS:]), ProcStart: le.Uint64(b[dnsRecPStart:]), Size: le.Uint32(b[dnsRecSendSize:]),
		Netns: le.Uint64(b[dnsRecNetns:])}
	fam := b[dnsRecFamily]
	d.Local = netip.AddrPortFrom(addr(fam, b[dnsRecSaddr:dnsRecSaddr+addrLen]), le.Uint16(b[dnsRecSport:]))
	d.Remote = netip.AddrPortFrom(addr(fam, b[dnsRecDaddr:dnsRecDaddr+addrLen]), le.Uint16(b[dnsRecDport:]))
	copy(d.Comm[:], b[dnsRecComm:dnsRecComm+commLen])
	n := int(le.Uint32(b[dnsRecLen:]))
	n = min(n, dnsCap, len(b)-dnsRecData)
	d.Data = b[dnsRecData : dnsRecData+n]
	return nil
}

// decodeLookup reads a lookup_rec; l.Name aliases b, l.Addrs is reused.
func decodeLookup(b []byte, l *Lookup) error {
	if len(b) < lookupRecSize {
		return ErrShort
	}
	addrs := l.Addrs[:0]
	*l = Lookup{Ret: int32(le.Uint32(b[lookupRecRet:])), PID: le.Uint32(b[lookupRecPID:]), UID: le.Uint32(b[lookupRecUID:]),
		Time: le.Uint64(b[lookupRecTS:]), Start: le.Uint64(b[lookupRecStart:]), ProcStart: le.Uint64(b[lookupRecPStart:]),
		Netns: le.Uint64(b[lookupRecNetns:])}
	copy(l.Comm[:], b[lookupRecComm:lookupRecComm+commLen])
	name := b[lookupRecName : lookupRecName+nameCap]
	for i, c := range name {
		if c == 0 {
			name = name[:i]
			break
		}
	}
	l.Name = name
	n := min(int(b[lookupRecNaddr]), maxAddrs)
	fams := b[lookupRecFam : lookupRecFam+maxAddrs]
	for i := range n {
		at := lookupRecAddrs + addrLen*i
		a := addr(fams[i], b[at:at+addrLen])
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
