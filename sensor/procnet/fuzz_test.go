package procnet

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// dataLines counts the lines a parser must either return or report: all
// non-blank lines after the header.
func dataLines(data []byte) int {
	n := 0
	for i, line := range bytes.Split(data, []byte("\n")) {
		if i > 0 && !blank(line) {
			n++
		}
	}
	return n
}

// checkReport checks the error contract: nil, or a *ParseError wrapping
// ErrParse whose lines are in order; it returns the count of bad lines.
func checkReport(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	var pe *ParseError
	if !errors.As(err, &pe) || !errors.Is(err, ErrParse) {
		t.Fatalf("error %v is not a *ParseError wrapping ErrParse", err)
	}
	if pe.Count < 1 || len(pe.Lines) != min(pe.Count, maxLineErrors) {
		t.Fatalf("count %d with %d lines listed", pe.Count, len(pe.Lines))
	}
	for i, l := range pe.Lines {
		if l.Line < 2 || (i > 0 && l.Line <= pe.Lines[i-1].Line) || l.Reason == "" {
			t.Fatalf("bad line report %+v", pe.Lines)
		}
	}
	_ = pe.Error()
	return pe.Count
}

func FuzzParse(f *testing.F) {
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		data, err := os.ReadFile("testdata/proc/net/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, strings.HasSuffix(name, "6"), strings.HasPrefix(name, "udp"))
	}
	f.Add([]byte(tcpHeader+"   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1\n\n garbage\n"), false, false)
	f.Fuzz(func(t *testing.T, data []byte, ipv6, udp bool) {
		proto := TCP
		if udp {
			proto = UDP
		}
		sentinel := Socket{Inode: 7}
		got, err := Parse(bytes.NewReader(data), proto, ipv6, []Socket{sentinel})
		if len(got) == 0 || got[0] != sentinel {
			t.Fatal("Parse did not append to dst")
		}
		got = got[1:]
		if bad := checkReport(t, err); len(got)+bad != dataLines(data) {
			t.Fatalf("%d sockets + %d bad != %d data lines", len(got), bad, dataLines(data))
		}
		for _, s := range got {
			ok := s.Proto == proto && s.IPv6 == ipv6 && s.State.valid() && s.State.String() != "" &&
				s.Local.IsValid() && s.Remote.IsValid() &&
				s.Local.Addr().Zone() == "" && s.Remote.Addr().Zone() == "" &&
				s.Local.Addr().Is6() == ipv6 && s.Remote.Addr().Is6() == ipv6
			if !ok {
				t.Fatalf("socket out of range: %+v", s)
			}
		}
	})
}

func FuzzSCTP(f *testing.F) {
	for _, name := range []string{"assocs", "eps"} {
		data, err := os.ReadFile("testdata/proc/net/sctp/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		assocs, err := ParseSCTPAssocs(bytes.NewReader(data), nil)
		if bad := checkReport(t, err); len(assocs)+bad != dataLines(data) {
			t.Fatalf("assocs: %d + %d bad != %d data lines", len(assocs), bad, dataLines(data))
		}
		for _, a := range assocs {
			if a.State > SCTPShutdownAckSent {
				t.Fatalf("state out of range: %+v", a)
			}
			for _, ip := range append(append([]netip.Addr{a.Primary}, a.LocalAddrs...), a.RemoteAddrs...) {
				if ip.Zone() != "" {
					t.Fatalf("zoned address: %+v", a)
				}
			}
			if a.Primary.IsValid() && !slices.Contains(a.RemoteAddrs, a.Primary) {
				t.Fatalf("primary not among remote addresses: %+v", a)
			}
		}
		eps, err := ParseSCTPEndpoints(bytes.NewReader(data), nil)
		if bad := checkReport(t, err); len(eps)+bad != dataLines(data) {
			t.Fatalf("eps: %d + %d bad != %d data lines", len(eps), bad, dataLines(data))
		}
		for _, e := range eps {
			for _, ip := range e.LocalAddrs {
				if !ip.IsValid() || ip.Zone() != "" {
					t.Fatalf("bad address: %+v", e)
				}
			}
		}
	})
}
