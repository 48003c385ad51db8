package procs

import (
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The fixture under testdata/proc:
//
//	pid  comm           start uid   sockets (fd)          notes
//	1    systemd        5     0     1001 (3)              also /dev/null, eventpoll
//	2    kthreadd       6     0     -                     no fd dir, no exe, no ns
//	100  nginx          1000  0     2001 (6)              also a pipe and a log file
//	101  nginx          1001  33    2001 (6), 2002 (9,10) euid 0; shares 2001 with 100
//	200  tricky) (name  2000  1000  3001 (3), 77 (4)      no exe, another netns
//	300  gone           -     0     4001 (3)              no stat: exited
//	self, net/, uptime                                    not pids
var (
	systemd = Process{PID: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd", UID: 0, StartTime: 5, Netns: 4026531840}
	master  = Process{PID: 100, Comm: "nginx", Exe: "/usr/sbin/nginx", UID: 0, StartTime: 1000, Netns: 4026531840}
	worker  = Process{PID: 101, Comm: "nginx", Exe: "/usr/sbin/nginx", UID: 33, StartTime: 1001, Netns: 4026531840}
	tricky  = Process{PID: 200, Comm: "tricky) (name", UID: 1000, StartTime: 2000, Netns: 4026532000}
)

var fixtureWant = []uint64{1001, 2001, 2002, 3001, 4001, 9999, 0, 2002}

// fixture copies testdata/proc to a temporary root that a test may change.
func fixture(t *testing.T) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "proc")
	err := filepath.WalkDir("testdata/proc", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel("testdata/proc", path)
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, to)
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		default:
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(to, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// setStat rewrites the comm and start time in root/<pid>/stat.
func setStat(t *testing.T, root, pid, comm, start string) {
	t.Helper()
	path := filepath.Join(root, pid, "stat")
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		b, err = os.ReadFile(filepath.Join(root, "1", "stat"))
	}
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	rest := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	rest[19] = start // field 22
	s = pid + " (" + comm + ") " + strings.Join(rest, " ") + "\n"
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func checkOwners(t *testing.T, got, want map[uint64]Process) {
	t.Helper()
	for _, ino := range slices.Sorted(maps.Keys(want)) {
		if got[ino] != want[ino] {
			t.Errorf("inode %d: got %+v, want %+v", ino, got[ino], want[ino])
		}
	}
	for ino, p := range got {
		if _, ok := want[ino]; !ok {
			t.Errorf("inode %d: attributed to %+v, want no owner", ino, p)
		}
	}
}

func TestResolveFixture(t *testing.T) {
	r := NewResolver("testdata/proc")
	got, st := r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: master, 2002: worker, 3001: tricky})
	// 4001 is held by 300, whose stat is missing: it exited.
	want := Stats{Scans: 1, ProcsRead: 4, FDsRead: 14, Unresolved: 2, Vanished: 1}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestResolveCache(t *testing.T) {
	r := NewResolver("testdata/proc")
	r.Resolve(fixtureWant)
	got, st := r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: master, 2002: worker, 3001: tricky})
	// 4001 and 9999 were missed by a complete scan: they wait negativeRetry
	// calls before forcing another one.
	if want := (Stats{CacheHits: 4, Unresolved: 2}); st != want {
		t.Errorf("warm stats %+v, want %+v", st, want)
	}
	for i := 2; i < negativeRetry; i++ {
		if _, st = r.Resolve(fixtureWant); st.Scans != 0 {
			t.Fatalf("call %d scanned: %+v", i+1, st)
		}
	}
	// Then they are looked for again; the scan reads cached owners first
	// and so confirms their sockets on its way.
	got, st = r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: master, 2002: worker, 3001: tricky})
	if st.Scans != 1 || st.Unresolved != 2 {
		t.Errorf("call %d: %+v, want one scan for the ownerless inodes", negativeRetry+1, st)
	}

	// Two callers sharing the Resolver with different sets do not evict
	// each other's entries.
	for range 3 {
		if _, st = r.Resolve([]uint64{1001}); st != (Stats{CacheHits: 1}) {
			t.Errorf("set A: %+v, want 1 hit", st)
		}
		if _, st = r.Resolve([]uint64{2001, 2002}); st != (Stats{CacheHits: 2}) {
			t.Errorf("set B: %+v, want 2 hits", st)
		}
	}
	// Inodes unwanted for keepCalls calls leave the cache; wanted again,
	// they are scanned.
	for range keepCalls {
		r.Resolve([]uint64{1001})
	}
	if len(r.socks) != 1 {
		t.Errorf("cache holds %d inodes, want 1", len(r.socks))
	}
	got, st = r.Resolve([]uint64{1001, 3001})
	checkOwners(t, got, map[uint64]Process{1001: systemd, 3001: tricky})
	// The scan reads cached owners first (servers accept new sockets), so
	// it finds 1001 again on its way.
	if st.Scans != 1 || st.ProcsRead != 4 {
		t.Errorf("stats %+v, want a scan of 4 processes", st)
	}
}

// A new inode is looked for first in processes new since the last scan.
func TestResolveNewProcessFirst(t *testing.T) {
	root := fixture(t)
	r := NewResolver(root)
	r.Resolve(fixtureWant)
	if err := os.Rename(filepath.Join(root, "300"), filepath.Join(root, "400")); err != nil {
		t.Fatal(err)
	}
	setStat(t, root, "400", "curl", "4000")
	status := "Name:\tcurl\nTgid:\t400\nPid:\t400\nUid:\t0\t0\t0\t0\n"
	if err := os.WriteFile(filepath.Join(root, "400", "status"), []byte(status), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(root, "400", "fd", "3"))
	os.Symlink("socket:[5001]", filepath.Join(root, "400", "fd", "3"))
	got, st := r.Resolve([]uint64{5001, 1001})
	if got[5001].PID != 400 || got[1001] != systemd {
		t.Errorf("got %+v", got)
	}
	if st.ProcsRead != 1 || st.CacheHits != 1 {
		t.Errorf("stats %+v, want one process read (the new one) and one hit", st)
	}
}

// A process that changes between its fd read and the recheck leaves its
// sockets without owner: one whose start time changed was replaced (pid
// reused), one whose stat went has exited.
func TestResolveChangedDuringScan(t *testing.T) {
	for _, c := range []struct {
		name     string
		pid      uint32
		change   func(t *testing.T, root string)
		want     map[uint64]Process
		vanished int
	}{
		{"replaced", 101, func(t *testing.T, root string) { setStat(t, root, "101", "bash", "5000") },
			map[uint64]Process{1001: systemd, 2001: master, 3001: tricky}, 2}, // 101 and 300
		{"exited", 200, func(_ *testing.T, root string) { os.Remove(filepath.Join(root, "200", "stat")) },
			map[uint64]Process{1001: systemd, 2001: master, 2002: worker}, 2}, // 200 and 300
	} {
		t.Run(c.name, func(t *testing.T) {
			root := fixture(t)
			r := NewResolver(root)
			r.beforeRecheck = func(pid uint32) {
				if pid == c.pid {
					c.change(t, root)
				}
			}
			got, st := r.Resolve(fixtureWant)
			checkOwners(t, got, c.want)
			if st.Vanished != c.vanished {
				t.Errorf("stats %+v, want %d vanished", st, c.vanished)
			}
		})
	}
}

// A cached owner that exits loses its sockets to the other holder or to
// nobody; one whose pid was reused is not trusted either.
func TestResolveCachedOwnerGone(t *testing.T) {
	root := fixture(t)
	r := NewResolver(root)
	r.Resolve(fixtureWant)

	// 100 exits: 2001 is still held by 101.
	if err := os.RemoveAll(filepath.Join(root, "100")); err != nil {
		t.Fatal(err)
	}
	got, st := r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: worker, 2002: worker, 3001: tricky})
	if st.CacheHits != 3 || st.Scans != 1 {
		t.Errorf("stats %+v, want 3 hits (1001, 2002, 3001) and a scan", st)
	}

	// 200's pid is reused by a process that has an fd 3 of its own.
	setStat(t, root, "200", "sshd", "6000")
	os.Remove(filepath.Join(root, "200", "fd", "3"))
	os.Symlink("socket:[5555]", filepath.Join(root, "200", "fd", "3"))
	got, _ = r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: worker, 2002: worker})

	// The fd still reads as the socket, but the stat changes just after.
	r.beforeRecheck = func(pid uint32) {
		if pid == 1 {
			setStat(t, root, "1", "systemd", "7")
		}
	}
	got, _ = r.Resolve(fixtureWant)
	if p, ok := got[1001]; ok && p.StartTime != 7 {
		t.Errorf("1001 attributed to %+v after its owner was replaced", p)
	}
}

// A cached fd that now holds another socket is not a hit.
func TestResolveCachedFDReused(t *testing.T) {
	root := fixture(t)
	r := NewResolver(root)
	r.Resolve(fixtureWant)
	os.Remove(filepath.Join(root, "1", "fd", "3"))
	os.Symlink("socket:[1002]", filepath.Join(root, "1", "fd", "3"))
	got, st := r.Resolve(fixtureWant)
	checkOwners(t, got, map[uint64]Process{2001: master, 2002: worker, 3001: tricky})
	if st.CacheHits != 3 {
		t.Errorf("stats %+v, want 3 hits", st)
	}
}

// An exec keeps pid and start time but changes comm and exe.
func TestResolveExec(t *testing.T) {
	root := fixture(t)
	r := NewResolver(root)
	r.Resolve(fixtureWant)
	setStat(t, root, "200", "server", "2000")
	os.Symlink("/usr/bin/server", filepath.Join(root, "200", "exe"))
	got, st := r.Resolve(fixtureWant)
	want := tricky
	want.Comm, want.Exe = "server", "/usr/bin/server"
	checkOwners(t, got, map[uint64]Process{1001: systemd, 2001: master, 2002: worker, 3001: want})
	if st.CacheHits != 4 {
		t.Errorf("stats %+v, want 4 hits", st)
	}
}

func TestResolveNoRoot(t *testing.T) {
	r := NewResolver(filepath.Join(t.TempDir(), "missing"))
	got, st := r.Resolve([]uint64{1, 2})
	if len(got) != 0 || st.Unresolved != 2 {
		t.Errorf("got %v %+v", got, st)
	}
}

func TestProcessesFixture(t *testing.T) {
	got := NewResolver("testdata/proc").Processes()
	kthreadd := Process{PID: 2, Comm: "kthreadd", StartTime: 6}
	want := []Process{systemd, kthreadd, master, worker, tricky}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

// The warm path and the scan allocate only the returned map.
func TestResolveWarmAllocs(t *testing.T) {
	r := NewResolver("testdata/proc")
	r.Resolve(fixtureWant)
	allocs := testing.AllocsPerRun(100, func() { r.Resolve(fixtureWant) })
	if allocs > 2 {
		t.Errorf("%v allocations per warm Resolve, want at most 2 (the result map's header and table)", allocs)
	}
	// A complete scan, once the process info is cached, allocates no more.
	allocs = testing.AllocsPerRun(100, func() {
		clear(r.socks)
		r.Resolve(fixtureWant)
	})
	if allocs > 2 {
		t.Errorf("%v allocations per scanning Resolve, want at most 2 (the result map's header and table)", allocs)
	}
}

func TestParse(t *testing.T) {
	f := func(link, prefix string, want uint64, wantOK bool) {
		t.Helper()
		got, ok := bracketInode([]byte(link), prefix)
		if got != want || ok != wantOK {
			t.Errorf("bracketInode(%q, %q) = %d, %v", link, prefix, got, ok)
		}
	}
	f("socket:[12345]", "socket:", 12345, true)
	f("net:[4026531840]", "net:", 4026531840, true)
	f("pipe:[12345]", "socket:", 0, false)
	f("socket:[]", "socket:", 0, false)
	f("socket:[12a]", "socket:", 0, false)
	f("socket:[12", "socket:", 0, false)
	f("/dev/null", "socket:", 0, false)
	f("socket:[99999999999999999999]", "socket:", 0, false)

}

// The uid comes from status through procfs; a status that is not the
// process's own or whose uid does not fit a uid_t leaves it unattributed.
func TestReadInfoStatus(t *testing.T) {
	f := func(status string, want uint32, wantOK bool) {
		t.Helper()
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "7"), 0o755)
		os.WriteFile(filepath.Join(dir, "7", "status"), []byte(status), 0o644)
		r := NewResolver(dir)
		in, e := r.readInfo(7, 42)
		if (e == 0) != wantOK || (wantOK && in.p.UID != want) {
			t.Errorf("readInfo with status %q = %+v, %v", status, in, e)
		}
	}
	f("Name:\tx\nTgid:\t7\nUid:\t1000\t0\t0\t0\n", 1000, true)
	f("Name:\tx\nTgid:\t7\nUid:\t4294967295\t0\t0\t0\n", 4294967295, true)
	f("Name:\tx\nTgid:\t7\nUid:\t4294967296\t0\t0\t0\n", 0, false)
	f("Name:\tx\nTgid:\t7\nUid:\t\n", 0, false)
	f("Name:\tx\nTgid:\t8\nUid:\t1000\t0\t0\t0\n", 0, false) // a thread's, or another's
	f("Name:\tx\nUid:\t1000\t0\t0\t0\n", 0, false)           // no Tgid
	f("", 0, false)
}

func TestReadStat(t *testing.T) {
	r := NewResolver("")
	f := func(stat string, wantStart uint64, wantComm string, ok bool) {
		t.Helper()
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "7"), 0o755)
		os.WriteFile(filepath.Join(dir, "7", "stat"), []byte(stat), 0o644)
		fd, e := openat(unix.AT_FDCWD, append([]byte(dir), 0), 0)
		if e != 0 {
			t.Fatal(e)
		}
		defer unix.Close(fd)
		r.rootfd = fd
		start, e := r.readStat(7)
		if (e == 0) != ok || start != wantStart || (ok && string(r.comm) != wantComm) {
			t.Errorf("readStat(%q) = %d, %q, %v", stat, start, r.comm, e)
		}
	}
	f("7 (a b) S 1 7 7 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 42 1000 10\n", 42, "a b", true)
	f("7 ((x)) R 1 7 7 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 43\n", 43, "(x)", true)
	f("7 (x) S 1 7 7 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0\n", 0, "", false)
	f("7 (x S 1\n", 0, "", false)
	f("", 0, "", false)
}
