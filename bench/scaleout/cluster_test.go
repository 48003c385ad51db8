package scaleout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/bench/scaleout/faultproxy"
	"github.com/netview/netview/bench/scaleout/supervise"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"

	"github.com/netview/netview/internal/loopback"
)

// setup says what a test runs.
type setup struct {
	ingest, query int
	// proxy puts a fault proxy between the ingest nodes and storage (the
	// query nodes always reach storage directly).
	proxy bool
	// ingestArgs are extra flags of every ingest node.
	ingestArgs []string
}

// node is an ingest or query node: one address, restarted as often as a
// test kills it (Start, Kill, Stop, Logs: see supervise.Service).
type node struct {
	*supervise.Service
	addr string
	// ready is the path that answers 200 once the node serves (with the
	// API token). Not /healthz: see checkHealthz.
	ready string
}

// apiAuth is the header of the requests that wait for a node or nginx.
var apiAuth = http.Header{"Authorization": {"Bearer " + apiToken}}

func newNode(name, bin, dir, addr, ready string, args []string) *node {
	n := &node{addr: addr, ready: ready}
	n.Service = &supervise.Service{Name: name, Bin: bin, Dir: dir, Args: args, ReadyURL: n.url() + ready, Header: apiAuth}
	return n
}

func (n *node) url() string { return "http://" + n.addr }

// startFirst starts a node for the first time, on another address when a
// process outside the test took its own between freeAddr and the bind
// (tests of other packages run beside these). Later starts keep the
// address: nginx has it.
func (n *node) startFirst(ctx context.Context, t *testing.T) error {
	for try := 0; ; try++ {
		err := n.Start(ctx)
		if err == nil || try == 2 || !strings.Contains(err.Error(), "address already in use") {
			return err
		}
		old := n.addr
		n.addr = loopback.FreeAddr(t)
		for j, a := range n.Args {
			n.Args[j] = strings.Replace(a, "="+old, "="+n.addr, 1)
		}
		n.ReadyURL = n.url() + n.ready
	}
}

// cluster is one deployment: a fresh database on the front, nodes, nginx.
type cluster struct {
	t      *testing.T
	dir    string
	be     storetest.Backend
	proxy  *faultproxy.Proxy
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
		p, err := faultproxy.New(host)
		if err != nil {
			t.Fatal(err)
		}
		c.proxy = p
		ingestDSN = "clickhouse://" + c.proxy.Addr() + "/" + db
	}
	for i := range s.ingest {
		addr := loopback.FreeAddr(t)
		args := append([]string{"--store.dsn=" + ingestDSN, "--ingest.addr=" + addr, "--ingest.token=" + ingestToken, "--ingest.plain-http",
			"--ingest.shared-tokens", "--ingest.ip-rate=0"}, s.ingestArgs...)
		c.ingest = append(c.ingest, newNode(fmt.Sprintf("ingest-%d", i+1), ib, c.dir, addr, "/metrics", args))
	}
	for i := range s.query {
		addr := loopback.FreeAddr(t)
		args := []string{"--store.dsn=" + storeDSN, "--query.addr=" + addr, "--query.token=" + apiToken, "--query.cursor-secret=" + cursorSecret, "--query.plain-http"}
		c.query = append(c.query, newNode(fmt.Sprintf("query-%d", i+1), qb, c.dir, addr, "/api/v2/network/connections?limit=1", args))
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
	var ps []*supervise.Proc
	for _, n := range append(append([]*node(nil), c.ingest...), c.query...) {
		ps = append(ps, n.Runs()...)
	}
	if c.t.Failed() {
		for _, p := range ps {
			c.t.Logf("--- tail of %s (%s):\n%s", p.Name(), p.LogPath(), p.LogTail(3<<10))
		}
		if c.lb != nil {
			c.t.Logf("--- tail of nginx's error log:\n%s", c.lb.p.LogTail(3<<10))
		}
	}
	for _, p := range ps {
		_ = p.Signal(syscall.SIGKILL, 10*time.Second)
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
				t.Errorf("%s /healthz with storage up: %d %q", n.Name, status, body)
			}
		}
	})
}
