package deploy

// The checks of how the deployments keep secrets and traffic safe: TLS (or
// plain HTTP only where it is asked for and justified), sensors that enroll
// for keys of their own instead of sharing a static token, the admin
// token, per-address rate limits that see real clients behind nginx, and an
// analyst user that cannot read the credentials or other people's SQL.

import (
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"

	"github.com/netview/netview/query/analyst"
)

// tokenFileFlags are the flags naming files of static secrets.
var tokenFileFlags = []string{"ingest.token-file", "query.token-file", "query.analyst.token-file", "query.admin.token-file"}

// commentAbove reports whether every line of src holding needle has a
// comment: on the line itself, or in one of the three lines above it.
func commentAbove(src, needle string) bool {
	lines := strings.Split(src, "\n")
	found := false
	for i, l := range lines {
		if !strings.Contains(l, needle) {
			continue
		}
		found = true
		ok := strings.Contains(l, " #")
		for j := i - 1; j >= 0 && j >= i-3 && !ok; j-- {
			ok = strings.HasPrefix(strings.TrimSpace(lines[j]), "#")
		}
		if !ok {
			return false
		}
	}
	return found
}

// checkComposeNode checks an ingest or query node of Compose: TLS or an
// explicit, justified plain HTTP behind nginx; secrets from Compose
// secrets; enrollment instead of shared tokens; nginx as the one trusted
// proxy; an admin token.
func (b *bundle) checkComposeNode(p *problems, r composeRoles, n string, prog program, fs *flag.FlagSet) {
	s := b.compose.Services[n]
	tier := strings.TrimPrefix(string(prog), "netview-")
	args, _ := b.composeArgs(n)
	tls, err := serverTLS(prog, args)
	switch {
	case err != nil:
		p.add("compose service %s: %s would refuse to start: %v", n, prog, err)
	case tls.Plain:
		if len(s.Ports) > 0 {
			p.add("compose service %s serves plain HTTP (--%s.plain-http) yet publishes ports %v: only nginx, which terminates TLS, may reach it", n, tier, s.Ports)
		}
		if !commentAbove(b.composeRaw, "--"+tier+".plain-http") {
			p.add("compose.yaml: --%s.plain-http without a comment saying why plain HTTP is safe there (an internal network)", tier)
		}
	}
	if u := healthURL(s); u != nil && tls != nil {
		want := "https"
		if tls.Plain {
			want = "http"
		}
		if u.Scheme != want {
			p.add("compose service %s: healthcheck %s, but the node speaks %s", n, u, want)
		}
	}
	for _, f := range tokenFileFlags {
		if fs.Lookup(f) == nil || val(fs, f) == "" {
			continue
		}
		if _, err := b.composeSecretFile(n, val(fs, f)); err != nil {
			p.add("compose service %s: --%s: %v", n, f, err)
		}
	}
	switch prog {
	case progIngest:
		if val(fs, "ingest.shared-tokens") == "true" {
			p.add("compose service %s: --ingest.shared-tokens lets whoever holds a static token write as every sensor; sensors enroll for keys of their own instead", n)
		}
		b.checkTrustedProxies(p, n, "ingest.trusted-proxies", val(fs, "ingest.trusted-proxies"), r.nginx)
	case progQuery:
		b.checkTrustedProxies(p, n, "query.trusted-proxies", val(fs, "query.trusted-proxies"), r.nginx)
		if val(fs, "query.admin.token-file") == "" && val(fs, "query.admin.token") == "" {
			p.add("compose service %s: no --query.admin.token-file: nobody could issue or revoke API tokens, enrollment secrets and sensor keys", n)
		}
	}
}

// checkTrustedProxies: behind nginx, ingest and query trust
// X-Forwarded-For from nginx's fixed address alone. Without it every sensor
// (every user signing in) shares nginx's per-address bucket; trusting the
// network's gateway (through which connections to published ports arrive)
// would let any client forge it.
func (b *bundle) checkTrustedProxies(p *problems, n, flag, list, nginxSvc string) {
	if nginxSvc == "" {
		return
	}
	addr, err := netip.ParseAddr(b.compose.Services[nginxSvc].ipv4On("default"))
	if err != nil {
		p.add("compose: %s has no fixed ipv4_address on the default network, so the ingest nodes cannot trust it alone (--%s)", nginxSvc, flag)
		return
	}
	var subnet netip.Prefix
	if nw, ok := b.compose.Networks["default"]; ok && nw.IPAM != nil && len(nw.IPAM.Config) == 1 {
		subnet, _ = netip.ParsePrefix(nw.IPAM.Config[0].Subnet)
	}
	if !subnet.IsValid() || !subnet.Contains(addr) {
		p.add("compose: nginx's address %s is not in a fixed subnet of the default network (networks.default.ipam.config %v)", addr, subnet)
		return
	}
	gateway := subnet.Masked().Addr().Next()
	if strings.TrimSpace(list) == "" {
		p.add("compose service %s: no --%s: behind nginx every client would share nginx's address, and one per-address rate limit", n, flag)
		return
	}
	found := false
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		pr, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				p.add("compose service %s: --%s entry %q is neither an address nor a CIDR", n, flag, f)
				continue
			}
			pr = netip.PrefixFrom(a, a.BitLen())
		}
		switch {
		case pr.Contains(gateway):
			p.add("compose service %s: --%s=%s trusts %s, the network's gateway, from which connections to published ports arrive: any client could forge X-Forwarded-For", n, flag, list, gateway)
		case !pr.Contains(addr):
			p.add("compose service %s: --%s=%s trusts %s, which is not nginx (%s)", n, flag, list, f, addr)
		default:
			found = true
		}
	}
	if !found {
		p.add("compose service %s: --%s=%s does not name nginx's address %s", n, flag, list, addr)
	}
}

// checkSensorSecrets: a sensor enrolls with an enrollment secret for a key
// of its own; a static token (heartbeats for any sensor id, and only with
// --ingest.shared-tokens) is not used.
func checkSensorSecrets(p *problems, where string, fs *flag.FlagSet) {
	for _, f := range []string{"sensor.token", "sensor.token-file"} {
		if val(fs, f) != "" {
			p.add("%s: --%s: a static token works only with --ingest.shared-tokens, and lets its holder write as any sensor; give --sensor.enroll-secret-file", where, f)
		}
	}
	if val(fs, "sensor.enroll-secret-file") == "" {
		p.add("%s: no --sensor.enroll-secret-file: the sensor cannot enroll for a key of its own", where)
	}
}

// checkEBPF: --sensor.ebpf=on makes the sensor refuse to start without
// the probes, which need BPF and PERFMON; auto falls back to polling.
func checkEBPF(p *problems, where string, fs *flag.FlagSet, caps []string) {
	if val(fs, "sensor.ebpf") == "on" && !(contains(caps, "BPF") && contains(caps, "PERFMON")) {
		p.add("%s: --sensor.ebpf=on, but the sensor has capabilities %v, not BPF and PERFMON: it would refuse to start (auto falls back to polling)", where, caps)
	}
}

// checkComposeSensor: the compose sensor enrolls with a secret ingest
// accepts and reaches nginx over TLS, trusting the CA that signed nginx's
// certificate for the host it dials.
func (b *bundle) checkComposeSensor(p *problems, r composeRoles, n string, fs *flag.FlagSet, u *url.URL) {
	where := "compose service " + n
	checkSensorSecrets(p, where, fs)
	checkEBPF(p, where, fs, b.compose.Services[n].CapAdd)
	if f := val(fs, "sensor.enroll-secret-file"); f != "" && len(r.ingest) > 0 {
		file, err := b.composeSecretFile(n, f)
		var accepted string
		if ifs, ferr := b.composeFlags(r.ingest[0], progIngest); ferr == nil {
			accepted, _ = b.composeSecretFile(r.ingest[0], val(ifs, "ingest.token-file"))
		}
		if err != nil {
			p.add("%s: --sensor.enroll-secret-file: %v", where, err)
		} else if secret, tokens := firstLine(file), fileLines(accepted); secret == "" || !contains(tokens, secret) {
			p.add("%s: its enrollment secret (%s) is not a line of the ingest nodes' --ingest.token-file", where, f)
		}
	}
	if u.Scheme != "https" {
		p.add("%s: --sensor.ingest=%s is not https: nginx serves TLS only", where, u)
		return
	}
	ca := val(fs, "sensor.ca-file")
	if ca == "" && val(fs, "sensor.pin-sha256") == "" {
		p.add("%s: neither --sensor.ca-file nor --sensor.pin-sha256: the system's CAs did not sign the stack's own certificate", where)
		return
	}
	if ca == "" {
		return
	}
	caFile, err := b.composeSecretFile(n, ca)
	if err != nil {
		p.add("%s: --sensor.ca-file: %v", where, err)
		return
	}
	cert, err := b.nginxCertificate(r.nginx)
	if err != nil {
		p.add("%s: %v", where, err)
		return
	}
	pem, _ := os.ReadFile(caFile)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		p.add("%s: --sensor.ca-file=%s holds no PEM certificate", where, ca)
		return
	}
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: u.Hostname()}); err != nil {
		p.add("%s: nginx's certificate does not verify against --sensor.ca-file for %s: %v", where, u.Hostname(), err)
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

func fileLines(path string) []string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		l, _, _ = strings.Cut(l, "#")
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// firstLine is the secret a sensor reads from a file: its first line that
// is not blank or a comment.
func firstLine(path string) string {
	if l := fileLines(path); len(l) > 0 {
		return l[0]
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

// checkK8sServing: ingest and query serve TLS in Kubernetes, from a
// kubernetes.io/tls Secret mounted into the container, and the kubelet and
// Prometheus speak it. It returns the probes' scheme.
func (b *bundle) checkK8sServing(p *problems, where, ns string, w *workloadSpec, c *container, prog program, args []string, fs *flag.FlagSet) string {
	tls, err := serverTLS(prog, args)
	if err != nil {
		p.add("%s: %s would refuse to start: %v", where, prog, err)
		return "HTTPS"
	}
	scheme := "HTTPS"
	if tls.Plain {
		p.add("%s: --%s.plain-http: the pod network is shared with every workload of the cluster; serve TLS from a kubernetes.io/tls Secret", where, strings.TrimPrefix(string(prog), "netview-"))
		scheme = "HTTP"
	} else {
		for _, f := range []string{tls.CertFile, tls.KeyFile} {
			s, err := b.secretOf(ns, &w.Template.Spec, c, f)
			if err != nil {
				p.add("%s: TLS file %s: %v", where, f, err)
			} else if s.Type != "kubernetes.io/tls" {
				p.add("%s: TLS file %s is from Secret %s of type %q, not kubernetes.io/tls (what cert-manager issues and renews)", where, f, s.Metadata.Name, s.Type)
			}
		}
		if a := w.Template.Metadata.Annotations; a["prometheus.io/scrape"] == "true" && a["prometheus.io/scheme"] != "https" {
			p.add("%s: Prometheus would scrape it over http (annotation prometheus.io/scheme %q), but it serves TLS", where, a["prometheus.io/scheme"])
		}
	}
	switch prog {
	case progIngest:
		if val(fs, "ingest.shared-tokens") == "true" {
			p.add("%s: --ingest.shared-tokens lets whoever holds a static token write as every sensor; sensors enroll for keys of their own instead", where)
		}
		if _, err := parsePrefixList(val(fs, "ingest.trusted-proxies")); err != nil {
			p.add("%s: --ingest.trusted-proxies: %v", where, err)
		}
	case progQuery:
		if val(fs, "query.admin.token-file") == "" {
			p.add("%s: no --query.admin.token-file: nobody could issue or revoke API tokens, enrollment secrets and sensor keys", where)
		}
	}
	return scheme
}

// checkProbeScheme: the kubelet speaks what the program serves.
func checkProbeScheme(p *problems, where, name string, pr *probe, want string) {
	if pr == nil || pr.HTTPGet == nil {
		return
	}
	got := pr.HTTPGet.Scheme
	if got == "" {
		got = "HTTP"
	}
	if got != want {
		p.add("%s: %s scheme %s, but the program speaks %s", where, name, got, want)
	}
}

func parsePrefixList(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		pr, err := netip.ParsePrefix(f)
		if err != nil {
			a, aerr := netip.ParseAddr(f)
			if aerr != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR", f)
			}
			pr = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pr)
	}
	return out, nil
}

// checkDaemonSetLink: the DaemonSet's sensor enrolls with a secret from a
// mounted Secret and reaches the ingest Service over TLS, trusting a CA
// from a mounted Secret (or a pinned key).
func (b *bundle) checkDaemonSetLink(p *problems, o *k8sObject, pod *podSpec, c *container, fs *flag.FlagSet, caps []string) {
	checkSensorSecrets(p, o.String(), fs)
	checkEBPF(p, o.String(), fs, caps)
	for _, f := range []string{"sensor.enroll-secret-file", "sensor.ca-file"} {
		if v := val(fs, f); v != "" {
			if err := b.secretFile(o.Metadata.Namespace, pod, c, v); err != nil {
				p.add("%s: --%s: %v", o, f, err)
			}
		}
	}
	u, err := url.Parse(val(fs, "sensor.ingest"))
	if err != nil || u.Scheme != "https" {
		p.add("%s: --sensor.ingest=%s is not https: the ingest nodes serve TLS", o, val(fs, "sensor.ingest"))
		return
	}
	if val(fs, "sensor.ca-file") == "" && val(fs, "sensor.pin-sha256") == "" {
		p.add("%s: neither --sensor.ca-file nor --sensor.pin-sha256: no public CA certifies the ingest Service's name %s", o, u.Hostname())
	}
}

// checkAnalystProtection: the analyst user cannot read what POST
// /api/v1/sql hides (query/analyst's protected tables): the Netview tables
// are revoked, and every protected table (and its _local table) is
// emptied by additional_table_filters, which the analyst cannot change.
func checkAnalystProtection(p *problems, prof, user *xmlNode) {
	revoked := map[string]bool{}
	for _, g := range user.child("grants").all("query") {
		if t, ok := strings.CutPrefix(strings.ToUpper(g.text()), "REVOKE SELECT ON "); ok {
			revoked[strings.ToLower(strings.TrimSpace(t))] = true
		}
	}
	var want []string
	for _, s := range analyst.Settings(analyst.DefaultLimits()) {
		if s.Name != "additional_table_filters" {
			continue
		}
		for _, kv := range strings.Split(strings.Trim(s.Value, "{}"), ",") {
			want = append(want, kv)
		}
	}
	if len(want) == 0 {
		p.add("query/analyst sets no additional_table_filters: this check has nothing to compare")
	}
	for _, t := range analyst.ProtectedTables {
		for _, name := range []string{t, t + "_local"} {
			if !revoked["netview."+name] {
				p.add("users.xml: the analyst may read netview.%s: want <query>REVOKE SELECT ON netview.%s</query>", name, name)
			}
		}
		want = append(want, fmt.Sprintf("'%s_local':'0'", t))
	}
	have := strings.Split(strings.Trim(prof.child("additional_table_filters").text(), "{}"), ",")
	for _, kv := range want {
		if !contains(have, kv) {
			p.add("users.xml: the analyst profile's additional_table_filters lacks %s (query/analyst hides it from POST /api/v1/sql)", kv)
		}
	}
	if prof.child("constraints", "additional_table_filters", "const") == nil {
		p.add("users.xml: the analyst could change additional_table_filters: want a <const/> constraint")
	}
}
