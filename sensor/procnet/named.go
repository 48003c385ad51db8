package procnet

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// Named appends to dst the network namespaces bind-mounted in dir (named
// ones, as `ip netns add` makes them in /run/netns) that dst does not hold
// yet, each with its Path. A namespace with a process in it is read through
// that process, so Namespaces goes first; these are the ones no process is
// in, whose sockets are still there (a socket made inside and handed out,
// or a kernel one). A missing dir is none; an entry that is not a namespace
// (or is deleted while read) is passed over.
func (fsys FS) Named(dir string, dst []Namespace) ([]Namespace, error) {
	if dir == "" {
		return dst, nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return dst, nil
		}
		return dst, err
	}
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		var st unix.Statfs_t
		// Only a mounted namespace is one: the file under it stays behind
		// as an empty regular file when `ip netns` fails half-way.
		if unix.Statfs(path, &st) != nil || st.Type != unix.NSFS_MAGIC {
			continue
		}
		fi, err := os.Stat(path)
		if err != nil {
			continue
		}
		ino := fi.Sys().(*syscall.Stat_t).Ino
		if slices.ContainsFunc(dst, func(ns Namespace) bool { return ns.Inode == ino }) {
			continue
		}
		dst = append(dst, Namespace{Inode: ino, Path: path})
	}
	return dst, nil
}

// SocketsOf reads the socket tables of ns as Sockets does: through its
// process, or by entering it when it has only a Path.
func (fsys FS) SocketsOf(ns Namespace, dst []Socket) ([]Socket, error) {
	if ns.PID > 0 || ns.Path == "" {
		return fsys.Sockets(ns.PID, dst)
	}
	err := InNetns(ns.Path, func() error {
		var err error
		dst, err = readTables(filepath.Join(fsys.root, "thread-self", "net"), dst)
		return err
	})
	return dst, err
}

// InNetns runs fn on an OS thread of its own that has joined the network
// namespace bound at path, so that /proc/thread-self/net there, and the
// sockets fn makes, are the namespace's. The thread stays locked and ends
// with its goroutine: the runtime never hands a thread in a foreign
// namespace to other code, and nothing has to be undone (an undo that
// failed would leave one behind). Joining needs CAP_SYS_ADMIN.
//
// The main thread never joins: /proc/self/net is the namespace of the
// process's main thread, so the whole process would read another
// namespace's tables as its own, and the runtime keeps that thread even
// when its goroutine ends locked. A goroutine that finds itself there
// holds the main thread and enters from another one, which the held main
// thread cannot be.
func InNetns(path string, fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked off the main thread: see above
		if unix.Gettid() == unix.Getpid() {
			done <- InNetns(path, fn)
			runtime.UnlockOSThread()
			return
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- fmt.Errorf("procnet: open namespace %s: %w", path, err)
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("procnet: enter namespace %s: %w", path, err)
			return
		}
		done <- fn()
	}()
	return <-done
}

// NetnsPath is the file that names ns for InNetns: its Path for a named
// one, <root>/<pid>/ns/net for one read through a process, and "" for the
// reader's own (PID 0 without a Path), which needs no entering.
func (fsys FS) NetnsPath(ns Namespace) string {
	switch {
	case ns.Path != "":
		return ns.Path
	case ns.PID > 0:
		return filepath.Join(fsys.root, strconv.Itoa(ns.PID), "ns", "net")
	}
	return ""
}
