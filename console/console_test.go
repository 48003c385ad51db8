package console_test

import (
	"strings"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/console"
)

func serve(method, path string) *fasthttp.Response {
	var r fasthttp.RequestCtx
	r.Request.Header.SetMethod(method)
	r.Request.SetRequestURI(path)
	console.Serve(&r)
	resp := &fasthttp.Response{}
	r.Response.CopyTo(resp)
	return resp
}

func TestServe(t *testing.T) {
	f := func(path, wantType, wantIn string) {
		t.Helper()
		r := serve("GET", path)
		if r.StatusCode() != 200 || !strings.HasPrefix(string(r.Header.ContentType()), wantType) || !strings.Contains(string(r.Body()), wantIn) {
			t.Errorf("GET %s: %d %s %.60q", path, r.StatusCode(), r.Header.ContentType(), r.Body())
		}
		if !strings.Contains(string(r.Header.Peek("Content-Security-Policy")), "script-src 'self'") {
			t.Errorf("GET %s: no strict CSP", path)
		}
	}
	f("/", "text/html", `<script type="module" src="/app.mjs">`)
	f("/app.mjs", "text/javascript", "import * as L from './lib.mjs'")
	f("/lib.mjs", "text/javascript", "export function parseRoute")
	f("/app.css", "text/css", ":root")
	// Views are client-side routes: a bookmarked view gets the app.
	f("/network/connections", "text/html", "<title>Netview</title>")
	f("/investigate", "text/html", "<title>Netview</title>")
	// Paths never escape the embedded files.
	f("/../../etc/passwd", "text/html", "<title>Netview</title>")
	if r := serve("POST", "/"); r.StatusCode() != 405 {
		t.Errorf("POST /: %d, want 405", r.StatusCode())
	}
}
