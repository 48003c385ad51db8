package ingest_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql"
)

const token = "test-token-0123456789"

// node is an ingest server on a loopback port over a fresh database.
type node struct {
	t     *testing.T
	url   string
	store store.Store
	srv   *ingest.Server
	stop  func()
}

func testConfig() ingest.Config {
	return ingest.Config{
		MaxBodyBytes: 1 << 20, MaxDecodedBytes: 8 << 20, MaxRatio: 40,
		BatchRows: 10_000, BatchAge: 20 * time.Millisecond, MaxPending: 100_000, AckTimeout: 10 * time.Second,
		Tokens: auth.TokenFlags{List: token},
	}
}

// startNode serves ingest on st (a fresh embedded database when nil).
func startNode(t *testing.T, cfg ingest.Config, st store.Store) *node {
	t.Helper()
	if st == nil {
		st = storetest.Embedded(t).Store
	}
	if _, err := sql.Migrate(context.Background(), st, sql.Options{}); err != nil {
		t.Fatal(err)
	}
	srv, err := ingest.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx, hs); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	}
	t.Cleanup(stop)
	return &node{t: t, url: "http://" + ln.Addr().String(), store: st, srv: srv, stop: stop}
}

// post sends a raw body and returns the status, body and Retry-After.
func (n *node) post(body []byte, headers map[string]string) (int, string, string) {
	n.t.Helper()
	req, err := http.NewRequest("POST", n.url+"/v1/heartbeat", bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "zstd")
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Retry-After")
}

// send posts a heartbeat and requires a 200.
func (n *node) send(h *heartbeat.Heartbeat) {
	n.t.Helper()
	body, err := heartbeat.Encode(h)
	if err != nil {
		n.t.Fatal(err)
	}
	if code, msg, _ := n.post(body, nil); code != 200 {
		n.t.Fatalf("heartbeat %d: %d %s", h.Seq, code, msg)
	}
}

// count runs a query returning one UInt64 column named n.
func count(t *testing.T, st store.Store, q string, params ...store.Param) uint64 {
	t.Helper()
	var c proto.ColUInt64
	var got uint64
	if err := st.Select(context.Background(), store.Query{SQL: q, Params: params}, proto.Results{{Name: "n", Data: &c}},
		func(int) error { got = c.Row(0); return nil }); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return got
}
