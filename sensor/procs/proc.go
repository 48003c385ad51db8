package procs

import (
	"bytes"
	"strconv"

	"golang.org/x/sys/unix"
)

// procInfo is what is read once per process lifetime: it is keyed by pid and
// trusted only while the process shows the same start time and comm.
type procInfo struct {
	start uint64
	comm  string
	p     Process
}

// gone reports whether errno means the process exited (or never existed).
func gone(e unix.Errno) bool { return e == unix.ENOENT || e == unix.ESRCH }

// exited reports whether a stat state means the process has exited and
// holds no files: zombie (Z) or dead (X).
func exited(state byte) bool { return state == 'Z' || state == 'X' }

// pidPath builds "<pid>/<suffix>" NUL-terminated in r.path.
func (r *Resolver) pidPath(pid uint32, suffix string) []byte {
	p := strconv.AppendUint(r.path[:0], uint64(pid), 10)
	p = append(p, '/')
	p = append(p, suffix...)
	p = append(p, 0)
	r.path = p
	return p
}

// fdName builds "<fd>" NUL-terminated in r.path.
func (r *Resolver) fdName(fd uint32) []byte {
	r.path = append(strconv.AppendUint(r.path[:0], uint64(fd), 10), 0)
	return r.path
}

// readStat reads the start time (field 22), comm (field 2) and state
// (field 3) of pid from <pid>/stat. comm is left in r.comm and state in
// r.state, valid until the next readStat; comm is the kernel's task comm,
// the same text as /proc/<pid>/comm, so that file is not read separately.
func (r *Resolver) readStat(pid uint32) (start uint64, e unix.Errno) {
	n, e := readFile(r.rootfd, r.pidPath(pid, "stat"), r.file)
	if e != 0 {
		return 0, e
	}
	b := r.file[:n]
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses,
	// so it ends at the last ')'.
	open, shut := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || shut < open {
		return 0, unix.EINVAL
	}
	r.comm = append(r.comm[:0], b[open+1:shut]...)
	if len(b) > shut+2 {
		r.state = b[shut+2]
	}
	// Fields after ')' start at field 3 (state); skip 3..21 to reach
	// starttime, field 22.
	f := b[shut+1:]
	for i := 3; i < 22; i++ {
		f = bytes.TrimLeft(f, " ")
		sp := bytes.IndexByte(f, ' ')
		if sp < 0 {
			return 0, unix.EINVAL
		}
		f = f[sp:]
	}
	f = bytes.TrimLeft(f, " ")
	if sp := bytes.IndexAny(f, " \n"); sp >= 0 {
		f = f[:sp]
	}
	start, ok := parseUint(f)
	if !ok {
		return 0, unix.EINVAL
	}
	return start, 0
}

// readInfo reads exe, real uid and network namespace of pid into a new
// procInfo; comm is taken from r.comm as set by the latest readStat.
func (r *Resolver) readInfo(pid uint32, start uint64) (*procInfo, unix.Errno) {
	n, e := readFile(r.rootfd, r.pidPath(pid, "status"), r.file)
	if e != 0 {
		return nil, e
	}
	uid, ok := statusUID(r.file[:n])
	if !ok {
		return nil, unix.EINVAL
	}
	in := &procInfo{start: start, comm: string(r.comm)}
	in.p = Process{PID: pid, Comm: in.comm, UID: uid, StartTime: start}
	// exe is unreadable for kernel threads and, without ptrace rights,
	// for other users' processes: that leaves Exe empty, not the process
	// unattributed.
	if n, e := readlinkat(r.rootfd, &r.pidPath(pid, "exe")[0], r.link); e == 0 {
		in.p.Exe = string(r.link[:n])
	}
	if n, e := readlinkat(r.rootfd, &r.pidPath(pid, "ns/net")[0], r.link); e == 0 {
		in.p.Netns, _ = bracketInode(r.link[:n], "net:")
	}
	return in, 0
}

// statusUID returns the real uid from the "Uid:" line of /proc/<pid>/status
// ("Uid:\treal\teffective\tsaved\tfs").
func statusUID(b []byte) (uint32, bool) {
	i := bytes.Index(b, []byte("\nUid:"))
	if i < 0 {
		return 0, false
	}
	b = bytes.TrimLeft(b[i+5:], " \t")
	end := 0
	for end < len(b) && b[end] >= '0' && b[end] <= '9' {
		end++
	}
	v, ok := parseUint(b[:end])
	if !ok || v > 1<<32-1 {
		return 0, false
	}
	return uint32(v), true
}
