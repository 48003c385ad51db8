package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor/spool"
)

const token = "sensor-token-0123456789"

var (
	t0    = time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	small = heartbeat.Shape{Conns: 5, Events: 2, CompletedFlows: 1}
)

// request is one POST the fake ingest saw.
type request struct {
	at     time.Time
	seq    uint64
	status int
	snap   int // snapshot rows in the body
	events int
}

// ingest is a real HTTP handler standing in for the ingest tier: it checks
// the transport contract, decodes each body and answers what decide says.
type ingest struct {
	t      *testing.T
	decide func(i int, h *heartbeat.Heartbeat) (status int, retryAfter string)

	mu   sync.Mutex
	reqs []request
}

func (in *ingest) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("Content-Encoding") != "zstd" {
		in.t.Errorf("bad request: %s auth %q encoding %q", r.Method, r.Header.Get("Authorization"), r.Header.Get("Content-Encoding"))
	}
	h := decodeBody(in.t, body)
	in.mu.Lock()
	status, retry := in.decide(len(in.reqs), h)
	in.reqs = append(in.reqs, request{at: time.Now(), seq: h.Seq, status: status, snap: h.SnapshotRows(), events: len(h.Events) + len(h.CompletedFlows)})
	in.mu.Unlock()
	if retry != "" {
		w.Header().Set("Retry-After", retry)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		fmt.Fprintf(w, `{"heartbeat_id":"%s","seq":%d,"rows":1}`, h.HeartbeatID, h.Seq)
	} else {
		fmt.Fprintf(w, `{"error":"status %d for seq %d"}`, status, h.Seq)
	}
}

func (in *ingest) requests() []request {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.reqs)
}

// sent returns how often seq was posted, whatever the answer.
func (in *ingest) sent(seq uint64) int {
	n := 0
	for _, r := range in.requests() {
		if r.seq == seq {
			n++
		}
	}
	return n
}

// acked returns how often each seq was answered 200.
func (in *ingest) acked() map[uint64]int {
	m := map[uint64]int{}
	for _, r := range in.requests() {
		if r.status == http.StatusOK {
			m[r.seq]++
		}
	}
	return m
}

// checkOrder fails if a seq was sent before every lower one was answered
// 200 or refused for good.
func (in *ingest) checkOrder(t *testing.T) {
	t.Helper()
	final := func(status int) bool {
		return status == http.StatusOK || status == http.StatusBadRequest || status == http.StatusRequestEntityTooLarge ||
			status == http.StatusUnprocessableEntity
	}
	reqs := in.requests()
	for i := 1; i < len(reqs); i++ {
		prev, cur := reqs[i-1], reqs[i]
		if cur.seq < prev.seq || cur.seq > prev.seq && !final(prev.status) {
			t.Fatalf("request %d: seq %d after seq %d answered %d", i, cur.seq, prev.seq, prev.status)
		}
	}
}

// serveIngest starts an ingest answering what decide says and returns it
// with the URL to post to; the server closes when the test ends.
func serveIngest(t *testing.T, decide func(i int, h *heartbeat.Heartbeat) (int, string)) (*ingest, string) {
	t.Helper()
	in := &ingest{t: t, decide: decide}
	srv := httptest.NewServer(in)
	t.Cleanup(srv.Close)
	return in, srv.URL
}

func openSpool(t *testing.T, dir string) *spool.Spool {
	t.Helper()
	s, err := spool.Open(dir, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func fill(t *testing.T, s *spool.Spool, g *heartbeat.Generator, n int) {
	t.Helper()
	for range n {
		if err := s.Put(g.Next(t0.Add(time.Duration(g.Seq()) * 15 * time.Second))); err != nil {
			t.Fatal(err)
		}
	}
}

func seqRange(from, to uint64) []uint64 {
	var r []uint64
	for i := from; i <= to; i++ {
		r = append(r, i)
	}
	return r
}

var zstdDec, _ = zstd.NewReader(nil)

// decodeBody reads a posted body the way ingest does: zstd, then JSON.
func decodeBody(t *testing.T, body []byte) *heartbeat.Heartbeat {
	t.Helper()
	h := new(heartbeat.Heartbeat)
	doc, err := zstdDec.DecodeAll(body, nil)
	if err == nil {
		err = json.Unmarshal(doc, h)
	}
	if err != nil {
		t.Fatalf("body: %v", err)
	}
	return h
}

// rejected is where the spool in dir keeps a refused heartbeat's file
// with ext (".hb", or ".txt" for the reason): rejected/<20-digit seq><ext>.
func rejected(dir string, seq uint64, ext string) string {
	return filepath.Join(dir, spool.RejectedDir, fmt.Sprintf("%020d%s", seq, ext))
}

func fastClient(url string) *Client {
	return &Client{URL: url, Token: token, MinBackoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond, AuthBackoff: 50 * time.Millisecond}
}

// run starts a Sender and returns a stop function that waits for Run.
func run(t *testing.T, s *spool.Spool, c *Client) (*Sender, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d := &Sender{Spool: s, Client: c, Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("Run did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return d, stop
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func wantAckedOnce(t *testing.T, in *ingest, seqs []uint64) {
	t.Helper()
	acked := in.acked()
	for _, seq := range seqs {
		if acked[seq] != 1 {
			t.Errorf("seq %d acknowledged %d times", seq, acked[seq])
		}
	}
	if len(acked) != len(seqs) {
		t.Errorf("acknowledged %d seqs, want %d", len(acked), len(seqs))
	}
	in.checkOrder(t)
}

// Ingest answers 503 with Retry-After: 1 twice, then takes everything:
// the spooled heartbeats, and those put meanwhile, arrive once each in
// seq order, and the sender waited out Retry-After.
func TestDeliversInOrderAfter503(t *testing.T) {
	in, url := serveIngest(t, func(i int, h *heartbeat.Heartbeat) (int, string) {
		if i < 2 {
			return http.StatusServiceUnavailable, "1"
		}
		return http.StatusOK, ""
	})
	s := openSpool(t, t.TempDir())
	g := heartbeat.NewGenerator(10, small)
	fill(t, s, g, 10)
	d, stop := run(t, s, fastClient(url))
	time.Sleep(100 * time.Millisecond)
	fill(t, s, g, 5) // the sensor keeps going during the outage
	waitFor(t, "15 acknowledgements", func() bool { return len(in.acked()) == 15 })
	// A heartbeat put into an empty spool wakes the sender.
	fill(t, s, g, 1)
	waitFor(t, "16 deliveries", func() bool { return d.Stats().Sent == 16 })
	stop()

	wantAckedOnce(t, in, seqRange(1, 16))
	reqs := in.requests()
	for i := 1; i <= 2; i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < time.Second {
			t.Errorf("retry %d came %v after a 503 with Retry-After: 1", i, gap)
		}
	}
	if len(reqs) != 18 {
		t.Errorf("%d requests, want 16 + 2 retries", len(reqs))
	}
	st := d.Stats()
	if st.Sent != 16 || st.Retries != 2 || st.Rejected != 0 || st.LastSuccess.IsZero() || !strings.Contains(st.LastError, "503") {
		t.Errorf("stats %+v", st)
	}
	if s.Len() != 0 {
		t.Errorf("%d heartbeats left in the spool", s.Len())
	}
}

// Ingest is not even listening for a while (connections refused), then
// comes back on the same address.
func TestDeliversAfterConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	s := openSpool(t, t.TempDir())
	fill(t, s, heartbeat.NewGenerator(11, small), 8)
	d, stop := run(t, s, fastClient("http://"+addr+"/v1/heartbeat"))
	waitFor(t, "retries", func() bool { return d.Stats().Retries >= 4 })
	if st := d.Stats(); st.Sent != 0 || !strings.Contains(st.LastError, "refused") {
		t.Errorf("while down: %+v", st)
	}

	in := &ingest{t: t, decide: func(int, *heartbeat.Heartbeat) (int, string) { return http.StatusOK, "" }}
	srv := httptest.NewUnstartedServer(in)
	for i := 0; ; i++ {
		if srv.Listener, err = net.Listen("tcp", addr); err == nil {
			break
		}
		if i == 50 {
			t.Fatalf("cannot listen on %s again: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	srv.Start()
	defer srv.Close()
	waitFor(t, "8 deliveries", func() bool { return d.Stats().Sent == 8 })
	stop()
	wantAckedOnce(t, in, seqRange(1, 8))
	if st := d.Stats(); st.Sent != 8 {
		t.Errorf("stats %+v", st)
	}
}

// A 400 sets the heartbeat aside and the next one goes; 401 is retried
// after the auth backoff.
func TestRejectedIsSetAsideAndUnauthorizedRetried(t *testing.T) {
	in, url := serveIngest(t, func(i int, h *heartbeat.Heartbeat) (int, string) {
		switch {
		case i < 2:
			return http.StatusUnauthorized, ""
		case h.Seq == 3:
			return http.StatusBadRequest, ""
		}
		return http.StatusOK, ""
	})
	dir := t.TempDir()
	s := openSpool(t, dir)
	fill(t, s, heartbeat.NewGenerator(12, small), 5)
	c := fastClient(url)
	d, stop := run(t, s, c)
	waitFor(t, "4 deliveries and a rejection", func() bool { st := d.Stats(); return st.Sent == 4 && st.Rejected == 1 })
	stop()

	wantAckedOnce(t, in, []uint64{1, 2, 4, 5})
	reqs := in.requests()
	if reqs[0].status != http.StatusUnauthorized || reqs[2].status != http.StatusOK {
		t.Fatalf("requests %+v", reqs[:3])
	}
	for i := 1; i <= 2; i++ {
		if gap := reqs[i].at.Sub(reqs[i-1].at); gap < c.AuthBackoff {
			t.Errorf("retry after 401 came after %v, want at least %v", gap, c.AuthBackoff)
		}
	}
	if n := in.sent(3); n != 1 {
		t.Errorf("rejected seq 3 sent %d times", n)
	}
	reason, err := os.ReadFile(rejected(dir, 3, ".txt"))
	if err != nil || !strings.Contains(string(reason), "status 400 for seq 3") {
		t.Errorf("reason file: %q %v", reason, err)
	}
	if _, err := os.Stat(rejected(dir, 3, ".hb")); err != nil {
		t.Errorf("rejected heartbeat not kept: %v", err)
	}
	if st := d.Stats(); st.Sent != 4 || st.Rejected != 1 || st.Retries != 2 {
		t.Errorf("stats %+v", st)
	}
	if dr := s.Dropped(); dr != (spool.Dropped{Rejected: 1}) {
		t.Errorf("Dropped %+v", dr)
	}
}

// A 422 (storage refused this heartbeat's rows, the rest of its batch was
// stored) sets the heartbeat aside like a 400: it is sent once, not retried
// forever, and the next one goes.
func TestRefusedByStorageIsSetAside(t *testing.T) {
	in, url := serveIngest(t, func(i int, h *heartbeat.Heartbeat) (int, string) {
		if h.Seq == 2 {
			return http.StatusUnprocessableEntity, ""
		}
		return http.StatusOK, ""
	})
	dir := t.TempDir()
	s := openSpool(t, dir)
	fill(t, s, heartbeat.NewGenerator(15, small), 4)
	d, stop := run(t, s, fastClient(url))
	waitFor(t, "3 deliveries and a rejection", func() bool { st := d.Stats(); return st.Sent == 3 && st.Rejected == 1 })
	stop()
	wantAckedOnce(t, in, []uint64{1, 3, 4})
	if n := in.sent(2); n != 1 {
		t.Errorf("refused seq 2 sent %d times", n)
	}
	if _, err := os.Stat(rejected(dir, 2, ".hb")); err != nil {
		t.Errorf("refused heartbeat not set aside: %v", err)
	}
}

// A 413 first costs the heartbeat its snapshot sections; only if it is
// still too large is it set aside.
func TestTooLargeIsSentWithoutSnapshotsFirst(t *testing.T) {
	in, url := serveIngest(t, func(i int, h *heartbeat.Heartbeat) (int, string) {
		if h.SnapshotRows() > 0 || h.Seq == 2 {
			return http.StatusRequestEntityTooLarge, ""
		}
		return http.StatusOK, ""
	})
	s := openSpool(t, t.TempDir())
	fill(t, s, heartbeat.NewGenerator(13, small), 3)
	d, stop := run(t, s, fastClient(url))
	waitFor(t, "2 deliveries and a rejection", func() bool { st := d.Stats(); return st.Sent == 2 && st.Rejected == 1 })
	stop()

	wantAckedOnce(t, in, []uint64{1, 3})
	for _, r := range in.requests() {
		if r.status == http.StatusOK && (r.snap != 0 || r.events != small.Events+small.CompletedFlows) {
			t.Errorf("seq %d arrived with %d snapshot rows and %d events", r.seq, r.snap, r.events)
		}
	}
	if st := d.Stats(); st.Stripped != 3 || st.Rejected != 1 || st.Sent != 2 {
		t.Errorf("stats %+v", st)
	}
	if dr := s.Dropped(); dr.Rejected != 1 || dr.SnapshotRows != 3*uint64(small.Conns) {
		t.Errorf("Dropped %+v", dr)
	}
}

func TestSendClassifiesAnswers(t *testing.T) {
	var got struct {
		sync.Mutex
		body []byte
		hdr  http.Header
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Lock()
		got.body, got.hdr = b, r.Header.Clone()
		got.Unlock()
		if ra := r.URL.Query().Get("retry"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		var status int
		fmt.Sscan(r.URL.Query().Get("status"), &status)
		w.WriteHeader(status)
		if status == http.StatusBadGateway {
			io.WriteString(w, "<html>bad gateway</html>")
		} else {
			fmt.Fprintf(w, `{"error":"answer %d"}`, status)
		}
	}))
	defer srv.Close()
	body, _ := heartbeat.Encode(heartbeat.NewGenerator(14, small).Next(t0))
	c := &Client{Token: token, AuthBackoff: 7 * time.Second}

	f := func(query string, rejected bool, after time.Duration, msg string) {
		t.Helper()
		c.URL = srv.URL + "/v1/heartbeat?" + query
		err := c.Send(context.Background(), body)
		var re *RetryError
		var se *StatusError
		switch {
		case query == "status=200":
			if err != nil {
				t.Errorf("%s: %v", query, err)
			}
			return
		case rejected:
			if !errors.Is(err, ErrRejected) || errors.As(err, &re) {
				t.Errorf("%s: %v, want ErrRejected", query, err)
			}
		case !errors.As(err, &re) || errors.Is(err, ErrRejected):
			t.Errorf("%s: %v, want a RetryError", query, err)
		case re.After != after:
			t.Errorf("%s: After %v, want %v", query, re.After, after)
		}
		if !errors.As(err, &se) || se.Message != msg {
			t.Errorf("%s: %v, want the message %q", query, err, msg)
		}
	}
	f("status=200", false, 0, "")
	got.Lock()
	if !bytes.Equal(got.body, body) || got.hdr.Get("Authorization") != "Bearer "+token || got.hdr.Get("Content-Encoding") != "zstd" || got.hdr.Get("Content-Type") != "application/json" {
		t.Errorf("request: %d bytes, headers %v", len(got.body), got.hdr)
	}
	got.Unlock()
	f("status=400", true, 0, "answer 400")
	f("status=413", true, 0, "answer 413")
	f("status=415", true, 0, "answer 415")
	f("status=422", true, 0, "answer 422")
	f("status=401", false, 7*time.Second, "answer 401")
	f("status=403", false, 7*time.Second, "answer 403")
	f("status=429&retry=3", false, 3*time.Second, "answer 429")
	f("status=503&retry=5", false, 5*time.Second, "answer 503")
	f("status=503", false, 0, "answer 503")
	f("status=503&retry=86400", false, maxRetryAfter, "answer 503")
	f("status=500", false, 0, "answer 500")
	f("status=404", false, 0, "answer 404")
	f("status=502", false, 0, "<html>bad gateway</html>")

	c.URL = "http://" + srv.Listener.Addr().String() + "/v1/heartbeat"
	srv.Close()
	var re *RetryError
	if err := c.Send(context.Background(), body); !errors.As(err, &re) {
		t.Errorf("server gone: %v, want a RetryError", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Send(ctx, body); !errors.Is(err, context.Canceled) || errors.As(err, &re) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 0, 0, 0, time.UTC)
	f := func(v string, want time.Duration) {
		t.Helper()
		if got := ParseRetryAfter(v, now); got != want {
			t.Errorf("Retry-After %q: %v, want %v", v, got, want)
		}
	}
	f("", 0)
	f("1", time.Second)
	f(" 5 ", 5*time.Second)
	f("0", 0)
	f("-3", 0)
	f("soon", 0)
	f("99999999999999", maxRetryAfter)
	f(now.Add(90*time.Second).Format(http.TimeFormat), 90*time.Second)
	f(now.Add(-time.Minute).Format(http.TimeFormat), 0)
	f(now.Add(48*time.Hour).Format(http.TimeFormat), maxRetryAfter)
}

// The backoff ceiling doubles from MinBackoff up to MaxBackoff and each
// wait is spread uniformly below it.
func TestBackoffGrowsWithFullJitter(t *testing.T) {
	lo, hi := 500*time.Millisecond, 60*time.Second
	r1, r2 := rand.New(rand.NewPCG(1, 2)), rand.New(rand.NewPCG(1, 2))
	prevMean := time.Duration(0)
	for attempt := range 12 {
		ceil := min(lo<<attempt, hi)
		var sum time.Duration
		distinct := map[time.Duration]bool{}
		const n = 2000
		for range n {
			d := Backoff(attempt, lo, hi, r1)
			if d != Backoff(attempt, lo, hi, r2) {
				t.Fatal("not deterministic for a seeded source")
			}
			if d < 0 || d > ceil {
				t.Fatalf("attempt %d: %v outside [0, %v]", attempt, d, ceil)
			}
			sum += d
			distinct[d] = true
		}
		mean := sum / n
		if mean < ceil*45/100 || mean > ceil*55/100 {
			t.Errorf("attempt %d: mean %v, want about %v", attempt, mean, ceil/2)
		}
		if len(distinct) < n*9/10 {
			t.Errorf("attempt %d: only %d distinct waits in %d: no jitter", attempt, len(distinct), n)
		}
		if ceil < hi && mean <= prevMean {
			t.Errorf("attempt %d: mean %v did not grow from %v", attempt, mean, prevMean)
		}
		prevMean = mean
	}
	if d := Backoff(1000, lo, hi, r1); d > hi {
		t.Errorf("attempt 1000: %v over the maximum", d)
	}
}
