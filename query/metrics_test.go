package query_test

import (
	"strings"
	"testing"

	"github.com/netview/netview/heartbeat"
)

// /metrics, with no token, counts each answer under its endpoint and status
// class, times it, and labels what is no endpoint by kind, never by the
// client's path.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	f := start(t)
	f.fleet(1, 1, heartbeat.Shape{Conns: 2})
	const summary = "/api/v1/network/summary"
	for range 3 {
		if code := f.get(summary, nil); code != 200 {
			t.Fatalf("GET %s: %d", summary, code)
		}
	}
	if code, _, _ := f.raw("GET", summary, "", nil); code != 401 {
		t.Fatalf("GET %s without a token: %d, want 401", summary, code)
	}
	if code, _, _ := f.raw("GET", "/api/v1/no-such-view-1234", viewerToken, nil); code != 404 {
		t.Fatalf("unknown path: %d, want 404", code)
	}
	if code, _, _ := f.raw("GET", "/network/connections", "", nil); code != 200 {
		t.Fatalf("Console page: %d, want 200", code)
	}
	f.faults.Down.Store(true)
	code := f.get(summary, nil)
	f.faults.Down.Store(false)
	if code != 503 {
		t.Fatalf("GET %s with storage down: %d, want 503", summary, code)
	}

	status, body, h := f.raw("GET", "/metrics", "", nil)
	m := string(body)
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET /metrics: %d %q\n%s", status, h.Get("Content-Type"), m)
	}
	for _, want := range []string{
		`netview_query_requests_total{route="/api/v1/network/summary",status="2xx"} 3` + "\n",
		`netview_query_requests_total{route="/api/v1/network/summary",status="4xx"} 1` + "\n",
		`netview_query_requests_total{route="/api/v1/network/summary",status="5xx"} 1` + "\n",
		`netview_query_requests_total{route="unknown",status="4xx"} 1` + "\n",
		`netview_query_requests_total{route="console",status="2xx"} 1` + "\n",
		`netview_query_request_duration_seconds_count{route="/api/v1/network/summary"} 5` + "\n",
		`netview_query_request_duration_seconds_bucket{route="/api/v1/network/summary",le="+Inf"} 5` + "\n",
		"# TYPE netview_query_request_duration_seconds histogram\n",
		"# TYPE go_goroutines gauge\n",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q:\n%s", want, m)
		}
	}
	if strings.Contains(m, "no-such-view") || strings.Contains(m, `route="/network/connections"`) {
		t.Errorf("a raw path became a label:\n%s", m)
	}

	// The scrape itself is counted at the next one.
	if _, body, _ := f.raw("GET", "/metrics", "", nil); !strings.Contains(string(body), `netview_query_requests_total{route="/metrics",status="2xx"} 1`+"\n") {
		t.Errorf("the first scrape is not counted:\n%s", body)
	}
}
