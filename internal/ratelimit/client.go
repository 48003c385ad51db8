package ratelimit

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unsafe"
)

// Proxies are the addresses whose X-Forwarded-For is believed.
type Proxies []netip.Prefix

// ParseProxies reads comma-separated addresses or CIDR prefixes.
func ParseProxies(list string) (Proxies, error) {
	var out Proxies
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
			}
			a = canonical(a)
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: %w", f, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// Trusted says whether ip is one of the proxies.
func (ps Proxies) Trusted(ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// ClientIP is the peer's address or, when the peer is a trusted proxy, the
// nearest address in xff (the X-Forwarded-For header) that is not one. It
// is canonical, so that one host cannot pass for several: no IPv6 zone
// (fe80::1%eth0 is fe80::1) and IPv4 as itself, not mapped into IPv6.
func (ps Proxies) ClientIP(peer net.IP, xff []byte) netip.Addr {
	ip, _ := netip.AddrFromSlice(peer)
	ip = canonical(ip)
	if !ps.Trusted(ip) {
		return ip
	}
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		f := bytes.TrimSpace(xff[i+1:])
		a, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(f), len(f)))
		if err != nil {
			return ip // not written by our proxy: stay with what we know
		}
		if ip = canonical(a); !ps.Trusted(ip) || i < 0 {
			return ip
		}
		xff = xff[:i]
	}
	return ip
}

func canonical(a netip.Addr) netip.Addr {
	return a.WithZone("").Unmap()
}

// Key is the bucket of a client address: an IPv4 address is one client,
// but an IPv6 host is given a whole /64 and may send from any address in
// it, so IPv6 clients are told apart by their /64 only.
func Key(ip netip.Addr) netip.Prefix {
	if ip.Is6() {
		return netip.PrefixFrom(ip, 64).Masked()
	}
	return netip.PrefixFrom(ip, ip.BitLen())
}
