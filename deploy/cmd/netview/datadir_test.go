package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

func TestToken(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	d, err := openDataDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()

	first, err := loadToken(appConfig{}, d, log)
	if err != nil || !first.fresh || len(first.value) != 43 {
		t.Fatalf("first start: %+v %v", first, err)
	}
	if st, err := os.Stat(d.join(tokenName)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", st.Mode(), err)
	}
	again, err := loadToken(appConfig{}, d, log)
	if err != nil || again.fresh || again.value != first.value {
		t.Fatalf("second start: %+v %v, want the same token, not fresh", again, err)
	}

	if tok, err := loadToken(appConfig{Token: "given-token"}, d, log); err != nil || tok.value != "given-token" || tok.fresh {
		t.Fatalf("--token: %+v %v", tok, err)
	}
	for _, bad := range []string{"a,b", "a b", "tab\there", "é"} {
		if _, err := loadToken(appConfig{Token: bad}, d, log); err == nil {
			t.Errorf("--token %q accepted", bad)
		}
	}

	file := filepath.Join(t.TempDir(), "tok")
	os.WriteFile(file, []byte("# the token\n\n  from-file  \nsecond\n"), 0o600)
	if tok, err := loadToken(appConfig{TokenFile: file}, d, log); err != nil || tok.value != "from-file" {
		t.Fatalf("--token-file: %+v %v", tok, err)
	}
	os.WriteFile(file, []byte("# nothing\n"), 0o600)
	if _, err := loadToken(appConfig{TokenFile: file}, d, log); err == nil || !strings.Contains(err.Error(), "holds no token") {
		t.Fatalf("empty token file: %v", err)
	}
}
