package procnet

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func equalAssoc(a, b SCTPAssoc) bool {
	return a.AssocID == b.AssocID && a.State == b.State && a.UID == b.UID && a.Inode == b.Inode &&
		a.LocalPort == b.LocalPort && a.RemotePort == b.RemotePort && a.Primary == b.Primary &&
		a.TxQueue == b.TxQueue && a.RxQueue == b.RxQueue &&
		slices.Equal(a.LocalAddrs, b.LocalAddrs) && slices.Equal(a.RemoteAddrs, b.RemoteAddrs)
}

func TestSCTPFixture(t *testing.T) {
	assocs, eps, err := NewFS("testdata/proc").SCTP(0)
	if err != nil {
		t.Fatal(err)
	}
	wantAssocs := []SCTPAssoc{
		{AssocID: 1, State: SCTPEstablished, Inode: 131100, LocalPort: 36412, RemotePort: 36412,
			LocalAddrs: addrs("10.0.0.5", "10.0.1.5"), RemoteAddrs: addrs("10.0.0.9", "10.0.1.9"), Primary: netip.MustParseAddr("10.0.0.9")},
		{AssocID: 2, State: SCTPEstablished, Inode: 131100, LocalPort: 36412, RemotePort: 40001, TxQueue: 1200, RxQueue: 88,
			LocalAddrs: addrs("10.0.0.5", "10.0.1.5"), RemoteAddrs: addrs("192.168.10.7", "192.168.11.7"), Primary: netip.MustParseAddr("192.168.11.7")},
		{AssocID: 3, State: SCTPEstablished, UID: 1000, Inode: 131101, LocalPort: 3868, RemotePort: 3868,
			LocalAddrs: addrs("2001:db8::5"), RemoteAddrs: addrs("2001:db8::9", "2001:db8:1::9"), Primary: netip.MustParseAddr("2001:db8::9")},
		{AssocID: 4, State: SCTPCookieWait, Inode: 131102, LocalPort: 38412, RemotePort: 38412,
			LocalAddrs: addrs("10.0.0.5"), RemoteAddrs: addrs("10.0.0.20"), Primary: netip.MustParseAddr("10.0.0.20")},
		{AssocID: 5, State: SCTPShutdownSent, Inode: 131100, LocalPort: 36412, RemotePort: 36500,
			LocalAddrs: addrs("10.0.0.5", "10.0.1.5"), RemoteAddrs: addrs("10.0.0.30"), Primary: netip.MustParseAddr("10.0.0.30")},
	}
	if len(assocs) != len(wantAssocs) {
		t.Fatalf("%d assocs, want %d: %+v", len(assocs), len(wantAssocs), assocs)
	}
	for i := range assocs {
		if !equalAssoc(assocs[i], wantAssocs[i]) {
			t.Errorf("assoc %d\n got %+v\nwant %+v", i, assocs[i], wantAssocs[i])
		}
	}
	wantEps := []SCTPEndpoint{
		{LocalPort: 36412, Inode: 131100, LocalAddrs: addrs("10.0.0.5", "10.0.1.5")},
		{LocalPort: 3868, UID: 1000, Inode: 131099, LocalAddrs: addrs("2001:db8::5")},
		{LocalPort: 3868, UID: 1000, Inode: 131101, LocalAddrs: addrs("2001:db8::5")},
		{LocalPort: 38412, Inode: 131102, LocalAddrs: addrs("10.0.0.5")},
	}
	if len(eps) != len(wantEps) {
		t.Fatalf("%d endpoints, want %d", len(eps), len(wantEps))
	}
	for i := range eps {
		g, w := eps[i], wantEps[i]
		if g.LocalPort != w.LocalPort || g.UID != w.UID || g.Inode != w.Inode || !slices.Equal(g.LocalAddrs, w.LocalAddrs) {
			t.Errorf("endpoint %d\n got %+v\nwant %+v", i, g, w)
		}
	}
	if SCTPEstablished.String() != "ESTABLISHED" || SCTPShutdownAckSent.String() != "SHUTDOWN_ACK_SENT" || SCTPState(8).String() != "UNKNOWN(8)" {
		t.Error("SCTPState.String")
	}
}

func TestSCTPUnavailable(t *testing.T) {
	_, _, err := NewFS("testdata/nosctp").SCTP(0)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	// A namespace that is gone is not "no SCTP".
	if _, _, err := NewFS("testdata/proc").SCTP(999); err == nil || errors.Is(err, ErrUnavailable) {
		t.Fatalf("SCTP(999) err = %v", err)
	}
}

const assocsHeader = " ASSOC     SOCK   STY SST ST HBKT ASSOC-ID TX_QUEUE RX_QUEUE UID INODE LPORT RPORT LADDRS <-> RADDRS HBINT INS OUTS MAXRT T1X T2X RTXC wmema wmemq sndbuf rcvbuf\n"

func TestParseSCTPAssocs(t *testing.T) {
	f := func(line string, want SCTPAssoc) {
		t.Helper()
		got, err := ParseSCTPAssocs(strings.NewReader(assocsHeader+line+"\n"), nil)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if len(got) != 1 || !equalAssoc(got[0], want) {
			t.Fatalf("%q\n got %+v\nwant %+v", line, got, want)
		}
	}
	// Pre-3.x kernels end the line after the remote addresses, with no tab.
	f("ffff88003d2c1000 ffff88003b9c4800 1   1   3  17      7        0        0       0  5122 2905   2905   10.1.1.1 <-> *10.1.1.2 ",
		SCTPAssoc{AssocID: 7, State: SCTPEstablished, Inode: 5122, LocalPort: 2905, RemotePort: 2905,
			LocalAddrs: addrs("10.1.1.1"), RemoteAddrs: addrs("10.1.1.2"), Primary: netip.MustParseAddr("10.1.1.2")})
	// A transient negative queue reads as 0; no primary marked; max ports.
	f("0000000000000000 0000000000000000 5   10  3  0    2147483647       -8        5 4294967295 18446744073709551615 65535 65535  10.1.1.1 <-> 10.1.1.2 10.1.1.3 \t   30000    10    10   10    0    0        0        1        0   212992   212992",
		SCTPAssoc{AssocID: 2147483647, State: SCTPEstablished, RxQueue: 5, UID: 1<<32 - 1, Inode: 1<<64 - 1, LocalPort: 65535, RemotePort: 65535,
			LocalAddrs: addrs("10.1.1.1"), RemoteAddrs: addrs("10.1.1.2", "10.1.1.3")})
	// Mixed families on one association.
	f("0000000000000000 0000000000000000 1   1   3  0       9        0        0       0  7777 5000   6000   *10.1.1.1 fe80:0000:0000:0000:0000:0000:0000:0001 <-> *2001:0db8:0000:0000:0000:0000:0000:0002 10.9.9.9 \t 30000 1 1 10 0 0 0 1 0 1 1",
		SCTPAssoc{AssocID: 9, State: SCTPEstablished, Inode: 7777, LocalPort: 5000, RemotePort: 6000,
			LocalAddrs: addrs("10.1.1.1", "fe80::1"), RemoteAddrs: addrs("2001:db8::2", "10.9.9.9"), Primary: netip.MustParseAddr("2001:db8::2")})

	bad := func(line, field, reason string) {
		t.Helper()
		good := "0000000000000000 0000000000000000 1   1   3  0       1        0        0       0  5122 2905   2905   10.1.1.1 <-> *10.1.1.2 \t 1 1 1 1 1 1 1 1 1 1 1"
		got, err := ParseSCTPAssocs(strings.NewReader(assocsHeader+good+"\n"+line+"\n"+good+"\n"), nil)
		var pe *ParseError
		if len(got) != 2 || !errors.As(err, &pe) || !errors.Is(err, ErrParse) || pe.Count != 1 {
			t.Fatalf("%q: %d assocs, err %v", line, len(got), err)
		}
		if want := (LineError{Line: 3, Field: field, Reason: reason}); pe.Lines[0] != want {
			t.Fatalf("%q: %+v, want %+v", line, pe.Lines[0], want)
		}
	}
	bad("0000000000000000 0000000000000000 1   1   3  0       1", "TX_QUEUE", reasonMissing)
	bad("0000000000000000 0000000000000000 1   1   9  0       1        0        0       0  5122 2905   2905   10.1.1.1 <-> 10.1.1.2 ", "ST", reasonState)
	bad("0000000000000000 0000000000000000 1   1   3  0       1        0        0       0  5122 70000  2905   10.1.1.1 <-> 10.1.1.2 ", "LPORT", reasonDecimal)
	bad("0000000000000000 0000000000000000 1   1   3  0       1        0        0       0  5122 2905   2905   10.1.1.1 10.1.1.2 ", "LADDRS <-> RADDRS", reasonSeparator)
	bad("0000000000000000 0000000000000000 1   1   3  0       1        0        0       0  5122 2905   2905   10.1.1 <-> 10.1.1.2 ", "LADDRS", reasonAddress)
	bad("0000000000000000 0000000000000000 1   1   3  0       1        0        0       0  5122 2905   2905   10.1.1.1 <-> ** ", "RADDRS", reasonAddress)
	bad("0000000000000000 0000000000000000 1   x   3  0       1        0        0       0  5122 2905   2905   10.1.1.1 <-> 10.1.1.2 ", "SST", reasonDecimal)
}

func TestParseSCTPEndpoints(t *testing.T) {
	const hdr = " ENDPT     SOCK   STY SST HBKT LPORT   UID INODE LADDRS\n"
	in := hdr +
		"ffff88003b9c4800 ffff88003b9c4000 1   10  11   2905      0 5120 10.1.1.1 10.1.2.1 \n" +
		"ffff88003b9c4800 ffff88003b9c4000 1   10  11   2905  0 5120\n" + // no address yet
		"ffff88003b9c4800 ffff88003b9c4000 1   10  11   x905      0 5121 10.1.1.1 \n"
	got, err := ParseSCTPEndpoints(strings.NewReader(in), nil)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Count != 1 || pe.Lines[0].Line != 4 || pe.Lines[0].Field != "LPORT" {
		t.Fatalf("err = %v", err)
	}
	if len(got) != 2 || got[0].LocalPort != 2905 || got[0].Inode != 5120 || !slices.Equal(got[0].LocalAddrs, addrs("10.1.1.1", "10.1.2.1")) || len(got[1].LocalAddrs) != 0 {
		t.Fatalf("got %+v", got)
	}
}
