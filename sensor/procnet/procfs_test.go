package procnet

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/procfs"

	"github.com/netview/netview/internal/cputime"
)

// prometheus/procfs parses the same four tables (FS.NetTCP, NetTCP6,
// NetUDP, NetUDP6). This file holds it beside the sensor's own parser: a
// test that both read the same sockets from the same bytes, and the
// benchmark that decides which one the sensor uses (docs/performance.md,
// "procfs in the sensor").

// procfsSockets reads the four tables of fsys with procfs and converts them
// to the sensor's Socket, as Sockets(0, dst) would return them.
func procfsSockets(fsys procfs.FS, dst []Socket) ([]Socket, error) {
	for _, t := range tables {
		var (
			got procfs.NetIPSocket
			err error
		)
		switch {
		case t.proto == TCP && !t.ipv6:
			var n procfs.NetTCP
			n, err = fsys.NetTCP()
			got = procfs.NetIPSocket(n)
		case t.proto == TCP:
			var n procfs.NetTCP
			n, err = fsys.NetTCP6()
			got = procfs.NetIPSocket(n)
		case !t.ipv6:
			var n procfs.NetUDP
			n, err = fsys.NetUDP()
			got = procfs.NetIPSocket(n)
		default:
			var n procfs.NetUDP
			n, err = fsys.NetUDP6()
			got = procfs.NetIPSocket(n)
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return dst, err
		}
		for _, l := range got {
			local, _ := netip.AddrFromSlice(l.LocalAddr)
			remote, _ := netip.AddrFromSlice(l.RemAddr)
			dst = append(dst, Socket{
				Proto: t.proto, IPv6: t.ipv6,
				Local:  netip.AddrPortFrom(local, uint16(l.LocalPort)),
				Remote: netip.AddrPortFrom(remote, uint16(l.RemPort)),
				State:  State(l.St), TxQueue: uint32(l.TxQueue), RxQueue: uint32(l.RxQueue),
				UID: uint32(l.UID), Inode: l.Inode,
			})
		}
	}
	return dst, nil
}

// snapshotRoot copies this host's four tables into a proc root of files,
// so both parsers can be given the very same bytes.
func snapshotRoot(t testing.TB) (string, int) {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	size := 0
	for _, tb := range tables {
		b, err := os.ReadFile("/proc/net/" + tb.name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		size += len(b)
		if err := os.WriteFile(filepath.Join(root, "net", tb.name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, size
}

// genRoot is a proc root whose net/tcp holds n generated sockets in the
// kernel's format, and whose other tables are missing.
func genRoot(t testing.TB, n int) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net", "tcp"), genTable(n), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// On the same bytes, procfs and the sensor's parser read the same sockets:
// this host's tables, copied, and a generated 10,000-socket table.
func TestProcfsAgrees(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this host")
	}
	host, _ := snapshotRoot(t)
	for _, root := range []string{host, genRoot(t, 10000)} {
		own, err := NewFS(root).Sockets(0, nil)
		if err != nil {
			t.Fatal(err)
		}
		pfs, err := procfs.NewFS(root)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := procfsSockets(pfs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(own, theirs) {
			t.Errorf("%s: own parser read %d sockets, procfs %d, and they differ", root, len(own), len(theirs))
			for i := range min(len(own), len(theirs)) {
				if own[i] != theirs[i] {
					t.Errorf("first difference, socket %d: own %+v, procfs %+v", i, own[i], theirs[i])
					break
				}
			}
		}
	}
}

// BenchmarkTables reads the four socket tables with the sensor's parser
// (own) and with procfs, converted to the sensor's Socket: this host's live
// /proc/net (the kernel formats the files at each read, which both pay),
// and a file of 10,000 generated sockets. CPU is user+system time of the
// whole process (getrusage), as in BenchmarkHeartbeat.
func BenchmarkTables(b *testing.B) {
	pfs := func(root string) procfs.FS {
		fsys, err := procfs.NewFS(root)
		if err != nil {
			b.Fatal(err)
		}
		return fsys
	}
	gen := genRoot(b, 10000)
	for _, c := range []struct{ name, root string }{{"host", "/proc"}, {"gen=10000", gen}} {
		own, theirs := NewFS(c.root), pfs(c.root)
		var dst []Socket
		b.Run(c.name+"/own", func(b *testing.B) {
			b.ReportAllocs()
			cputime.PerOp(b, func() {
				var err error
				if dst, err = own.Sockets(0, dst[:0]); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(dst)), "sockets")
		})
		b.Run(c.name+"/procfs", func(b *testing.B) {
			b.ReportAllocs()
			cputime.PerOp(b, func() {
				var err error
				if dst, err = procfsSockets(theirs, dst[:0]); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(dst)), "sockets")
		})
	}
}
