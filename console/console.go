// Package console is Netview's web UI: static pages embedded in the binary
// (no front-end build step) that read the query API with the user's token.
package console

import (
	"embed"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/valyala/fasthttp"
)

//go:embed web
var files embed.FS

var web, _ = fs.Sub(files, "web")

// The pages load nothing from elsewhere and run no inline script, so the
// policy can be strict: a stolen token cannot be sent off by injected code.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// Serve answers GET and HEAD for the Console's files. Any path that is not
// a file gets index.html: views are chosen by the URL's fragment and query,
// so a bookmarked link always lands on the app.
func Serve(r *fasthttp.RequestCtx) {
	if m := string(r.Method()); m != "GET" && m != "HEAD" {
		r.Response.Header.Set("Allow", "GET, HEAD")
		r.Error("use GET", fasthttp.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(path.Clean("/"+string(r.Path())), "/")
	b, err := fs.ReadFile(web, name)
	if err != nil || name == "" {
		name = "index.html"
		b, _ = fs.ReadFile(web, name)
	}
	h := &r.Response.Header
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Files change with the binary; revalidating costs one small request.
	h.Set("Cache-Control", "no-cache")
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	r.SetContentType(ct)
	r.SetBody(b)
}
