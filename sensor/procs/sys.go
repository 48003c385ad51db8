package procs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The wrappers below take NUL-terminated byte paths so that the hot path
// (one readlink per fd on the host) builds paths in a reused buffer instead
// of allocating a string and its C copy per call, as unix.Readlinkat would.
// They return unix.Errno, not error: errno values below 256 box without
// allocating, but a bare Errno keeps that obvious.

func openat(dirfd int, path []byte, flags int) (int, unix.Errno) {
	fd, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
		uintptr(flags|unix.O_RDONLY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), 0
}

// readlinkat reads the link at path (NUL-terminated) relative to dirfd into buf.
func readlinkat(dirfd int, path *byte, buf []byte) (int, unix.Errno) {
	n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(path)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// readFile reads the file at path (NUL-terminated) relative to dirfd into
// buf, until end of file or buf is full: /proc/<pid>/stat and the start of
// status fit in one page.
func readFile(dirfd int, path []byte, buf []byte) (int, unix.Errno) {
	fd, e := openat(dirfd, path, 0)
	if e != 0 {
		return 0, e
	}
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err != nil {
			unix.Close(fd)
			if en, ok := err.(unix.Errno); ok {
				return 0, en
			}
			return 0, unix.EIO
		}
		if m == 0 {
			break
		}
		n += m
	}
	unix.Close(fd)
	return n, 0
}

// nextName returns the name of the linux_dirent64 record at off in buf,
// including its NUL terminator, and the offset of the next record; next is
// -1 at the end. name aliases buf. "." and ".." are skipped.
func nextName(buf []byte, off int) (name []byte, next int) {
	for off+19 < len(buf) {
		reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
		if reclen < 20 || off+reclen > len(buf) {
			return nil, -1
		}
		rec := buf[off+19 : off+reclen]
		off += reclen
		end := 0
		for end < len(rec) && rec[end] != 0 {
			end++
		}
		if end == len(rec) || end == 0 {
			continue // no terminator or empty: malformed record
		}
		if (end == 1 && rec[0] == '.') || (end == 2 && rec[0] == '.' && rec[1] == '.') {
			continue
		}
		return rec[:end+1], off
	}
	return nil, -1
}

// parseUint parses a decimal number that fills b; ok is false for anything
// else, which is how non-pid entries of /proc ("self", "net") are skipped.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, true
}

// bracketInode parses links of the form prefix + "[N]" ("socket:[123]",
// "net:[4026531840]") without allocating.
func bracketInode(link []byte, prefix string) (uint64, bool) {
	if len(link) < len(prefix)+3 || string(link[:len(prefix)]) != prefix ||
		link[len(prefix)] != '[' || link[len(link)-1] != ']' {
		return 0, false
	}
	return parseUint(link[len(prefix)+1 : len(link)-1])
}
