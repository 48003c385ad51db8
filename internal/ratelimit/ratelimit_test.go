package ratelimit

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// A bucket lets burst through at once, then one a 1/rate, and says how
// long to wait; time is stepped by hand.
func TestLimiterBurstAndRefill(t *testing.T) {
	l := New[string](1, 20)
	at := time.Unix(1_000_000, 0)
	taken := 0
	for range 3000 {
		if ok, _ := l.Take("a", at); ok {
			taken++
		}
	}
	if taken != 20 {
		t.Fatalf("3,000 at one instant: %d taken, want the burst of 20", taken)
	}
	if ok, wait := l.Empty("a", at); !ok || wait != time.Second {
		t.Fatalf("empty bucket: Empty = %v, wait %v; want true, 1s", ok, wait)
	}
	if ok, _ := l.Take("b", at); !ok {
		t.Fatal("another key shares the first's bucket")
	}
	if ok, _ := l.Take("a", at.Add(999*time.Millisecond)); ok {
		t.Fatal("a token before a second has passed")
	}
	if ok, _ := l.Take("a", at.Add(time.Second)); !ok {
		t.Fatal("no token after a second")
	}
	if RetryAfter(1500*time.Millisecond) != "2" || RetryAfter(0) != "1" {
		t.Fatal("RetryAfter is not whole seconds, at least 1")
	}
}

func TestClientIP(t *testing.T) {
	ps, err := ParseProxies("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	f := func(peer, xff, want string) {
		t.Helper()
		if got := ps.ClientIP(net.ParseIP(peer), []byte(xff)); got != netip.MustParseAddr(want) {
			t.Errorf("peer %s, X-Forwarded-For %q: client %v, want %s", peer, xff, got, want)
		}
	}
	f("192.0.2.9", "198.51.100.1", "192.0.2.9")                    // an untrusted peer's header is ignored
	f("127.0.0.1", "198.51.100.1, 10.1.1.1", "198.51.100.1")       // through two proxies
	f("127.0.0.1", "203.0.113.5, 198.51.100.1", "198.51.100.1")    // the nearest untrusted one: the rest may be forged
	f("127.0.0.1", "junk, 10.1.1.1", "10.1.1.1")                   // not written by our proxy
	f("127.0.0.1", "fe80::1%eth0", "fe80::1")                      // the zone is dropped
	f("127.0.0.1", "::ffff:198.51.100.1", "198.51.100.1")          // 4in6 is IPv4
	f("::ffff:127.0.0.1", "198.51.100.1", "198.51.100.1")          // so is a mapped peer
	f("127.0.0.1", "::ffff:10.2.2.2, ::ffff:10.1.1.1", "10.2.2.2") // a mapped proxy is still trusted
	if _, err := ParseProxies("10.0.0.0/8,nginx"); err == nil {
		t.Error("a host name taken as a trusted proxy")
	}
}

// One IPv6 host owns a /64: its addresses share a bucket, and so do an
// address with a zone and without.
func TestKeyIPv6Per64(t *testing.T) {
	k := func(s string) netip.Prefix { return Key(netip.MustParseAddr(s)) }
	if k("2001:db8:1:2::1") != k("2001:db8:1:2:ffff:ffff:ffff:ffff") {
		t.Error("two addresses in one /64 have different buckets")
	}
	if k("2001:db8:1:2::1") == k("2001:db8:1:3::1") {
		t.Error("two /64s share a bucket")
	}
	if k("192.0.2.1") == k("192.0.2.2") {
		t.Error("two IPv4 addresses share a bucket")
	}
	ps := Proxies{netip.MustParsePrefix("127.0.0.1/32")}
	a := Key(ps.ClientIP(net.ParseIP("127.0.0.1"), []byte("fe80::1%eth0")))
	b := Key(ps.ClientIP(net.ParseIP("127.0.0.1"), []byte("fe80::2%eth1")))
	if a != b {
		t.Errorf("fe80::1%%eth0 and fe80::2%%eth1 in buckets %v and %v", a, b)
	}
	l := New[netip.Prefix](0.001, 1)
	now := time.Unix(1_000_000, 0)
	l.Take(k("2001:db8::1"), now)
	if ok, _ := l.Take(k("2001:db8::2"), now); ok {
		t.Error("a second address of the /64 got a token of its own")
	}
}

// Spend charges a cost after the fact: the bucket goes into debt, at most
// one burst deep, and stays empty until the debt is paid.
func TestLimiterSpendDebt(t *testing.T) {
	l := New[string](1000, 4000)
	at := time.Unix(1_000_000, 0)
	l.Spend("a", 3500, at)
	if empty, _ := l.Empty("a", at); empty {
		t.Fatal("500 rows left, yet empty")
	}
	l.Spend("a", 3500, at)
	if empty, wait := l.Empty("a", at); !empty || wait.Round(time.Millisecond) != 3001*time.Millisecond {
		t.Fatalf("3,000 rows in debt at 1,000/s: Empty = %v, wait %v; want true, 3.001s", empty, wait)
	}
	if empty, _ := l.Empty("a", at.Add(3001*time.Millisecond)); empty {
		t.Fatal("still empty once the debt is paid")
	}
	l.Spend("b", 1e9, at)
	if _, wait := l.Empty("b", at); wait.Round(time.Millisecond) != 4001*time.Millisecond {
		t.Fatalf("a huge cost: wait %v, want the debt held at one burst (4.001s)", wait)
	}
	if empty, _ := l.Empty("c", at); empty {
		t.Fatal("a key that spent nothing is empty")
	}
	var none *Limiter[string]
	none.Spend("a", 1, at)
	New[string](0, 1).Spend("a", 1, at) // no limit: nothing to charge
}
