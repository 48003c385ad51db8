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

// Replace leaves the new content with its mode and no temporary file, as
// Write does, and on error the old content.
func TestReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	if err := atomicfile.Replace(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := atomicfile.Replace(path, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	fi, _ := os.Stat(path)
	if err != nil || string(b) != "new" || fi.Mode().Perm() != 0o640 {
		t.Errorf("after Replace: %q %v mode %v, want new 0640", b, err, fi.Mode().Perm())
	}
	if err := atomicfile.Replace(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Error("Replace into a missing folder succeeded")
	}
	if des, _ := os.ReadDir(dir); len(des) != 1 {
		t.Errorf("folder holds %d entries, want the file alone", len(des))
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		t.Error(err)
	}
}
