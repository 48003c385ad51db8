package ingest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

// faultyStore is the real embedded store with faults injected in front of
// it: refused writes (storage down) or writes held at a gate (storage slow).
type faultyStore struct {
	store.Store
	down atomic.Bool
	mu   sync.Mutex
	gate chan struct{}
}

func (f *faultyStore) check() error {
	if f.down.Load() {
		return fmt.Errorf("%w: injected outage", store.ErrUnavailable)
	}
	return nil
}

// hold makes writes wait until release, which the end of t calls at the
// latest, so a failing test does not leave writers hung.
func (f *faultyStore) hold(t testing.TB) {
	f.mu.Lock()
	f.gate = make(chan struct{})
	f.mu.Unlock()
	t.Cleanup(f.release)
}

// release lets held writes go on; once held, once released.
func (f *faultyStore) release() {
	f.mu.Lock()
	if f.gate != nil {
		close(f.gate)
		f.gate = nil
	}
	f.mu.Unlock()
}

func (f *faultyStore) Insert(ctx context.Context, table string, cols proto.Input) error {
	f.mu.Lock()
	g := f.gate
	f.mu.Unlock()
	if g != nil {
		<-g
	}
	if err := f.check(); err != nil {
		return err
	}
	return f.Store.Insert(ctx, table, cols)
}

func (f *faultyStore) Exec(ctx context.Context, q store.Query) error {
	if err := f.check(); err != nil {
		return err
	}
	return f.Store.Exec(ctx, q)
}

// While storage is down, heartbeats get a fast 503 with Retry-After and
// nothing is acknowledged; once it is back they are taken again.
func TestStorageDownAnswers503ThenRecovers(t *testing.T) {
	fs := &faultyStore{Store: storetest.Embedded(t).Store}
	n := startNode(t, testConfig(), fs)
	g := heartbeat.NewGenerator(21, heartbeat.Shape{Conns: 20})
	n.send(g.Next(time.Now()))

	fs.down.Store(true)
	h := g.Next(time.Now())
	body, _ := heartbeat.Encode(h)
	code, msg, retry := n.post(body, nil) // the write that finds storage down
	// The engine's (here the fault's) text stays in the log: the answer
	// says what to do.
	if code != 503 || retry == "" || strings.Contains(msg, "injected outage") || !strings.Contains(msg, "Retry-After") {
		t.Fatalf("first heartbeat during outage: %d %q Retry-After=%q", code, msg, retry)
	}
	start := time.Now()
	code, msg, retry = n.post(body, nil) // refused before decoding
	if code != 503 || retry == "" {
		t.Fatalf("second heartbeat during outage: %d %q", code, msg)
	}
	t.Logf("503 during outage answered in %v", time.Since(start))
	if status := get(t, n.url+"/healthz"); status != 503 {
		t.Errorf("healthz during outage = %d, want 503", status)
	}

	fs.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, _ = n.post(body, nil); code == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 200 {
		t.Fatalf("after recovery: %d", code)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats FINAL"); got != 2 {
		t.Fatalf("heartbeats = %d, want 2", got)
	}
}

// When more rows wait than the node holds, it answers 503 with a short
// Retry-After instead of growing without bound.
func TestQueueFullAnswers503(t *testing.T) {
	fs := &faultyStore{Store: storetest.Embedded(t).Store}
	cfg := testConfig()
	cfg.BatchRows, cfg.MaxPending = 100, 400 // room for three 152-row heartbeats, not four
	n := startNode(t, cfg, fs)
	fs.hold(t)
	g := heartbeat.NewGenerator(22, heartbeat.Shape{Conns: 150})
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for i := range 3 {
		body, _ := heartbeat.Encode(g.Next(time.Now().Add(time.Duration(i) * time.Second)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, _ := n.post(body, nil)
			codes <- c
		}()
	}
	// Wait until the writer holds the three heartbeats (152 rows each).
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(metrics(t, n.url), "netview_ingest_queue_rows 456\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("queue never filled:\n%s", metrics(t, n.url))
		}
		time.Sleep(10 * time.Millisecond)
	}
	body, _ := heartbeat.Encode(g.Next(time.Now().Add(time.Minute)))
	code, msg, retry := n.post(body, nil)
	if code != 503 || retry != "1" || !strings.Contains(msg, "queue full") {
		t.Errorf("over the queue: %d %q Retry-After=%q, want 503 queue full, Retry-After 1", code, msg, retry)
	}
	fs.release()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("held heartbeat answered %d after release", c)
		}
	}
	if !strings.Contains(metrics(t, n.url), `netview_ingest_heartbeats_rejected_total{reason="queue_full"} 1`) {
		t.Errorf("queue_full rejection not counted:\n%s", metrics(t, n.url))
	}
}

// Shutdown writes every heartbeat it accepted: senders waiting on a batch
// that has not aged yet still get their 200, and the rows are there.
func TestShutdownWritesWhatWasAccepted(t *testing.T) {
	cfg := testConfig()
	cfg.BatchAge = time.Hour // only shutdown will write the batch
	n := startNode(t, cfg, nil)
	var wg sync.WaitGroup
	codes := make(chan int, 5)
	for i := range 5 { // 14 rows each: 10 connections, 2 events, heartbeats, sensors
		g := heartbeat.NewGenerator(uint64(30+i), heartbeat.Shape{Conns: 10, Events: 2})
		body, _ := heartbeat.Encode(g.Next(time.Now()))
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, _ := n.post(body, nil)
			codes <- c
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(metrics(t, n.url), "netview_ingest_queue_rows 70\n"); {
		if time.Now().After(deadline) {
			t.Fatalf("heartbeats never reached the writer:\n%s", metrics(t, n.url))
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.stop()
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Errorf("accepted heartbeat answered %d at shutdown", c)
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats"); got != 5 {
		t.Fatalf("heartbeats after shutdown = %d, want 5", got)
	}
}

func TestMetricsCountWhatHappened(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(41, heartbeat.Shape{Conns: 7, Listeners: 2})
	n.send(g.Next(time.Now()))
	n.post([]byte("junk"), nil)
	n.post([]byte("junk"), map[string]string{"Authorization": ""})
	m := metrics(t, n.url)
	for _, want := range []string{
		"netview_ingest_heartbeats_accepted_total 1",
		`netview_ingest_heartbeats_rejected_total{reason="bad_encoding"} 1`,
		`netview_ingest_heartbeats_rejected_total{reason="unauthorized"} 1`,
		`netview_ingest_rows_written_total{table="tcp_connections"} 7`,
		`netview_ingest_rows_written_total{table="tcp_listeners"} 2`,
		"netview_ingest_batch_rows_count 1",
		"netview_ingest_flush_seconds_bucket",
		"netview_ingest_queue_rows 0",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	// Each node counts its own: a second one in this process, on the same
	// store, has seen nothing.
	other := metrics(t, startNode(t, testConfig(), n.store).url)
	if !strings.Contains(other, "netview_ingest_heartbeats_accepted_total 0\n") || strings.Contains(other, "netview_ingest_heartbeats_rejected_total{") {
		t.Errorf("a second node's metrics count the first's heartbeats:\n%s", other)
	}
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func metrics(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
