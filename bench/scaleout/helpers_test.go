package scaleout

// Shared helpers of the scale-out tests: the binaries (built once per test
// binary), a store over the native-protocol front, ingest and query nodes as
// child processes, nginx from the production configuration, a TCP fault
// proxy between ingest and storage, the fleet simulator and its
// verification, and comparison of query answers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
)

const (
	ingestToken  = "scaleout-ingest-token-0123456789"
	apiToken     = "scaleout-api-token-0123456789"
	cursorSecret = "scaleout-cursor-secret-shared-by-replicas"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Prerequisites and binaries

// nginxPath returns nginx's path, or skips: `make test` installs it and sets
// NETVIEW_REQUIRE_NGINX=1, under which a missing nginx fails the test.
func nginxPath(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("nginx")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			p, err = "/usr/sbin/nginx", nil
		}
	}
	if err != nil {
		if os.Getenv("NETVIEW_REQUIRE_NGINX") == "1" {
			t.Fatal("scale-out tests required (NETVIEW_REQUIRE_NGINX=1) but nginx is not installed (Debian package nginx-light; make test installs it)")
		}
		t.Skip("scale-out tests need nginx as the load balancer (Debian package nginx-light; make test installs it): not found in PATH or /usr/sbin")
	}
	return p
}

var (
	buildOnce             sync.Once
	binDir                string
	ingestBin, queryBin   string
	buildErr              error
	buildTook             time.Duration
	buildLoggedOnce       sync.Once
	moduleRootOnce        sync.Once
	moduleRootDir, modErr = "", error(nil)
)

// binaries builds netview-ingest and netview-query once per test binary.
func binaries(t *testing.T) (string, string) {
	t.Helper()
	buildOnce.Do(func() {
		start := time.Now()
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = os.MkdirTemp("", "netview-scaleout-bin-")
		if err != nil {
			buildErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator), "./cmd/netview-ingest", "./cmd/netview-query")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		ingestBin, queryBin = filepath.Join(binDir, "netview-ingest"), filepath.Join(binDir, "netview-query")
		buildTook = time.Since(start)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	buildLoggedOnce.Do(func() { t.Logf("built netview-ingest and netview-query in %v", buildTook.Round(time.Millisecond)) })
	return ingestBin, queryBin
}

// moduleRoot walks up from the working directory to the folder with go.mod.
func moduleRoot() (string, error) {
	moduleRootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			modErr = err
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				moduleRootDir = dir
				return
			}
			up := filepath.Dir(dir)
			if up == dir {
				modErr = errors.New("no go.mod above the test's working directory")
				return
			}
			dir = up
		}
	})
	return moduleRootDir, modErr
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	handedMu.Lock()
	defer handedMu.Unlock()
	// The kernel may give a port just closed again; an address handed out
	// once is never handed out again, or two nodes of a cluster would get
	// the same one (seen in CI: "bind: address already in use").
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if !handed[addr] {
			handed[addr] = true
			return addr
		}
	}
	t.Fatal("no loopback port not handed out before")
	return ""
}

var (
	handedMu sync.Mutex
	handed   = map[string]bool{}
)

// ---------------------------------------------------------------------------
// Child processes

// proc is one run of a child process.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // exit status, once done
}

// startProc starts bin with args, its output in logPath. The child dies
// with the test binary (Pdeathsig) and, with group, leads a process group
// of its own (nginx's workers are then killed with it).
func startProc(name, bin string, args []string, logPath string, group bool) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child holds its own copy
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	// GOTRACEBACK=all: SIGQUIT prints every goroutine (see goroutines).
	cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: group}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits up to wait for the exit; then SIGKILL.
func (p *proc) signal(sig syscall.Signal, wait time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(wait):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s (pid %d) did not exit within %v of %v; killed", p.name, p.cmd.Process.Pid, wait, sig)
}

func (p *proc) logTail(n int) string {
	b, _ := os.ReadFile(p.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// node is an ingest or query node: one address, restarted as often as a
// test kills it.
type node struct {
	name, bin, addr, dir string
	args                 []string
	// ready is the path that answers 200 once the node serves (with the
	// API token). Not /healthz: see healthzBugSymptom.
	ready string
	// held is set while a test has stopped the node on purpose and will
	// start it itself; the supervisor leaves it alone.
	held atomic.Bool

	mu    sync.Mutex
	cur   *proc
	procs []*proc
}

func (n *node) url() string { return "http://" + n.addr }

// start runs the node, unless it runs already, and waits until its ready
// path answers 200.
func (n *node) start(ctx context.Context) error {
	n.mu.Lock()
	if n.cur != nil && !n.cur.exited() {
		p := n.cur
		n.mu.Unlock()
		return waitHealthy(ctx, p, n.url()+n.ready, 60*time.Second)
	}
	defer n.held.Store(false)
	logPath := filepath.Join(n.dir, fmt.Sprintf("%s-%d.log", n.name, len(n.procs)))
	p, err := startProc(n.name, n.bin, n.args, logPath, false)
	if err != nil {
		n.mu.Unlock()
		return err
	}
	n.cur = p
	n.procs = append(n.procs, p)
	n.mu.Unlock()
	return waitHealthy(ctx, p, n.url()+n.ready, 60*time.Second)
}

// startFirst starts a node for the first time, on another address when a
// process outside the test took its own between freeAddr and the bind
// (tests of other packages run beside these). Later starts keep the
// address: nginx has it.
func (n *node) startFirst(ctx context.Context, t *testing.T) error {
	for try := 0; ; try++ {
		err := n.start(ctx)
		if err == nil || try == 2 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		old := n.addr
		n.addr = freeAddr(t)
		for j, a := range n.args {
			n.args[j] = strings.Replace(a, "="+old, "="+n.addr, 1)
		}
	}
}

// kill9 SIGKILLs the running process and waits for it to be gone.
func (n *node) kill9() error {
	n.mu.Lock()
	p := n.cur
	n.mu.Unlock()
	if p == nil {
		return errors.New(n.name + ": not running")
	}
	if p.exited() {
		return fmt.Errorf("%s had already exited (%v):\n%s", n.name, p.err, p.logTail(4<<10))
	}
	n.held.Store(true)
	return p.signal(syscall.SIGKILL, 10*time.Second)
}

// alive says the node's current process runs.
func (n *node) alive() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cur != nil && !n.cur.exited()
}

func waitHealthy(ctx context.Context, p *proc, url string, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	for {
		if p.exited() {
			return fmt.Errorf("%s exited before it was healthy (%v):\n%s", p.name, p.err, p.logTail(4<<10))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		req.Header.Set("Authorization", "Bearer "+apiToken)
		if resp, err := c.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			_ = p.signal(syscall.SIGKILL, 5*time.Second)
			return fmt.Errorf("%s not healthy at %s within %v:\n%s", p.name, url, limit, p.logTail(4<<10))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ---------------------------------------------------------------------------
// The deployment under test

// setup says what a test runs.
type setup struct {
	ingest, query int
	// proxy puts a fault proxy between the ingest nodes and storage (the
	// query nodes always reach storage directly).
	proxy bool
	// ingestArgs are extra flags of every ingest node.
	ingestArgs []string
}

// cluster is one deployment: a fresh database on the front, nodes, nginx.
type cluster struct {
	t      *testing.T
	dir    string
	be     storetest.Backend
	proxy  *faultProxy
	ingest []*node
	query  []*node
	lb     *lb
}

// newCluster starts everything the setup asks for and stops it at the end
// of the test; when the test failed it logs the tail of every child's log.
func newCluster(t *testing.T, s setup) *cluster {
	t.Helper()
	ngx := nginxPath(t)
	ib, qb := binaries(t)
	began := time.Now()
	c := &cluster{t: t, dir: t.TempDir()}
	t.Cleanup(c.close)
	c.be = storetest.Front(t)
	// DSN clickhouse://127.0.0.1:PORT/DB
	storeDSN := c.be.DSN
	ingestDSN := storeDSN
	if s.proxy {
		u := strings.TrimPrefix(storeDSN, "clickhouse://")
		host, db, _ := strings.Cut(u, "/")
		c.proxy = newFaultProxy(t, host)
		ingestDSN = "clickhouse://" + c.proxy.Addr() + "/" + db
	}
	for i := range s.ingest {
		n := &node{name: fmt.Sprintf("ingest-%d", i+1), bin: ib, addr: freeAddr(t), dir: c.dir, ready: "/metrics"}
		n.args = append([]string{"--store.dsn=" + ingestDSN, "--ingest.addr=" + n.addr, "--ingest.token=" + ingestToken, "--ingest.plain-http",
			"--ingest.shared-tokens", "--ingest.ip-rate=0"}, s.ingestArgs...)
		c.ingest = append(c.ingest, n)
	}
	for i := range s.query {
		n := &node{name: fmt.Sprintf("query-%d", i+1), bin: qb, addr: freeAddr(t), dir: c.dir, ready: "/api/v2/network/connections?limit=1"}
		n.args = []string{"--store.dsn=" + storeDSN, "--query.addr=" + n.addr, "--query.token=" + apiToken, "--query.cursor-secret=" + cursorSecret, "--query.plain-http"}
		c.query = append(c.query, n)
	}
	// All at once: migrations are meant to be safe from many processes.
	ctx := context.Background()
	all := append(append([]*node(nil), c.ingest...), c.query...)
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, n := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = n.startFirst(ctx, t)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("starting nodes: %v", err)
	}
	c.lb = startLB(t, ngx, c.dir, c.ingest, c.query)
	t.Logf("deployment up in %v: %d ingest, %d query behind nginx (ingest %s, query %s), store %s%s", time.Since(began).Round(time.Millisecond),
		len(c.ingest), len(c.query), c.lb.ingestURL, c.lb.queryURL, storeDSN, map[bool]string{true: " (ingest through the fault proxy " + ingestDSN + ")"}[s.proxy])
	return c
}

func (c *cluster) close() {
	var ps []*proc
	for _, n := range append(append([]*node(nil), c.ingest...), c.query...) {
		n.mu.Lock()
		ps = append(ps, n.procs...)
		n.mu.Unlock()
	}
	if c.t.Failed() {
		for _, p := range ps {
			c.t.Logf("--- tail of %s (%s):\n%s", p.name, p.log, p.logTail(3<<10))
		}
		if c.lb != nil {
			c.t.Logf("--- tail of nginx's error log:\n%s", c.lb.p.logTail(3<<10))
		}
	}
	for _, p := range ps {
		_ = p.signal(syscall.SIGKILL, 10*time.Second)
	}
	if c.lb != nil {
		c.lb.stop()
	}
	if c.proxy != nil {
		c.proxy.Close()
	}
	// NETVIEW_SCALEOUT_LOGS=DIR keeps every log (nodes, nginx's error and
	// access logs) in DIR/<test name>.
	if keep := os.Getenv("NETVIEW_SCALEOUT_LOGS"); keep != "" {
		dst := filepath.Join(keep, strings.ReplaceAll(c.t.Name(), "/", "_"))
		if err := os.MkdirAll(dst, 0o755); err == nil {
			_ = exec.Command("cp", "-r", c.dir+"/.", dst).Run()
			c.t.Logf("logs kept in %s", dst)
		}
	}
}

// store is the test's database, read directly (not through a node).
func (c *cluster) store() store.Store { return c.be.Store }

// ---------------------------------------------------------------------------
// nginx

// lb is nginx running the production configuration with local addresses.
type lb struct {
	p         *proc
	dir       string
	ingestURL string
	queryURL  string
	healthURL string
	accessLog string
	conf      string
	stopped   atomic.Bool
}

var (
	reUpstreamServer = regexp.MustCompile(`(?m)^(\s*)server\s+(ingest|query)-\d+:(\d+)\s+([^;]*);\n`)
	reListen         = regexp.MustCompile(`(?m)^(\s*)listen\s+(\S+)( ssl)?;`)
	reCert           = regexp.MustCompile(`(?m)^(\s*)(ssl_certificate(?:_key)?)\s+(\S+);`)
)

// lbTLS trusts the certificate of the running cluster's nginx (made by
// startLB): the simulator and the API clients that go through nginx use it.
var lbTLS *tls.Config

// nginxConf rewrites deploy/nginx/nginx.conf for this machine: the nodes'
// addresses in the upstreams (each with the production server parameters),
// loopback ports, logs and temporary files in dir. Everything else (the
// retry policy: proxy_next_upstream, tries, max_fails, timeouts, keepalive)
// is the production file's.
func nginxConf(t *testing.T, dir string, ingest, query []*node, cert tlsconftest.Pair) (conf, ingestAddr, queryAddr, healthAddr string) {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := os.ReadFile(filepath.Join(root, "deploy", "nginx", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(prod)
	// Upstreams: replace the first server line of each group by ours, drop
	// the others.
	seen := map[string]bool{}
	s = reUpstreamServer.ReplaceAllStringFunc(s, func(m string) string {
		sub := reUpstreamServer.FindStringSubmatch(m)
		indent, group, params := sub[1], sub[2], sub[4]
		if seen[group] {
			return ""
		}
		seen[group] = true
		nodes := ingest
		if group == "query" {
			nodes = query
		}
		var b strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&b, "%sserver %s %s;\n", indent, n.addr, params)
		}
		return b.String()
	})
	if !seen["ingest"] || !seen["query"] {
		t.Fatalf("deploy/nginx/nginx.conf: no `server ingest-N:PORT ...;` or `server query-N:PORT ...;` line in its upstreams; the test cannot mirror it")
	}
	ingestAddr, queryAddr, healthAddr = freeAddr(t), freeAddr(t), freeAddr(t)
	listens := 0
	s = reListen.ReplaceAllStringFunc(s, func(m string) string {
		sub := reListen.FindStringSubmatch(m)
		listens++
		switch {
		case sub[2] == "8090":
			return sub[1] + "listen " + ingestAddr + sub[3] + ";"
		case sub[2] == "8080":
			return sub[1] + "listen " + queryAddr + sub[3] + ";"
		case strings.HasSuffix(sub[2], ":8081"):
			return sub[1] + "listen " + healthAddr + sub[3] + ";"
		}
		t.Fatalf("deploy/nginx/nginx.conf: unexpected listen %q", sub[2])
		return m
	})
	if listens != 3 {
		t.Fatalf("deploy/nginx/nginx.conf: %d listen lines, want 3 (ingest 8090, query 8080, health 8081)", listens)
	}
	// TLS as in production, with a certificate made for 127.0.0.1.
	certs := 0
	s = reCert.ReplaceAllStringFunc(s, func(m string) string {
		sub := reCert.FindStringSubmatch(m)
		certs++
		if sub[2] == "ssl_certificate" {
			return sub[1] + sub[2] + " " + cert.CertFile + ";"
		}
		return sub[1] + sub[2] + " " + cert.KeyFile + ";"
	})
	if certs != 0 && certs != 2 {
		t.Fatalf("deploy/nginx/nginx.conf: %d ssl_certificate(_key) lines, want 2 (one pair for every listener)", certs)
	}
	const accessProd = "access_log /dev/stdout;"
	if !strings.Contains(s, accessProd) {
		t.Fatalf("deploy/nginx/nginx.conf: no %q to redirect", accessProd)
	}
	access := filepath.Join(dir, "access.log")
	s = strings.Replace(s, accessProd, fmt.Sprintf(`log_format scaleout '$msec $server_port $request_method $uri $status "$upstream_addr" "$upstream_status" $request_time';
    access_log %s scaleout;`, access), 1)
	// Temporary files under dir (the compiled-in ones are /var/lib/nginx).
	var temps strings.Builder
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "    %s_temp_path %s;\n", k, filepath.Join(dir, "tmp-"+k))
	}
	i := strings.Index(s, "http {\n")
	if i < 0 {
		t.Fatal("deploy/nginx/nginx.conf: no `http {` block")
	}
	s = s[:i+len("http {\n")] + temps.String() + s[i+len("http {\n"):]
	if os.Geteuid() == 0 {
		// Workers would run as nobody, who cannot enter the test's
		// temporary folder (0700).
		s = "user root;\n" + s
	}
	return s, ingestAddr, queryAddr, healthAddr
}

func startLB(t *testing.T, nginx, parent string, ingest, query []*node) *lb {
	t.Helper()
	dir := filepath.Join(parent, "nginx")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ca := tlsconftest.CA(t, "scaleout-ca")
	cert := tlsconftest.Server(t, ca, "nginx")
	conf, ia, qa, ha := nginxConf(t, dir, ingest, query, cert)
	scheme := "http"
	if strings.Contains(conf, " ssl;") {
		scheme = "https"
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	lbTLS = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	apiClient.Transport.(*http.Transport).TLSClientConfig = lbTLS.Clone()
	apiClient.CloseIdleConnections()
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-e", "stderr", "-p", dir, "-c", confPath, "-g", "daemon off; pid " + filepath.Join(dir, "nginx.pid") + "; error_log stderr;"}
	if out, err := exec.Command(nginx, append([]string{"-t", "-q"}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s\nconfig:\n%s", err, out, conf)
	}
	p, err := startProc("nginx", nginx, args, filepath.Join(dir, "error.log"), true)
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{p: p, dir: dir, ingestURL: scheme + "://" + ia, queryURL: scheme + "://" + qa, healthURL: "http://" + ha + "/nginx-health", accessLog: filepath.Join(dir, "access.log"),
		conf: confPath}
	if err := waitHealthy(context.Background(), p, l.healthURL, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *lb) stop() {
	if !l.stopped.CompareAndSwap(false, true) {
		return
	}
	// SIGTERM is nginx's fast shutdown; the group kill then takes any
	// worker left.
	_ = l.p.signal(syscall.SIGTERM, 5*time.Second)
	_ = syscall.Kill(-l.p.cmd.Process.Pid, syscall.SIGKILL)
}

// accessEntry is one line of the access log.
type accessEntry struct {
	at             time.Time
	port           string
	method, uri    string
	status         int
	upstreams      []string // each upstream tried, in order
	upstreamStatus []string
	took           time.Duration
}

// retried says nginx sent the request to more than one node.
func (e accessEntry) retried() bool { return len(e.upstreams) > 1 }

// access reads the access log written so far.
func (l *lb) access(t *testing.T) []accessEntry {
	t.Helper()
	f, err := os.Open(l.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []accessEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// $msec $server_port $method $uri $status "$upstream_addr" "$upstream_status" $request_time
		line := sc.Text()
		q := strings.Split(line, `"`)
		if len(q) != 5 {
			continue
		}
		head := strings.Fields(q[0])
		if len(head) != 5 {
			continue
		}
		var e accessEntry
		if ms, err := strconv.ParseFloat(head[0], 64); err == nil {
			e.at = time.UnixMilli(int64(ms * 1000))
		}
		e.port, e.method, e.uri = head[1], head[2], head[3]
		e.status, _ = strconv.Atoi(head[4])
		for _, u := range strings.Split(q[1], ", ") {
			if u != "-" && u != "" {
				e.upstreams = append(e.upstreams, u)
			}
		}
		e.upstreamStatus = strings.Split(q[3], ", ")
		if sec, err := strconv.ParseFloat(strings.TrimSpace(q[4]), 64); err == nil {
			e.took = time.Duration(sec * float64(time.Second))
		}
		out = append(out, e)
	}
	return out
}

// ---------------------------------------------------------------------------
// Fault proxy

// faultProxy forwards TCP connections to a target and can add delay, reset
// connections, refuse them (nothing listens: connection refused, as when
// the server is stopped) or black-hole them (connections stay open, nothing
// goes through until healed, as in a network partition).
type faultProxy struct {
	target string
	addr   string

	mu       sync.Mutex
	ln       net.Listener
	conns    map[*proxyConn]struct{}
	gate     chan struct{} // non-nil while black-holing; closed to heal
	delayLo  time.Duration
	delayHi  time.Duration
	resetP   float64
	resetMax time.Duration
	flaky    chan struct{} // closed to stop the reset loop
	rng      *rand.Rand
	closed   bool
	wg       sync.WaitGroup

	accepted, resets atomic.Int64
}

type proxyConn struct {
	a, b  net.Conn // client side, target side
	once  sync.Once
	done  chan struct{}
	ended atomic.Int32 // directions that reached their end
}

func newFaultProxy(t testing.TB, target string) *faultProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{target: target, addr: ln.Addr().String(), ln: ln, conns: map[*proxyConn]struct{}{}, rng: rand.New(rand.NewPCG(1, 2))}
	p.wg.Add(1)
	go p.accept(ln)
	return p
}

func (p *faultProxy) Addr() string { return p.addr }

func (p *faultProxy) accept(ln net.Listener) {
	defer p.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		up, err := net.DialTimeout("tcp", p.target, 2*time.Second)
		if err != nil {
			reset(c)
			continue
		}
		pc := &proxyConn{a: c, b: up, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			pc.reset()
			return
		}
		p.conns[pc] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, up)
		go p.pipe(pc, up, c)
	}
}

type chunk struct {
	b  []byte
	at time.Time
}

// pipe copies src to dst through a queue, each chunk held for the delay
// drawn for it and while the proxy black-holes.
func (p *faultProxy) pipe(pc *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	q := make(chan chunk, 256)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				select {
				case q <- chunk{buf[:n], time.Now()}:
				case <-pc.done:
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	for ch := range q {
		p.mu.Lock()
		lo, hi := p.delayLo, p.delayHi
		var d time.Duration
		if hi > 0 {
			d = lo + time.Duration(p.rng.Int64N(int64(hi-lo)+1))
		}
		p.mu.Unlock()
		if wait := time.Until(ch.at.Add(d)); wait > 0 {
			select {
			case <-time.After(wait):
			case <-pc.done:
				return
			}
		}
		for {
			p.mu.Lock()
			g := p.gate
			p.mu.Unlock()
			if g == nil {
				break
			}
			select {
			case <-g:
			case <-pc.done:
				return
			}
		}
		if _, err := dst.Write(ch.b); err != nil {
			pc.reset()
			return
		}
	}
	// src ended: pass the end on, as a half close; the second direction
	// to end closes the connection.
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	if pc.ended.Add(1) == 2 {
		pc.close()
		p.forget(pc)
	}
}

func (p *faultProxy) forget(pc *proxyConn) {
	p.mu.Lock()
	delete(p.conns, pc)
	p.mu.Unlock()
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // RST instead of FIN
	}
	_ = c.Close()
}

func (pc *proxyConn) reset() {
	pc.once.Do(func() {
		close(pc.done)
		reset(pc.a)
		reset(pc.b)
	})
}

func (pc *proxyConn) close() {
	pc.once.Do(func() {
		close(pc.done)
		pc.a.Close()
		pc.b.Close()
	})
}

// SetNetwork sets a delay drawn uniformly from [lo, hi] for every chunk in
// each direction, and, every period, resets each open connection with
// probability share (at a random moment within the period). Zeros end
// the faults.
func (p *faultProxy) SetNetwork(lo, hi time.Duration, share float64, period time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delayLo, p.delayHi, p.resetP, p.resetMax = lo, hi, share, period
	if p.flaky != nil {
		close(p.flaky)
		p.flaky = nil
	}
	if share > 0 && period > 0 {
		stop := make(chan struct{})
		p.flaky = stop
		go p.resetLoop(stop, share, period)
	}
}

func (p *faultProxy) resetLoop(stop chan struct{}, share float64, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		p.mu.Lock()
		for pc := range p.conns {
			if p.rng.Float64() >= share {
				continue
			}
			time.AfterFunc(time.Duration(p.rng.Int64N(int64(period))), func() {
				select {
				case <-pc.done:
				case <-stop:
				default:
					p.resets.Add(1)
					pc.reset()
				}
			})
		}
		p.mu.Unlock()
	}
}

// ResetAll resets every open connection.
func (p *faultProxy) ResetAll() int {
	p.mu.Lock()
	cs := make([]*proxyConn, 0, len(p.conns))
	for pc := range p.conns {
		cs = append(cs, pc)
	}
	p.conns = map[*proxyConn]struct{}{}
	p.mu.Unlock()
	for _, pc := range cs {
		pc.reset()
	}
	return len(cs)
}

// Refuse stops listening (new connections are refused) and resets every
// open connection: the server is gone.
func (p *faultProxy) Refuse() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	p.ResetAll()
}

// Accept listens again on the same address after Refuse.
func (p *faultProxy) Accept() error {
	var ln net.Listener
	var err error
	for range 50 { // the port may take a moment to be free again
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go p.accept(ln)
	return nil
}

// BlackHole holds every byte in both directions, on open and new
// connections, until Heal.
func (p *faultProxy) BlackHole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate == nil {
		p.gate = make(chan struct{})
	}
}

// Heal lets held bytes through, in order.
func (p *faultProxy) Heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gate != nil {
		close(p.gate)
		p.gate = nil
	}
}

func (p *faultProxy) Close() {
	p.SetNetwork(0, 0, 0, 0)
	p.mu.Lock()
	p.closed = true
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	p.Heal()
	if ln != nil {
		ln.Close()
	}
	p.ResetAll()
}

// ---------------------------------------------------------------------------
// The fleet

// fleet runs the simulator with a deadline well past its own bounds and
// logs its report.
func fleet(t *testing.T, cfg fleetsim.Config) fleetsim.Report {
	t.Helper()
	if cfg.Token == "" {
		cfg.Token = ingestToken
	}
	if cfg.TLS == nil {
		cfg.TLS = lbTLS
	}
	limit := cfg.Duration + max(cfg.Drain, 0) + 90*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	rep, err := fleetsim.Run(ctx, cfg)
	if err != nil {
		t.Fatalf("fleetsim.Run: %v", err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	t.Logf("fleet report:\n%s", b.String())
	return rep
}

// faultShape is the heartbeat of the fault tests: about half of
// fleetsim's default (a busy server), so that the simulator, two ingest
// nodes and the engine leave the two cores some headroom to absorb a
// fault; the topology test runs the default.
var faultShape = fleetsim.Shape{Conns: 40, Listeners: 10, UDP: 6, ShortLived: 2}

// settle waits until nothing of the fleet is on its way to storage any
// more: its heartbeats in the store stop changing for 3 s. Heartbeats in
// doubt when the simulator stopped (cut by its end while nginx or a node
// still held them) may be written after it returned. (The nodes' queues
// are no guide: probes of other sensors pass through them.)
func settle(t *testing.T, c *cluster, rep *fleetsim.Report) {
	t.Helper()
	ids := store.P("ids", uuidArray(rep.SensorIDs()))
	deadline := time.Now().Add(90 * time.Second)
	var last uint64 = 1<<64 - 1
	same := 0
	for time.Now().Before(deadline) {
		now := count(t, c.store(), "SELECT count() AS n FROM heartbeats WHERE sensor_id IN {ids:Array(UUID)}", ids)
		if now == last {
			if same++; same == 3 {
				return
			}
		} else {
			same = 0
		}
		last = now
		time.Sleep(time.Second)
	}
	t.Fatalf("the fleet's heartbeats in the store were still changing 90 s after it stopped")
}

// queueRows reads netview_ingest_queue_rows from a node's /metrics (-1 when
// it cannot).
func queueRows(n *node) int64 { return metric(n, "netview_ingest_queue_rows") }

// metric reads one series of an ingest node's /metrics (-1 when it cannot).
func metric(n *node, series string) int64 {
	c := &http.Client{Timeout: 2 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(n.url() + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return -1
			}
			return int64(f)
		}
	}
	return -1
}

// logs returns everything n's runs wrote so far.
func (n *node) logs() string {
	n.mu.Lock()
	ps := slices.Clone(n.procs)
	n.mu.Unlock()
	var b strings.Builder
	for _, p := range ps {
		data, _ := os.ReadFile(p.log)
		b.Write(data)
	}
	return b.String()
}

// checkDelivered fails unless every heartbeat offered ended acknowledged.
func checkDelivered(t *testing.T, rep *fleetsim.Report) {
	t.Helper()
	if rep.Accepted == 0 || rep.Accepted != rep.Offered || rep.Rejected+rep.Dropped+rep.InDoubt+rep.Unsent != 0 {
		t.Errorf("not every heartbeat was delivered: offered %d, accepted %d, rejected %d, dropped %d, in doubt %d, unsent %d (errors %v)",
			rep.Offered, rep.Accepted, rep.Rejected, rep.Dropped, rep.InDoubt, rep.Unsent, rep.Errors)
	}
	if rep.RowMismatches+rep.AckMismatches != 0 {
		t.Errorf("%d acknowledgements with other rows than sent, %d naming another heartbeat", rep.RowMismatches, rep.AckMismatches)
	}
}

// retriedAcks counts acknowledged heartbeats that took more than one attempt.
func retriedAcks(rep *fleetsim.Report) int {
	n := 0
	for _, s := range rep.PerSensor {
		for _, a := range s.Acks {
			if a.Attempts > 1 {
				n++
			}
		}
	}
	return n
}

// verified is what verifyStore found.
type verified struct {
	v       fleetsim.Verification
	final   uint64 // heartbeats FINAL rows of the fleet
	dupRaw  int    // heartbeats stored twice before deduplication
	dupOnce int    // of those, acknowledged at the first attempt of the sensor
}

// verifyStore checks the store against the report: every acknowledged
// heartbeat stored with the id acknowledged, nothing that was never sent,
// and nothing shown twice where the product reads (heartbeats and events
// with FINAL). A heartbeat stored twice in the raw table is allowed only as
// the trace of a retry: at most as many as there were retries, by the
// sensors (retries) or by nginx (lbRetries, -1 when not known).
func verifyStore(t *testing.T, c *cluster, rep *fleetsim.Report, lbRetries int) verified {
	t.Helper()
	settle(t, c, rep)
	st := c.store()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	v, err := fleetsim.Verify(ctx, st, rep)
	if err != nil {
		t.Fatalf("fleetsim.Verify: %v", err)
	}
	out := verified{v: v}
	t.Logf("store: %s", v.String())
	if len(v.Missing) > 0 {
		t.Errorf("LOST: %d acknowledged heartbeats are not stored, first %v", len(v.Missing), v.Missing[0])
	}
	if len(v.IDMismatch) > 0 {
		t.Errorf("%d stored heartbeats have another heartbeat_id than acknowledged, first %v", len(v.IDMismatch), v.IDMismatch[0])
	}
	if len(v.Extra) > 0 {
		t.Errorf("%d heartbeats stored that were neither acknowledged nor in doubt, first %v", len(v.Extra), v.Extra[0])
	}
	if v.Acked != int(rep.Accepted) {
		t.Errorf("report acknowledged %d heartbeats, its per-sensor lists hold %d", rep.Accepted, v.Acked)
	}
	ids := store.P("ids", uuidArray(rep.SensorIDs()))
	out.final = count(t, st, "SELECT count() AS n FROM heartbeats FINAL WHERE sensor_id IN {ids:Array(UUID)}", ids)
	if out.final != uint64(v.Stored) {
		t.Errorf("SHOWN TWICE: heartbeats FINAL holds %d rows for %d distinct heartbeats of the fleet", out.final, v.Stored)
	}
	if n := count(t, st, "SELECT count() AS n FROM (SELECT event_id FROM events FINAL WHERE sensor_id IN {ids:Array(UUID)} GROUP BY event_id HAVING count() > 1)", ids); n != 0 {
		t.Errorf("SHOWN TWICE: %d event_ids of the fleet show more than once in events FINAL", n)
	}
	if n := count(t, st, "SELECT count() AS n FROM (SELECT flow_id FROM flows FINAL WHERE sensor_id IN {ids:Array(UUID)} GROUP BY sensor_id, flow_id HAVING count() > 1)", ids); n != 0 {
		t.Errorf("SHOWN TWICE: %d completed flows of the fleet show more than once in flows FINAL", n)
	}
	acked := rep.Acked()
	out.dupRaw = len(v.Duplicated)
	for _, k := range v.Duplicated {
		if a, ok := acked[k]; ok && a.Attempts <= 1 {
			out.dupOnce++
		}
	}
	if lbRetries >= 0 && uint64(out.dupRaw) > rep.Retries+uint64(lbRetries) {
		t.Errorf("%d heartbeats stored twice in the raw table, more than the %d retries of the sensors and %d of nginx could explain", out.dupRaw, rep.Retries, lbRetries)
	}
	if lbRetries == 0 && out.dupOnce > 0 {
		t.Errorf("%d heartbeats acknowledged at their first attempt, with no retry by nginx, are stored twice", out.dupOnce)
	}
	return out
}

func uuidArray[T fmt.Stringer](ids []T) string {
	var b strings.Builder
	b.WriteByte('[')
	for i, id := range ids {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("'" + id.String() + "'")
	}
	b.WriteByte(']')
	return b.String()
}

// count runs a query returning one UInt64 column named n.
func count(t *testing.T, st store.Store, q string, params ...store.Param) uint64 {
	t.Helper()
	var c proto.ColUInt64
	var got uint64
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := st.Select(ctx, store.Query{SQL: q, Params: params}, proto.Results{{Name: "n", Data: &c}}, func(rows int) error {
		if rows > 0 {
			got = c.Row(0)
		}
		return nil
	}); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return got
}

// percentile of ds (p in 0..100); 0 for none.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

func sleepUntil(ctx context.Context, at time.Time) bool {
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---------------------------------------------------------------------------
// Query answers

// apiClient asks the query API.
var apiClient = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}}

// answer is one response.
type answer struct {
	status int
	body   []byte
	t0, t1 time.Time
	err    error
}

func get(ctx context.Context, base, path string) answer {
	a := answer{t0: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := apiClient.Do(req)
	if err != nil {
		a.err, a.t1 = err, time.Now()
		return a
	}
	a.status = resp.StatusCode
	a.body, a.err = io.ReadAll(resp.Body)
	resp.Body.Close()
	a.t1 = time.Now()
	return a
}

// staleModel knows, per sensor, the instant after which the views call it
// stale: its newest received_at plus max(3 intervals, 45 s), the rule of
// the query service. A row's stale flag depends on when it was asked, so
// answers are compared with the flag checked against this model instead of
// byte for byte.
type staleModel map[string]time.Time

func loadStaleModel(t *testing.T, st store.Store) staleModel {
	t.Helper()
	var id proto.ColStr
	var recv proto.ColInt64
	var iv proto.ColUInt64
	m := staleModel{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := st.Select(ctx, store.Query{SQL: `SELECT toString(sensor_id) AS id, toUnixTimestamp64Milli(max(received_at)) AS r, toUInt64(argMax(interval_secs, seq)) AS i
		FROM sensors GROUP BY sensor_id`}, proto.Results{{Name: "id", Data: &id}, {Name: "r", Data: &recv}, {Name: "i", Data: &iv}}, func(rows int) error {
		for i := range rows {
			m[id.Row(i)] = time.UnixMilli(recv.Row(i)).Add(max(3*time.Duration(iv.Row(i))*time.Second, 45*time.Second))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const staleSlack = 50 * time.Millisecond

// normalize decodes an answer to compare it: generated_at (the time of the
// request) is dropped, and every stale or sensor_stale flag is checked
// against the model for the request's time and then dropped. It returns
// canonical JSON (keys sorted, numbers as written).
func normalize(a answer, m staleModel) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(a.body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data after the JSON value")
	}
	if top, ok := v.(map[string]any); ok {
		delete(top, "generated_at")
	}
	var bad []string
	var walk func(x any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			sid, _ := x["sensor_id"].(string)
			for _, k := range []string{"stale", "sensor_stale"} {
				f, ok := x[k]
				if !ok || sid == "" {
					continue
				}
				got, isBool := f.(bool)
				flip, known := m[sid]
				switch {
				case !isBool:
					bad = append(bad, fmt.Sprintf("%s of %s is %v, not a boolean", k, sid, f))
				case !known:
					bad = append(bad, fmt.Sprintf("sensor %s is not in the store's sensors table", sid))
				case a.t0.After(flip.Add(staleSlack)) && !got:
					bad = append(bad, fmt.Sprintf("%s of %s is false, but it was asked %v after the sensor turned stale", k, sid, a.t0.Sub(flip)))
				case a.t1.Before(flip.Add(-staleSlack)) && got:
					bad = append(bad, fmt.Sprintf("%s of %s is true, but it was asked %v before the sensor turned stale", k, sid, flip.Sub(a.t1)))
				}
				delete(x, k)
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	if len(bad) > 0 {
		if len(bad) > 3 {
			bad = append(bad[:3], fmt.Sprintf("... %d in all", len(bad)))
		}
		return nil, errors.New(strings.Join(bad, "; "))
	}
	return json.Marshal(v)
}

// firstDiff names the first place two canonical JSON documents differ.
func firstDiff(a, b []byte) string {
	var x, y any
	_ = json.Unmarshal(a, &x)
	_ = json.Unmarshal(b, &y)
	return diffAt("$", x, y)
}

func diffAt(path string, x, y any) string {
	switch xv := x.(type) {
	case map[string]any:
		yv, ok := y.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s: object vs %T", path, y)
		}
		keys := make([]string, 0, len(xv)+len(yv))
		for k := range xv {
			keys = append(keys, k)
		}
		for k := range yv {
			if _, ok := xv[k]; !ok {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			if d := diffAt(path+"."+k, xv[k], yv[k]); d != "" {
				return d
			}
		}
		return ""
	case []any:
		yv, ok := y.([]any)
		if !ok {
			return fmt.Sprintf("%s: array vs %T", path, y)
		}
		for i := range min(len(xv), len(yv)) {
			if d := diffAt(fmt.Sprintf("%s[%d]", path, i), xv[i], yv[i]); d != "" {
				return d
			}
		}
		if len(xv) != len(yv) {
			return fmt.Sprintf("%s: %d elements vs %d", path, len(xv), len(yv))
		}
		return ""
	default:
		if fmt.Sprint(x) != fmt.Sprint(y) {
			return fmt.Sprintf("%s: %v vs %v", path, x, y)
		}
		return ""
	}
}

// nextCursor reads next_cursor from a page ("" when null or absent).
func nextCursor(body []byte) (string, error) {
	var p struct {
		Next *string `json:"next_cursor"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return "", err
	}
	if p.Next == nil {
		return "", nil
	}
	return *p.Next, nil
}

// withCursor adds cursor=c to path.
func withCursor(path, c string) string {
	if c == "" {
		return path
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return path + sep + "cursor=" + url.QueryEscape(c)
}

func rfc3339ms(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// ---------------------------------------------------------------------------
// /healthz

// healthz asks a node's /healthz.
func healthz(n *node) (int, string) {
	c := &http.Client{Timeout: 3 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(n.url() + "/healthz")
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// checkHealthz runs as a subtest: every node's /healthz answers 200 while
// storage is up (Compose, Kubernetes and outer balancers rely on it; it
// once ran SELECT 1 through Exec, which ch-go refuses on a server).
func checkHealthz(t *testing.T, nodes []*node) {
	t.Run("healthz", func(t *testing.T) {
		for _, n := range nodes {
			if status, body := healthz(n); status != 200 {
				t.Errorf("%s /healthz with storage up: %d %q", n.name, status, body)
			}
		}
	})
}

// supervisor does what an orchestrator would for ingest nodes that stay
// stuck: a node that refuses heartbeats because its last write failed (503
// "last write failed" to a small heartbeat the supervisor posts every
// 500 ms) for stuckAfter while storage is up is restarted, and a node that
// exited by itself is started again. A correct node clears that state by
// itself within a fraction of a second of storage answering, so with
// correct nodes the supervisor never restarts one; report turns any such
// restart into a failure, or into a known-bug skip when the nodes show the
// bug's symptom. (It does not poll /healthz: see TestTopology's health
// check subtest.)
type supervisor struct {
	nodes      []*node
	storageUp  func() bool
	stuckAfter time.Duration

	mu       sync.Mutex
	restarts []string // stuck nodes restarted
	exits    []string // nodes that exited by themselves, restarted
	errs     []error
	stop     chan struct{}
	done     chan struct{}
}

func startSupervisor(nodes []*node, storageUp func() bool, stuckAfter time.Duration) *supervisor {
	s := &supervisor{nodes: nodes, storageUp: storageUp, stuckAfter: stuckAfter, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *supervisor) run() {
	defer close(s.done)
	stuck := make([]time.Time, len(s.nodes))
	gens := make([]*probeSensor, len(s.nodes))
	for i := range gens {
		gens[i] = newProbeSensor(uint64(7000 + i))
	}
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		for i, n := range s.nodes {
			if n.held.Load() {
				stuck[i] = time.Time{}
				continue
			}
			if !n.alive() {
				// It exited by itself (a node that cannot reach storage
				// while it starts stops): restart it, as an orchestrator
				// would.
				n.mu.Lock()
				last := n.cur
				n.mu.Unlock()
				msg := fmt.Sprintf("%s restarted at %s: it had exited (%v): %s", n.name, time.Now().Format("15:04:05.000"), last.err, strings.TrimSpace(last.logTail(300)))
				err := n.start(context.Background())
				s.mu.Lock()
				s.exits = append(s.exits, msg)
				if err != nil {
					s.errs = append(s.errs, fmt.Errorf("restarting %s: %w", n.name, err))
				}
				s.mu.Unlock()
				stuck[i] = time.Time{}
				continue
			}
			up := s.storageUp()
			_, _, body := gens[i].next()
			status, answer, _ := ingesttest.PostTo(context.Background(), client, n.url()+"/v1/heartbeat", ingestToken, body)
			if !up || status != 503 || !bytes.Contains(answer, []byte("last write failed")) {
				stuck[i] = time.Time{}
				continue
			}
			if stuck[i].IsZero() {
				stuck[i] = time.Now()
				continue
			}
			if since := time.Since(stuck[i]); since >= s.stuckAfter {
				msg := fmt.Sprintf("%s restarted at %s: refused heartbeats (%q) for %v with storage up", n.name, time.Now().Format("15:04:05.000"),
					strings.TrimSpace(string(answer)), since.Round(time.Millisecond))
				err := n.kill9()
				if err == nil {
					err = n.start(context.Background())
				}
				s.mu.Lock()
				s.restarts = append(s.restarts, msg)
				if err != nil {
					// Left for the next round, which starts it.
					s.exits = append(s.exits, fmt.Sprintf("%s did not start again: %v", n.name, err))
				}
				s.mu.Unlock()
				stuck[i] = time.Time{}
			}
		}
	}
}

func (s *supervisor) halt() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
}

// restarted counts restarts of stuck nodes and of nodes that had exited.
func (s *supervisor) restarted() (stuck, exited int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.restarts), len(s.exits)
}

// report is a subtest: ingest recovered by itself, without restarts.
func (s *supervisor) report(t *testing.T) {
	s.halt()
	s.mu.Lock()
	restarts, exits, errs := s.restarts, s.exits, s.errs
	s.mu.Unlock()
	// What the nodes say of themselves now that storage is up.
	symptom := ""
	for _, n := range s.nodes {
		if status, body := healthz(n); status != 200 {
			symptom = body
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
	for _, r := range restarts {
		t.Log(r)
	}
	for _, r := range exits {
		t.Log(r)
	}
	t.Run("recovers without restart", func(t *testing.T) {
		if len(restarts) == 0 {
			return
		}
		t.Errorf("%d ingest nodes stayed stuck with storage up and had to be restarted (/healthz said %q): %v", len(restarts), symptom, restarts)
	})
}

// ---------------------------------------------------------------------------
// Probes and progress

// progressBox holds the simulator's latest progress.
type progressBox struct {
	mu sync.Mutex
	p  fleetsim.Progress
	at time.Time
}

func (b *progressBox) set(p fleetsim.Progress) {
	b.mu.Lock()
	b.p, b.at = p, time.Now()
	b.mu.Unlock()
}

func (b *progressBox) get() fleetsim.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// sample is the fleet's backlog at one moment.
type sample struct {
	at     time.Time
	queued int64
}

// backlog records the simulator's progress over time.
type backlog struct {
	mu      sync.Mutex
	samples []sample
}

func (b *backlog) add(p fleetsim.Progress) {
	b.mu.Lock()
	b.samples = append(b.samples, sample{at: time.Now(), queued: p.Queued})
	b.mu.Unlock()
}

// drained is when, after from, the backlog first fell to at most level;
// zero if it did not.
func (b *backlog) drained(from time.Time, level int64) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.samples {
		if s.at.After(from) && s.queued <= level {
			return s.at
		}
	}
	return time.Time{}
}

// peak is the largest backlog in [from, to).
func (b *backlog) peak(from, to time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var m int64
	for _, s := range b.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			m = max(m, s.queued)
		}
	}
	return m
}

// probe posts heartbeats of a sensor of its own straight to each ingest
// node, open loop: one every period whatever happened to the ones before,
// each recorded with its answer and how long it took. How fast a node
// answers, whatever its answer, is what it measures.
type probe struct {
	mu      sync.Mutex
	results []probeResult
	acked   map[string]uint64 // heartbeat_id -> seq
}

type probeResult struct {
	node   string
	at     time.Time
	status int // 0: no answer
	took   time.Duration
	err    string
}

func startProbes(ctx context.Context, t *testing.T, nodes []*node, every time.Duration) (*probe, func()) {
	p := &probe{acked: map[string]uint64{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 45 * time.Second}
	for i, n := range nodes {
		gen := newProbeSensor(uint64(9000 + i))
		var genMu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				genMu.Lock()
				id, seq, body := gen.next()
				genMu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					status, _, err := ingesttest.PostTo(ctx, client, n.url()+"/v1/heartbeat", ingestToken, body)
					r := probeResult{node: n.name, at: t0, status: status, took: time.Since(t0)}
					if err != nil {
						r.err = err.Error()
					}
					p.mu.Lock()
					p.results = append(p.results, r)
					if status == 200 {
						p.acked[id] = seq
					}
					p.mu.Unlock()
				}()
			}
		}()
	}
	return p, func() { cancel(); wg.Wait(); client.CloseIdleConnections() }
}

// between returns the results of probes sent in [from, to).
func (p *probe) between(from, to time.Time) []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []probeResult
	for _, r := range p.results {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

func statusCounts(rs []probeResult) string {
	m := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.status == 0 {
			k = "no answer"
		}
		m[k]++
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// probeSensor makes the probes' heartbeats (small ones: the probe measures
// answers, not throughput).
type probeSensor struct{ gen *heartbeat.Generator }

func newProbeSensor(seed uint64) *probeSensor {
	return &probeSensor{gen: heartbeat.NewGenerator(seed, heartbeat.Shape{Conns: 10, Listeners: 4, UDP: 2, ActiveFlows: 2, CompletedFlows: 1, Events: 2})}
}

func (s *probeSensor) next() (id string, seq uint64, body []byte) {
	h := s.gen.Next(time.Now())
	body, err := heartbeat.Encode(h)
	if err != nil {
		panic(err)
	}
	return h.HeartbeatID.String(), h.Seq, body
}

// probeStored counts the probes' acknowledged heartbeats that are stored.
func probeStored(t *testing.T, c *cluster, p *probe) int {
	t.Helper()
	p.mu.Lock()
	ids := make([]string, 0, len(p.acked))
	for id := range p.acked {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	if len(ids) == 0 {
		return 0
	}
	return int(count(t, c.store(), "SELECT uniqExact(heartbeat_id) AS n FROM heartbeats WHERE heartbeat_id IN {ids:Array(UUID)}",
		store.P("ids", "['"+strings.Join(ids, "','")+"']")))
}
