package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	nvloopback "github.com/netview/netview/internal/loopback" // parts.go has a func loopback
	"github.com/netview/netview/internal/testenv"
)

// The helper is this test binary re-run (under another name) with this
// variable: a process of its own whose sockets the sensor must attribute.
const helperEnv = "NETVIEW_SMOKE_HELPER"

func TestMain(m *testing.M) { testenv.Main(m, helperEnv, helperMain) }

// helperMain listens, holds one connection to itself, and opens and closes
// a second one after a few seconds (a completed flow), then waits for EOF
// on stdin.
func helperMain() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	go nvloopback.Serve(ln, func(c net.Conn) { io.Copy(io.Discard, c); c.Close() })
	kept, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	short, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	fmt.Printf("PORTS %d %d %d\n", port(ln.Addr()), port(kept.LocalAddr()), port(short.LocalAddr()))
	time.Sleep(3 * time.Second) // seen open by a few polls, with its process
	short.Close()
	fmt.Println("CLOSED")
	io.Copy(io.Discard, os.Stdin)
	kept.Close()
}

func port(a net.Addr) int { return a.(*net.TCPAddr).Port }

// The all-in-one as a real process: it sees a real listener and connection
// of another process, with the binary and pid ss sees; stops cleanly on
// SIGTERM; keeps everything across a restart; refuses a second instance.
func TestAllInOneSmoke(t *testing.T) {
	if os.Getenv("NETVIEW_LIBCHDB") == "" {
		t.Skip("NETVIEW_LIBCHDB is unset: the smoke test runs the real embedded engine (make deps; export NETVIEW_LIBCHDB=$PWD/.cache/chdb/package/libchdb.so)")
	}
	if _, err := exec.LookPath("ss"); err != nil {
		t.Fatal("ss (iproute2) is needed: it is the oracle of which process holds a socket")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := buildNetview(ctx, t, tmp)
	checkHelp(ctx, t, bin)
	data := filepath.Join(tmp, "data")

	// First start: a fresh folder, the token and the enrollment secret made
	// and shown once.
	a := startNetview(ctx, t, bin, data)
	tok, enroll := readToken(t, data, tokenName), readToken(t, data, enrollSecretName)
	if !strings.Contains(a.output(), tok) || !strings.Contains(a.output(), enroll) {
		t.Fatalf("the first start did not show the token and enrollment secret it made:\n%s", a.output())
	}
	c := &client{t: t, base: a.url, token: tok}
	c.checkHealthAndConsole()
	sensorID := readSensorID(t, data)
	t.Logf("up at %s, sensor %s", a.url, sensorID)

	// The helper starts after the sensor, so its sockets are new to it:
	// events and flows, not only snapshot rows.
	h := startHelper(ctx, t, tmp)
	t.Logf("helper pid %d (%s): listens on %d, connection %d, short connection %d", h.pid, h.binary, h.listen, h.conn, h.short)

	eventually(ctx, t, 30*time.Second, "the helper's listener, as ss sees it", func() error {
		return c.listenersMatchSS(sensorID, h.listen, []int{a.pid(), h.pid}, h)
	})
	eventually(ctx, t, 30*time.Second, "the helper's connection, both ends, as ss sees it", func() error {
		return c.connectionsMatchSS(sensorID, h)
	})
	h.waitClosed(ctx, t)
	var before []string // the helper's event ids
	eventually(ctx, t, 30*time.Second, "the helper's listen, connect, accept and completed flow events", func() error {
		var err error
		before, err = c.helperEvents(sensorID, h)
		return err
	})
	flowsBefore := c.countSQL("SELECT count() FROM flows FINAL WHERE sensor_id = toUUID('" + sensorID + "')")
	if flowsBefore == 0 {
		t.Fatal("no completed flow stored")
	}
	c.checkAnalystSQL()
	c.summaryLists(sensorID)
	checkSensorKey(t, data, sensorID)

	// A second instance on the same folder stops at once and names the holder.
	second(ctx, t, bin, data, a.pid())

	a.stop(ctx, t)
	// The sensor stops first and delivers its final heartbeat while ingest
	// still runs: nothing is left for the next start.
	if spooled := spoolEntries(t, data); len(spooled) != 0 {
		t.Fatalf("stopped with heartbeats still spooled: %v", spooled)
	}

	// Second start on the same folder: same sensor, same data, no token shown.
	b := startNetview(ctx, t, bin, data)
	if strings.Contains(b.output(), tok) || strings.Contains(b.output(), enroll) {
		t.Fatalf("the second start showed a secret again:\n%s", b.output())
	}
	if !strings.Contains(b.output(), filepath.Join(data, tokenName)) {
		t.Fatalf("the second start does not say where the token is:\n%s", b.output())
	}
	if id := readSensorID(t, data); id != sensorID {
		t.Fatalf("sensor id changed across the restart: %s, then %s", sensorID, id)
	}
	c.base = b.url
	c.checkHealthAndConsole()
	c.summaryLists(sensorID)
	after, err := c.helperEvents(sensorID, h)
	if err != nil {
		t.Fatalf("after the restart: %v", err)
	}
	for _, id := range before {
		if !slices.Contains(after, id) {
			t.Fatalf("event %s from before the restart is gone", id)
		}
	}
	if n := c.countSQL("SELECT count() FROM flows FINAL WHERE sensor_id = toUUID('" + sensorID + "')"); n < flowsBefore {
		t.Fatalf("completed flows: %d before the restart, %d after", flowsBefore, n)
	}
	eventually(ctx, t, 30*time.Second, "the helper's listener after the restart", func() error {
		return c.listenersMatchSS(sensorID, h.listen, []int{b.pid(), h.pid}, h)
	})
	b.stop(ctx, t)
}

// The all-in-one with --baseline.webhook.url: a listener the sensor never
// saw reaches a webhook on loopback as a baseline_new_listener finding, and
// a restart does not send it again.
func TestAllInOneExportsFindings(t *testing.T) {
	if os.Getenv("NETVIEW_LIBCHDB") == "" {
		t.Skip("NETVIEW_LIBCHDB is unset: the test runs the real embedded engine (make deps; export NETVIEW_LIBCHDB=$PWD/.cache/chdb/package/libchdb.so)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var got []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var batch []map[string]any
		if err := json.NewDecoder(r.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		got = append(got, batch...)
		mu.Unlock()
	}))
	defer hook.Close()
	tmp := t.TempDir()
	bin := buildNetview(ctx, t, tmp)
	data := filepath.Join(tmp, "data")
	// No learning period, so that what the helper opens after the sensor's
	// first heartbeat is new at once; a short lag, for heartbeats still on
	// their way (with none, the helper's listener row was seen to land
	// after its window had passed).
	flags := []string{"--baseline.learning=0s", "--baseline.lag=5s", "--baseline.interval=1s", "--baseline.notify.interval=200ms", "--baseline.webhook.url=" + hook.URL}
	a := startNetview(ctx, t, bin, data, flags...)
	c := &client{t: t, base: a.url, token: readToken(t, data, tokenName)}
	sensorID := readSensorID(t, data)
	eventually(ctx, t, 30*time.Second, "the sensor's first heartbeat", func() error {
		if c.countSQL("SELECT count() FROM heartbeats") == 0 {
			return errors.New("none yet")
		}
		return nil
	})
	h := startHelper(ctx, t, tmp)
	var id string
	eventually(ctx, t, 60*time.Second, "the helper's listener as a finding at the webhook", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range got {
			if f["kind"] == "baseline_new_listener" && f["binary"] == h.binary && f["src_port"] == float64(h.listen) && f["sensor_id"] == sensorID {
				id = f["event_id"].(string)
				return nil
			}
		}
		return fmt.Errorf("%d findings received, none of it: %v", len(got), got)
	})
	time.Sleep(time.Second) // its delivery recorded: a stop during the POST would rightly send it again
	a.stop(ctx, t)
	b := startNetview(ctx, t, bin, data, flags...)
	time.Sleep(3 * time.Second) // several looks of the export
	b.stop(ctx, t)
	mu.Lock()
	defer mu.Unlock()
	seen := 0
	for _, f := range got {
		if f["event_id"] == id {
			seen++
		}
	}
	if seen != 1 {
		t.Errorf("finding %s received %d times across a restart, want once", id, seen)
	}
}

// --- the process under test ---

type proc struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	url  string
}

func buildNetview(ctx context.Context, t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "netview")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv keeps the test's NETVIEW_* settings (a token, a data folder) from
// reaching the binary, but for the engine library.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NETVIEW_") || strings.HasPrefix(kv, "NETVIEW_LIBCHDB=") {
			env = append(env, kv)
		}
	}
	return env
}

func checkHelp(ctx context.Context, t *testing.T, bin string) {
	out, err := exec.CommandContext(ctx, bin, "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("netview -h: %v\n%s", err, out)
	}
	for _, want := range []string{"-data", "-http", "-ingest", "-interval", "-token", "-token-file", "-config", "NETVIEW_", "name = value"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("netview -h does not mention %q:\n%s", want, out)
		}
	}
}

var consoleLine = regexp.MustCompile(`Console and API\s+(http://\S+?)/?\n`)

func startNetview(ctx context.Context, t *testing.T, bin, data string, flags ...string) *proc {
	t.Helper()
	p := &proc{out: new(syncBuffer), done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"--data", data, "--http", "127.0.0.1:0", "--ingest", "127.0.0.1:0", "--interval", "1s"}, flags...)...)
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("netview pid %d output:\n%s", p.cmd.Process.Pid, p.output())
		}
	})
	deadline := time.After(2 * time.Minute)
	for {
		// The banner's last line: a test that reads on from the first
		// would race the rest of it (CI once saw the token without the
		// enrollment secret).
		if out := p.output(); strings.Contains(out, "Stop with Ctrl-C.\n") {
			m := consoleLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("the banner has no Console URL:\n%s", out)
			}
			p.url = m[1]
			return p
		}
		select {
		case <-p.done:
			t.Fatalf("netview exited before it was up (%v):\n%s", p.cmd.ProcessState, p.output())
		case <-deadline:
			t.Fatalf("netview did not print its Console URL within 2 minutes:\n%s", p.output())
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (p *proc) pid() int       { return p.cmd.Process.Pid }
func (p *proc) output() string { return p.out.String() }

// stop sends SIGTERM and wants exit status 0 and the parts stopped in
// reverse order.
func (p *proc) stop(ctx context.Context, t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(90 * time.Second):
		t.Fatalf("netview did not exit within 90s of SIGTERM:\n%s", p.output())
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("netview exited with %v after SIGTERM:\n%s", p.cmd.ProcessState, p.output())
	}
	out, last := p.output(), -1
	for _, step := range []string{"sensor stopped", "ingest drained", "msg=stopped"} {
		i := strings.Index(out, step)
		if i < last {
			t.Fatalf("shutdown step %q missing or out of order:\n%s", step, out)
		}
		last = i
	}
}

func second(ctx context.Context, t *testing.T, bin, data string, holder int) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(cctx, bin, "--data", data, "--http", "127.0.0.1:0", "--ingest", "127.0.0.1:0")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("a second instance on the same folder: %v, want exit status 1\n%s", err, out)
	}
	abs, _ := filepath.Abs(data)
	want := fmt.Sprintf("data folder %s is in use by another netview (pid %d)", abs, holder)
	if !strings.Contains(string(out), want) {
		t.Fatalf("a second instance said:\n%s\nwant it to say %q", out, want)
	}
}

// --- the helper process ---

type helper struct {
	pid                 int
	binary, path        string
	listen, conn, short int
	lines               chan string
}

func startHelper(ctx context.Context, t *testing.T, dir string) *helper {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// Its own name, so its binary is told apart from the test's.
	path := filepath.Join(dir, "nvhelper")
	b, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(path, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	h := &helper{pid: cmd.Process.Pid, binary: "nvhelper", path: path, lines: make(chan string, 8)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	line := h.next(ctx, t)
	if _, err := fmt.Sscanf(line, "PORTS %d %d %d", &h.listen, &h.conn, &h.short); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	return h
}

func (h *helper) next(ctx context.Context, t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatal("the helper exited")
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("the helper said nothing for 30s")
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	return ""
}

func (h *helper) waitClosed(ctx context.Context, t *testing.T) {
	if l := h.next(ctx, t); l != "CLOSED" {
		t.Fatalf("helper said %q, want CLOSED", l)
	}
}

// --- the API ---

type client struct {
	t           *testing.T
	base, token string
}

func (c *client) do(method, path, body string) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	hc := &http.Client{Timeout: 20 * time.Second}
	resp, err := hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	return resp.StatusCode, resp.Header, b
}

func (c *client) get(path string, out any) {
	c.t.Helper()
	code, _, b := c.do("GET", path, "")
	if code != 200 {
		c.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		c.t.Fatalf("GET %s: %v\n%s", path, err, b)
	}
}

func (c *client) checkHealthAndConsole() {
	c.t.Helper()
	if code, _, b := c.do("GET", "/healthz", ""); code != 200 || strings.TrimSpace(string(b)) != "ok" {
		c.t.Fatalf("GET /healthz: %d %s", code, b)
	}
	code, h, b := c.do("GET", "/", "")
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!bytes.Contains(bytes.ToLower(b), []byte("<!doctype html")) {
		c.t.Fatalf("GET / is not the Console: %d %s\n%.300s", code, h.Get("Content-Type"), b)
	}
}

type socket struct {
	LocalPort  int    `json:"local_port"`
	RemotePort int    `json:"remote_port"`
	State      string `json:"state"`
	PID        *int   `json:"pid"`
	Binary     string `json:"binary"`
	BinaryPath string `json:"binary_path"`
}

func (s socket) String() string {
	pid := "null"
	if s.PID != nil {
		pid = strconv.Itoa(*s.PID)
	}
	return fmt.Sprintf("%d->%d %s pid=%s %s (%s)", s.LocalPort, s.RemotePort, s.State, pid, s.Binary, s.BinaryPath)
}

func (s socket) owner() string {
	if s.PID == nil {
		return "-"
	}
	return fmt.Sprintf("%s/%d", s.Binary, *s.PID)
}

// listenersMatchSS compares the listeners of the given pids, in the newest
// snapshot, with ss, and checks the helper's is there with its binary path.
func (c *client) listenersMatchSS(sensorID string, listen int, pids []int, h *helper) error {
	var v struct{ Listening []socket }
	c.get("/api/v1/network/listening?sensor_id="+sensorID, &v)
	api := map[string]bool{}
	found := false
	for _, s := range v.Listening {
		if s.PID != nil && slices.Contains(pids, *s.PID) {
			api[fmt.Sprintf("%d %s", s.LocalPort, s.owner())] = true
		}
		if s.LocalPort == listen && s.owner() == fmt.Sprintf("%s/%d", h.binary, h.pid) && samePath(s.BinaryPath, h.path) {
			found = true
		}
	}
	oracle := map[string]bool{}
	for _, l := range ssLines(c.t, "-tlnpH") {
		if l.pid != 0 && slices.Contains(pids, l.pid) {
			oracle[fmt.Sprintf("%d %s/%d", l.localPort, l.comm, l.pid)] = true
		}
	}
	if !found {
		return fmt.Errorf("no listener on %d held by %s/%d (%s) in %v", listen, h.binary, h.pid, h.path, v.Listening)
	}
	if !oracle[fmt.Sprintf("%d %s/%d", listen, h.binary, h.pid)] {
		return fmt.Errorf("ss does not list the helper's listener: %v", oracle)
	}
	if !mapsEqual(api, oracle) {
		return fmt.Errorf("listeners of pids %v: the API has %v, ss has %v", pids, keys(api), keys(oracle))
	}
	return nil
}

// connectionsMatchSS compares the helper's established connections with ss:
// both ends of the kept one must be there.
func (c *client) connectionsMatchSS(sensorID string, h *helper) error {
	api := map[string]bool{}
	cursor := ""
	for {
		var v struct {
			Connections []socket
			NextCursor  *string `json:"next_cursor"`
		}
		q := url.Values{"sensor_id": {sensorID}, "limit": {"1000"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		c.get("/api/v2/network/connections?"+q.Encode(), &v)
		for _, s := range v.Connections {
			if s.PID != nil && *s.PID == h.pid && s.State == "ESTABLISHED" {
				if !samePath(s.BinaryPath, h.path) {
					return fmt.Errorf("connection %v: binary path %q, want %q", s, s.BinaryPath, h.path)
				}
				api[fmt.Sprintf("%d->%d %s", s.LocalPort, s.RemotePort, s.owner())] = true
			}
		}
		if v.NextCursor == nil {
			break
		}
		cursor = *v.NextCursor
	}
	oracle := map[string]bool{}
	for _, l := range ssLines(c.t, "-tnpH") {
		if l.pid == h.pid && l.state == "ESTAB" {
			oracle[fmt.Sprintf("%d->%d %s/%d", l.localPort, l.peerPort, l.comm, l.pid)] = true
		}
	}
	owner := fmt.Sprintf("%s/%d", h.binary, h.pid)
	for _, want := range []string{fmt.Sprintf("%d->%d %s", h.conn, h.listen, owner), fmt.Sprintf("%d->%d %s", h.listen, h.conn, owner)} {
		if !oracle[want] {
			return fmt.Errorf("ss does not list %s: %v", want, keys(oracle))
		}
		if !api[want] {
			return fmt.Errorf("the API does not list %s: %v", want, keys(api))
		}
	}
	if !mapsEqual(api, oracle) {
		return fmt.Errorf("the helper's connections: the API has %v, ss has %v", keys(api), keys(oracle))
	}
	return nil
}

type event struct {
	EventID string `json:"event_id"`
	Kind    string `json:"kind"`
	SrcPort int    `json:"src_port"`
	DstPort int    `json:"dst_port"`
	PID     *int   `json:"pid"`
	Binary  string `json:"binary"`
	State   string `json:"state"`
}

// helperEvents returns the ids of the helper's events once its listen,
// connect, accept and the short connection's completed flow are all there.
func (c *client) helperEvents(sensorID string, h *helper) ([]string, error) {
	// As root the sensor's kernel probes see every connection on the host
	// (other tests' too), so the helper's events may be far from the
	// newest: walk the pages.
	var all []event
	cursor := ""
	for range 200 {
		var v struct {
			Events     []event
			NextCursor string `json:"next_cursor"`
		}
		c.get("/api/v2/events?limit=1000&kind=network_listen,network_connect,network_accept,network_flow&sensor_id="+sensorID+"&cursor="+url.QueryEscape(cursor), &v)
		all = append(all, v.Events...)
		if cursor = v.NextCursor; cursor == "" {
			break
		}
	}
	var ids []string
	seen := map[string]bool{}
	for _, e := range all {
		mine := e.PID != nil && *e.PID == h.pid && e.Binary == h.binary
		switch {
		case e.Kind == "network_listen" && mine:
		case (e.Kind == "network_connect" || e.Kind == "network_accept") && mine && e.DstPort == h.listen:
		case e.Kind == "network_flow" && mine && e.DstPort == h.listen && e.SrcPort == h.short:
		default:
			continue
		}
		seen[e.Kind] = true
		ids = append(ids, e.EventID)
	}
	for _, k := range []string{"network_listen", "network_connect", "network_accept", "network_flow"} {
		if !seen[k] {
			return nil, fmt.Errorf("no %s event of the helper among %d events", k, len(all))
		}
	}
	return ids, nil
}

func (c *client) countSQL(q string) int {
	c.t.Helper()
	code, _, b := c.do("POST", "/api/v1/sql?format=JSONEachRow", q)
	var row map[string]string
	if code != 200 || json.Unmarshal(b, &row) != nil || len(row) != 1 {
		c.t.Fatalf("SQL %s: %d %s", q, code, b)
	}
	for _, v := range row {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.t.Fatalf("SQL %s: %s", q, b)
		}
		return n
	}
	return 0
}

// checkAnalystSQL: the token may run SQL, on connections that cannot write.
func (c *client) checkAnalystSQL() {
	c.t.Helper()
	if n := c.countSQL("SELECT count() FROM sensors"); n == 0 {
		c.t.Fatal("SQL: no sensors row")
	}
	code, _, b := c.do("POST", "/api/v1/sql", "INSERT INTO events (kind) VALUES ('x')")
	if code != 400 {
		c.t.Fatalf("an INSERT through analyst SQL: %d %s, want 400", code, b)
	}
}

// summaryLists is an Errorf, not a Fatalf: the checks after it are
// independent of it and worth running.
func (c *client) summaryLists(sensorID string) {
	c.t.Helper()
	code, _, b := c.do("GET", "/api/v1/network/summary", "")
	var v struct {
		Sensors []struct {
			SensorID string `json:"sensor_id"`
		}
	}
	if code != 200 || json.Unmarshal(b, &v) != nil {
		c.t.Errorf("GET /api/v1/network/summary: %d %s", code, b)
		return
	}
	for _, s := range v.Sensors {
		if s.SensorID == sensorID {
			return
		}
	}
	c.t.Errorf("the summary does not list sensor %s: %s", sensorID, b)
}

// --- ss, the oracle ---

type ssLine struct {
	state               string
	localPort, peerPort int
	comm                string
	pid                 int
}

var ssUser = regexp.MustCompile(`users:\(\("([^"]*)",pid=(\d+)`)

func ssLines(t *testing.T, flags string) []ssLine {
	t.Helper()
	out, err := exec.Command("ss", flags).Output()
	if err != nil {
		t.Fatalf("ss %s: %v", flags, err)
	}
	var lines []ssLine
	for _, text := range strings.Split(string(out), "\n") {
		f := strings.Fields(text)
		if len(f) < 5 {
			continue
		}
		l := ssLine{state: f[0], localPort: portOf(f[3]), peerPort: portOf(f[4])}
		if m := ssUser.FindStringSubmatch(text); m != nil {
			l.comm = m[1]
			l.pid, _ = strconv.Atoi(m[2])
		}
		lines = append(lines, l)
	}
	return lines
}

func portOf(hostPort string) int {
	i := strings.LastIndexByte(hostPort, ':')
	n, _ := strconv.Atoi(hostPort[i+1:])
	return n
}

// --- the data folder ---

func readToken(t *testing.T, data, name string) string {
	t.Helper()
	path := filepath.Join(data, name)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, st.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	tok := strings.TrimSpace(string(b))
	if len(tok) < 32 {
		t.Fatalf("token %q is too short", tok)
	}
	return tok
}

func readSensorID(t *testing.T, data string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, sensorDirName, "identity.json"))
	if err != nil {
		t.Fatal(err)
	}
	var id struct {
		SensorID string `json:"sensor_id"`
	}
	if err := json.Unmarshal(b, &id); err != nil || len(id.SensorID) != 36 {
		t.Fatalf("identity.json: %v %s", err, b)
	}
	return id.SensorID
}

func spoolEntries(t *testing.T, data string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(data, sensorDirName, "spool"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if strings.HasSuffix(de.Name(), ".hb") {
			names = append(names, de.Name())
		}
	}
	return names
}

// --- small things ---

// eventually retries f every half second until it succeeds or d passes.
func eventually(ctx context.Context, t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			t.Fatalf("%s: not within %v: %v", what, d, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func samePath(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return a == b || (err1 == nil && err2 == nil && ra == rb)
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkSensorKey: this host's sensor enrolled with the enrollment secret for a key of
// its own, kept 0600 in its state folder, which ingest took (the sensor's
// rows are stored, and ingest does not take shared tokens here).
func checkSensorKey(t *testing.T, data, sensorID string) {
	t.Helper()
	name := filepath.Join(data, sensorDirName, "key.json")
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatalf("sensor key: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("sensor key file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(name)
	var k struct {
		SensorID string `json:"sensor_id"`
		Key      string `json:"key"`
	}
	if err := json.Unmarshal(b, &k); err != nil || k.SensorID != sensorID || !strings.HasPrefix(k.Key, "nvs_") {
		t.Fatalf("sensor key file %s: %v", b, err)
	}
}
