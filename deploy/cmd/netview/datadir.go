package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/netview/netview/internal/atomicfile"
)

// The data folder's layout.
const (
	lockName      = "netview.lock"
	tokenName     = "token"
	engineDirName = "clickhouse"
	sensorDirName = "sensor"
)

type dataDir struct {
	path string // absolute
	lock *os.File
}

func (d *dataDir) join(name string) string { return filepath.Join(d.path, name) }

// openDataDir creates the folder and takes its lock, so a second instance
// stops with a clear message instead of the engine's vague one.
func openDataDir(dir string) (*dataDir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	// No O_TRUNC: the holder's pid stays readable until we hold the lock.
	f, err := os.OpenFile(filepath.Join(abs, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		holder := ""
		if b, _ := os.ReadFile(filepath.Join(abs, lockName)); len(b) > 0 {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				holder = fmt.Sprintf(" (pid %d)", pid)
			}
		}
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data folder %s is in use by another netview%s: one process per data folder; stop it or choose another --data", abs, holder)
		}
		return nil, fmt.Errorf("data folder %s: lock: %w", abs, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &dataDir{path: abs, lock: f}, nil
}

func (d *dataDir) close() {
	_ = d.lock.Truncate(0) // no stale pid for the next reader
	d.lock.Close()         // releases the flock
}

type token struct {
	value string
	from  string // where it was read, for the banner
	fresh bool   // made at this start: the only time it is shown
}

// loadToken takes --token, else --token-file, else DATA/token, made with
// crypto/rand on the first start.
func loadToken(cfg appConfig, d *dataDir, log *slog.Logger) (token, error) {
	if cfg.Token != "" {
		return checkToken(token{value: cfg.Token, from: "--token"})
	}
	path, made := cfg.TokenFile, false
	if path == "" {
		path = d.join(tokenName)
		var err error
		if made, err = makeToken(path); err != nil {
			return token{}, err
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return token{}, fmt.Errorf("token file: %w", err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		log.Warn("token file is readable by other users; chmod 600 it", "file", path)
	}
	t := token{from: path, fresh: made}
	for _, line := range strings.Split(string(b), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			t.value = strings.TrimSpace(line)
			break
		}
	}
	if t.value == "" {
		return token{}, fmt.Errorf("token file %s holds no token (delete it to have a new one made)", path)
	}
	return checkToken(t)
}

// checkToken refuses what token lists would split or headers would mangle.
func checkToken(t token) (token, error) {
	for _, c := range []byte(t.value) {
		if c <= ' ' || c > '~' || c == ',' {
			return token{}, fmt.Errorf("token from %s: only printable ASCII without spaces or commas", t.from)
		}
	}
	return t, nil
}

// makeToken writes a new token to path unless it exists; the file is
// complete or absent, even after a crash.
func makeToken(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("token file: %w", err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return false, err
	}
	if err := atomicfile.Write(path, []byte(base64.RawURLEncoding.EncodeToString(b)+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("token file: %w", err)
	}
	return true, nil
}
