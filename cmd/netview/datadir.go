package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The data folder's layout.
const (
	lockName         = "netview.lock"
	tokenName        = "token"
	enrollSecretName = "enroll-secret"
	engineDirName    = "clickhouse"
	sensorDirName    = "sensor"
)

// minSecretLen: a token or secret an operator supplies must be as hard to
// guess as the ones made here (32 random bytes are 43 characters).
const minSecretLen = 32

type dataDir struct {
	path string // absolute
	lock *os.File
}

func (d *dataDir) join(name string) string { return filepath.Join(d.path, name) }

// openDataDir creates the folder (0700) or checks the one there, and takes
// its lock, so a second instance stops with a clear message instead of the
// engine's vague one.
func openDataDir(dir string) (*dataDir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := checkDataDir(abs); err != nil {
		return nil, err
	}
	// No O_TRUNC: the holder's pid stays readable until we hold the lock.
	// No symbolic link either: truncating would reach its target.
	name := filepath.Join(abs, lockName)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) {
		return nil, fmt.Errorf("data folder %s: %s is a symbolic link: remove it (netview makes the lock file itself)", abs, lockName)
	}
	if err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	if err := checkOwned(f, "lock file", true); err != nil {
		f.Close()
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		holder := ""
		if b, _ := os.ReadFile(name); len(b) > 0 {
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

// checkDataDir: the folder holds the admin token, so only its owner, who
// runs netview, may add, replace or remove files in it.
func checkDataDir(abs string) error {
	st, err := os.Stat(abs)
	if err != nil {
		return fmt.Errorf("data folder: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("data folder %s is not a folder: choose another --data", abs)
	}
	if uid, me := st.Sys().(*syscall.Stat_t).Uid, os.Geteuid(); int(uid) != me {
		return fmt.Errorf("data folder %s is owned by uid %d, not by uid %d that runs netview: chown -R %d %s, or choose another --data", abs, uid, me, me, abs)
	}
	if perm := st.Mode().Perm(); perm&0o022 != 0 {
		return fmt.Errorf("data folder %s is writable by group or others (mode %#o): chmod go-w %s (netview makes new ones 0700)", abs, perm, abs)
	}
	return nil
}

// checkOwned refuses an open file not owned by the user running netview,
// or open to group or others (any bit: a secret must not even be read).
// regular also refuses what is not a regular file.
func checkOwned(f *os.File, what string, regular bool) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	name := f.Name()
	if regular && !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is not a regular file (%v): remove it", what, name, st.Mode().Type())
	}
	if uid, me := st.Sys().(*syscall.Stat_t).Uid, os.Geteuid(); int(uid) != me {
		return fmt.Errorf("%s %s is owned by uid %d, not by uid %d that runs netview: chown %d %s", what, name, uid, me, me, name)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s %s is open to group or others (mode %#o): chmod 600 %s", what, name, perm, name)
	}
	return nil
}

// token is a secret (the admin token or the enrollment secret) and where it
// came from.
type token struct {
	value string
	from  string // where it was read, for the banner and errors
	fresh bool   // made at this start: the only time it is shown
}

// secrets are the two secrets of the all-in-one: the admin token signs in
// to the Console and the API; the enrollment secret lets a sensor enroll
// for a key of its own and does nothing else.
type secrets struct {
	admin, enroll token
}

// loadSecrets takes the admin token from --token, else --token-file, else
// DATA/token, and the enrollment secret from DATA/enroll-secret; each file
// in the data folder is made with crypto/rand on the first start.
func loadSecrets(cfg appConfig, d *dataDir) (secrets, error) {
	var s secrets
	var err error
	switch {
	case cfg.Token != "":
		s.admin, err = checkSecret(token{value: cfg.Token, from: "--token"}, "token")
	case cfg.TokenFile != "":
		s.admin, err = readSecret(cfg.TokenFile, "token", "--token-file "+cfg.TokenFile, false)
	default:
		s.admin, err = dataSecret(d, tokenName, "token")
	}
	if err != nil {
		return secrets{}, err
	}
	if s.enroll, err = dataSecret(d, enrollSecretName, "enrollment secret"); err != nil {
		return secrets{}, err
	}
	if s.admin.value == s.enroll.value {
		return secrets{}, fmt.Errorf("the token (%s) and the enrollment secret (%s) are the same: the enrollment secret must not sign in; delete %s to have a new one made", s.admin.from, s.enroll.from, s.enroll.from)
	}
	return s, checkEnvTokens(s)
}

// envTokens are the variables the parts read more tokens from themselves:
// ingest's enrollment secrets and the query service's sign-in tokens.
var envTokens = []struct {
	name   string
	enroll bool
}{{"NETVIEW_INGEST_TOKEN", true}, {"NETVIEW_API_TOKEN", false}, {"NETVIEW_ANALYST_TOKEN", false}, {"NETVIEW_ADMIN_TOKEN", false}}

// checkEnvTokens holds those to the rules of the two secrets: long enough,
// and never both a way to enroll and a way to sign in.
func checkEnvTokens(s secrets) error {
	signIn, enroll := map[string]string{s.admin.value: s.admin.from}, map[string]string{s.enroll.value: s.enroll.from}
	for _, e := range envTokens {
		for _, v := range strings.Split(os.Getenv(e.name), ",") {
			if v = strings.TrimSpace(v); v == "" {
				continue
			}
			if _, err := checkSecret(token{value: v, from: "$" + e.name}, "a token"); err != nil {
				return err
			}
			if e.enroll {
				enroll[v] = "$" + e.name
			} else {
				signIn[v] = "$" + e.name
			}
		}
	}
	for v, from := range enroll {
		if other, ok := signIn[v]; ok {
			return fmt.Errorf("one secret is both an enrollment secret (%s) and a sign-in token (%s): whoever enrolls a sensor with it could sign in; give each its own", from, other)
		}
	}
	return nil
}

// dataSecret reads DATA/name, made first if it is not there.
func dataSecret(d *dataDir, name, what string) (token, error) {
	path := d.join(name)
	made, err := makeSecret(path, what)
	if err != nil {
		return token{}, err
	}
	t, err := readSecret(path, what, path, true)
	t.fresh = made
	return t, err
}

// readSecret reads the first line of path that is not blank or a comment.
// The file must be its owner's alone; in the data folder it must also be a
// regular file, not a symbolic link (--token-file may be one, or a pipe).
func readSecret(path, what, from string, inData bool) (token, error) {
	flags := os.O_RDONLY
	if inData {
		flags |= syscall.O_NOFOLLOW | syscall.O_NONBLOCK // a planted pipe is refused, not waited on
	}
	f, err := os.OpenFile(path, flags, 0)
	if errors.Is(err, syscall.ELOOP) {
		return token{}, fmt.Errorf("%s file %s is a symbolic link: netview reads only a regular file of its own there; remove it (a new one is made at the next start) or put the %s itself in it", what, path, what)
	}
	if err != nil {
		return token{}, fmt.Errorf("%s file: %w", what, err)
	}
	defer f.Close()
	if err := checkOwned(f, what+" file", inData); err != nil {
		return token{}, err
	}
	b, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return token{}, fmt.Errorf("%s file: %w", what, err)
	}
	t := token{from: from}
	for _, line := range strings.Split(string(b), "\n") {
		if line, _, _ = strings.Cut(line, "#"); strings.TrimSpace(line) != "" {
			t.value = strings.TrimSpace(line)
			break
		}
	}
	if t.value == "" {
		return token{}, fmt.Errorf("%s file %s holds no %s (delete it to have a new one made)", what, path, what)
	}
	return checkSecret(t, what)
}

// checkSecret refuses what token lists would split or headers would mangle,
// and what is short enough to guess.
func checkSecret(t token, what string) (token, error) {
	for _, c := range []byte(t.value) {
		if c <= ' ' || c > '~' || c == ',' {
			return token{}, fmt.Errorf("%s from %s: only printable ASCII without spaces or commas", what, t.from)
		}
	}
	if len(t.value) < minSecretLen {
		return token{}, fmt.Errorf("%s from %s: %d characters, want at least %d (make one with: openssl rand -hex 32)", what, t.from, len(t.value), minSecretLen)
	}
	return t, nil
}

// makeSecret writes a new secret to path unless something is there. The
// file is complete or absent, even after a crash: it is written 0600 to a
// new temporary file (O_EXCL), then linked to path, which fails rather
// than replace anything.
func makeSecret(path, what string) (bool, error) {
	if _, err := os.Lstat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("%s file: %w", what, err)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return false, err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-"+filepath.Base(path)+"-") // O_EXCL, 0600
	if err != nil {
		return false, fmt.Errorf("%s file: %w", what, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.WriteString(base64.RawURLEncoding.EncodeToString(b) + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Link(tmp, path)
	}
	if err != nil {
		return false, fmt.Errorf("%s file: %w", what, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // the link survives a power loss
		d.Close()
	}
	return true, nil
}
