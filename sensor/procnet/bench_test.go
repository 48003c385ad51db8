package procnet

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkParse parses a 10,000-socket tcp table, the size of a busy host,
// into a reused dst: the per-heartbeat cost of the parser alone.
func BenchmarkParse(b *testing.B) {
	table := genTable(10000)
	r := bytes.NewReader(table)
	dst := make([]Socket, 0, 10000)
	b.SetBytes(int64(len(table)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(table)
		var err error
		if dst, err = Parse(r, TCP, false, dst[:0]); err != nil || len(dst) != 10000 {
			b.Fatalf("%d sockets, %v", len(dst), err)
		}
	}
}

// BenchmarkSockets adds opening and reading the files: a proc root whose
// net/tcp holds 10,000 sockets and whose other tables are missing.
func BenchmarkSockets(b *testing.B) {
	root := b.TempDir()
	if err := os.Mkdir(filepath.Join(root, "net"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net", "tcp"), genTable(10000), 0o644); err != nil {
		b.Fatal(err)
	}
	fsys := NewFS(root)
	dst := make([]Socket, 0, 10000)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if dst, err = fsys.Sockets(0, dst[:0]); err != nil || len(dst) != 10000 {
			b.Fatalf("%d sockets, %v", len(dst), err)
		}
	}
}
