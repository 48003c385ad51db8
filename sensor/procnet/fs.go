package procnet

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// FS reads socket tables from a proc filesystem mounted at a root of the
// caller's choosing, so tests can point it at fixtures. It holds no buffers
// of its own (they come from a pool per call) and is safe for concurrent use.
type FS struct {
	root string
}

// NewFS returns an FS rooted at procRoot: "/proc" in production.
func NewFS(procRoot string) FS { return FS{root: procRoot} }

// table is one of the socket tables Sockets reads, in reading order.
type table struct {
	name  string
	proto Proto
	ipv6  bool
}

var tables = [...]table{
	{"tcp", TCP, false},
	{"tcp6", TCP, true},
	{"udp", UDP, false},
	{"udp6", UDP, true},
}

// Sockets reads tcp, tcp6, udp and udp6 of the network namespace of pid and
// appends their sockets to dst, which the caller may reuse. Pid 0 means the
// reader's own namespace (<root>/net); otherwise <root>/<pid>/net is read.
//
// A missing table (IPv6 disabled, say) is not an error, but when none of the
// four exists the error wraps fs.ErrNotExist (the process has exited, or the
// root is wrong). Malformed lines are skipped: the error then wraps ErrParse
// (one *ParseError per table, joined) and dst holds all the good lines.
//
// A table is not an atomic snapshot: the kernel walks its hash buckets as the
// file is read, so a socket that moves (LISTEN's children, SYN_RECV turning
// ESTABLISHED) can show up twice or not at all. A call costs a handful of
// allocations for paths and open files, none per socket.
func (fsys FS) Sockets(pid int, dst []Socket) ([]Socket, error) {
	dir, err := fsys.netDir(pid)
	if err != nil {
		return dst, err
	}
	return readTables(dir, dst)
}

// readTables reads the four socket tables of the net folder dir.
func readTables(dir string, dst []Socket) ([]Socket, error) {
	buf := getBuf()
	defer putBuf(buf)

	var errs []error
	found := 0
	for _, t := range tables {
		path := dir + "/" + t.name
		var err error
		*buf, err = readFile(path, (*buf)[:0])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found++
		if dst, err = parseTable(*buf, path, t.proto, t.ipv6, dst); err != nil {
			errs = append(errs, err)
		}
	}
	if found == 0 && len(errs) == 0 {
		return dst, fmt.Errorf("procnet: no socket tables in %s: %w", dir, fs.ErrNotExist)
	}
	return dst, errors.Join(errs...)
}

// Netns returns the inode number that identifies the network namespace of
// pid (pid 0: the reader's own), read from the <root>/<pid>/ns/net link
// "net:[4026531840]". Two pids share a namespace when their numbers match.
func (fsys FS) Netns(pid int) (uint64, error) {
	dir := "self"
	if pid < 0 {
		return 0, fmt.Errorf("procnet: negative pid %d", pid)
	} else if pid > 0 {
		dir = strconv.Itoa(pid)
	}
	path := filepath.Join(fsys.root, dir, "ns", "net")
	link, err := os.Readlink(path)
	if err != nil {
		return 0, err
	}
	num, ok := strings.CutPrefix(link, "net:[")
	if ok {
		num, ok = strings.CutSuffix(num, "]")
	}
	var ino uint64
	if ok {
		ino, ok = decimal([]byte(num), 1<<64-1)
	}
	if !ok {
		return 0, fmt.Errorf("%s: link %q: %w", path, link, ErrParse)
	}
	return ino, nil
}

// Namespace is one network namespace and how to read its tables: through a
// process in it (PID, whose <root>/<pid>/net tables are the namespace's) or,
// for a named one without a process, by entering it (Path, the bind mount
// `ip netns add` makes under /run/netns).
type Namespace struct {
	Inode uint64
	PID   int
	Path  string
}

// Namespaces lists the network namespaces that have a process, one process
// each (the lowest pid found), in the order met. The reader's own is among
// them. A process that exits while it is read is passed over, and so is
// one whose namespace link the reader may not read.
func (fsys FS) Namespaces(dst []Namespace) ([]Namespace, error) {
	d, err := os.Open(fsys.root)
	if err != nil {
		return dst, err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return dst, err
	}
	for _, n := range names {
		pid, ok := decimal([]byte(n), 1<<22)
		if !ok || pid == 0 {
			continue
		}
		ino, err := fsys.Netns(int(pid))
		if err != nil {
			continue
		}
		if i := slices.IndexFunc(dst, func(ns Namespace) bool { return ns.Inode == ino }); i >= 0 {
			dst[i].PID = min(dst[i].PID, int(pid))
			continue
		}
		dst = append(dst, Namespace{Inode: ino, PID: int(pid)})
	}
	return dst, nil
}

// netDir is <root>/net for pid 0, else <root>/<pid>/net. (/proc/net is a
// link to self/net, so both name the namespace of a process.)
func (fsys FS) netDir(pid int) (string, error) {
	switch {
	case pid < 0:
		return "", fmt.Errorf("procnet: negative pid %d", pid)
	case pid == 0:
		return filepath.Join(fsys.root, "net"), nil
	}
	return filepath.Join(fsys.root, strconv.Itoa(pid), "net"), nil
}

// Read buffers are pooled: a table of 10,000 sockets is about 1.5 MB, and
// the sensor reads it every heartbeat. Buffers past maxPooled are dropped so
// one huge table does not pin its memory.
const (
	initialBuf = 64 << 10
	maxPooled  = 32 << 20
)

var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, initialBuf)
	return &b
}}

func getBuf() *[]byte { return bufPool.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > maxPooled {
		return
	}
	*b = (*b)[:0]
	bufPool.Put(b)
}

// readFile reads path whole into buf. Proc files report size 0, so it reads
// until EOF rather than trusting a stat.
func readFile(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	return readAll(f, buf)
}

// readAll appends everything r yields to buf, growing it as needed.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, max(initialBuf, cap(buf)))
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
