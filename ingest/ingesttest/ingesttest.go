// Package ingesttest runs a real ingest node on loopback over the real
// embedded engine, for the tests of every package that needs data written
// the way production writes it.
package ingesttest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

// Token is the static secret every test node accepts: an enrollment
// secret, and (Config sets SharedTokens) a heartbeat token for any sensor.
const Token = "test-token-0123456789"

// Config is a node configuration sized for tests: small limits, short
// batch age so acknowledgements come quickly, no rate limits, and the
// static Token accepted on heartbeats (SharedTokens), so tests that are not
// about access post without enrolling. Tests of access turn SharedTokens
// off and enroll.
func Config() ingest.Config {
	return ingest.Config{
		MaxBodyBytes: 1 << 20, MaxDecodedBytes: 8 << 20, MaxRatio: 40,
		BatchRows: 10_000, BatchAge: 20 * time.Millisecond, MaxPending: 100_000, AckTimeout: 10 * time.Second, TimeWindow: 24 * time.Hour,
		Tokens: auth.TokenFlags{List: Token}, SharedTokens: true, CredsRefresh: 100 * time.Millisecond,
	}
}

// Node is an ingest server on a loopback port.
type Node struct {
	t     testing.TB
	URL   string // http://127.0.0.1:PORT
	Store store.Store
	Srv   *ingest.Server
	Stop  func() // shuts the node down gracefully; also run at cleanup
}

// Start serves ingest on a free loopback port over st (a fresh embedded
// database when nil), with the schema migrated.
func Start(t testing.TB, cfg ingest.Config, st store.Store) *Node {
	t.Helper()
	return StartOn(t, "127.0.0.1:0", cfg, st)
}

// StartOn is Start on a given address.
func StartOn(t testing.TB, addr string, cfg ingest.Config, st store.Store) *Node {
	t.Helper()
	if st == nil {
		st = storetest.Embedded(t).Store
	}
	if _, err := schema.Migrate(context.Background(), st, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	srv, err := ingest.New(cfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http://"
	var ln net.Listener
	if cfg.TLS.CertFile != "" {
		scheme, cfg.Addr = "https://", addr
		ln, err = cfg.Listen()
	} else {
		ln, err = net.Listen("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return Serve(t, srv, ln, st, scheme)
}

// Serve serves srv on ln (which it closes), for tests that need a listener
// of their own (one that counts bytes, say).
func Serve(t testing.TB, srv *ingest.Server, ln net.Listener, st store.Store, scheme string) *Node {
	t.Helper()
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx, hs); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}
	t.Cleanup(stop)
	return &Node{t: t, URL: scheme + ln.Addr().String(), Store: st, Srv: srv, Stop: stop}
}

// Enroll asks the node for a key for sensor with the enrollment secret, as
// a sensor does; it returns the status, the key (on 200) and the answer.
func (n *Node) Enroll(secret string, sensor uuid.UUID, hostname string) (int, string, string) {
	n.t.Helper()
	body, _ := json.Marshal(ingest.EnrollRequest{SensorID: sensor.String(), Hostname: hostname})
	req, err := http.NewRequest("POST", n.URL+"/v1/enroll", bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a ingest.EnrollAnswer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &a); err != nil || a.SensorID != sensor.String() {
			n.t.Fatalf("enroll answer %s: %v", b, err)
		}
	}
	return resp.StatusCode, a.Key, string(b)
}

// Post sends a raw body (zstd unless headers say otherwise; a header set to
// "" is removed) and returns the status, body and Retry-After.
func (n *Node) Post(body []byte, headers map[string]string) (int, string, string) {
	n.t.Helper()
	req, err := http.NewRequest("POST", n.URL+"/v1/heartbeat", bytes.NewReader(body))
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+Token)
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

// Send posts a heartbeat and requires a 200.
func (n *Node) Send(h *heartbeat.Heartbeat) {
	n.t.Helper()
	body, err := heartbeat.Encode(h)
	if err != nil {
		n.t.Fatal(err)
	}
	if code, msg, _ := n.Post(body, nil); code != 200 {
		n.t.Fatalf("heartbeat %d: %d %s", h.Seq, code, msg)
	}
}

// Count runs a query whose one UInt64 column is named n, within a minute.
func Count(t testing.TB, st store.Store, q string, params ...store.Param) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var c proto.ColUInt64
	var got uint64
	if err := st.Select(ctx, store.Query{SQL: q, Params: params}, proto.Results{{Name: "n", Data: &c}},
		func(rows int) error {
			if rows > 0 {
				got = c.Row(0)
			}
			return nil
		}); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return got
}

// PostTo sends a zstd heartbeat body to url with a bearer token, as a
// sensor does, for tests whose nodes run as other processes; it returns
// the status and the answer.
func PostTo(ctx context.Context, c *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Encoding", "zstd")
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, b, nil
}

// Send makes one request with a bearer token and returns its status and
// body; a request that gets no answer fails t.
func Send(t testing.TB, method, url, token string, body io.Reader) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
