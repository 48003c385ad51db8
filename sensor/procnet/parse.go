package procnet

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
)

// Parse parses one /proc/net/{tcp,tcp6,udp,udp6} table (header line first)
// and appends its sockets to dst, which the caller may reuse between calls.
// It reads r to EOF into a pooled buffer that the returned sockets do not
// reference; with enough capacity in dst it does not allocate.
//
// Malformed lines are skipped; the returned error is then a *ParseError
// (wrapping ErrParse) with their count and line numbers, and dst still holds
// every good line. Any other error comes from r, and dst is returned as given.
func Parse(r io.Reader, proto Proto, ipv6 bool, dst []Socket) ([]Socket, error) {
	if proto != TCP && proto != UDP {
		return dst, fmt.Errorf("procnet: parse: unknown protocol %d", proto)
	}
	buf := getBuf()
	defer putBuf(buf)
	var err error
	*buf, err = readAll(r, (*buf)[:0])
	if err != nil {
		return dst, err
	}
	return parseTable(*buf, "", proto, ipv6, dst)
}

// parseTable parses a whole table held in data. The header line is skipped
// without a look: its spelling has changed across kernels, the data has not.
func parseTable(data []byte, file string, proto Proto, ipv6 bool, dst []Socket) ([]Socket, error) {
	var perr *ParseError
	forLines(data, func(n int, line []byte) {
		dst = append(dst, Socket{Proto: proto, IPv6: ipv6})
		if bad := parseLine(line, ipv6, &dst[len(dst)-1]); bad.bad() {
			dst = dst[:len(dst)-1]
			perr = perr.add(file, n, bad)
		}
	})
	return dst, perr.err()
}

// parseLine fills s from one table line. The kernel writes (tcp4; the others
// differ only in address width and the trailing columns, which are ignored):
//
//	"%4d: %08X:%04X %08X:%04X %02X %08X:%08X %02X:%08lX %08X %5u %8d %lu ..."
//	 sl   local     remote    st   tx:rx     tr:when  retrnsmt uid timeout inode
func parseLine(line []byte, ipv6 bool, s *Socket) fieldError {
	f, rest := nextField(line)
	if !slot(f) {
		return fieldError{"sl", reasonDecimal}
	}
	var bad fieldError
	f, rest = nextField(rest)
	if s.Local, bad = addrPort(f, ipv6, "local_address"); bad.bad() {
		return bad
	}
	f, rest = nextField(rest)
	if s.Remote, bad = addrPort(f, ipv6, "rem_address"); bad.bad() {
		return bad
	}

	f, rest = nextField(rest)
	if len(f) == 0 {
		return fieldError{"st", reasonMissing}
	}
	st, ok := hex32(f, 2)
	if !ok {
		return fieldError{"st", reasonHex}
	}
	if s.State = State(st); !s.State.valid() {
		return fieldError{"st", reasonState}
	}

	f, rest = nextField(rest)
	if len(f) == 0 {
		return fieldError{"tx_queue:rx_queue", reasonMissing}
	}
	i := bytes.IndexByte(f, ':')
	if i < 0 {
		return fieldError{"tx_queue:rx_queue", reasonHex}
	}
	tx, rx := f[:i], f[i+1:]
	if s.TxQueue, ok = hex32(tx, 8); !ok {
		return fieldError{"tx_queue", reasonHex}
	}
	if s.RxQueue, ok = hex32(rx, 8); !ok {
		return fieldError{"rx_queue", reasonHex}
	}

	// tr:tm->when and retrnsmt carry timer state the sensor has no use for.
	for _, name := range [...]string{"tr:tm->when", "retrnsmt"} {
		if f, rest = nextField(rest); len(f) == 0 {
			return fieldError{name, reasonMissing}
		}
	}

	f, rest = nextField(rest)
	if len(f) == 0 {
		return fieldError{"uid", reasonMissing}
	}
	uid, ok := decimal(f, 1<<32-1)
	if !ok {
		return fieldError{"uid", reasonDecimal}
	}
	s.UID = uint32(uid)

	if f, rest = nextField(rest); len(f) == 0 {
		return fieldError{"timeout", reasonMissing}
	}
	f, _ = nextField(rest)
	if len(f) == 0 {
		return fieldError{"inode", reasonMissing}
	}
	if s.Inode, ok = decimal(f, 1<<64-1); !ok {
		return fieldError{"inode", reasonDecimal}
	}
	return fieldError{}
}

// addrPort decodes "%08X:%04X" (IPv4) or "%08X%08X%08X%08X:%04X" (IPv6).
//
// The kernel prints each 32-bit word of the address, which is in network
// byte order in memory, as a host-order integer: on the little-endian hosts
// the sensor runs on (x86-64, arm64) 127.0.0.1 reads 0100007F. Writing each
// word back with NativeEndian restores the memory bytes on any host. The
// port is converted to host order by the kernel before printing.
func addrPort(f []byte, ipv6 bool, field string) (netip.AddrPort, fieldError) {
	if len(f) == 0 {
		return netip.AddrPort{}, fieldError{field, reasonMissing}
	}
	words := 1
	if ipv6 {
		words = 4
	}
	i := bytes.IndexByte(f, ':')
	if i != 8*words {
		return netip.AddrPort{}, fieldError{field, reasonAddrLen}
	}
	if len(f)-i-1 != 4 {
		return netip.AddrPort{}, fieldError{field, reasonPortLen}
	}
	port, ok := hex32(f[i+1:], 4)
	if !ok {
		return netip.AddrPort{}, fieldError{field, reasonHex}
	}
	var a [16]byte
	for w := range words {
		v, ok := hex32(f[8*w:8*w+8], 8)
		if !ok {
			return netip.AddrPort{}, fieldError{field, reasonHex}
		}
		binary.NativeEndian.PutUint32(a[4*w:], v)
	}
	if ipv6 {
		return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(port)), fieldError{}
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), uint16(port)), fieldError{}
}

// nextField returns the next blank-separated field of b and what follows it.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
		i++
	}
	j := i
	for j < len(b) && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return b[i:j], b[j:]
}

// slot reports whether f is the "%4d:" row number.
func slot(f []byte) bool {
	if len(f) < 2 || f[len(f)-1] != ':' {
		return false
	}
	_, ok := decimal(f[:len(f)-1], 1<<64-1)
	return ok
}

func blank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// hexVal maps an ASCII byte to its hex digit value, or 0xFF.
var hexVal = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = byte(c - '0')
	}
	for c := 'a'; c <= 'f'; c++ {
		t[c] = byte(c - 'a' + 10)
		t[c-'a'+'A'] = byte(c - 'a' + 10)
	}
	return t
}()

// hex32 parses 1..max hex digits of either case (max <= 8).
func hex32(b []byte, max int) (uint32, bool) {
	if len(b) == 0 || len(b) > max {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		d := hexVal[c]
		if d > 0xF {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// decimal parses unsigned decimal digits no greater than max.
func decimal(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		d := uint64(c - '0')
		if d > 9 {
			return 0, false
		}
		if d > max || v > (max-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
