package ebpf

import (
	"errors"
	"strconv"
)

// Errors of ParseQuery. A packet sent to a DNS port is whatever a process
// chose to send: every length is checked before it is used.
var (
	ErrNotQuery = errors.New("dns: not a query")
	ErrBadName  = errors.New("dns: malformed name")
)

// ParseQuery reads the first question of a DNS query message: its name in
// presentation form (labels joined by dots, "." for the root) and its
// record type ("A", "AAAA", ..., or "TYPE<n>"). tcp says the message is
// preceded by its 2-byte length, as DNS over TCP sends it. Names with bytes
// outside printable ASCII are refused rather than escaped, so a name always
// fits the heartbeat's 255 bytes. msg may be a prefix of the packet.
func ParseQuery(msg []byte, tcp bool) (name, qtype string, err error) {
	if tcp {
		if len(msg) < 2 {
			return "", "", ErrNotQuery
		}
		msg = msg[2:]
	}
	// Header: id, flags, qdcount, ancount, nscount, arcount.
	if len(msg) < 12 {
		return "", "", ErrNotQuery
	}
	if msg[2]&0x80 != 0 || msg[4] == 0 && msg[5] == 0 {
		return "", "", ErrNotQuery // a response, or no question
	}
	var buf [255]byte
	n, off := 0, 12
	for {
		if off >= len(msg) {
			return "", "", ErrBadName
		}
		l := int(msg[off])
		off++
		if l == 0 {
			break
		}
		// Compression pointers (0xC0) have nothing to point at in the first
		// question; 0x40 and 0x80 are reserved label types.
		if l > 63 || off+l > len(msg) {
			return "", "", ErrBadName
		}
		if n+l+1 > len(buf) {
			return "", "", ErrBadName
		}
		if n > 0 {
			buf[n] = '.'
			n++
		}
		for _, c := range msg[off : off+l] {
			if c <= ' ' || c > '~' || c == '.' {
				return "", "", ErrBadName
			}
			buf[n] = c
			n++
		}
		off += l
	}
	if off+2 > len(msg) {
		return "", "", ErrBadName
	}
	t := uint16(msg[off])<<8 | uint16(msg[off+1])
	if n == 0 {
		return ".", TypeName(t), nil
	}
	return string(buf[:n]), TypeName(t), nil
}

var typeNames = map[uint16]string{
	1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA", 33: "SRV",
	35: "NAPTR", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 52: "TLSA", 64: "SVCB", 65: "HTTPS",
	252: "AXFR", 255: "ANY", 257: "CAA",
}

// TypeName names a DNS record type, "TYPE<n>" when it has no mnemonic
// (RFC 3597), so it always fits the heartbeat's 16 bytes.
func TypeName(t uint16) string {
	if s, ok := typeNames[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}
