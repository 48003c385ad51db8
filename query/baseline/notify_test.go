package baseline_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query/baseline"
)

// receiver is a webhook on loopback that records every POSTed batch and
// answers with what fail says (200 when it returns 0).
type receiver struct {
	mu      sync.Mutex
	batches [][]map[string]any
	headers []http.Header
	fail    func(n int) int // n: requests so far, this one included
	block   chan struct{}   // when set, the request numbered blockAt waits on it
	blockAt int
	reqs    int
	srv     *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{fail: func(int) int { return 0 }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs++
		n, fail, block := r.reqs, r.fail(r.reqs), r.block
		r.mu.Unlock()
		if block != nil && n == r.blockAt {
			<-block // the sender gives up first: its batch is not acknowledged
		}
		if fail != 0 {
			http.Error(w, "down for now", fail)
			return
		}
		var batch []map[string]any
		if err := json.NewDecoder(req.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.batches = append(r.batches, batch)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// ids are the event_ids received, in order, repeats included.
func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		for _, f := range b {
			out = append(out, f["event_id"].(string))
		}
	}
	return out
}

func notifyConfig() baseline.NotifyConfig {
	c := baseline.NotifyDefaults()
	c.Interval, c.MaxBackoff, c.Timeout = 20*time.Millisecond, 200*time.Millisecond, 5*time.Second
	return c
}

func (f *fixture) notify(cfg baseline.NotifyConfig) *baseline.Notify {
	f.t.Helper()
	n, err := baseline.NewNotify(cfg, f.st, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// drain calls Once until the sink is up to date, and fails the test on
// any error.
func drain(t *testing.T, n *baseline.Notify, sink string) int {
	t.Helper()
	total := 0
	for range 1000 {
		sent, err := n.Once(context.Background(), sink)
		if err != nil {
			t.Fatal(err)
		}
		if sent == 0 {
			return total
		}
		total += sent
	}
	t.Fatal("never up to date")
	return 0
}

// stored is the findings' event_ids in events, in the order they were
// written.
func (f *fixture) stored() []string {
	f.t.Helper()
	var c proto.ColStr
	var out []string
	sql := "SELECT toString(event_id) AS s FROM events FINAL WHERE startsWith(kind, 'baseline_') ORDER BY received_at, event_id"
	if err := f.st.Select(context.Background(), store.Query{SQL: sql}, proto.Results{{Name: "s", Data: &c}}, func(rows int) error {
		for i := range rows {
			out = append(out, c.Row(i))
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// finding writes a finding as the baseline job does, with its own
// received_at (the insertion time the export orders by).
func (f *fixture) finding(s uuid.UUID, kind string, when, received time.Time, binary string, port int) string {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, src_address, src_port, pid, binary, state, source)
VALUES ({id:UUID}, {s:UUID}, {k:String}, {t:DateTime64(3, 'UTC')}, {r:DateTime64(3, 'UTC')}, 'tcp', '::', {p:UInt16}, 42, {b:String}, 'tcp_listeners', 'baseline')`,
		append(ps(s, when), store.P("id", id.String()), store.P("k", kind), store.P("r", at(received)), store.P("p", fmt.Sprint(port)), store.P("b", binary))...)
	return id.String()
}

// Every finding the baseline job writes reaches the webhook once, with its
// fields, in the order it was written, and a look with nothing new sends
// nothing.
func TestExportWebhookGetsEveryFinding(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.exec("INSERT INTO sensors (sensor_id, hostname, seq) VALUES ({s:UUID}, 'web-1', 1)", store.P("s", s.String()))
	f.usual(s, t0)
	f.run(t0.Add(40 * time.Minute))
	t1 := t0.Add(2 * time.Hour)
	f.usual(s, t1)
	f.tcpListener(s, t1, "redis", 6379)
	f.flow(s, t1, "outbound", "curl", "10.0.0.1", "2.2.2.2", 443)
	f.event(s, t1, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "evil.example.net")
	f.run(t1.Add(10 * time.Minute))
	want := f.stored()
	if len(want) != 4 { // redis's listener, curl's destination and peer 2.2.2.2, its domain example.net
		t.Fatalf("the baseline job wrote %d findings, want 4", len(want))
	}

	r := newReceiver(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.WebhookTokenFile, cfg.WebhookHeaders, cfg.Batch = r.srv.URL+"/hook", tok, []string{"X-Tenant: blue"}, 2
	n := f.notify(cfg)
	if got := drain(t, n, "webhook"); got != len(want) {
		t.Errorf("sent %d findings, want %d", got, len(want))
	}
	if got := r.ids(); !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v (in the order written)", got, want)
	}
	if len(r.batches) != (len(want)+1)/2 {
		t.Errorf("%d POSTs for %d findings in batches of 2", len(r.batches), len(want))
	}
	if h := r.headers[0]; h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Tenant") != "blue" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	var listener map[string]any
	for _, b := range r.batches {
		for _, x := range b {
			if x["kind"] == "baseline_new_listener" {
				listener = x
			}
		}
	}
	wantFields := map[string]any{"sensor_id": s.String(), "hostname": "web-1", "binary": "redis", "src_port": 6379.0, "protocol": "tcp",
		"state": "tcp_listeners", "source": "baseline", "time": t1.Format("2006-01-02T15:04:05.000Z"), "src_address": "::", "pid": 42.0}
	for k, v := range wantFields {
		if listener[k] != v {
			t.Errorf("listener finding %s = %v, want %v (all: %v)", k, listener[k], v, listener)
		}
	}
	// Nothing new: nothing sent; a new finding: it alone.
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a look with nothing new sent %d", got)
	}
	late := f.finding(s, kListener, t1, time.Now(), "sshd", 2222)
	drain(t, n, "webhook")
	if got := r.ids(); len(got) != len(want)+1 || got[len(got)-1] != late {
		t.Errorf("after one more finding received %v", got)
	}
}

// A receiver failing for a while gets everything once it recovers, in
// order and once each: Run retries the same batch, never skipping one.
func TestExportRetriesUntilTheReceiverRecovers(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	var want []string
	for i := range 7 {
		want = append(want, f.finding(s, kListener, t0.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Millisecond), "app", 9000+i))
	}
	r := newReceiver(t)
	r.fail = func(n int) int {
		if n <= 5 || n == 7 { // down, then up for one batch, then down once more
			return http.StatusServiceUnavailable
		}
		return 0
	}
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Batch = r.srv.URL, 3
	n := f.notify(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for len(r.ids()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few more looks: nothing more arrives
	cancel()
	<-done
	if got := r.ids(); !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v", got, want)
	}
	var b strings.Builder
	n.Metrics().WritePrometheus(&b)
	for _, m := range []string{`netview_baseline_notify_failures_total{sink="webhook"} 6`, `netview_baseline_notify_delivered_total{sink="webhook"} 7`} {
		if !strings.Contains(b.String(), m+"\n") {
			t.Errorf("metrics lack %s:\n%s", m, b.String())
		}
	}
}

// A stop in the middle of a send, and a new job on the same store (a
// restart), lose nothing, and repeat only the batch that was in flight.
func TestExportRestartLosesNothing(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	var want []string
	for i := range 7 {
		want = append(want, f.finding(s, kPeer, t0, base.Add(time.Duration(i)*time.Millisecond), "app", i))
	}
	r := newReceiver(t)
	r.block, r.blockAt = make(chan struct{}), 2
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Batch = r.srv.URL, 2
	first := f.notify(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); first.Run(ctx) }()
	for {
		r.mu.Lock()
		inFlight := r.reqs >= 2
		r.mu.Unlock()
		if inFlight {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the service stops while the second batch is unanswered
	<-done
	close(r.block) // the receiver then takes it, though the sender never heard
	for r.reqs2() < 2 {
		time.Sleep(5 * time.Millisecond)
	}

	second := f.notify(cfg)
	drain(t, second, "webhook")
	got := r.ids()
	// The in-flight batch (want[2:4]) may arrive twice; nothing else does.
	wantSeq := append(append(slices.Clone(want[:4]), want[2:4]...), want[4:]...)
	if !slices.Equal(got, wantSeq) {
		t.Errorf("received %v\nwant     %v", got, wantSeq)
	}
}

func (r *receiver) reqs2() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// A finding written late is not skipped: one about an old time written
// after newer ones goes by its insertion, and one whose insert became
// visible only after a newer one was delivered (a replica's clock behind)
// is caught by the overlap.
func TestExportFindingsWrittenLate(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := newReceiver(t)
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Overlap = r.srv.URL, time.Minute
	n := f.notify(cfg)
	a := f.finding(s, kListener, t0.Add(time.Hour), now.Add(-10*time.Second), "a", 1)
	drain(t, n, "webhook")
	// About a time long before a, written after it.
	old := f.finding(s, kListener, t0.Add(-6*time.Hour), now.Add(-5*time.Second), "old", 2)
	// Written with a clock 30 s behind: before a's insertion, but seen after.
	skewed := f.finding(s, kListener, t0, now.Add(-40*time.Second), "skewed", 3)
	drain(t, n, "webhook")
	if got, want := r.ids(), []string{a, skewed, old}; !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v", got, want)
	}
	// One whose insertion lies before the overlap is beyond it: the limit
	// the docs state.
	f.finding(s, kListener, t0, now.Add(-5*time.Minute), "too-late", 4)
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a finding older than the overlap was sent: %d", got)
	}
	// A finding the baseline job wrote twice (a retried run: same event_id,
	// a later received_at) is not sent again.
	f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, binary, source)
SELECT event_id, sensor_id, kind, time, now64(3, 'UTC'), binary, source FROM events WHERE event_id = {id:UUID}`, store.P("id", old))
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a finding written again was sent again: %d", got)
	}
}

// The first look of a new sink starts Backfill back, and a restart before
// anything was delivered starts there again.
func TestExportFirstLookStartsAtBackfill(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	now := time.Now().UTC()
	f.finding(s, kListener, t0, now.Add(-3*time.Hour), "before", 1)
	in := f.finding(s, kListener, t0, now.Add(-90*time.Minute), "within", 2)
	r := newReceiver(t)
	r.fail = func(int) int { return http.StatusBadGateway }
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Backfill, cfg.Overlap = r.srv.URL, 2*time.Hour, 0
	n := f.notify(cfg)
	if _, err := n.Once(context.Background(), "webhook"); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("a 502 gave %v", err)
	}
	// Restarted an hour later, with the receiver up.
	r.mu.Lock()
	r.fail = func(int) int { return 0 }
	r.mu.Unlock()
	later := f.notify(cfg)
	later.Now = func() time.Time { return now.Add(time.Hour) }
	drain(t, later, "webhook")
	if got := r.ids(); !slices.Equal(got, []string{in}) {
		t.Errorf("received %v, want only %s", got, in)
	}
}

// syslogReceiver accepts TCP connections on loopback and hands each
// message of its framing to msgs.
type syslogReceiver struct {
	ln    net.Listener
	msgs  chan string
	mu    sync.Mutex
	conns []net.Conn
}

func newSyslogReceiver(t *testing.T, addr string, octetCounting bool) *syslogReceiver {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // a port just freed by the receiver before
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &syslogReceiver{ln: ln, msgs: make(chan string, 100)}
	t.Cleanup(r.drop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go r.read(c, octetCounting)
		}
	}()
	return r
}

func (r *syslogReceiver) read(c net.Conn, octetCounting bool) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		if octetCounting {
			lenText, err := br.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
			if err != nil || size <= 0 || strings.HasPrefix(lenText, "0") {
				r.msgs <- "BAD FRAME " + lenText
				return
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			r.msgs <- string(b)
			continue
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		r.msgs <- strings.TrimSuffix(line, "\n")
	}
}

// drop closes the listener and every connection: a receiver that stops.
func (r *syslogReceiver) drop() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func (r *syslogReceiver) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no syslog message")
		return ""
	}
}

// rfc5424 is one message parsed by parse5424.
type rfc5424 struct {
	pri                                     int
	timestamp, host, app, procID, msgID, sd string
	params                                  map[string]string
	msg                                     string
}

var (
	printUSASCII = `[!-~]`
	headerRE     = regexp.MustCompile(`^<([0-9]{1,3})>1 (\S+) (` + printUSASCII + `{1,255}) (` + printUSASCII + `{1,48}) (` + printUSASCII + `{1,128}) (` + printUSASCII + `{1,32}) `)
	timeRE       = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$`)
	sdNameRE     = regexp.MustCompile(`^[!#-<>-\\^-~]{1,32}`) // PRINTUSASCII but '=', SP, ']', '"'
)

// parse5424 parses msg strictly as RFC 5424 (section 6): the header, then
// NILVALUE or SD-ELEMENTs, then an optional SP and MSG.
func parse5424(msg string) (rfc5424, error) {
	var m rfc5424
	h := headerRE.FindStringSubmatch(msg)
	if h == nil {
		return m, fmt.Errorf("header: %q", msg)
	}
	m.pri, _ = strconv.Atoi(h[1])
	if m.pri > 191 || (len(h[1]) > 1 && h[1][0] == '0') {
		return m, fmt.Errorf("PRI %s", h[1])
	}
	m.timestamp, m.host, m.app, m.procID, m.msgID = h[2], h[3], h[4], h[5], h[6]
	if m.timestamp != "-" && !timeRE.MatchString(m.timestamp) {
		return m, fmt.Errorf("TIMESTAMP %q", m.timestamp)
	}
	rest := msg[len(h[0]):]
	m.params = map[string]string{}
	if strings.HasPrefix(rest, "-") {
		rest = rest[1:]
	} else {
		if !strings.HasPrefix(rest, "[") {
			return m, fmt.Errorf("STRUCTURED-DATA: %q", rest)
		}
		for strings.HasPrefix(rest, "[") {
			rest = rest[1:]
			id := sdNameRE.FindString(rest)
			if id == "" {
				return m, fmt.Errorf("SD-ID at %q", rest)
			}
			m.sd, rest = id, rest[len(id):]
			for strings.HasPrefix(rest, " ") {
				rest = rest[1:]
				name := sdNameRE.FindString(rest)
				if name == "" || !strings.HasPrefix(rest[len(name):], `="`) {
					return m, fmt.Errorf("SD-PARAM at %q", rest)
				}
				rest = rest[len(name)+2:]
				var v strings.Builder
				for {
					if rest == "" {
						return m, errors.New("unterminated PARAM-VALUE")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' && rest != "" && strings.ContainsRune(`"\]`, rune(rest[0])) {
						c, rest = rest[0], rest[1:]
					} else if c == ']' {
						return m, errors.New("unescaped ] in PARAM-VALUE")
					}
					v.WriteByte(c)
				}
				if _, dup := m.params[name]; dup {
					return m, fmt.Errorf("SD-PARAM %s twice", name)
				}
				m.params[name] = v.String()
			}
			if !strings.HasPrefix(rest, "]") {
				return m, fmt.Errorf("SD-ELEMENT end at %q", rest)
			}
			rest = rest[1:]
		}
	}
	if rest != "" {
		if !strings.HasPrefix(rest, " ") {
			return m, fmt.Errorf("no SP before MSG: %q", rest)
		}
		m.msg = rest[1:]
	}
	return m, nil
}

// Findings reach a TCP syslog receiver as RFC 5424 messages, octet-counted
// (RFC 6587) or one a line, with the finding as structured data and as a
// JSON MSG; a receiver that drops the connection gets the next batch on a
// new one.
func TestExportSyslogRFC5424(t *testing.T) {
	for _, framing := range []string{"octet-counting", "lf"} {
		t.Run(framing, func(t *testing.T) {
			f := newFixture(t, testConfig())
			s := uuid.New()
			f.exec("INSERT INTO sensors (sensor_id, hostname, seq) VALUES ({s:UUID}, 'db 2', 1)", store.P("s", s.String()))
			now := time.Now().UTC()
			id := f.finding(s, kListener, t0, now.Add(-time.Second), `we"ird]bin\`, 5432)
			rcv := newSyslogReceiver(t, "127.0.0.1:0", framing == "octet-counting")
			cfg := notifyConfig()
			cfg.SyslogAddr, cfg.SyslogFraming, cfg.SyslogFacility = rcv.ln.Addr().String(), framing, 4 // auth
			n := f.notify(cfg)
			drain(t, n, "syslog")
			m, err := parse5424(rcv.next(t))
			if err != nil {
				t.Fatal(err)
			}
			if m.pri != 4*8+5 || m.timestamp != t0.Format("2006-01-02T15:04:05.000Z") || m.host != "db_2" || m.app != "netview" || m.procID != "-" || m.msgID != kListener || m.sd != "netview@32473" {
				t.Errorf("header %+v", m)
			}
			for k, v := range map[string]string{"event_id": id, "sensor_id": s.String(), "binary": `we"ird]bin\`, "sport": "5432", "protocol": "tcp", "state": "tcp_listeners", "pid": "42"} {
				if m.params[k] != v {
					t.Errorf("SD %s = %q, want %q (all %v)", k, m.params[k], v, m.params)
				}
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(m.msg), &body); err != nil || body["event_id"] != id || body["binary"] != `we"ird]bin\` {
				t.Errorf("MSG %q: %v", m.msg, err)
			}
			// The receiver restarts: the next batch goes out on a new
			// connection.
			rcv.drop()
			rcv2 := newSyslogReceiver(t, rcv.ln.Addr().String(), framing == "octet-counting")
			second := f.finding(s, kPeer, t0, now, "b", 1)
			drain(t, n, "syslog")
			m2, err := parse5424(rcv2.next(t))
			if err != nil || m2.params["event_id"] != second {
				t.Errorf("second message %+v: %v", m2, err)
			}
		})
	}
}

// The parser refuses what RFC 5424 refuses, so the test above can fail.
func TestParse5424IsStrict(t *testing.T) {
	good := `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event`
	if m, err := parse5424(good); err != nil || m.params["eventID"] != "1011" || m.msg != "An application event" {
		t.Errorf("RFC 5424's example: %+v %v", m, err)
	}
	for _, bad := range []string{
		`<165> 2003-10-11T22:14:15.003Z host app - ID47 - msg`,       // no version
		`<192>1 2003-10-11T22:14:15.003Z host app - ID47 - msg`,      // PRI too big
		`<165>1 2003-10-11 22:14:15 host app - ID47 - msg`,           // TIMESTAMP
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b]`,      // SD-PARAM without value
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="]"]`,  // unescaped ]
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="1"`,   // unterminated element
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="1"]x`, // no SP before MSG
		`<165>1 2003-10-11T22:14:15.003Z host app - this-msgid-is-longer-than-thirty-two - m`,
	} {
		if _, err := parse5424(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestNotifyConfigValidate(t *testing.T) {
	f := func(edit func(*baseline.NotifyConfig), want string) {
		t.Helper()
		c := baseline.NotifyDefaults()
		c.WebhookURL = "https://hooks.example.com/x"
		edit(&c)
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("refused: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one naming %s", err, want)
		}
	}
	f(func(*baseline.NotifyConfig) {}, "")
	f(func(c *baseline.NotifyConfig) { c.WebhookURL = "ftp://x/y" }, "--baseline.webhook.url")
	f(func(c *baseline.NotifyConfig) { c.WebhookURL = "http:///nohost" }, "--baseline.webhook.url")
	f(func(c *baseline.NotifyConfig) { c.WebhookHeaders = []string{"no colon"} }, "--baseline.webhook.header")
	f(func(c *baseline.NotifyConfig) { c.SyslogAddr = "nohost" }, "--baseline.syslog.addr")
	f(func(c *baseline.NotifyConfig) { c.SyslogFraming = "rfc3164" }, "--baseline.syslog.framing")
	f(func(c *baseline.NotifyConfig) { c.Batch = 0 }, "--baseline.notify.batch")
	f(func(c *baseline.NotifyConfig) { c.Interval = 0 }, "--baseline.notify.interval")
	f(func(c *baseline.NotifyConfig) { c.MaxBackoff = time.Millisecond }, "--baseline.notify.max-backoff")
	f(func(c *baseline.NotifyConfig) { c.WebhookURL, c.Batch = "", 0 }, "") // nothing to send: nothing checked
}
