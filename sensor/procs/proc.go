package procs

import (
	"bytes"
	"errors"
	"io/fs"
	"strconv"

	"github.com/prometheus/procfs"
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
// procInfo through procfs; comm is taken from r.comm as set by the latest
// readStat. This runs once per process lifetime (the result is cached), so
// procfs's allocations here do not recur per heartbeat; the per-call path
// (readStat, the fd walk) stays on the reused buffers above.
func (r *Resolver) readInfo(pid uint32, start uint64) (*procInfo, unix.Errno) {
	p, err := r.proc(pid)
	if err != nil {
		return nil, errno(err)
	}
	st, err := p.NewStatus()
	if err != nil {
		return nil, errno(err)
	}
	// A status that is not pid's own (no Tgid line, or a thread's) or whose
	// real uid does not fit a uid_t names nobody: unattributed, not root.
	if st.TGID != int(pid) || st.UIDs[0] > 1<<32-1 {
		return nil, unix.EINVAL
	}
	in := &procInfo{start: start, comm: string(r.comm)}
	in.p = Process{PID: pid, Comm: in.comm, UID: uint32(st.UIDs[0]), StartTime: start}
	// exe is unreadable for kernel threads and, without ptrace rights,
	// for other users' processes: that leaves Exe empty, not the process
	// unattributed.
	if exe, err := p.Executable(); err == nil {
		in.p.Exe = exe
	}
	if ns, err := netns(p); err == nil {
		in.p.Netns = ns
	}
	if cgs, err := p.Cgroups(); err == nil {
		in.p.Unit = Unit(cgs)
		in.p.ContainerID, in.p.Runtime, in.p.PodUID = Container(cgs)
		if in.p.ContainerID != "" {
			in.p.State = r.meta(in.p.Runtime, in.p.ContainerID)
		}
	}
	return in, 0
}

// proc returns the procfs handle of pid under the resolver's root.
func (r *Resolver) proc(pid uint32) (procfs.Proc, error) {
	if r.pfs == nil {
		fsys, err := procfs.NewFS(string(r.root[:len(r.root)-1]))
		if err != nil {
			return procfs.Proc{}, err
		}
		r.pfs = &fsys
	}
	return r.pfs.Proc(int(pid))
}

// errno maps an error from procfs to the errno the resolver's callers test:
// a missing file or process is ENOENT (gone), anything else EINVAL.
func errno(err error) unix.Errno {
	var en unix.Errno
	switch {
	case errors.As(err, &en):
		return en
	case errors.Is(err, fs.ErrNotExist):
		return unix.ENOENT
	}
	return unix.EINVAL
}
