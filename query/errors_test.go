package query_test

import (
	"context"
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
)

var endpoints = []string{
	"/api/v1/network/connections", "/api/v1/network/listening", "/api/v1/network/udp", "/api/v1/network/flows",
	"/api/v1/network/summary", "/api/v1/events",
	"/api/v2/network/connections", "/api/v2/network/listening", "/api/v2/network/udp", "/api/v2/network/flows", "/api/v2/events",
}

// Bad input is a 400 whose answer names the parameter at fault, never a
// silently ignored filter.
func TestBadParameters(t *testing.T) {
	f := start(t)
	f.fleet(1, 1, heartbeat.Shape{Conns: 3, Events: 3})
	for _, ep := range endpoints {
		f.badRequest(ep+"?sensor=x", "sensor")              // misspelt
		f.badRequest(ep+"?sensorid="+sensorA, "sensorid")   // misspelt, valid value
		f.badRequest(ep+"?Sensor_ID="+sensorA, "Sensor_ID") // names are case-sensitive
		f.badRequest(ep+"?foo=1&bar=2", "foo")              // the first unknown one
		if ep != "/api/v1/network/summary" {                // the summary takes at= only
			f.badRequest(ep+"?sensor_id=not-a-uuid", "sensor_id")
			f.badRequest(ep+"?sensor_id=12345", "sensor_id")
			f.badRequest(ep+"?sensor_id="+sensorA+"x", "sensor_id")
		} else {
			f.badRequest(ep+"?sensor_id="+sensorA, "sensor_id")
		}
	}
	// A parameter given twice would be read once and the other silently
	// dropped.
	f.badRequest("/api/v2/events?kind=network_connect&kind=dns_query", "kind")
	f.badRequest("/api/v1/network/connections?sensor_id="+sensorA+"&sensor_id="+sensorB, "sensor_id")
	f.badRequest("/api/v1/network/connections?page=1&page=2", "page")
	for _, ep := range []string{"/api/v1/network/listening", "/api/v1/network/udp", "/api/v1/network/flows"} {
		f.badRequest(ep+"?page=0", "page") // page numbers, not cursors
		f.badRequest(ep+"?page_size=501", "page_size")
		f.badRequest(ep+"?page=1&page=2", "page")
		f.badRequest(ep+"?limit=1", "limit")
		f.badRequest(ep+"?cursor=x", "cursor")
	}
	f.badRequest("/api/v1/network/connections?limit=5", "limit")
	f.badRequest("/api/v1/network/connections?cursor=x", "cursor")
	f.badRequest("/api/v2/network/connections?page=2", "page")
	for _, ep := range []string{"/api/v1/events", "/api/v2/events"} {
		for _, c := range []struct{ q, param string }{
			{"kind=bogus", "kind"},
			{"kind=network_connect,bogus", "kind"},
			{"kind=network_connect,", "kind"},
			{"kind=NETWORK_CONNECT", "kind"},
			{"since=yesterday", "since"},
			{"since=2026-11-25", "since"},
			{"since=1764000000", "since"},
			{"until=2026-13-01T00:00:00Z", "until"},
			{"until=now", "until"},
			{"since=2026-11-25T10:00:00Z&until=2026-11-25T10:00:00Z", "since"}, // empty window
			{"since=2026-11-25T11:00:00Z&until=2026-11-25T10:00:00Z", "since"}, // backwards
			{"since=2020-01-01T00:00:00Z&until=2026-01-01T00:00:00Z", "since"}, // over 92 days
			{"until=2000-01-01T00:00:00Z&since=2000-01-01T00:00:01Z", "since"},
			{"limit=0", "limit"},
			{"limit=1001", "limit"},
			{"limit=ten", "limit"},
			{"cursor=zzz", "cursor"},
		} {
			f.badRequest(ep+"?"+c.q, c.param)
		}
	}
	// The good forms of the same parameters are taken.
	for _, p := range []string{
		"/api/v1/events?kind=network_connect,dns_query&since=2026-11-25T10:00:00Z&until=2026-11-25T10:30:00.500Z&limit=1000",
		"/api/v2/events?since=2026-11-25T10:00:00%2B02:00&until=2026-11-25T10:00:00.001%2B02:00",
		"/api/v2/network/connections?sensor_id=" + strings.ToUpper(sensorA) + "&limit=1000",
		"/api/v1/network/connections?sensor_id=" + sensorA + "&page=1&page_size=500",
	} {
		var out map[string]any
		if code := f.get(p, &out); code != 200 {
			t.Errorf("GET %s: %d %v", p, code, out)
		}
	}
}

// Storage that cannot be reached is a 503 with Retry-After on every
// endpoint (and /healthz), not a 500; the service recovers with it.
func TestStorageUnavailable(t *testing.T) {
	f := start(t)
	f.fleet(1, 1, heartbeat.Shape{Conns: 3, Events: 3})
	f.faults.Down.Store(true)
	for _, ep := range append(endpoints, "/healthz") {
		code, body, h := f.raw("GET", ep, viewerToken, nil)
		if code != 503 || (ep != "/healthz" && h.Get("Retry-After") == "") || !strings.Contains(string(body), "storage unavailable") {
			t.Errorf("GET %s with storage down: %d %q Retry-After=%q", ep, code, body, h.Get("Retry-After"))
		}
	}
	f.faults.Down.Store(false)
	for _, ep := range append(endpoints, "/healthz") {
		if code, body, _ := f.raw("GET", ep, viewerToken, nil); code != 200 {
			t.Errorf("GET %s after the outage: %d %s", ep, code, body)
		}
	}
}

// Every endpoint wants a known bearer token; /healthz wants none. Direct
// SQL is for analysts only, and absent when not configured.
func TestAuth(t *testing.T) {
	ran := ""
	runner := func(ctx context.Context, q, format string, w *fasthttp.RequestCtx) (int, error) {
		ran = q
		w.SetContentType("text/plain")
		w.SetBodyString("ran " + format)
		return 1, nil
	}
	f := startWith(t, options{sql: runner})
	for _, ep := range endpoints {
		for _, tok := range []string{"", "wrong-token", viewerToken + "x", strings.ToUpper(viewerToken)} {
			code, _, h := f.raw("GET", ep, tok, nil)
			if code != 401 || h.Get("WWW-Authenticate") == "" {
				t.Errorf("GET %s with token %q: %d, want 401 with WWW-Authenticate", ep, tok, code)
			}
		}
		for _, tok := range []string{viewerToken, analystToken} {
			if code, body, _ := f.raw("GET", ep, tok, nil); code != 200 {
				t.Errorf("GET %s: %d %s", ep, code, body)
			}
		}
	}
	// Not a bearer token at all.
	for _, auth := range []string{viewerToken, "Basic " + viewerToken, "bearer " + viewerToken, "Bearer"} {
		req := "/api/v2/events"
		code, _ := f.rawAuth("GET", req, auth)
		if code != 401 {
			t.Errorf("Authorization %q: %d", auth, code)
		}
	}
	if code, body, _ := f.raw("GET", "/healthz", "", nil); code != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz without a token: %d %q", code, body)
	}

	const stmt = "SELECT 1"
	if code, _, _ := f.raw("POST", "/api/v1/sql", viewerToken, []byte(stmt)); code != 403 {
		t.Errorf("viewer POST /api/v1/sql: %d, want 403", code)
	}
	if ran != "" {
		t.Errorf("a viewer's SQL ran")
	}
	for _, tok := range []string{"", "wrong-token"} {
		if code, _, _ := f.raw("POST", "/api/v1/sql", tok, []byte(stmt)); code != 401 {
			t.Errorf("POST /api/v1/sql with %q: %d, want 401", tok, code)
		}
	}
	if code, body, _ := f.raw("POST", "/api/v1/sql?format=CSV", analystToken, []byte(stmt)); code != 200 || string(body) != "ran CSV" || ran != stmt {
		t.Errorf("analyst POST /api/v1/sql: %d %q (ran %q)", code, body, ran)
	}
	if code, _, _ := f.raw("GET", "/api/v1/sql", analystToken, nil); code != 405 {
		t.Errorf("GET /api/v1/sql: %d, want 405", code)
	}
	if code, _, _ := f.raw("POST", "/api/v1/network/connections", viewerToken, nil); code != 405 {
		t.Errorf("POST to a view: %d, want 405", code)
	}

	// Without an SQL runner there is no such endpoint, for anyone.
	g := start(t)
	for _, tok := range []string{viewerToken, analystToken, ""} {
		if code, _, _ := g.raw("POST", "/api/v1/sql", tok, []byte(stmt)); code != 404 {
			t.Errorf("POST /api/v1/sql unconfigured, token %q: %d, want 404", tok, code)
		}
	}
	if code, _, _ := g.raw("GET", "/api/v1/nope", viewerToken, nil); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
}
