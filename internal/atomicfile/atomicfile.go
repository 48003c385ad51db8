// Package atomicfile replaces files so that a crash or power loss leaves
// either the old content or the new, never a mix or nothing: the sensor's
// identity, key and spool, bin/netview's token.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write replaces path with data, mode perm, and fsyncs the folder so the
// rename itself survives a power loss. On error path is unchanged.
func Write(path string, data []byte, perm os.FileMode) error {
	if err := Replace(path, data, perm); err != nil {
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// Replace replaces path with data, mode perm: a temporary file in the same
// folder (named .tmp-<name>-…, so a reader can clear what a crash left),
// fsynced, then renamed over path. It leaves the folder's fsync to the
// caller, one that makes several changes in a folder durable at once (the
// spool): until then a power loss may undo the rename, never mix contents.
// On error path is unchanged.
func Replace(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = f.Chmod(perm)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// SyncDir fsyncs the folder dir, making the renames and removals in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
