package deploy

// Loading every deployment file of one deploy directory (the real one, or a
// deliberately broken copy) into a bundle the checks read.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

// bundle is one deploy directory, parsed.
type bundle struct {
	dir  string // the deploy directory
	repo string // the repository root: sql/, go.mod, the programs

	compose        *types.Project    // compose/compose.yaml, loaded by compose-go
	composeRaw     string            // its text (checks read its comments)
	composeMissing []string          // variables compose.yaml uses that the .env does not set
	env            map[string]string // the .env that compose/init-secrets.sh makes
	secretsDir     string            // where it made secrets/

	k8s          []*k8sObject        // the other k8s/*.yaml, in k8s.io/api types
	kustomize    []string            // resources of k8s/kustomization.yaml
	secrets      []*k8sObject        // k8s/secret.example.yaml
	nginx        []*directive        // nginx/nginx.conf
	users        *xmlNode            // clickhouse/users.xml
	chConfig     map[string]*xmlNode // clickhouse/config.d/*.xml by file name
	keeper       *xmlNode            // clickhouse/keeper/keeper_config.xml
	clusterSQL   string              // clickhouse/cluster.sql
	dockerfile   string
	dockerignore string

	unit        unit              // systemd/netview-sensor.service
	installRoot string            // where systemd/install.sh installed into (DESTDIR)
	unitEnv     map[string]string // the EnvironmentFile it wrote
}

// The enrollment secret, ingest URL and CA certificate the bundle's
// install.sh run uses.
const (
	installToken  = "test-sensor-token"
	installIngest = "https://ingest.example.net/v1/heartbeat"
	installCA     = `-----BEGIN CERTIFICATE-----
MIIBmTCCAT+gAwIBAgIUDW9WqaIDb4XJZppZvIzzRqJgx/cwCgYIKoZIzj0EAwIw
ITEfMB0GA1UEAwwWbmV0dmlldyBkZXBsb3kgdGVzdCBDQTAgFw0yNjExMzAxNzQ4
MTZaGA8yMTI2MTEwNjE3NDgxNlowITEfMB0GA1UEAwwWbmV0dmlldyBkZXBsb3kg
dGVzdCBDQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAdxPsQDjQeji/0+5CnF
VpVSYjy+TAFKkbOapZGy5ywwIxEQj9If1OZv9PbaRsTL6CrNOKmZFg0Q7jz8YTdM
jZCjUzBRMB0GA1UdDgQWBBS5lWe1TI661TJ658cogyOId96VWTAfBgNVHSMEGDAW
gBS5lWe1TI661TJ658cogyOId96VWTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49
BAMCA0gAMEUCIHSiHBs+IM1LWQ3uNtojL4HCBk8jtZW+l/8WyAHgDrzSAiEA9TGb
Rj+SJePTtZ1vq/R8JPE+Zwntw/7FtJbSB5K2YE4=
-----END CERTIFICATE-----
`
)

// loadBundle parses the deploy directory dir. What cannot be read or
// parsed is a problem, as a check's finding is: a broken copy must be
// refused either way.
func loadBundle(t testing.TB, dir string) (*bundle, []string) {
	t.Helper()
	b := &bundle{dir: dir, repo: repoRoot(t), chConfig: map[string]*xmlNode{}, compose: &types.Project{}}
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	read := func(rel string) []byte {
		data, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			bad("%s: %v", rel, err)
		}
		return data
	}

	// Compose, and the secrets its init script makes (in a scratch copy:
	// never in the repository).
	if script := read("compose/init-secrets.sh"); script != nil {
		work, out, err := memoRun("init-secrets", [][]byte{script}, func(work string) (string, error) {
			if err := os.WriteFile(filepath.Join(work, "init-secrets.sh"), script, 0o755); err != nil {
				return "", err
			}
			return runCmd(work, nil, "bash", filepath.Join(work, "init-secrets.sh"))
		})
		if err != nil {
			bad("compose/init-secrets.sh: %v\n%s", err, out)
		} else if env, err := composeEnv(filepath.Join(work, ".env")); err != nil {
			bad("compose/init-secrets.sh made no usable .env: %v", err)
		} else {
			b.env, b.secretsDir = env, work
		}
	}
	if src := read("compose/compose.yaml"); src != nil {
		b.composeRaw = string(src)
		envFile := ""
		if b.secretsDir != "" {
			envFile = filepath.Join(b.secretsDir, ".env")
		}
		p, missing, ps := readCompose(dir, envFile, b.env)
		probs = append(probs, ps...)
		b.composeMissing = missing
		if p != nil {
			b.compose = p
		}
	}

	// Kubernetes.
	files, _ := filepath.Glob(filepath.Join(dir, "k8s", "*.yaml"))
	if len(files) == 0 {
		bad("k8s: no manifests")
	}
	for _, f := range files {
		rel, _ := filepath.Rel(dir, f)
		src := read(rel)
		if src == nil {
			continue
		}
		objs, kust, ps := readK8s(rel, src)
		probs = append(probs, ps...)
		switch filepath.Base(f) {
		case "kustomization.yaml":
			if kust == nil {
				bad("%s: no Kustomization", rel)
			} else {
				b.kustomize = kust.Resources
			}
		case "secret.example.yaml":
			b.secrets = append(b.secrets, objs...)
		default:
			b.k8s = append(b.k8s, objs...)
		}
	}

	// nginx, ClickHouse, Dockerfile.
	if src := read("nginx/nginx.conf"); src != nil {
		ds, err := parseNginx(string(src))
		if err != nil {
			bad("nginx/nginx.conf: %v", err)
		}
		b.nginx = ds
	}
	parse := func(rel string) *xmlNode {
		src := read(rel)
		if src == nil {
			return nil
		}
		n, err := parseXML(src)
		if err != nil {
			bad("%s: %v", rel, err)
			return nil
		}
		if n.XMLName.Local != "clickhouse" {
			bad("%s: root element <%s>, want <clickhouse>", rel, n.XMLName.Local)
		}
		return n
	}
	b.users = parse("clickhouse/users.xml")
	b.keeper = parse("clickhouse/keeper/keeper_config.xml")
	cfgs, _ := filepath.Glob(filepath.Join(dir, "clickhouse", "config.d", "*.xml"))
	for _, f := range cfgs {
		rel, _ := filepath.Rel(dir, f)
		if n := parse(rel); n != nil {
			b.chConfig[filepath.Base(f)] = n
		}
	}
	b.clusterSQL = string(read("clickhouse/cluster.sql"))
	b.dockerfile = string(read("Dockerfile"))
	b.dockerignore = string(read("Dockerfile.dockerignore"))

	// systemd: the unit, and an install into a scratch root.
	if src := read("systemd/netview-sensor.service"); src != nil {
		u, err := parseUnit(string(src))
		if err != nil {
			bad("systemd/netview-sensor.service: %v", err)
		}
		b.unit = u
	}
	if _, err := os.Stat(filepath.Join(dir, "systemd", "install.sh")); err == nil {
		root, out, err := stagedInstall(t, dir)
		if err != nil {
			bad("systemd/install.sh --destdir: %v\n%s", err, out)
		} else {
			b.installRoot = root
			env, err := readEnvFile(filepath.Join(root, "etc/netview/sensor.env"))
			if err != nil {
				bad("systemd/install.sh wrote no usable /etc/netview/sensor.env: %v", err)
			}
			b.unitEnv = env
		}
	} else {
		bad("systemd/install.sh: %v", err)
	}
	return b, probs
}

// stagedInstall runs dir's systemd/install.sh into a fresh DESTDIR with a
// stand-in binary, an enrollment secret and a CA file.
func stagedInstall(t testing.TB, dir string) (root, out string, err error) {
	t.Helper()
	script, _ := os.ReadFile(filepath.Join(dir, "systemd", "install.sh"))
	unit, _ := os.ReadFile(filepath.Join(dir, "systemd", "netview-sensor.service"))
	work, out, err := memoRun("install", [][]byte{script, unit}, func(work string) (string, error) {
		bin := filepath.Join(work, "netview-sensor")
		tok := filepath.Join(work, "token")
		if err := os.WriteFile(bin, []byte("#!/bin/sh\necho stand-in for netview-sensor\n"), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(tok, []byte(installToken+"\n"), 0o600); err != nil {
			return "", err
		}
		ca := filepath.Join(work, "ca.crt")
		if err := os.WriteFile(ca, []byte(installCA), 0o644); err != nil {
			return "", err
		}
		return runCmd(work, nil, "bash", filepath.Join(dir, "systemd", "install.sh"),
			"--destdir", filepath.Join(work, "root"), "--ingest", installIngest, "--enroll-secret-file", tok,
			"--ca-file", ca, "--binary", bin)
	})
	return filepath.Join(work, "root"), out, err
}

// scratchDir holds what memoRun made, for the whole test run (TestMain
// removes it).
var (
	scratchDir  string
	scratchOnce sync.Once
	memoMu      sync.Mutex
	memo        = map[string]*memoEntry{}
)

type memoEntry struct {
	once sync.Once
	dir  string
	out  string
	err  error
}

// memoRun runs fn once per kind and input content, in a folder of its
// own, and hands every caller the same folder: the broken copies of the
// files mostly share their scripts, whose runs need not be repeated.
// Callers only read the folder.
func memoRun(kind string, inputs [][]byte, fn func(dir string) (string, error)) (string, string, error) {
	h := sha256.New()
	h.Write([]byte(kind))
	for _, in := range inputs {
		fmt.Fprintf(h, "\x00%d\x00", len(in))
		h.Write(in)
	}
	key := hex.EncodeToString(h.Sum(nil))
	memoMu.Lock()
	e := memo[key]
	if e == nil {
		e = &memoEntry{}
		memo[key] = e
	}
	memoMu.Unlock()
	e.once.Do(func() {
		scratchOnce.Do(func() {
			d, err := os.MkdirTemp("", "netview-deploy-test-")
			if err != nil {
				panic(err)
			}
			scratchDir = d
		})
		e.dir, e.err = os.MkdirTemp(scratchDir, kind+"-")
		if e.err == nil {
			e.out, e.err = fn(e.dir)
		}
	})
	return e.dir, e.out, e.err
}

// runCmd runs a command in dir with extra environment, returning its
// combined output.
func runCmd(dir string, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// runCmdStdin runs a command with src on its standard input.
func runCmdStdin(src []byte, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(src)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}
