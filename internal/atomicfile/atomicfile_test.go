package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/netview/netview/internal/atomicfile"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key.json")
	for _, content := range []string{"first", "second, longer than the first"} {
		if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil || string(b) != content {
			t.Fatalf("content %q, %v; want %q", b, err, content)
		}
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	des, _ := os.ReadDir(dir)
	if len(des) != 1 {
		t.Fatalf("folder holds %d entries, want only the file (no temporary left)", len(des))
	}
	// A write that cannot complete (the target is a folder) leaves the
	// target as it was and no temporary behind.
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sub, "x"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Write(sub, []byte("no"), 0o600); err == nil {
		t.Fatal("replacing a non-empty folder succeeded")
	}
	if des, _ := os.ReadDir(dir); len(des) != 2 {
		t.Fatalf("a failed write left %d entries, want 2", len(des))
	}
}
