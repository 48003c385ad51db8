package deploy

// Small things every target's checks use.

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// repoRoot is the repository root (the parent of deploy/).
func repoRoot(t testing.TB) string {
	t.Helper()
	dir := deployDir(t)
	root := filepath.Dir(dir)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod above %s: %v", dir, err)
	}
	return root
}

// copyTree copies the deployment files under src (the regular files and
// folders, without Go code) to dst.
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !d.Type().IsRegular() || strings.HasSuffix(p, ".go") {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every path under root to its mode and content hash (or
// link target).
func snapshot(t testing.TB, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		info, _ := os.Lstat(p)
		switch {
		case info.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "L" + target
		case info.IsDir():
			out[rel] = info.Mode().String()
		default:
			b, _ := os.ReadFile(p)
			h := sha256.Sum256(b)
			out[rel] = info.Mode().String() + " " + hex.EncodeToString(h[:8])
		}
		return nil
	})
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sameSet(a, b []string) bool {
	x := append([]string(nil), a...)
	y := append([]string(nil), b...)
	sort.Strings(x)
	sort.Strings(y)
	return strings.Join(x, "\x00") == strings.Join(y, "\x00")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// addrPort is the port of host:port.
func addrPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// reachableAddr reports whether a listen address accepts connections from
// other hosts (a load balancer, a Service): not loopback.
func reachableAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	// An empty host listens on every address; a host name is not counted
	// as reachable, localhost or not.
	return host == "" || (net.ParseIP(host) != nil && !isLoopbackHost(host))
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

func fileLines(path string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l, _, _ = strings.Cut(l, "#")
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// firstLine is the secret a sensor reads from a file: its first line that
// is not blank or a comment.
func firstLine(path string) string {
	if l := fileLines(path); len(l) > 0 {
		return l[0]
	}
	return ""
}

// toolAndFile finds a tool that checks a deploy file (nginx -t,
// systemd-analyze) and reads the file; ok is false when either is missing,
// and the check that needs them is left out.
func toolAndFile(b *bundle, tool, rel string) (string, []byte, bool) {
	bin, err := exec.LookPath(tool)
	if err != nil {
		return "", nil, false
	}
	src, err := os.ReadFile(filepath.Join(b.dir, rel))
	if err != nil {
		return "", nil, false
	}
	return bin, src, true
}
