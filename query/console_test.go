package query_test

import (
	"encoding/json"
	"mime"
	"strings"
	"testing"
)

// The Console is served at / and at every path outside the API, without a
// token and with its Content-Security-Policy; the API keeps answering JSON,
// a JSON 404 for a path it does not have.
func TestConsoleServed(t *testing.T) {
	f := start(t)
	for _, p := range []string{"/", "/network/connections?sort=-pid", "/investigate", "/index.html"} {
		code, body, h := f.raw("GET", p, "", nil)
		mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if code != 200 || mt != "text/html" || !strings.Contains(strings.ToLower(string(body)), "<!doctype html") {
			t.Errorf("GET %s: %d %q, %.80q; want the Console's page", p, code, h.Get("Content-Type"), body)
		}
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", p, csp)
		}
	}
	for _, p := range []string{"/api/unknown", "/api", "/api/", "/api/v1/network/sctp", "/api/v1/network/connections/"} {
		for _, token := range []string{viewerToken, ""} {
			code, body, h := f.raw("GET", p, token, nil)
			var e map[string]any
			if code != 404 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") || json.Unmarshal(body, &e) != nil || e["error"] == nil {
				t.Errorf("GET %s (token %q): %d %q %.80q; want a JSON 404", p, token, code, h.Get("Content-Type"), body)
			}
		}
	}
	if code, body, _ := f.raw("GET", "/healthz", "", nil); code != 200 || string(body) != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	// The API still wants its token.
	if code, _, _ := f.raw("GET", "/api/v1/network/summary", "", nil); code != 401 {
		t.Errorf("summary without a token: %d", code)
	}
}
