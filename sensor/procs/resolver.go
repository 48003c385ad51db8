// Package procs finds which process holds each socket.
package procs

import (
	"cmp"
	"slices"

	"github.com/prometheus/procfs"
	"golang.org/x/sys/unix"
)

// Process is the holder of a socket. PID and StartTime together name one
// process for its lifetime: a PID alone may be reused.
type Process struct {
	PID       uint32
	UID       uint32 // real uid (procfs Proc.NewStatus); beside PID, so that neither is padded
	Comm      string // /proc/<pid>/comm (read from stat, same text), trimmed
	Exe       string // readlink /proc/<pid>/exe (procfs Proc.Executable); "" if unreadable (kernel threads, permission)
	StartTime uint64 // clock ticks since boot: with PID, the process's identity
	Netns     uint64 // inode of /proc/<pid>/ns/net, 0 if unreadable
	Unit      string // systemd unit, from /proc/<pid>/cgroup (see Unit); "" if none
	// The container, from the same cgroup path (see Container); "" for a
	// host process.
	ContainerID, Runtime, PodUID string
	// State is what the runtime's state files name the container (see
	// ContainerMeta); nil for a host process. A pointer, so that Process
	// stays small enough for maps to hold it inline (values over 128
	// bytes cost an allocation per entry: TestResolveWarmAllocs).
	State *Meta
}

// Stats tells what one Resolve call did.
type Stats struct {
	Scans      int // enumerations of /proc followed by fd scans: 0 when the cache answered
	ProcsRead  int // processes whose fd directory was read
	FDsRead    int // fd links read while scanning fd directories (cache checks not included)
	Unresolved int // wanted inodes left without an owner
	Vanished   int // processes that exited or were replaced while being read: their sockets stay unattributed
	CacheHits  int // inodes attributed from the cache, each checked by one fd link and its owner's start time
	StateReads int // containers whose runtime state files were read: once a container, not once a process
}

// negativeRetry is how many calls an inode that a complete scan could not
// attribute (a kernel socket such as a vxlan or NFS one, a holder in another
// pid namespace) waits before it forces a complete scan again: at a 15 s
// heartbeat, every 5 minutes. Scans that run anyway still look for it.
const negativeRetry = 20

// keepCalls is how many calls an inode stays cached after the last call
// that wanted it, so that callers sharing one Resolver with different sets
// (flows, then the whole socket table) do not evict each other's entries.
const keepCalls = 4

// Resolver maps socket inodes to their owners. It is not safe for concurrent use.
//
// Cache policy. Each Resolve trusts nothing it did not check in this call:
//
//   - inode → (pid, fd, start time) from earlier calls is a cache hit only if
//     the link <pid>/fd/<fd> still reads "socket:[inode]" and, after that,
//     <pid>/stat still shows the same start time. One readlink per inode and
//     one stat per owner replace the fd scan; a closed, moved or handed-off
//     fd, a zombie and a reused pid all fail the check. A live owner alone
//     is not enough: a process that passed a socket on (fork then close,
//     SCM_RIGHTS, hot restart) lives on without it.
//   - Inodes with no cache entry (or whose check failed) are searched in the
//     fd directories of processes in this order, stopping as soon as none is
//     left: processes new since the last enumeration (likely owners of new
//     sockets), then owners of cached sockets (servers that accept), then
//     all the others. Running out of processes is a complete scan.
//   - An inode a complete scan did not find is remembered as ownerless and
//     does not force another complete scan for negativeRetry calls.
//   - Every attribution, from scan or cache, is committed only if the
//     process's start time read after its fds equals the one read before
//     (or cached): a process that exited or whose pid was reused meanwhile
//     leaves its sockets unattributed, never attributed to the wrong process.
//   - Comm, exe, uid and netns are read once per process and kept while the
//     pid shows the same start time and comm; a changed comm (exec) re-reads
//     them. A setuid() without exec is not seen until the process restarts.
//   - Entries for inodes no call wanted in the last keepCalls calls, and
//     for processes missing from the latest enumeration, are dropped, so
//     memory is bounded by the live sockets and processes.
type Resolver struct {
	// StateRoot is where container runtimes' state files are read
	// ("/" when empty); tests point it at fixtures.
	StateRoot string
	root      []byte     // procRoot, NUL-terminated
	pfs       *procfs.FS // procRoot for procfs, opened at the first metadata read
	gen       uint32     // call counter, to mark what this call wanted and found
	socks     map[uint64]sockEntry
	procs     map[uint32]*procInfo
	prev      []uint32 // pids of the latest enumeration, sorted
	// metas holds what the runtimes' state files say of each container
	// some cached process is in, read at its first process: a pod of
	// fifty processes costs one read of them, not fifty. An entry goes
	// with the container's last process.
	metas map[metaKey]*metaEntry

	// Scratch for one call, kept for its capacity.
	rootfd     int
	out        map[uint64]Process
	st         Stats
	unknown    int // wanted inodes in state unknown: they force a scan
	enumerated bool
	cursor     int // next index in order
	cur, order []uint32
	mark       []bool
	cands      []cand
	staged     []staged
	path, comm []byte
	state      byte
	link, file []byte
	dents      []byte

	// beforeRecheck, if set, runs just before a process's start time is
	// read the second time: tests use it to make processes vanish or change.
	beforeRecheck func(pid uint32)
}

type metaKey struct{ runtime, id string }

type metaEntry struct {
	m    Meta
	seen uint32 // call that last found a process in the container
}

// meta returns the runtime's state for a container, read once while some
// process of it is cached.
func (r *Resolver) meta(runtime, id string) *Meta {
	k := metaKey{runtime, id}
	e := r.metas[k]
	if e == nil {
		e = &metaEntry{m: ContainerMeta(cmp.Or(r.StateRoot, "/"), runtime, id)}
		r.metas[k] = e
		r.st.StateReads++
	}
	e.seen = r.gen
	return &e.m
}

type sockState uint8

const (
	stateUnknown   sockState = iota // no trusted owner: forces a scan
	stateCached                     // has a cached owner to check
	stateOwnerless                  // recently missed by a complete scan
)

type sockEntry struct {
	pid    uint32
	fd     uint32
	start  uint64
	owned  bool   // pid, fd and start name the holder as of the last attribution
	missed uint32 // if !owned: call of the last complete scan that missed it, 0 if none
	wanted uint32 // call that last wanted it
	found  uint32 // call that last attributed it
	state  sockState
}

type cand struct {
	pid, fd uint32
	start   uint64
	ino     uint64
}

type staged struct {
	ino uint64
	fd  uint32
}

// NewResolver returns a Resolver reading the proc filesystem mounted at
// procRoot: "/proc" in production, a fixture root in tests.
func NewResolver(procRoot string) *Resolver {
	return &Resolver{
		root:  append([]byte(procRoot), 0),
		socks: make(map[uint64]sockEntry),
		procs: make(map[uint32]*procInfo),
		metas: make(map[metaKey]*metaEntry),
		path:  make([]byte, 0, 64),
		link:  make([]byte, unix.PathMax),
		file:  make([]byte, 4096),
		dents: make([]byte, 32<<10),
	}
}

// Resolve returns the owner of each inode in want. Inodes whose owner cannot be
// found are absent from the result (reported without attribution), never given
// a wrong process. Zero inodes (TIME_WAIT, orphans) are ignored. The map
// belongs to the caller. A socket shared by several processes (inherited
// across fork) is given to one of them: the first found, the lowest pid in a
// complete scan.
func (r *Resolver) Resolve(want []uint64) (map[uint64]Process, Stats) {
	r.gen++
	r.st = Stats{}
	r.out = make(map[uint64]Process, len(want))
	r.unknown, r.enumerated, r.cursor = 0, false, 0
	r.cands = r.cands[:0]
	wanted := 0
	for _, ino := range want {
		if ino == 0 {
			continue
		}
		e, ok := r.socks[ino]
		if ok && e.wanted == r.gen {
			continue // listed twice
		}
		wanted++
		e.wanted = r.gen
		switch {
		case ok && e.owned:
			e.state = stateCached
			r.cands = append(r.cands, cand{pid: e.pid, fd: e.fd, start: e.start, ino: ino})
		case ok && e.missed != 0 && r.gen-e.missed < negativeRetry:
			e.state = stateOwnerless
		default:
			e.state = stateUnknown
			r.unknown++
		}
		r.socks[ino] = e
	}

	complete := false
	if fd, e := openat(unix.AT_FDCWD, r.root, unix.O_DIRECTORY); e == 0 {
		r.rootfd = fd
		if r.unknown > 0 {
			r.scan()
		}
		r.check()
		if r.unknown > 0 {
			r.scan()
		}
		complete = r.enumerated && r.cursor == len(r.order)
		unix.Close(fd)
	}

	for ino, e := range r.socks {
		switch {
		case r.gen-e.wanted >= keepCalls:
			delete(r.socks, ino)
		case e.wanted != r.gen:
			// kept for a caller that may want it next
		case e.found != r.gen:
			e.owned = false
			if complete || e.state != stateOwnerless {
				e.missed = 0
				if complete {
					e.missed = r.gen
				}
			}
			r.socks[ino] = e
		}
	}
	out, st := r.out, r.st
	r.out = nil
	st.Unresolved = wanted - len(out)
	return out, st
}

// scan enumerates /proc once per call and reads fd directories in the
// policy's order until no unknown inode is left or no process is.
func (r *Resolver) scan() {
	if !r.enumerated {
		r.enumerated = true
		r.st.Scans++
		r.cur = r.enumerate(r.cur[:0])
		r.buildOrder()
		r.prev, r.cur = r.cur, r.prev
		for pid, in := range r.procs {
			if _, ok := slices.BinarySearch(r.prev, pid); !ok || in == nil {
				delete(r.procs, pid)
			} else if e := r.metas[metaKey{in.p.Runtime, in.p.ContainerID}]; e != nil {
				e.seen = r.gen
			}
		}
		for k, e := range r.metas {
			if e.seen != r.gen {
				delete(r.metas, k)
			}
		}
	}
	for r.cursor < len(r.order) && r.unknown > 0 {
		pid := r.order[r.cursor]
		r.cursor++
		r.scanProc(pid)
	}
}

// enumerate appends the pids listed in the proc root, sorted. Only thread
// group leaders are listed there, so threads are skipped by construction.
func (r *Resolver) enumerate(dst []uint32) []uint32 {
	if _, err := unix.Seek(r.rootfd, 0, 0); err != nil {
		return dst
	}
	for {
		n, err := unix.Getdents(r.rootfd, r.dents)
		if err != nil || n <= 0 {
			break
		}
		for name, off := nextName(r.dents[:n], 0); off >= 0; name, off = nextName(r.dents[:n], off) {
			if pid, ok := parseUint(name[:len(name)-1]); ok && pid > 0 && pid <= 1<<32-1 {
				dst = append(dst, uint32(pid))
			}
		}
	}
	slices.Sort(dst)
	return dst
}

// buildOrder lists r.cur in scan order: new since r.prev, then owners of
// cached sockets, then the rest.
func (r *Resolver) buildOrder() {
	r.order = r.order[:0]
	r.mark = slices.Grow(r.mark[:0], len(r.cur))[:len(r.cur)]
	clear(r.mark)
	j := 0
	for i, pid := range r.cur {
		for j < len(r.prev) && r.prev[j] < pid {
			j++
		}
		if j == len(r.prev) || r.prev[j] != pid {
			r.mark[i] = true
			r.order = append(r.order, pid)
		}
	}
	for _, c := range r.cands {
		if i, ok := slices.BinarySearch(r.cur, c.pid); ok && !r.mark[i] {
			r.mark[i] = true
			r.order = append(r.order, c.pid)
		}
	}
	for i, pid := range r.cur {
		if !r.mark[i] {
			r.order = append(r.order, pid)
		}
	}
}

// scanProc reads the fd directory of pid and attributes the wanted inodes
// it holds, if the process is the same one before and after.
func (r *Resolver) scanProc(pid uint32) {
	start, e := r.readStat(pid)
	if e != 0 || exited(r.state) {
		if e == 0 || gone(e) {
			r.st.Vanished++
		}
		return
	}
	dfd, e := openat(r.rootfd, r.pidPath(pid, "fd"), unix.O_DIRECTORY)
	if e != 0 {
		return // exited (counted if its stat goes too) or EACCES: not ours to read
	}
	r.st.ProcsRead++
	r.staged = r.staged[:0]
	for {
		n, err := unix.Getdents(dfd, r.dents)
		if err != nil || n <= 0 {
			break
		}
		for name, off := nextName(r.dents[:n], 0); off >= 0; name, off = nextName(r.dents[:n], off) {
			r.st.FDsRead++
			m, e := readlinkat(dfd, &name[0], r.link)
			if e != 0 {
				continue
			}
			ino, ok := bracketInode(r.link[:m], "socket:")
			if !ok {
				continue
			}
			if se, ok := r.socks[ino]; !ok || se.wanted != r.gen || se.found == r.gen {
				continue
			}
			fd, _ := parseUint(name[:len(name)-1])
			r.staged = append(r.staged, staged{ino: ino, fd: uint32(fd)})
		}
	}
	unix.Close(dfd)
	if len(r.staged) == 0 {
		return
	}
	if in := r.confirm(pid, start, r.procs[pid], true); in != nil {
		r.commit(pid, in, false)
	}
}

// check verifies the cached owners of the candidates no scan has found yet:
// per owner, its fd links, then its start time. Failures become unknown.
func (r *Resolver) check() {
	slices.SortFunc(r.cands, func(a, b cand) int {
		if c := cmp.Compare(a.pid, b.pid); c != 0 {
			return c
		}
		return cmp.Compare(a.start, b.start)
	})
	for i := 0; i < len(r.cands); {
		j := i + 1
		for j < len(r.cands) && r.cands[j].pid == r.cands[i].pid && r.cands[j].start == r.cands[i].start {
			j++
		}
		group := r.cands[i:j]
		i = j
		pid, start := group[0].pid, group[0].start
		r.staged = r.staged[:0]
		// Links are read relative to the fd directory: a one-component
		// lookup costs half of "<pid>/fd/<n>" from the root.
		dfd, e := openat(r.rootfd, r.pidPath(pid, "fd"), unix.O_DIRECTORY)
		for _, c := range group {
			if r.socks[c.ino].found == r.gen {
				continue // a scan got there first
			}
			if e == 0 {
				n, e := readlinkat(dfd, &r.fdName(c.fd)[0], r.link)
				if e == 0 {
					if ino, ok := bracketInode(r.link[:n], "socket:"); ok && ino == c.ino {
						r.staged = append(r.staged, staged{ino: c.ino, fd: c.fd})
						continue
					}
				}
			}
			r.forget(c.ino)
		}
		if e == 0 {
			unix.Close(dfd)
		}
		if len(r.staged) == 0 {
			continue
		}
		if in := r.confirm(pid, start, r.procs[pid], false); in != nil {
			r.commit(pid, in, true)
		} else {
			r.forgetStaged()
		}
	}
}

// confirm is called after pid's fds were read, with the start time known
// from before (read before the fds, or cached): it re-reads pid's stat and
// returns pid's info if the process is still the one with that start time,
// nil if it exited (a zombie too) or its pid was reused. in is the cached info, if any; it
// is read anew if missing or if the comm changed (exec). fresh says whether
// r.comm already holds pid's comm from a stat read before the fds.
func (r *Resolver) confirm(pid uint32, start uint64, in *procInfo, fresh bool) *procInfo {
	for range 2 {
		if in == nil || in.start != start || (fresh && in.comm != string(r.comm)) {
			var e unix.Errno
			if !fresh {
				var now uint64
				if now, e = r.readStat(pid); e == 0 && (now != start || exited(r.state)) {
					e = unix.ESRCH
				}
			}
			if e == 0 {
				in, e = r.readInfo(pid, start)
			}
			if e != 0 {
				r.st.Vanished++
				delete(r.procs, pid)
				return nil
			}
			r.procs[pid] = in
		}
		if r.beforeRecheck != nil {
			r.beforeRecheck(pid)
		}
		now, e := r.readStat(pid)
		if e != 0 || now != start || exited(r.state) {
			r.st.Vanished++
			delete(r.procs, pid)
			return nil
		}
		if in.comm == string(r.comm) {
			return in
		}
		fresh = true // exec'd: read the info again, then check again
	}
	return nil
}

// commit attributes the staged inodes to pid.
func (r *Resolver) commit(pid uint32, in *procInfo, hit bool) {
	for _, s := range r.staged {
		se := r.socks[s.ino]
		if se.found == r.gen {
			continue // the same socket in two fds
		}
		if se.state == stateUnknown {
			r.unknown--
		}
		se.pid, se.fd, se.start, se.owned, se.found = pid, s.fd, in.start, true, r.gen
		r.socks[s.ino] = se
		r.out[s.ino] = in.p
		if hit {
			r.st.CacheHits++
		}
	}
}

// forget marks a candidate whose cached owner failed its check as unknown.
func (r *Resolver) forget(ino uint64) {
	se := r.socks[ino]
	se.owned = false
	if se.state != stateUnknown {
		se.state = stateUnknown
		r.unknown++
	}
	r.socks[ino] = se
}

func (r *Resolver) forgetStaged() {
	for _, s := range r.staged {
		r.forget(s.ino)
	}
}

// Processes returns every live process with its identity, for attributing
// flows by pid. It reads the info of processes not yet cached.
func (r *Resolver) Processes() []Process {
	fd, e := openat(unix.AT_FDCWD, r.root, unix.O_DIRECTORY)
	if e != 0 {
		return nil
	}
	defer unix.Close(fd)
	r.rootfd = fd
	pids := r.enumerate(nil)
	out := make([]Process, 0, len(pids))
	for _, pid := range pids {
		start, e := r.readStat(pid)
		if e != 0 {
			continue
		}
		if in := r.confirm(pid, start, r.procs[pid], true); in != nil {
			out = append(out, in.p)
		}
	}
	return out
}
