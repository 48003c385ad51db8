package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// flock locks belong to an open file, so a second open in this process is
// refused like another process would be, and names the holder's pid.
func TestDataDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openDataDir(dir)
	want := fmt.Sprintf("data folder %s is in use by another netview (pid %d)", dir, os.Getpid())
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second open: %v, want %q", err, want)
	}
	d.close()
	d, err = openDataDir(dir)
	if err != nil {
		t.Fatalf("open after close: %v", err)
	}
	d.close()
}

const longToken = "given-token-0123456789abcdefghijklmnop" // 38 characters

func TestSecrets(t *testing.T) {
	d, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()

	first, err := loadSecrets(appConfig{}, d)
	if err != nil || !first.admin.fresh || len(first.admin.value) != 43 || !first.enroll.fresh || len(first.enroll.value) != 43 {
		t.Fatalf("first start: %+v %v", first, err)
	}
	if first.admin.value == first.enroll.value {
		t.Fatal("the token and the enrollment secret are the same")
	}
	for _, name := range []string{tokenName, enrollSecretName} {
		if st, err := os.Stat(d.join(name)); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v", name, st.Mode(), err)
		}
	}
	again, err := loadSecrets(appConfig{}, d)
	if err != nil || again.admin.fresh || again.enroll.fresh || again.admin.value != first.admin.value || again.enroll.value != first.enroll.value {
		t.Fatalf("second start: %+v %v, want the same secrets, not fresh", again, err)
	}

	if s, err := loadSecrets(appConfig{Token: longToken}, d); err != nil || s.admin.value != longToken || s.admin.fresh || s.enroll.value != first.enroll.value {
		t.Fatalf("--token: %+v %v", s, err)
	}
	for _, bad := range []string{"a,b" + longToken, "a b" + longToken, "tab\there" + longToken, "é" + longToken} {
		if _, err := loadSecrets(appConfig{Token: bad}, d); err == nil {
			t.Errorf("--token %q accepted", bad)
		}
	}

	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte("# the token\n\n  "+longToken+"  \nsecond\n"), 0o600)
	if s, err := loadSecrets(appConfig{TokenFile: file}, d); err != nil || s.admin.value != longToken {
		t.Fatalf("--token-file: %+v %v", s, err)
	}
	os.WriteFile(file, []byte("# nothing\n"), 0o600)
	if _, err := loadSecrets(appConfig{TokenFile: file}, d); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Fatalf("empty token file: %v", err)
	}

	// The enrollment secret must not also sign in.
	if _, err := loadSecrets(appConfig{Token: first.enroll.value}, d); err == nil || !strings.Contains(err.Error(), "are the same") {
		t.Fatalf("--token set to the enrollment secret: %v", err)
	}
	t.Setenv("NETVIEW_ADMIN_TOKEN", first.enroll.value)
	if _, err := loadSecrets(appConfig{}, d); err == nil || !strings.Contains(err.Error(), "$NETVIEW_ADMIN_TOKEN") {
		t.Fatalf("the enrollment secret in $NETVIEW_ADMIN_TOKEN: %v", err)
	}
	t.Setenv("NETVIEW_ADMIN_TOKEN", "")
	t.Setenv("NETVIEW_INGEST_TOKEN", first.admin.value)
	if _, err := loadSecrets(appConfig{}, d); err == nil || !strings.Contains(err.Error(), "$NETVIEW_INGEST_TOKEN") {
		t.Fatalf("the token in $NETVIEW_INGEST_TOKEN: %v", err)
	}
}

// Every token or secret an operator supplies is at least 32 characters,
// and the error names where it came from.
func TestSecretMinLength(t *testing.T) {
	d, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	short := strings.Repeat("x", minSecretLen-1)
	f := func(cfg appConfig, want string) {
		t.Helper()
		_, err := loadSecrets(cfg, d)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "at least 32") {
			t.Errorf("%+v: %v, want an error naming %q and the minimum", cfg, err, want)
		}
	}
	f(appConfig{Token: "x"}, "--token")
	f(appConfig{Token: short}, "--token")
	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte(short+"\n"), 0o600)
	f(appConfig{TokenFile: file}, "--token-file "+file)
	t.Setenv("NETVIEW_ANALYST_TOKEN", "short")
	f(appConfig{Token: longToken}, "$NETVIEW_ANALYST_TOKEN")
	t.Setenv("NETVIEW_ANALYST_TOKEN", "")
	os.WriteFile(d.join(enrollSecretName), []byte(short+"\n"), 0o600)
	f(appConfig{Token: longToken}, d.join(enrollSecretName))
	if _, err := loadSecrets(appConfig{Token: strings.Repeat("y", minSecretLen)}, d); err == nil {
		t.Error("a short planted enrollment secret accepted")
	}
	os.WriteFile(d.join(enrollSecretName), []byte(strings.Repeat("z", minSecretLen)+"\n"), 0o600)
	if _, err := loadSecrets(appConfig{Token: strings.Repeat("y", minSecretLen)}, d); err != nil {
		t.Errorf("32 characters: %v", err)
	}
}

// The data folder is its owner's alone: an existing one open to group or
// others, or someone else's, is refused with how to fix it; a new one is
// made 0700.
func TestDataDirSafety(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "new", "data")
	d, err := openDataDir(fresh)
	if err != nil {
		t.Fatal(err)
	}
	d.close()
	if st, err := os.Stat(fresh); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("new data folder: %v %v, want 0700", st.Mode(), err)
	}

	open := func(dir, want string) {
		t.Helper()
		d, err := openDataDir(dir)
		if err == nil {
			d.close()
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("data folder %s: %v, want it refused with %q", dir, err, want)
		}
	}
	for _, mode := range []os.FileMode{0o770, 0o702, 0o777} {
		dir := filepath.Join(root, fmt.Sprintf("mode%o", mode))
		os.Mkdir(dir, 0o700)
		os.Chmod(dir, mode)
		open(dir, "chmod go-w "+dir)
	}
	readable := filepath.Join(root, "readable")
	os.Mkdir(readable, 0o755)
	os.Chmod(readable, 0o755)
	if d, err := openDataDir(readable); err != nil {
		t.Errorf("a data folder others may read but not write: %v", err)
	} else {
		d.close()
	}

	// The lock file: not through a symbolic link, which would truncate its
	// target.
	dir := filepath.Join(root, "locklink")
	os.Mkdir(dir, 0o700)
	victim := filepath.Join(root, "victim")
	os.WriteFile(victim, []byte("keep me\n"), 0o600)
	os.Symlink(victim, filepath.Join(dir, lockName))
	open(dir, "symbolic link")
	if b, _ := os.ReadFile(victim); string(b) != "keep me\n" {
		t.Errorf("the lock file's symlink target was changed: %q", b)
	}

	if os.Geteuid() != 0 {
		t.Log("not root: the cases of a folder and files owned by another user are skipped (they need chown)")
		return
	}
	other := filepath.Join(root, "other")
	os.Mkdir(other, 0o700)
	os.Chown(other, 4242, 4242)
	open(other, "chown -R 0 "+other)
}

// A token or secret file planted in the data folder is refused unless it is
// a regular file of ours that nobody else may read; --token-file likewise,
// but it may be a symbolic link (a secret mounted as one).
func TestPlantedSecrets(t *testing.T) {
	for _, name := range []string{tokenName, enrollSecretName} {
		t.Run(name, func(t *testing.T) {
			d, err := openDataDir(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer d.close()
			path := d.join(name)
			good := longToken + "-" + name
			refused := func(want string) {
				t.Helper()
				_, err := loadSecrets(appConfig{}, d)
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("%s: %v, want it refused with %q", name, err, want)
				}
			}
			for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660} {
				os.Remove(path)
				os.WriteFile(path, []byte(good+"\n"), 0o600)
				os.Chmod(path, mode)
				refused("chmod 600 " + path)
			}

			os.Remove(path)
			target := filepath.Join(t.TempDir(), "elsewhere")
			os.WriteFile(target, []byte(good+"\n"), 0o600)
			os.Symlink(target, path)
			refused("symbolic link")
			os.Remove(path)
			os.Symlink(filepath.Join(t.TempDir(), "missing"), path) // dangling: not made through it either
			refused("symbolic link")

			os.Remove(path)
			if err := syscall.Mkfifo(path, 0o600); err != nil {
				t.Fatal(err)
			}
			refused("not a regular file")

			if os.Geteuid() == 0 {
				os.Remove(path)
				os.WriteFile(path, []byte(good+"\n"), 0o600)
				os.Chown(path, 4242, 4242)
				refused("chown 0 " + path)
			}

			os.Remove(path)
			os.WriteFile(path, []byte(good+"\n"), 0o600)
			if _, err := loadSecrets(appConfig{}, d); err != nil {
				t.Errorf("a planted %s of ours, 0600: %v", name, err)
			}
		})
	}

	d, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte(longToken+"\n"), 0o644)
	os.Chmod(file, 0o644)
	if _, err := loadSecrets(appConfig{TokenFile: file}, d); err == nil || !strings.Contains(err.Error(), "chmod 600 "+file) {
		t.Errorf("a world-readable --token-file: %v", err)
	}
	os.Chmod(file, 0o600)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(file, link)
	if s, err := loadSecrets(appConfig{TokenFile: link}, d); err != nil || s.admin.value != longToken {
		t.Errorf("--token-file through a symbolic link: %+v %v", s, err)
	}
}

// A new secret file is made with O_EXCL: what is already at its name,
// even a dangling symbolic link, is never written through or replaced.
func TestMakeSecretExclusive(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, enrollSecretName)
	target := filepath.Join(dir, "target")
	os.Symlink(target, path)
	if made, err := makeSecret(path, "enrollment secret"); err != nil || made {
		t.Fatalf("over a dangling link: made=%v %v, want nothing made", made, err)
	}
	if _, err := os.Lstat(target); !os.IsNotExist(err) {
		t.Fatalf("the link's target was created: %v", err)
	}
	os.Remove(path)
	if made, err := makeSecret(path, "enrollment secret"); err != nil || !made {
		t.Fatalf("made=%v %v", made, err)
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), ".tmp-") {
			t.Errorf("temporary file left: %s", de.Name())
		}
	}
}
