package procnet

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/netview/netview/internal/tcpstate"
)

const (
	tcpHeader  = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tcp6Header = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
)

// littleEndianOnly skips fixture tests whose hex was written by a
// little-endian kernel; on a big-endian host the same addresses read
// differently, which is the point of decoding with NativeEndian.
func littleEndianOnly(t testing.TB) {
	t.Helper()
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("fixtures hold addresses as a little-endian kernel prints them")
	}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func TestParseIPv4(t *testing.T) {
	littleEndianOnly(t)
	f := func(line string, want Socket) {
		t.Helper()
		got, err := Parse(strings.NewReader(tcpHeader+line+"\n"), TCP, false, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		want.Proto = TCP
		if len(got) != 1 || got[0] != want {
			t.Fatalf("Parse(%q)\n got %+v\nwant %+v", line, got, want)
		}
	}
	f("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 121917 1 00000000b3dad26c 100 0 0 10 0",
		Socket{Local: ap("127.0.0.1:8080"), Remote: ap("0.0.0.0:0"), State: tcpstate.Listen, Inode: 121917})
	f("   2: 0100007F:98A2 0100007F:1F90 01 00000000:00000064 00:00000000 00000000  1000        0 121918 2 000000004233fd23 20 0 0 11 -1",
		Socket{Local: ap("127.0.0.1:39074"), Remote: ap("127.0.0.1:8080"), State: tcpstate.Established, RxQueue: 100, UID: 1000, Inode: 121918})
	// 10.0.2.15:50000 -> 93.184.216.34:443, send queue 100000.
	f("   6: 0F02000A:C350 22D8B85D:01BB 04 000186A0:00000000 01:00000014 00000000  1000        0 5000000000 1 0 20 4 30 10 -1",
		Socket{Local: ap("10.0.2.15:50000"), Remote: ap("93.184.216.34:443"), State: tcpstate.FinWait1, TxQueue: 100000, UID: 1000, Inode: 5000000000})
	// TIME_WAIT sockets have no inode and print fewer columns.
	f("   1: 0100007F:90EA 0100007F:46AA 06 00000000:00000000 03:00001738 00000000     0        0 0 3 0000000059fc4d03",
		Socket{Local: ap("127.0.0.1:37098"), Remote: ap("127.0.0.1:18090"), State: tcpstate.TimeWait})
	// Lower-case hex, the widest port, the largest uid and inode, full queues.
	f("   3: 0100007f:ffff 0a0b0c0d:fFfF 0a ffffffff:FFFFFFFF 00:00000000 00000000 4294967295        0 18446744073709551615 1 0",
		Socket{Local: ap("127.0.0.1:65535"), Remote: ap("13.12.11.10:65535"), State: tcpstate.Listen,
			TxQueue: 1<<32 - 1, RxQueue: 1<<32 - 1, UID: 1<<32 - 1, Inode: 1<<64 - 1})
	// Past 9999 sockets "%4d:" widens and loses its leading blank.
	f("10000: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1 0",
		Socket{Local: ap("127.0.0.1:22"), Remote: ap("0.0.0.0:0"), State: tcpstate.Listen, Inode: 7})
	// Trailing blanks (seq_pad) are not fields.
	f("   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5                  ",
		Socket{Local: ap("127.0.0.1:8080"), Remote: ap("0.0.0.0:0"), State: tcpstate.Listen, Inode: 5})
}

func TestParseEveryState(t *testing.T) {
	littleEndianOnly(t)
	names := tcpstate.Names() // their spelling is pinned in internal/tcpstate
	var in strings.Builder
	in.WriteString(tcpHeader)
	for i := range names {
		fmt.Fprintf(&in, "%4d: 0100007F:1F90 0100007F:%04X %02X 00000000:00000000 00:00000000 00000000     0        0 %d 1 0\n", i, 1000+i, i+1, 100+i)
	}
	got, err := Parse(strings.NewReader(in.String()), TCP, false, nil)
	if err != nil || len(got) != len(names) {
		t.Fatalf("got %d sockets, err %v", len(got), err)
	}
	for i, s := range got {
		if int(s.State) != i+1 || s.State.String() != names[i] || s.Remote.Port() != uint16(1000+i) || s.Inode != uint64(100+i) {
			t.Errorf("line %d: %+v (%v), want state %d %s", i+2, s, s.State, i+1, names[i])
		}
	}
	for _, s := range []State{0, 13, 255} {
		if got, want := s.String(), fmt.Sprintf("UNKNOWN(%d)", s); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestParseIPv6(t *testing.T) {
	littleEndianOnly(t)
	f := func(line string, want Socket) {
		t.Helper()
		got, err := Parse(strings.NewReader(tcp6Header+line+"\n"), TCP, true, nil)
		if err != nil {
			t.Fatalf("Parse(%q): %v", line, err)
		}
		want.Proto, want.IPv6 = TCP, true
		if len(got) != 1 || got[0] != want {
			t.Fatalf("Parse(%q)\n got %+v\nwant %+v", line, got, want)
		}
	}
	f("   0: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 121920 1 0 100 0 0 10 0",
		Socket{Local: ap("[::]:8443"), Remote: ap("[::]:0"), State: tcpstate.Listen, Inode: 121920})
	f("   1: 00000000000000000000000001000000:0035 00000000000000000000000001000000:E440 01 00000000:00000000 00:00000000 00000000     0        0 121922 1 0 20 0 0 10 -1",
		Socket{Local: ap("[::1]:53"), Remote: ap("[::1]:58432"), State: tcpstate.Established, Inode: 121922})
	// A dual-stack socket talking IPv4 keeps its v4-mapped form.
	f("   3: 0000000000000000FFFF00000100007F:20FB 0000000000000000FFFF00000100007F:E91A 01 00000000:00000000 00:00000000 00000000     0        0 121924 1 0 20 0 0 10 -1",
		Socket{Local: ap("[::ffff:127.0.0.1]:8443"), Remote: ap("[::ffff:127.0.0.1]:59674"), State: tcpstate.Established, Inode: 121924})
	f("   4: B80D01200000A3852E8A000034737003:01BB B80D0120020001000400030006000500:C738 01 000002C0:0000001F 00:00000000 00000000  1000        0 98765432101 1 0 20 4 30 10 -1",
		Socket{Local: ap("[2001:db8:85a3::8a2e:370:7334]:443"), Remote: ap("[2001:db8:1:2:3:4:5:6]:51000"),
			State: tcpstate.Established, TxQueue: 0x2C0, RxQueue: 0x1F, UID: 1000, Inode: 98765432101})
	f("   5: 000080FE00000000FF005450563412FE:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 18233 1 0",
		Socket{Local: ap("[fe80::5054:ff:fe12:3456]:22"), Remote: ap("[::]:0"), State: tcpstate.Listen, Inode: 18233})

	got, _ := Parse(strings.NewReader(tcp6Header+"   3: 0000000000000000FFFF00000100007F:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n"), TCP, true, nil)
	if len(got) != 1 || !got[0].Local.Addr().Is4In6() || got[0].Local.Addr().Unmap() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("v4-mapped: %+v", got)
	}
}

func TestParseUDP(t *testing.T) {
	littleEndianOnly(t)
	const hdr = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
	in := hdr +
		" 8164: 00000000:0868 00000000:0000 07 00000000:00000D00 00:00000000 00000000     0        0 121925 2 00000000dc641902 12\n" +
		" 1618: 0100007F:AED6 0100007F:2265 01 00000340:00000000 00:00000000 00000000  1000        0 121926 2 00000000bff21855 0\n"
	got, err := Parse(strings.NewReader(in), UDP, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Proto: UDP, Local: ap("0.0.0.0:2152"), Remote: ap("0.0.0.0:0"), State: tcpstate.Close, RxQueue: 0xD00, Inode: 121925},
		{Proto: UDP, Local: ap("127.0.0.1:44758"), Remote: ap("127.0.0.1:8805"), State: tcpstate.Established, TxQueue: 0x340, UID: 1000, Inode: 121926},
	}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if UDP.String() != "udp" || TCP.String() != "tcp" || Proto(9).String() != "proto(9)" {
		t.Error("Proto.String")
	}
}

func TestParseMalformed(t *testing.T) {
	littleEndianOnly(t)
	const good1 = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0"
	const good2 = "   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0"
	f := func(bad string, ipv6 bool, field, reason string) {
		t.Helper()
		hdr := tcpHeader
		g1, g2 := good1, good2
		if ipv6 {
			hdr = tcp6Header
			g1 = "   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0"
			g2 = "   2: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0"
		}
		got, err := Parse(strings.NewReader(hdr+g1+"\n"+bad+"\n"+g2+"\n"), TCP, ipv6, nil)
		if len(got) != 2 || got[0].Inode != 111 || got[1].Inode != 222 {
			t.Errorf("%q: good lines lost: %+v", bad, got)
		}
		var pe *ParseError
		if !errors.Is(err, ErrParse) || !errors.As(err, &pe) {
			t.Fatalf("%q: err = %v, want a *ParseError wrapping ErrParse", bad, err)
		}
		want := LineError{Line: 3, Field: field, Reason: reason}
		if pe.Count != 1 || len(pe.Lines) != 1 || pe.Lines[0] != want {
			t.Fatalf("%q: %+v, want %+v", bad, pe, want)
		}
		if !strings.Contains(err.Error(), "line 3: "+field) {
			t.Errorf("%q: message %q does not name line 3", bad, err)
		}
	}
	const rest = " 0A 00000000:00000000 00:00000000 00000000     0        0 333 1 0"
	f("garbage", false, "sl", reasonDecimal)
	f("   1 0100007F:1F90 00000000:0000"+rest, false, "sl", reasonDecimal)
	f("   1:", false, "local_address", reasonMissing)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000", false, "tr:tm->when", reasonMissing)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0", false, "inode", reasonMissing)
	f("   1: 0100007G:1F90 00000000:0000"+rest, false, "local_address", reasonHex)
	f("   1: 0100007F:1F90 00000000:00X0"+rest, false, "rem_address", reasonHex)
	f("   1: 100007F:1F90 00000000:0000"+rest, false, "local_address", reasonAddrLen)
	f("   1: 0100007F1F90 00000000:0000"+rest, false, "local_address", reasonAddrLen)
	f("   1: 0100007F:1F900 00000000:0000"+rest, false, "local_address", reasonPortLen)
	f("   1: 0100007F:1F90:00 00000000:0000"+rest, false, "local_address", reasonPortLen)
	// An IPv6 address in the IPv4 table and the reverse.
	f("   1: 00000000000000000000000001000000:1F90 00000000:0000"+rest, false, "local_address", reasonAddrLen)
	f("   1: 0100007F:1F90 00000000000000000000000000000000:0000"+rest, true, "local_address", reasonAddrLen)
	f("   1: 0100007F:1F90 00000000:0000 00 00000000:00000000 00:00000000 00000000 0 0 333 1 0", false, "st", reasonState)
	f("   1: 0100007F:1F90 00000000:0000 0D 00000000:00000000 00:00000000 00000000 0 0 333 1 0", false, "st", reasonState)
	f("   1: 0100007F:1F90 00000000:0000 ZZ 00000000:00000000 00:00000000 00000000 0 0 333 1 0", false, "st", reasonHex)
	f("   1: 0100007F:1F90 00000000:0000 00A 00000000:00000000 00:00000000 00000000 0 0 333 1 0", false, "st", reasonHex)
	f("   1: 0100007F:1F90 00000000:0000 0A 0000000000:00000000 00:00000000 00000000 0 0 333 1 0", false, "tx_queue", reasonHex)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000-00000000 00:00000000 00000000 0 0 333 1 0", false, "tx_queue:rx_queue", reasonHex)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:0000000X 00:00000000 00000000 0 0 333 1 0", false, "rx_queue", reasonHex)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 4294967296 0 333 1 0", false, "uid", reasonDecimal)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 -1 0 333 1 0", false, "uid", reasonDecimal)
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 18446744073709551616 1 0", false, "inode", reasonDecimal)
	// Trailing garbage glued to the last parsed field.
	f("   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 333xyz 1 0", false, "inode", reasonDecimal)
}

func TestParseReportsEveryBadLine(t *testing.T) {
	var in strings.Builder
	in.WriteString(tcpHeader)
	for i := range 40 {
		if i%2 == 1 {
			in.WriteString("bad line\n")
			continue
		}
		fmt.Fprintf(&in, "%4d: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0\n", i, i)
	}
	got, err := Parse(strings.NewReader(in.String()), TCP, false, nil)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Count != 20 || len(pe.Lines) != maxLineErrors || len(got) != 20 {
		t.Fatalf("got %d sockets, err %v", len(got), err)
	}
	for i, l := range pe.Lines {
		if l.Line != 3+2*i {
			t.Errorf("Lines[%d].Line = %d, want %d", i, l.Line, 3+2*i)
		}
	}
	if !strings.HasSuffix(err.Error(), "and 4 more") || !strings.Contains(err.Error(), "20 skipped") {
		t.Errorf("message %q", err)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, in := range []string{"", tcpHeader, strings.TrimSuffix(tcpHeader, "\n"), tcpHeader + "\n   \n\n"} {
		got, err := Parse(strings.NewReader(in), TCP, false, nil)
		if err != nil || len(got) != 0 {
			t.Errorf("Parse(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := Parse(strings.NewReader(tcpHeader), Proto(0), false, nil); err == nil {
		t.Error("Parse with Proto(0) gave no error")
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("read failed") }

func TestParseReadError(t *testing.T) {
	dst := []Socket{{Inode: 1}}
	got, err := Parse(failingReader{}, TCP, false, dst)
	if err == nil || errors.Is(err, ErrParse) || len(got) != 1 {
		t.Fatalf("got %v, %v", got, err)
	}
}

// TestParseZeroAllocs is the proof behind the heartbeat budget: a reused dst
// and the pooled read buffer leave nothing for the collector.
func TestParseZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop buffers on purpose")
	}
	table := genTable(1000)
	r := bytes.NewReader(table)
	dst := make([]Socket, 0, 1000)
	allocs := testing.AllocsPerRun(50, func() {
		r.Reset(table)
		var err error
		if dst, err = Parse(r, TCP, false, dst[:0]); err != nil || len(dst) != 1000 {
			t.Fatalf("%d sockets, %v", len(dst), err)
		}
	})
	if allocs != 0 {
		t.Errorf("Parse allocates %.1f times per call, want 0", allocs)
	}
}

// genTable renders n tcp lines in the kernel's layout, padded like seq_pad.
func genTable(n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-149s\n", strings.TrimSuffix(tcpHeader, "\n"))
	for i := range n {
		state := 1
		if i%10 == 0 {
			state = 10
		}
		line := fmt.Sprintf("%4d: %08X:%04X %08X:%04X %02X %08X:%08X 00:00000000 00000000 %5d        0 %d 1 000000004233fd23 20 4 30 10 -1",
			i, 0x0100007F+i<<8, 1024+i%60000, 0x0F02000A, 443, state, i%7, i%3, i%2000, 100000+i)
		fmt.Fprintf(&b, "%-149s\n", line)
	}
	return b.Bytes()
}

func TestNumbers(t *testing.T) {
	dec := func(in string, max uint64, want uint64, ok bool) {
		t.Helper()
		if got, gotOK := decimal([]byte(in), max); got != want || gotOK != ok {
			t.Errorf("decimal(%q, %d) = %d, %v; want %d, %v", in, max, got, gotOK, want, ok)
		}
	}
	dec("0", 7, 0, true)
	dec("7", 7, 7, true)
	dec("9", 7, 0, false) // a digit above max must not wrap around max-d
	dec("10", 7, 0, false)
	dec("65535", 1<<16-1, 65535, true)
	dec("65536", 1<<16-1, 0, false)
	dec("18446744073709551615", 1<<64-1, 1<<64-1, true)
	dec("18446744073709551616", 1<<64-1, 0, false)
	dec("99999999999999999999", 1<<64-1, 0, false)
	dec("000000000000000000001", 1<<64-1, 0, false) // longer than any uint64
	dec("", 10, 0, false)
	dec("+1", 10, 0, false)
	dec("1 ", 10, 0, false)

	hex := func(in string, n int, want uint32, ok bool) {
		t.Helper()
		if got, gotOK := hex32([]byte(in), n); got != want || gotOK != ok {
			t.Errorf("hex32(%q, %d) = %#x, %v; want %#x, %v", in, n, got, gotOK, want, ok)
		}
	}
	hex("FFFFFFFF", 8, 1<<32-1, true)
	hex("ffffffff", 8, 1<<32-1, true)
	hex("aBcD", 4, 0xABCD, true)
	hex("123456789", 8, 0, false)
	hex("0x12", 8, 0, false)
	hex("g", 8, 0, false)
	hex("", 8, 0, false)
}
