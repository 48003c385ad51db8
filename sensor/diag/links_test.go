package diag

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/netview/netview/sensor/procnet"
)

// ipNetns makes a named network namespace for the test (`ip netns add`),
// deleted at its end, and returns its path; it skips without root or ip.
func ipNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("ip netns add needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed")
	}
	name := fmt.Sprintf("nvdiag-%d", os.Getpid())
	ip(t, "netns", "add", name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

// linksIn dumps the links of the named namespace from inside it.
func linksIn(t *testing.T, name string) []Link {
	t.Helper()
	var links []Link
	err := procnet.InNetns("/run/netns/"+name, func() error {
		c, err := OpenRoute()
		if err != nil {
			return err
		}
		defer c.Close()
		links, err = c.Links(nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// byName finds a link by its name.
func byName(links []Link, name string) (Link, bool) {
	i := slices.IndexFunc(links, func(l Link) bool { return l.Name == name })
	if i < 0 {
		return Link{}, false
	}
	return links[i], true
}

// A namespace's interfaces come back as ip(8) set them: a veth with its
// MAC, up, its IPv4 and IPv6 addresses with their lengths (the host's
// address, not the network's) and, on a point-to-point address, the local
// end rather than the peer; lo down and empty; nothing of the host's.
func TestLinksOfANamespace(t *testing.T) {
	name := ipNetns(t)
	// Both ends of the pair stay in the namespace: nv0p comes first, down.
	ip(t, "-n", name, "link", "add", "nv0", "address", "02:00:5e:10:00:05", "type", "veth", "peer", "name", "nv0p")
	ip(t, "-n", name, "addr", "add", "10.0.0.5/24", "dev", "nv0")
	ip(t, "-n", name, "addr", "add", "10.9.0.1", "peer", "10.9.0.2/32", "dev", "nv0")
	ip(t, "-n", name, "addr", "add", "2001:db8::5/64", "dev", "nv0", "nodad")
	ip(t, "-n", name, "link", "set", "nv0", "up")

	links := linksIn(t, name)
	lo, _ := byName(links, "lo")
	nv, _ := byName(links, "nv0")
	peer, _ := byName(links, "nv0p")
	if len(links) != 3 {
		t.Fatalf("links %+v, want lo, nv0 and nv0p", links)
	}
	if lo.Index != 1 || lo.Up || len(lo.Addrs) != 0 || lo.HWLen != 6 {
		t.Errorf("lo = %+v, want index 1, down, no addresses, a 6-byte zero address", lo)
	}
	if !nv.Up || nv.Index < 2 || peer.Up || peer.Index < 2 || peer.Index == nv.Index || len(peer.Addrs) != 0 {
		t.Errorf("nv0 = %+v, nv0p = %+v: want nv0 up and nv0p down, both of their own index above lo's", nv, peer)
	}
	if hw := nv.HW[:nv.HWLen]; string(hw) != "\x02\x00\x5e\x10\x00\x05" {
		t.Errorf("nv0 MAC % x, want 02 00 5e 10 00 05", hw)
	}
	var got []string
	for _, p := range nv.Addrs {
		if !p.Addr().IsLinkLocalUnicast() { // fe80::/64 comes and goes with DAD
			got = append(got, p.String())
		}
	}
	slices.Sort(got)
	if want := []string{"10.0.0.5/24", "10.9.0.1/32", "2001:db8::5/64"}; !slices.Equal(got, want) {
		t.Errorf("nv0 addresses %v, want %v", got, want)
	}

	// An address added or a link renamed shows in the next dump into the
	// same slice; what did not change keeps its name.
	ip(t, "-n", name, "addr", "add", "10.0.0.6/24", "dev", "nv0")
	ip(t, "-n", name, "link", "set", "lo", "up")
	err := procnet.InNetns("/run/netns/"+name, func() error {
		c, err := OpenRoute()
		if err != nil {
			return err
		}
		defer c.Close()
		again, err := c.Links(links[:0])
		if err != nil {
			return err
		}
		lo, _ := byName(again, "lo")
		nv, _ := byName(again, "nv0")
		if len(again) != 3 || !lo.Up || !slices.Contains(nv.Addrs, netip.MustParsePrefix("10.0.0.6/24")) ||
			!slices.Contains(lo.Addrs, netip.MustParsePrefix("127.0.0.1/8")) {
			return fmt.Errorf("after the change: %+v", again)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A warm dump of unchanged links into the same slice allocates nothing.
func TestLinksAllocs(t *testing.T) {
	c, err := OpenRoute()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	links, err := c.Links(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(links) == 0 || links[0].Name == "" {
		t.Fatalf("no links in the test's own namespace: %+v", links)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if links, err = c.Links(links[:0]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocs per dump of %d links, want 0", allocs, len(links))
	}
}

// A Conn released inside a namespace holds no socket there: the namespace
// is not kept alive by it, and the next call reopens where it is made.
func TestReleaseReopensHere(t *testing.T) {
	name := ipNetns(t)
	ip(t, "-n", name, "link", "add", "nv1", "type", "veth", "peer", "name", "nv1p")
	c, err := OpenRoute()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var inside []Link
	err = procnet.InNetns("/run/netns/"+name, func() error {
		c.Release()
		var err error
		inside, err = c.Links(nil)
		c.Release()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := byName(inside, "nv1"); c.fd != -1 || len(inside) != 3 || !ok {
		t.Fatalf("inside: fd %d, links %+v", c.fd, inside)
	}
	own, err := c.Links(nil)
	if err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(own, func(l Link) bool { return l.Name == "nv1" }) {
		t.Errorf("the released Conn still reads the namespace it was used in")
	}
}

// Addresses are the local end (IFA_LOCAL over IFA_ADDRESS), unmasked; a
// bad length or a short message is an error.
func TestParseAddr(t *testing.T) {
	msg := func(family, bits uint8, index uint32, as ...[]byte) []byte {
		m := binary.NativeEndian.AppendUint32([]byte{family, bits, 0, 0}, index)
		for _, a := range as {
			m = append(m, a...)
		}
		return m
	}
	attr := rtattr
	links := []Link{{Index: 3}}
	if err := parseAddr(msg(unix.AF_INET, 24, 3, attr(ifaAddress, []byte{10, 9, 0, 2}), attr(ifaLocal, []byte{10, 9, 0, 1})), links); err != nil {
		t.Fatal(err)
	}
	if err := parseAddr(msg(unix.AF_INET6, 64, 3, attr(ifaAddress, netip.MustParseAddr("2001:db8::5").AsSlice())), links); err != nil {
		t.Fatal(err)
	}
	if err := parseAddr(msg(unix.AF_INET, 24, 9, attr(ifaAddress, []byte{10, 1, 1, 1})), links); err != nil { // no such link
		t.Fatal(err)
	}
	if got := fmt.Sprint(links[0].Addrs); got != "[10.9.0.1/24 2001:db8::5/64]" {
		t.Errorf("addresses %s", got)
	}
	if err := parseAddr(msg(unix.AF_INET, 33, 3, attr(ifaAddress, []byte{10, 1, 1, 1})), links); err == nil || !strings.Contains(err.Error(), "prefix length 33") {
		t.Errorf("a /33: %v", err)
	}
	if err := parseAddr([]byte{2, 24}, links); err == nil {
		t.Error("a short ifaddrmsg is taken")
	}
}
