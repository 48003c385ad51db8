package procnet

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
)

// SCTPState is an association state (enum sctp_state in the kernel).
type SCTPState uint8

// Association states.
const (
	SCTPClosed           SCTPState = 0
	SCTPCookieWait       SCTPState = 1
	SCTPCookieEchoed     SCTPState = 2
	SCTPEstablished      SCTPState = 3
	SCTPShutdownPending  SCTPState = 4
	SCTPShutdownSent     SCTPState = 5
	SCTPShutdownReceived SCTPState = 6
	SCTPShutdownAckSent  SCTPState = 7
)

var sctpStateNames = [...]string{
	"CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
	"SHUTDOWN_PENDING", "SHUTDOWN_SENT", "SHUTDOWN_RECEIVED", "SHUTDOWN_ACK_SENT",
}

func (s SCTPState) String() string {
	if int(s) < len(sctpStateNames) {
		return sctpStateNames[s]
	}
	return "UNKNOWN(" + strconv.Itoa(int(s)) + ")"
}

// SCTPAssoc is one line of /proc/net/sctp/assocs. An association is
// multi-homed: each side may have several addresses.
type SCTPAssoc struct {
	AssocID    uint32
	State      SCTPState
	UID        uint32
	Inode      uint64
	LocalPort  uint16
	RemotePort uint16
	// LocalAddrs and RemoteAddrs keep the kernel's order with the '*' that
	// marks the primary path stripped; Primary is the marked remote address
	// (the zero Addr if none was marked).
	LocalAddrs  []netip.Addr
	RemoteAddrs []netip.Addr
	Primary     netip.Addr
	TxQueue     uint32 // bytes queued to send (sndbuf_used)
	RxQueue     uint32 // bytes received, unread (rmem_alloc)
}

// SCTPEndpoint is one line of /proc/net/sctp/eps: a bound SCTP socket.
type SCTPEndpoint struct {
	LocalPort  uint16
	UID        uint32
	Inode      uint64
	LocalAddrs []netip.Addr
}

// SCTP reads the associations and endpoints of the network namespace of pid
// (0: the reader's own). When the kernel has no SCTP the error wraps
// ErrUnavailable. Malformed lines are skipped and reported as with Sockets.
// SCTP tables are small, so this path allocates freely.
func (fsys FS) SCTP(pid int) ([]SCTPAssoc, []SCTPEndpoint, error) {
	netDir, err := fsys.netDir(pid)
	if err != nil {
		return nil, nil, err
	}
	dir := netDir + "/sctp"
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if _, nerr := os.Stat(netDir); nerr != nil {
			return nil, nil, nerr // the process is gone, not SCTP
		}
		return nil, nil, fmt.Errorf("%s: %w", dir, ErrUnavailable)
	} else if err != nil {
		return nil, nil, err
	}

	buf := getBuf()
	defer putBuf(buf)
	var errs []error
	var assocs []SCTPAssoc
	var eps []SCTPEndpoint

	path := dir + "/assocs"
	if *buf, err = readFile(path, (*buf)[:0]); err == nil {
		assocs, err = parseAssocs(*buf, path, nil)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	path = dir + "/eps"
	if *buf, err = readFile(path, (*buf)[:0]); err == nil {
		eps, err = parseEndpoints(*buf, path, nil)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	return assocs, eps, errors.Join(errs...)
}

// ParseSCTPAssocs parses /proc/net/sctp/assocs text (header first), with
// the error contract of Parse.
func ParseSCTPAssocs(r io.Reader, dst []SCTPAssoc) ([]SCTPAssoc, error) {
	buf := getBuf()
	defer putBuf(buf)
	var err error
	if *buf, err = readAll(r, (*buf)[:0]); err != nil {
		return dst, err
	}
	return parseAssocs(*buf, "", dst)
}

// ParseSCTPEndpoints parses /proc/net/sctp/eps text (header first), with
// the error contract of Parse.
func ParseSCTPEndpoints(r io.Reader, dst []SCTPEndpoint) ([]SCTPEndpoint, error) {
	buf := getBuf()
	defer putBuf(buf)
	var err error
	if *buf, err = readAll(r, (*buf)[:0]); err != nil {
		return dst, err
	}
	return parseEndpoints(*buf, "", dst)
}

func parseAssocs(data []byte, file string, dst []SCTPAssoc) ([]SCTPAssoc, error) {
	var perr *ParseError
	forLines(data, func(n int, line []byte) {
		var a SCTPAssoc
		if bad := parseAssoc(line, &a); bad.bad() {
			perr = perr.add(file, n, bad)
			return
		}
		dst = append(dst, a)
	})
	return dst, perr.err()
}

func parseEndpoints(data []byte, file string, dst []SCTPEndpoint) ([]SCTPEndpoint, error) {
	var perr *ParseError
	forLines(data, func(n int, line []byte) {
		var e SCTPEndpoint
		if bad := parseEndpoint(line, &e); bad.bad() {
			perr = perr.add(file, n, bad)
			return
		}
		dst = append(dst, e)
	})
	return dst, perr.err()
}

// forLines calls fn for each non-blank line after the header, numbering
// lines from 1 with the header as line 1.
func forLines(data []byte, fn func(n int, line []byte)) {
	for n := 1; len(data) > 0; n++ {
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if n > 1 && !blank(line) {
			fn(n, line)
		}
	}
}

// parseAssoc reads one assocs line. Since Linux 2.6.x the kernel writes
//
//	"%8pK %8pK %-3d %-3d %-2d %-4d %4d %8d %8d %7u %5lu %-5d %5d "
//	 ASSOC SOCK STY SST ST  HBKT ASSOC-ID TX_QUEUE RX_QUEUE UID INODE LPORT RPORT
//
// then " ", each local address followed by a space, "<-> ", each remote
// address followed by a space, and (since 3.x) a tab before the HBINT ...
// rcvbuf statistics, which are ignored. Addresses are %pI4 or %pI6 (eight
// groups of four hex digits); a leading '*' marks the primary path.
func parseAssoc(line []byte, a *SCTPAssoc) fieldError {
	if i := bytes.IndexByte(line, '\t'); i >= 0 {
		line = line[:i]
	}
	var cols [13][]byte
	rest := line
	for i := range cols {
		if cols[i], rest = nextField(rest); len(cols[i]) == 0 {
			return fieldError{assocCols[i], reasonMissing}
		}
	}
	// STY, SST and HBKT are checked only so that a shifted line is caught.
	for _, i := range [...]int{2, 3, 5} {
		if _, ok := decimal(cols[i], 1<<32-1); !ok {
			return fieldError{assocCols[i], reasonDecimal}
		}
	}
	st, ok := decimal(cols[4], uint64(SCTPShutdownAckSent))
	if !ok {
		return fieldError{"ST", reasonState}
	}
	a.State = SCTPState(st)
	id, ok := decimal(cols[6], 1<<32-1)
	if !ok {
		return fieldError{"ASSOC-ID", reasonDecimal}
	}
	a.AssocID = uint32(id)
	if a.TxQueue, ok = queue(cols[7]); !ok {
		return fieldError{"TX_QUEUE", reasonDecimal}
	}
	if a.RxQueue, ok = queue(cols[8]); !ok {
		return fieldError{"RX_QUEUE", reasonDecimal}
	}
	uid, ok := decimal(cols[9], 1<<32-1)
	if !ok {
		return fieldError{"UID", reasonDecimal}
	}
	a.UID = uint32(uid)
	if a.Inode, ok = decimal(cols[10], 1<<64-1); !ok {
		return fieldError{"INODE", reasonDecimal}
	}
	lport, ok := decimal(cols[11], 1<<16-1)
	if !ok {
		return fieldError{"LPORT", reasonDecimal}
	}
	rport, ok := decimal(cols[12], 1<<16-1)
	if !ok {
		return fieldError{"RPORT", reasonDecimal}
	}
	a.LocalPort, a.RemotePort = uint16(lport), uint16(rport)

	local := true
	for {
		var f []byte
		if f, rest = nextField(rest); len(f) == 0 {
			break
		}
		if local && string(f) == "<->" {
			local = false
			continue
		}
		ip, primary, ok := sctpAddr(f)
		switch {
		case !ok && local:
			return fieldError{"LADDRS", reasonAddress}
		case !ok:
			return fieldError{"RADDRS", reasonAddress}
		case local:
			a.LocalAddrs = append(a.LocalAddrs, ip)
		default:
			a.RemoteAddrs = append(a.RemoteAddrs, ip)
			if primary && !a.Primary.IsValid() {
				a.Primary = ip
			}
		}
	}
	if local {
		return fieldError{"LADDRS <-> RADDRS", reasonSeparator}
	}
	return fieldError{}
}

var assocCols = [...]string{"ASSOC", "SOCK", "STY", "SST", "ST", "HBKT", "ASSOC-ID",
	"TX_QUEUE", "RX_QUEUE", "UID", "INODE", "LPORT", "RPORT"}

// parseEndpoint reads one eps line:
//
//	"%8pK %8pK %-3d %-3d %-4d %-5d %5u %5lu " then each local address and a space
//	 ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS
func parseEndpoint(line []byte, e *SCTPEndpoint) fieldError {
	var cols [8][]byte
	rest := line
	for i := range cols {
		if cols[i], rest = nextField(rest); len(cols[i]) == 0 {
			return fieldError{epCols[i], reasonMissing}
		}
	}
	for _, i := range [...]int{2, 3, 4} {
		if _, ok := decimal(cols[i], 1<<32-1); !ok {
			return fieldError{epCols[i], reasonDecimal}
		}
	}
	port, ok := decimal(cols[5], 1<<16-1)
	if !ok {
		return fieldError{"LPORT", reasonDecimal}
	}
	e.LocalPort = uint16(port)
	uid, ok := decimal(cols[6], 1<<32-1)
	if !ok {
		return fieldError{"UID", reasonDecimal}
	}
	e.UID = uint32(uid)
	if e.Inode, ok = decimal(cols[7], 1<<64-1); !ok {
		return fieldError{"INODE", reasonDecimal}
	}
	for {
		var f []byte
		if f, rest = nextField(rest); len(f) == 0 {
			return fieldError{}
		}
		ip, _, ok := sctpAddr(f)
		if !ok {
			return fieldError{"LADDRS", reasonAddress}
		}
		e.LocalAddrs = append(e.LocalAddrs, ip)
	}
}

var epCols = [...]string{"ENDPT", "SOCK", "STY", "SST", "HBKT", "LPORT", "UID", "INODE"}

// sctpAddr parses one address as the kernel prints it (%pI4, or %pI6: eight
// groups of four hex digits), with the '*' that marks the primary path.
func sctpAddr(f []byte) (ip netip.Addr, primary, ok bool) {
	if primary = len(f) > 0 && f[0] == '*'; primary {
		f = f[1:]
	}
	ip, err := netip.ParseAddr(string(f))
	return ip, primary, err == nil && ip.Zone() == ""
}

// queue parses a "%8d" queue size. The kernel reads these counters without
// a lock, so a transient negative value reads as 0, as it does for TCP.
func queue(b []byte) (uint32, bool) {
	neg := len(b) > 1 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := decimal(b, 1<<32-1)
	if neg {
		return 0, ok && v <= 1<<31
	}
	return uint32(v), ok
}
