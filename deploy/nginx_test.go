package deploy

// nginx: deploy/nginx/nginx.conf, read by a small parser of nginx's
// configuration syntax (no Go parser of it is kept in go.mod), and, when
// nginx is installed, nginx -t.

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/netview/netview/query"
)

type directive struct {
	name  string
	args  []string
	block []*directive // nil for a simple directive
	line  int
}

// parseNginx reads nginx configuration syntax: directives with arguments
// ending in ";" or a "{ ... }" block, "#" comments, quoted strings.
func parseNginx(src string) ([]*directive, error) {
	type token struct {
		text   string
		quoted bool
		line   int
	}
	var toks []token
	line := 1
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
					switch src[j] {
					case 'n':
						b.WriteByte('\n')
						continue
					case 't':
						b.WriteByte('\t')
						continue
					}
				}
				if src[j] == '\n' {
					line++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{text: b.String(), quoted: true, line: line})
			i = j + 1
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};#", rune(src[j])) {
				j++
			}
			toks = append(toks, token{text: src[i:j], line: line})
			i = j
		}
	}
	var parse func(depth int) ([]*directive, error)
	pos := 0
	parse = func(depth int) ([]*directive, error) {
		var out []*directive
		for pos < len(toks) {
			t := toks[pos]
			if !t.quoted && t.text == "}" {
				if depth == 0 {
					return nil, fmt.Errorf("line %d: unexpected }", t.line)
				}
				pos++
				return out, nil
			}
			if !t.quoted && (t.text == "{" || t.text == ";") {
				return nil, fmt.Errorf("line %d: unexpected %s", t.line, t.text)
			}
			d := &directive{name: t.text, line: t.line}
			pos++
			for {
				if pos >= len(toks) {
					return nil, fmt.Errorf("line %d: %s: missing ; or {", d.line, d.name)
				}
				a := toks[pos]
				pos++
				if !a.quoted && a.text == ";" {
					break
				}
				if !a.quoted && a.text == "{" {
					b, err := parse(depth + 1)
					if err != nil {
						return nil, err
					}
					if b == nil {
						b = []*directive{}
					}
					d.block = b
					break
				}
				if !a.quoted && a.text == "}" {
					return nil, fmt.Errorf("line %d: %s: missing ;", d.line, d.name)
				}
				d.args = append(d.args, a.text)
			}
			out = append(out, d)
		}
		if depth > 0 {
			return nil, errors.New("missing }")
		}
		return out, nil
	}
	return parse(0)
}

// find returns the directives named name among ds.
func find(ds []*directive, name string) []*directive {
	var out []*directive
	for _, d := range ds {
		if d.name == name {
			out = append(out, d)
		}
	}
	return out
}

// nginxSize converts an nginx size (4m, 512k, 100) to bytes.
func nginxSize(s string) (int64, error) {
	mult := int64(1)
	switch strings.ToLower(s[len(s)-1:]) {
	case "k":
		mult, s = 1<<10, s[:len(s)-1]
	case "m":
		mult, s = 1<<20, s[:len(s)-1]
	case "g":
		mult, s = 1<<30, s[:len(s)-1]
	}
	var n int64
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n * mult, nil
}

// nginxDuration converts an nginx time (45s, 2m, 1h, 500ms, 30) to a duration.
func nginxDuration(s string) (time.Duration, error) {
	if strings.TrimLeft(s, "0123456789") == "" {
		s += "s"
	}
	return time.ParseDuration(s)
}

func checkNginx(b *bundle, p *problems) {
	https := find(b.nginx, "http")
	if len(https) != 1 || https[0].block == nil {
		p.add("nginx.conf: want one http block")
		return
	}
	http := https[0].block
	r := b.roles(&problems{})
	upstreams := map[string][]*directive{}
	for _, u := range find(http, "upstream") {
		if len(u.args) != 1 {
			p.add("nginx.conf line %d: upstream without a name", u.line)
			continue
		}
		upstreams[u.args[0]] = find(u.block, "server")
		for _, s := range find(u.block, "server") {
			opts := strings.Join(s.args[1:], " ")
			if !strings.Contains(opts, "max_fails=") || !strings.Contains(opts, "fail_timeout=") {
				p.add("nginx.conf upstream %s: server %s has no passive health check (max_fails, fail_timeout)", u.args[0], s.args[0])
			}
		}
	}
	// Which upstream serves which tier, from the Compose services.
	tier := func(prog program, names []string) (string, *directive) {
		want := map[string]bool{}
		addrFlag := strings.TrimPrefix(string(prog), "netview-") + ".addr"
		for _, n := range names {
			port := addrPort(flagDefault(prog, addrFlag))
			if fs, err := b.composeFlags(n, prog); err == nil {
				port = addrPort(val(fs, addrFlag))
			}
			want[net.JoinHostPort(n, port)] = true
		}
		for name, servers := range upstreams {
			got := map[string]bool{}
			for _, s := range servers {
				got[s.args[0]] = true
			}
			if fmt.Sprint(sortedKeys(got)) == fmt.Sprint(sortedKeys(want)) {
				for _, s := range find(http, "server") {
					if proxiesTo(s.block, name) {
						return name, s
					}
				}
				p.add("nginx.conf: no server block proxies to upstream %s", name)
				return name, nil
			}
		}
		p.add("nginx.conf: no upstream lists exactly the %s nodes of compose.yaml %v", prog, sortedKeys(want))
		return "", nil
	}
	_, ing := tier(progIngest, r.ingest)
	_, qry := tier(progQuery, r.query)

	ingestFlags := flagSet(progIngest)
	if len(r.ingest) > 0 {
		if fs, err := b.composeFlags(r.ingest[0], progIngest); err == nil {
			ingestFlags = fs
		}
	}
	queryFlags := flagSet(progQuery)
	if len(r.query) > 0 {
		if fs, err := b.composeFlags(r.query[0], progQuery); err == nil {
			queryFlags = fs
		}
	}
	b.checkNginxSecurity(p, r, http, ing, qry)
	if ing != nil {
		maxBody, _ := strconv.ParseInt(val(ingestFlags, "ingest.max-body"), 10, 64)
		if got := nginxSizeOf(ing.block, http); got != maxBody {
			p.add("nginx.conf: ingest client_max_body_size is %d bytes, the nodes' --ingest.max-body %d", got, maxBody)
		}
		if got, need := nginxTimeout(ing.block, http), durFlag(ingestFlags, "ingest.ack-timeout"); got <= need {
			p.add("nginx.conf: ingest proxy_read_timeout %v is not above --ingest.ack-timeout %v", got, need)
		}
		checkListenPublished(b, p, r.nginx, ing, "ingest")
	}
	if qry != nil {
		limit := int64((&query.Server{}).HTTPServer().MaxRequestBodySize)
		if got := nginxSizeOf(qry.block, http); got != limit {
			p.add("nginx.conf: query client_max_body_size is %d bytes, netview-query reads bodies up to %d", got, limit)
		}
		if got, need := nginxTimeout(qry.block, http), durFlag(queryFlags, "query.timeout")+5*time.Second; got <= need {
			p.add("nginx.conf: query proxy_read_timeout %v is not above --query.timeout plus 5 s (%v)", got, need)
		}
		checkListenPublished(b, p, r.nginx, qry, "query")
	}
	// Failing nodes are skipped: errors, timeouts and 503 count as failures.
	nu := strings.Join(directiveArgs(http, "proxy_next_upstream"), " ")
	for _, s := range []*directive{ing, qry} {
		if s != nil {
			if v := directiveArgs(s.block, "proxy_next_upstream"); v != nil {
				nu = strings.Join(v, " ")
			}
		}
	}
	for _, w := range []string{"error", "timeout", "http_503"} {
		if !strings.Contains(nu, w) {
			p.add("nginx.conf: proxy_next_upstream %q lacks %s: a failing node would keep its share", nu, w)
		}
	}
	// Compose's health check of nginx requests a location that answers.
	if r.nginx != "" {
		u := healthURL(b.compose.Services[r.nginx])
		ok := false
		for _, s := range find(http, "server") {
			if u == nil {
				break
			}
			for _, l := range find(s.block, "listen") {
				if len(l.args) > 0 && addrPort("x:"+lastColon(l.args[0])) == u.Port() && hasReturn200(s.block, u.Path) {
					ok = true
				}
			}
		}
		if u == nil || !ok {
			p.add("nginx.conf: Compose's health check %v of nginx requests no location that answers 200", u)
		}
	}
	checkNginxT(b, p)
}

func lastColon(s string) string {
	if i := strings.LastIndex(s, ":"); i >= 0 {
		return s[i+1:]
	}
	return s
}

func proxiesTo(ds []*directive, upstream string) bool {
	for _, d := range ds {
		if d.name == "proxy_pass" && len(d.args) == 1 && strings.TrimSuffix(strings.TrimPrefix(d.args[0], "http://"), "/") == upstream {
			return true
		}
		if d.block != nil && proxiesTo(d.block, upstream) {
			return true
		}
	}
	return false
}

func hasReturn200(ds []*directive, path string) bool {
	for _, l := range find(ds, "location") {
		if len(l.args) == 2 && l.args[0] == "=" && l.args[1] == path {
			for _, r := range find(l.block, "return") {
				if len(r.args) > 0 && r.args[0] == "200" {
					return true
				}
			}
		}
	}
	return false
}

func directiveArgs(ds []*directive, name string) []string {
	if d := find(ds, name); len(d) > 0 {
		return d[len(d)-1].args
	}
	return nil
}

// nginxSizeOf is client_max_body_size in a server block (or http, or
// nginx's default of 1m).
func nginxSizeOf(server, http []*directive) int64 {
	v := directiveArgs(server, "client_max_body_size")
	if v == nil {
		v = directiveArgs(http, "client_max_body_size")
	}
	if len(v) != 1 {
		return 1 << 20
	}
	n, err := nginxSize(v[0])
	if err != nil {
		return -1
	}
	return n
}

// nginxTimeout is proxy_read_timeout in a server block (or http, or 60 s).
func nginxTimeout(server, http []*directive) time.Duration {
	v := directiveArgs(server, "proxy_read_timeout")
	if v == nil {
		v = directiveArgs(http, "proxy_read_timeout")
	}
	if len(v) != 1 {
		return time.Minute
	}
	d, err := nginxDuration(v[0])
	if err != nil {
		return 0
	}
	return d
}

func checkListenPublished(b *bundle, p *problems, nginxSvc string, server *directive, what string) {
	ls := find(server.block, "listen")
	if len(ls) == 0 {
		p.add("nginx.conf: the %s server listens nowhere", what)
		return
	}
	for _, l := range ls {
		port := lastColon(l.args[0])
		if nginxSvc != "" && !publishes(b.compose.Services[nginxSvc], port) {
			p.add("nginx.conf: the %s server listens on %s, which compose.yaml does not publish", what, port)
		}
	}
}

// checkNginxT runs nginx -t on the file when nginx is installed, with the
// Compose host names made resolvable and the Compose secrets (the TLS
// certificate and key) at the files init-secrets.sh made.
func checkNginxT(b *bundle, p *problems) {
	bin, src, ok := toolAndFile(b, "nginx", "nginx/nginx.conf")
	if !ok {
		return
	}
	work, err := os.MkdirTemp("", "nginx-t")
	if err != nil {
		return
	}
	defer os.RemoveAll(work)
	text := string(src)
	for name := range b.compose.Services {
		text = regexp.MustCompile(`(server\s+)`+regexp.QuoteMeta(name)+`:`).ReplaceAllString(text, "${1}127.0.0.1:")
	}
	if ngx := b.roles(&problems{}).nginx; ngx != "" {
		text = regexp.MustCompile(`/run/secrets/[A-Za-z0-9_.-]+`).ReplaceAllStringFunc(text, func(path string) string {
			if f, err := b.composeSecretFile(ngx, path); err == nil {
				return f
			}
			return path
		})
	}
	conf := filepath.Join(work, "nginx.conf")
	os.WriteFile(conf, []byte(text), 0o644)
	out, err := runCmd(work, nil, bin, "-t", "-q", "-p", work, "-c", conf, "-g", "pid "+filepath.Join(work, "nginx.pid")+";")
	if err != nil {
		p.add("nginx -t refuses nginx.conf: %v\n%s", err, out)
	}
}

// nginxCertificate is the certificate nginx serves (its ssl_certificate, a
// Compose secret made by init-secrets.sh), parsed.
func (b *bundle) nginxCertificate(nginxSvc string) (*x509.Certificate, error) {
	path := firstArg(b.nginx, "ssl_certificate")
	if path == "" || nginxSvc == "" {
		return nil, fmt.Errorf("nginx.conf has no ssl_certificate")
	}
	file, err := b.composeSecretFile(nginxSvc, path)
	if err != nil {
		return nil, fmt.Errorf("nginx ssl_certificate: %v", err)
	}
	src, _ := os.ReadFile(file)
	for {
		var blk *pem.Block
		if blk, src = pem.Decode(src); blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			return x509.ParseCertificate(blk.Bytes)
		}
	}
	return nil, fmt.Errorf("nginx ssl_certificate %s: no PEM certificate in %s", path, file)
}

// firstArg is the first argument of the first directive named name,
// anywhere in ds.
func firstArg(ds []*directive, name string) string {
	for _, d := range ds {
		if d.name == name && len(d.args) > 0 {
			return d.args[0]
		}
		if v := firstArg(d.block, name); v != "" {
			return v
		}
	}
	return ""
}

// checkNginxSecurity: both listeners speak TLS with a certificate from a
// Compose secret; sensors can enroll and rotate through the ingest
// listener; the client's address reaches the nodes in X-Forwarded-For.
func (b *bundle) checkNginxSecurity(p *problems, r composeRoles, http []*directive, ing, qry *directive) {
	for _, s := range []struct {
		what string
		d    *directive
	}{{"ingest", ing}, {"query", qry}} {
		if s.d == nil {
			continue
		}
		for _, l := range find(s.d.block, "listen") {
			if !contains(l.args[1:], "ssl") {
				p.add("nginx.conf line %d: the %s server listens on %s without ssl: tokens and secrets would cross the network in the clear", l.line, s.what, l.args[0])
			}
		}
		for _, name := range []string{"ssl_certificate", "ssl_certificate_key"} {
			v := directiveArgs(s.d.block, name)
			if v == nil {
				v = directiveArgs(http, name)
			}
			if len(v) != 1 {
				p.add("nginx.conf: the %s server has no %s", s.what, name)
			} else if _, err := b.composeSecretFile(r.nginx, v[0]); r.nginx != "" && err != nil {
				p.add("nginx.conf: the %s server's %s: %v", s.what, name, err)
			}
		}
	}
	if ing == nil {
		return
	}
	for _, path := range []string{"/v1/heartbeat", "/v1/enroll", "/v1/rotate"} {
		loc := location(ing.block, path)
		if loc == nil || len(find(loc.block, "proxy_pass")) == 0 {
			p.add("nginx.conf: the ingest server does not pass %s", path)
			continue
		}
		if !proxiesTo(loc.block, upstreamOf(http, r.ingest)) {
			p.add("nginx.conf: %s is not passed to the ingest upstream", path)
		}
		xff := proxyHeader("X-Forwarded-For", http, ing.block, loc.block)
		if xff != "$proxy_add_x_forwarded_for" && xff != "$remote_addr" {
			p.add("nginx.conf: %s sets X-Forwarded-For %q: the ingest nodes (--ingest.trusted-proxies) would not see the client's address", path, xff)
		}
	}
}

// upstreamOf names the upstream whose servers are the Compose services.
func upstreamOf(http []*directive, services []string) string {
	for _, u := range find(http, "upstream") {
		if len(u.args) != 1 {
			continue
		}
		var hosts []string
		for _, s := range find(u.block, "server") {
			hosts = append(hosts, strings.Split(s.args[0], ":")[0])
		}
		if len(hosts) > 0 && sameSet(hosts, services) {
			return u.args[0]
		}
	}
	return ""
}

// location is the location nginx picks for path: the exact one, else the
// longest prefix.
func location(ds []*directive, path string) *directive {
	var pick *directive
	for _, l := range find(ds, "location") {
		switch {
		case len(l.args) == 2 && l.args[0] == "=" && l.args[1] == path:
			return l
		case len(l.args) == 1 && strings.HasPrefix(path, l.args[0]) && (pick == nil || len(l.args[0]) > len(pick.args[0])):
			pick = l
		}
	}
	return pick
}

// proxyHeader is the value nginx sends for header, given the levels from
// the outermost (http) in: a level's proxy_set_header directives replace
// all of the enclosing levels', so the innermost level that has any decides.
func proxyHeader(header string, levels ...[]*directive) string {
	for i := len(levels) - 1; i >= 0; i-- {
		set := find(levels[i], "proxy_set_header")
		if len(set) == 0 {
			continue
		}
		for _, d := range set {
			if len(d.args) == 2 && strings.EqualFold(d.args[0], header) {
				return d.args[1]
			}
		}
		return ""
	}
	return ""
}
