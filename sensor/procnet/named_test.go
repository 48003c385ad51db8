package procnet

import (
	"os"
	"path/filepath"
	"testing"
)

// Only mounted namespaces are named ones: the empty file `ip netns` leaves
// when it fails half-way, or anything else in the folder, is passed over,
// and a folder that does not exist holds none.
func TestNamedOnlyNamespaces(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "half-made"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fsys := NewFS("/proc")
	got, err := fsys.Named(dir, nil)
	if err != nil || len(got) != 0 {
		t.Errorf("Named(a folder of a plain file) = %v, %v; want none", got, err)
	}
	if got, err := fsys.Named(filepath.Join(dir, "absent"), nil); err != nil || len(got) != 0 {
		t.Errorf("Named(absent) = %v, %v; want none", got, err)
	}
	if got, err := fsys.Named("", nil); err != nil || len(got) != 0 {
		t.Errorf(`Named("") = %v, %v; want none`, got, err)
	}
	// A namespace already known (here the reader's own, bound in /proc)
	// is not listed again; the folder's order is kept otherwise.
	own, err := fsys.Netns(0)
	if err != nil {
		t.Skip(err)
	}
	if err := os.Symlink("/proc/self/ns/net", filepath.Join(dir, "own")); err != nil {
		t.Fatal(err)
	}
	got, err = fsys.Named(dir, []Namespace{{Inode: own}})
	if err != nil || len(got) != 1 {
		t.Errorf("Named with the own namespace known = %v, %v; want it alone", got, err)
	}
	got, err = fsys.Named(dir, nil)
	if err != nil || len(got) != 1 || got[0].Inode != own || got[0].Path != filepath.Join(dir, "own") {
		t.Errorf("Named = %v, %v; want the own namespace %d by its path", got, err, own)
	}
}
