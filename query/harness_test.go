package query_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/heartbeat"
	"github.com/netview/netview/query"
)

const (
	viewerToken  = "viewer-token-0123456789"
	analystToken = "analyst-token-0123456789"
)

// fixture is a real ingest node and a real query service over one store.
type fixture struct {
	t      *testing.T
	ingest *ingesttest.Node
	url    string
}

func start(t *testing.T) *fixture {
	t.Helper()
	n := ingesttest.Start(t, ingesttest.Config(), nil)
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		MaxListRows: 10_000, Timeout: 30 * time.Second}
	srv, err := query.New(cfg, n.Store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown() })
	return &fixture{t: t, ingest: n, url: "http://" + ln.Addr().String()}
}

// get fetches path with the viewer token and decodes the JSON answer.
func (f *fixture) get(path string, out any) int {
	f.t.Helper()
	return f.do("GET", path, viewerToken, out)
}

func (f *fixture) do(method, path, token string, out any) int {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			f.t.Fatalf("%s %s: %d, body not JSON: %v\n%s", method, path, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode
}

// fleet sends beats heartbeats from each of sensors generated sensors.
func (f *fixture) fleet(sensors, beats int, shape heartbeat.Shape) []*heartbeat.Generator {
	f.t.Helper()
	gens := make([]*heartbeat.Generator, sensors)
	for i := range gens {
		gens[i] = heartbeat.NewGenerator(uint64(1000+i), shape)
	}
	base := time.Now().Add(-time.Duration(beats) * 15 * time.Second)
	for k := range beats {
		for _, g := range gens {
			f.ingest.Send(g.Next(base.Add(time.Duration(k) * 15 * time.Second)))
		}
	}
	return gens
}
