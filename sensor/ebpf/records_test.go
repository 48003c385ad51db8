package ebpf

import (
	"net/netip"
	"testing"
	"time"
)

// A flow record decodes field by field (layout_test.go checks the offsets
// against bpf/records.h).
func TestDecodeFlow(t *testing.T) {
	b := make([]byte, flowRecSize)
	b[recTypeAt], b[flowRecFamily], b[flowRecOldState] = recClose, afInet6, 9
	b[flowRecFlags] = flagOut | flagEstab | flagFinOut | flagFinIn | flagFinAcked
	le.PutUint16(b[flowRecSport:], 40000)
	le.PutUint16(b[flowRecDport:], 443)
	le.PutUint32(b[flowRecPID:], 4242)
	le.PutUint32(b[flowRecUID:], 1000)
	le.PutUint64(b[flowRecTS:], 2e9)
	le.PutUint64(b[flowRecStart:], 1e9)
	le.PutUint64(b[flowRecSk:], 0xffff8880deadbeef)
	le.PutUint64(b[flowRecAcked:], 12)
	le.PutUint64(b[flowRecReceived:], 6)
	le.PutUint64(b[flowRecPStart:], 777)
	le.PutUint64(b[flowRecNetns:], 4026532301)
	local, remote := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:10.0.0.9")
	l16, r16 := local.As16(), remote.As16()
	copy(b[flowRecSaddr:], l16[:])
	copy(b[flowRecDaddr:], r16[:])
	copy(b[flowRecComm:], "curl\x00")
	var f Flow
	if err := decodeFlow(b, &f); err != nil {
		t.Fatal(err)
	}
	want := Flow{Close: true, Local: netip.AddrPortFrom(local, 40000), Remote: netip.AddrPortFrom(remote, 443), OldState: 9,
		Flags: b[flowRecFlags], PID: 4242, UID: 1000, ProcStart: 777, Time: 2e9, Start: 1e9, Sock: 0xffff8880deadbeef, BytesAcked: 12, BytesReceived: 6, Netns: 4026532301}
	copy(want.Comm[:], "curl")
	if f != want {
		t.Fatalf("decoded %+v\nwant    %+v", f, want)
	}
	if !f.Outbound() || f.Inbound() || !f.Established() || !f.FinOut() || !f.FinIn() || !f.FinAcked() || CommString(&f.Comm) != "curl" {
		t.Fatalf("flags or comm wrong: %+v", f)
	}
	if decodeFlow(b[:flowRecSize-1], &f) != ErrShort {
		t.Fatal("short record accepted")
	}
}

func TestDecodeLookupKeepsOnlyFilledSlots(t *testing.T) {
	b := make([]byte, lookupRecSize)
	b[recTypeAt], b[lookupRecNaddr] = recLookup, 3
	copy(b[lookupRecName:], "example.org\x00garbage")
	b[lookupRecFam], b[lookupRecFam+1], b[lookupRecFam+2] = afInet, 0, afInet6 // slot 1 was skipped by the probe
	copy(b[lookupRecAddrs:], []byte{93, 184, 216, 34})
	v6 := netip.MustParseAddr("2606:2800::1").As16()
	copy(b[lookupRecAddrs+2*addrLen:], v6[:])
	le.PutUint64(b[lookupRecNetns:], 4026532302)
	var l Lookup
	if err := decodeLookup(b, &l); err != nil {
		t.Fatal(err)
	}
	if string(l.Name) != "example.org" || len(l.Addrs) != 2 || l.Addrs[0].String() != "93.184.216.34" || l.Addrs[1].String() != "2606:2800::1" {
		t.Fatalf("decoded %q %v", l.Name, l.Addrs)
	}
	if l.Netns != 4026532302 {
		t.Fatalf("netns %d, want 4026532302", l.Netns)
	}
	b[lookupRecNaddr] = 200 // more than the record holds
	if err := decodeLookup(b, &l); err != nil || len(l.Addrs) != 2 {
		t.Fatalf("naddr over the slots: %v %v", err, l.Addrs)
	}
}

// A DNS record's fixed head decodes, the namespace included, and its data
// is what len says was captured.
func TestDecodeDNS(t *testing.T) {
	b := make([]byte, dnsRecData+dnsCap)
	b[recTypeAt], b[dnsRecFamily], b[dnsRecProto] = recDNS, afInet, 17
	// Each integer member, little-endian in its width.
	for _, m := range []struct {
		at, width int
		v         uint64
	}{{dnsRecSport, 2, 50000}, {dnsRecDport, 2, 53}, {dnsRecPID, 4, 612}, {dnsRecLen, 4, 3}, {dnsRecSendSize, 4, 40}, {dnsRecNetns, 8, 4026532303}} {
		copy(b[m.at:m.at+m.width], le.AppendUint64(nil, m.v))
	}
	copy(b[dnsRecSaddr:], []byte{10, 0, 0, 1})
	copy(b[dnsRecDaddr:], []byte{10, 0, 0, 2})
	copy(b[dnsRecData:], "abcdef")
	var d DNS
	if err := decodeDNS(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Netns != 4026532303 || d.PID != 612 || d.Size != 40 || string(d.Data) != "abc" ||
		d.Local.String() != "10.0.0.1:50000" || d.Remote.String() != "10.0.0.2:53" {
		t.Fatalf("decoded %+v", d)
	}
	if decodeDNS(b[:dnsRecData-1], &d) != ErrShort {
		t.Fatal("short record accepted")
	}
}

// Decoding a record allocates nothing: the reader runs once per record.
func TestDecodeAllocatesNothing(t *testing.T) {
	b := make([]byte, flowRecSize)
	b[recTypeAt], b[flowRecFamily] = recOpen, afInet
	var f Flow
	if n := testing.AllocsPerRun(100, func() { decodeFlow(b, &f) }); n != 0 {
		t.Fatalf("decodeFlow allocates %v times", n)
	}
}

func TestLineage(t *testing.T) {
	var l Lineage
	t0 := time.Unix(1_800_000_000, 0)
	a, b := netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("2606:2800::1")
	l.Lookup(10, "example.org", []netip.Addr{a, b}, t0)
	if _, ok := l.Connect(11, a, t0.Add(time.Second)); ok {
		t.Fatal("joined another process's lookup")
	}
	if _, ok := l.Connect(10, netip.MustParseAddr("1.1.1.1"), t0.Add(time.Second)); ok {
		t.Fatal("joined an address the lookup did not return")
	}
	r, ok := l.Connect(10, netip.AddrFrom16(a.As16()), t0.Add(time.Second)) // v4-mapped is the same address
	if !ok || r.Name != "example.org" || len(r.Answers) != 2 {
		t.Fatalf("Connect = %+v %v", r, ok)
	}
	if _, ok := l.Connect(10, a, t0.Add(2*time.Second)); ok {
		t.Fatal("a lookup joined twice")
	}
	l.Lookup(10, "late.example", []netip.Addr{a}, t0)
	if _, ok := l.Connect(10, a, t0.Add(2*time.Minute)); ok {
		t.Fatal("joined a lookup older than the window")
	}
}
