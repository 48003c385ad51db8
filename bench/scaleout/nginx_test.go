package scaleout

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/bench/scaleout/supervise"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"

	"github.com/netview/netview/internal/loopback"
	"github.com/netview/netview/internal/testenv"
)

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
	missing := ""
	if err != nil {
		missing = "nginx is not in PATH or /usr/sbin (Debian package nginx-light)"
	}
	testenv.Require(t, "NETVIEW_REQUIRE_NGINX", "the scale-out tests need nginx as the load balancer", missing)
	return p
}

// lb is nginx running the production configuration with local addresses.
type lb struct {
	p         *supervise.Proc
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
	ingestAddr, queryAddr, healthAddr = loopback.FreeAddr(t), loopback.FreeAddr(t), loopback.FreeAddr(t)
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
	p, err := supervise.Start("nginx", nginx, args, filepath.Join(dir, "error.log"), true)
	if err != nil {
		t.Fatal(err)
	}
	l := &lb{p: p, dir: dir, ingestURL: scheme + "://" + ia, queryURL: scheme + "://" + qa, healthURL: "http://" + ha + "/nginx-health", accessLog: filepath.Join(dir, "access.log"),
		conf: confPath}
	if err := supervise.WaitReady(context.Background(), p, l.healthURL, apiAuth, 20*time.Second); err != nil {
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
	_ = l.p.Signal(syscall.SIGTERM, 5*time.Second)
	_ = l.p.KillGroup()
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
