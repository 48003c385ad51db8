package deploy

// Compose: deploy/compose/compose.yaml, loaded by compose-go as docker
// compose loads it, with the .env and secrets compose/init-secrets.sh
// makes.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
)

// readCompose loads dir's compose/compose.yaml with compose-go, as docker
// compose would: the project folder compose/, the .env init-secrets.sh
// made (envFile, read by compose-go's own dotenv), every profile active
// (the sensor is one), paths resolved. It returns the project, or nil, and
// the variables the file uses that the .env does not set (without a
// default). What compose-go refuses (the Compose schema, a depends_on on
// a service that is gone, a required variable unset...) is a problem, and
// the project is loaded again without validation, consistency check (and
// if need be interpolation) so that the checks still run on it.
func readCompose(dir, envFile string, env map[string]string) (*types.Project, []string, []string) {
	var probs []string
	path := filepath.Join(dir, "compose", "compose.yaml")
	load := func(strict, interpolate bool) (*types.Project, map[string]any, error) {
		fns := []cli.ProjectOptionsFn{
			cli.WithWorkingDirectory(filepath.Join(dir, "compose")),
			cli.WithProfiles([]string{"*"}),
			cli.WithResolvedPaths(true),
			cli.WithConsistency(strict),
			cli.WithInterpolation(interpolate),
		}
		if !strict {
			fns = append(fns, cli.WithLoadOptions(loader.WithSkipValidation))
		}
		if envFile != "" {
			fns = append(fns, cli.WithEnvFiles(envFile), cli.WithDotEnv)
		}
		opts, err := cli.NewProjectOptions([]string{path}, fns...)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if !interpolate && !strict {
			m, err := opts.LoadModel(ctx)
			if err != nil {
				return nil, nil, err
			}
			p, err := opts.LoadProject(ctx)
			return p, m, err
		}
		p, err := opts.LoadProject(ctx)
		return p, nil, err
	}
	var missing []string
	if _, model, err := load(false, false); model != nil || err == nil {
		for name, v := range template.ExtractVariables(model, template.DefaultPattern) {
			if _, ok := env[name]; !ok && v.DefaultValue == "" {
				missing = append(missing, name)
			}
		}
		sort.Strings(missing)
	}
	p, _, err := load(true, true)
	if err != nil {
		probs = append(probs, fmt.Sprintf("compose/compose.yaml: %v", err))
		if p, _, err = load(false, true); err != nil {
			p, _, _ = load(false, false)
		}
	}
	return p, missing, probs
}

// composeEnv reads a .env as docker compose does (compose-go's dotenv).
func composeEnv(path string) (map[string]string, error) {
	return dotenv.GetEnvFromFile(map[string]string{}, []string{path})
}

// envVal is a service's environment variable, "" when not set.
func envVal(s types.ServiceConfig, name string) string {
	if v := s.Environment[name]; v != nil {
		return *v
	}
	return ""
}

// ipv4On returns the fixed ipv4_address a service has on network net, or "".
func ipv4On(s types.ServiceConfig, net string) string {
	if n := s.Networks[net]; n != nil {
		return n.Ipv4Address
	}
	return ""
}

// secretNames are the secrets a service takes.
func secretNames(s types.ServiceConfig) []string {
	var out []string
	for _, sc := range s.Secrets {
		out = append(out, sc.Source)
	}
	return out
}

// composeRel is a path compose-go resolved, relative to the compose folder
// again (as compose.yaml writes it).
func (b *bundle) composeRel(path string) string {
	if !filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	rel, err := filepath.Rel(filepath.Join(b.dir, "compose"), path)
	if err != nil {
		return path
	}
	return rel
}

// portsText is a service's ports as compose.yaml writes them.
func portsText(s types.ServiceConfig) []string {
	var out []string
	for _, p := range s.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Published, p.Target))
	}
	return out
}

// composeServices returns the names of the Compose services running p.
func (b *bundle) composeServices(p program) []string {
	var out []string
	for name, s := range b.compose.Services {
		if q, ok := imageProgram(s.Image); ok && q == p {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// composeByImage returns the services whose image repository is repo.
func (b *bundle) composeByImage(repo string) []string {
	var out []string
	for name, s := range b.compose.Services {
		if r, _, _ := imageTag(s.Image); r == repo {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// composeFlags parses a Compose service's command as p's flags, after
// interpolating the .env that init-secrets.sh makes.
func (b *bundle) composeFlags(name string, p program) (*flag.FlagSet, error) {
	args, err := b.composeArgs(name)
	if err != nil {
		return nil, err
	}
	fs, err := parseFlags(p, args)
	if err != nil {
		return nil, fmt.Errorf("compose service %s: %w", name, err)
	}
	return fs, nil
}

// composeArgs is a Compose service's command (compose-go interpolated the
// .env that init-secrets.sh makes).
func (b *bundle) composeArgs(name string) ([]string, error) {
	s, ok := b.compose.Services[name]
	if !ok {
		return nil, fmt.Errorf("no compose service %s", name)
	}
	return append([]string(nil), s.Command...), nil
}

// composeSecretFile resolves a path in service name's container that must
// be one of its Compose secrets (/run/secrets/NAME) to the file
// init-secrets.sh made for it.
func (b *bundle) composeSecretFile(name, path string) (string, error) {
	secret, ok := strings.CutPrefix(path, "/run/secrets/")
	if !ok || strings.Contains(secret, "/") {
		return "", fmt.Errorf("%s is not a Compose secret (/run/secrets/NAME)", path)
	}
	if !contains(secretNames(b.compose.Services[name]), secret) {
		return "", fmt.Errorf("%s: compose service %s does not take secret %s", path, name, secret)
	}
	s, ok := b.compose.Secrets[secret]
	if !ok || b.secretsDir == "" {
		return "", fmt.Errorf("%s: secret %s is not declared (or init-secrets.sh made nothing)", path, secret)
	}
	f := filepath.Join(b.secretsDir, b.composeRel(s.File))
	if _, err := os.Stat(f); err != nil {
		return "", fmt.Errorf("%s: secret %s's file %s is not made by init-secrets.sh", path, secret, b.composeRel(s.File))
	}
	return f, nil
}

// mounts returns a Compose service's bind mounts (source resolved from the
// compose folder) and named volumes.
type mount struct{ src, dst string }

func (b *bundle) mounts(name string) (binds, named []mount) {
	for _, v := range b.compose.Services[name].Volumes {
		m := mount{src: v.Source, dst: v.Target}
		switch v.Type {
		case types.VolumeTypeBind:
			binds = append(binds, m)
		case types.VolumeTypeVolume:
			named = append(named, m)
		}
	}
	return binds, named
}

// mountOf returns where service name mounts the deploy file rel, or "".
func (b *bundle) mountOf(name, rel string) string {
	binds, _ := b.mounts(name)
	for _, m := range binds {
		if m.src == filepath.Join(b.dir, rel) {
			return m.dst
		}
	}
	return ""
}

// roles picks the Compose services out by what they run.
type composeRoles struct {
	keeper, server, init, nginx string
	ingest, query, sensor       []string
}

func (b *bundle) roles(p *problems) composeRoles {
	var r composeRoles
	one := func(what string, names []string) string {
		if len(names) != 1 {
			p.add("compose: want one %s service, found %v", what, names)
			return ""
		}
		return names[0]
	}
	r.keeper = one("ClickHouse Keeper (clickhouse/clickhouse-keeper)", b.composeByImage("clickhouse/clickhouse-keeper"))
	var servers, inits []string
	for _, name := range b.composeByImage("clickhouse/clickhouse-server") {
		if b.mountOf(name, "clickhouse/cluster.sql") != "" {
			inits = append(inits, name)
		} else {
			servers = append(servers, name)
		}
	}
	r.server = one("ClickHouse server", servers)
	r.init = one("schema init (clickhouse-server image mounting clickhouse/cluster.sql)", inits)
	r.nginx = one("nginx", b.composeByImage("nginx"))
	r.ingest, r.query, r.sensor = b.composeServices(progIngest), b.composeServices(progQuery), b.composeServices(progSensor)
	if len(r.ingest) != 2 {
		p.add("compose: want two ingest nodes, found %v", r.ingest)
	}
	if len(r.query) != 2 {
		p.add("compose: want two query nodes, found %v", r.query)
	}
	return r
}

// healthURL returns the http:// or https:// URL a Compose health check
// requests.
func healthURL(s types.ServiceConfig) *url.URL {
	if s.HealthCheck == nil {
		return nil
	}
	for _, a := range s.HealthCheck.Test {
		for _, w := range strings.Fields(a) {
			if strings.HasPrefix(w, "http://") || strings.HasPrefix(w, "https://") {
				if u, err := url.Parse(w); err == nil {
					return u
				}
			}
		}
	}
	return nil
}

func dependsOn(s types.ServiceConfig, on, condition string) bool {
	d, ok := s.DependsOn[on]
	return ok && d.Condition == condition
}

func checkCompose(b *bundle, p *problems) {
	// Every ${VAR} is made by init-secrets.sh, and the password hashes it
	// writes are the hashes of its passwords.
	if len(b.composeMissing) > 0 {
		p.add("compose.yaml uses %v, which init-secrets.sh does not set", b.composeMissing)
	}
	if len(b.compose.Services) == 0 {
		p.add("compose.yaml has no services")
		return
	}
	r := b.roles(p)
	svc := b.compose.Services
	for k, v := range b.env {
		if pw, ok := strings.CutSuffix(k, "_SHA256"); ok && sha256hex(b.env[pw]) != v {
			p.add("init-secrets.sh: %s is not the SHA-256 of %s", k, pw)
		}
	}

	// Health checks on everything that keeps running.
	for _, name := range sortedKeys(svc) {
		s := svc[name]
		if name == r.init || len(s.Profiles) > 0 {
			continue
		}
		if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
			p.add("compose service %s has no healthcheck", name)
		}
		if s.Restart == "" || s.Restart == "no" {
			p.add("compose service %s: restart %q; a stopped node should come back", name, s.Restart)
		}
	}

	// Start order.
	if r.server != "" && r.keeper != "" && !dependsOn(svc[r.server], r.keeper, "service_healthy") {
		p.add("compose: %s does not wait for %s to be healthy", r.server, r.keeper)
	}
	if r.init != "" && r.server != "" && !dependsOn(svc[r.init], r.server, "service_healthy") {
		p.add("compose: %s does not wait for %s to be healthy", r.init, r.server)
	}
	for _, n := range append(append([]string{}, r.ingest...), r.query...) {
		if !dependsOn(svc[n], r.server, "service_healthy") {
			p.add("compose: %s does not wait for %s to be healthy", n, r.server)
		}
		if !dependsOn(svc[n], r.init, "service_completed_successfully") {
			p.add("compose: %s does not wait for %s to complete", n, r.init)
		}
		if r.nginx != "" && !dependsOn(svc[r.nginx], n, "service_healthy") {
			p.add("compose: %s does not wait for %s to be healthy", r.nginx, n)
		}
	}

	// Volumes, mounts and secrets resolve.
	made := map[string]bool{}
	if b.secretsDir != "" {
		filepath.WalkDir(b.secretsDir, func(path string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				rel, _ := filepath.Rel(b.secretsDir, path)
				made[rel] = true
			}
			return nil
		})
	}
	for _, name := range sortedKeys(svc) {
		binds, named := b.mounts(name)
		for _, m := range binds {
			// Only the sensor mounts the host's own folders (checked by
			// checkComposeSensorBinds); every other bind is a file of this
			// bundle, and must be here.
			if rel, err := filepath.Rel(b.dir, m.src); err == nil && strings.HasPrefix(rel, "..") && contains(r.sensor, name) {
				continue
			}
			if _, err := os.Stat(m.src); err != nil {
				p.add("compose service %s mounts %s, which does not exist", name, m.src)
			}
		}
		for _, m := range named {
			if _, ok := b.compose.Volumes[m.src]; !ok {
				p.add("compose service %s uses volume %s, which is not declared", name, m.src)
			}
		}
		for _, s := range secretNames(svc[name]) {
			if _, ok := b.compose.Secrets[s]; !ok {
				p.add("compose service %s uses secret %s, which is not declared", name, s)
			}
		}
	}
	for _, name := range sortedKeys(b.compose.Secrets) {
		f := b.composeRel(b.compose.Secrets[name].File)
		if !made[f] {
			p.add("compose secret %s: file %s is not one init-secrets.sh makes (it makes %v)", name, f, sortedKeys(made))
		}
	}

	// ClickHouse: the server mounts the config pieces and users, and its
	// environment has every from_env they name.
	if r.server != "" {
		s := svc[r.server]
		for file := range b.chConfig {
			if d := b.mountOf(r.server, "clickhouse/config.d/"+file); !strings.HasPrefix(d, "/etc/clickhouse-server/config.d/") {
				p.add("compose: %s does not mount clickhouse/config.d/%s into /etc/clickhouse-server/config.d/", r.server, file)
			}
		}
		if d := b.mountOf(r.server, "clickhouse/users.xml"); !strings.HasPrefix(d, "/etc/clickhouse-server/users.d/") {
			p.add("compose: %s does not mount clickhouse/users.xml into /etc/clickhouse-server/users.d/", r.server)
		}
		need := map[string]bool{}
		b.users.fromEnv(need)
		for _, n := range b.chConfig {
			n.fromEnv(need)
		}
		for _, v := range sortedKeys(need) {
			if envVal(s, v) == "" {
				p.add("compose: %s's environment lacks %s, which users.xml or config.d reads (from_env)", r.server, v)
			}
		}
	}
	if r.keeper != "" && b.mountOf(r.keeper, "clickhouse/keeper/keeper_config.xml") != "/etc/clickhouse-keeper/keeper_config.xml" {
		p.add("compose: %s does not mount clickhouse/keeper/keeper_config.xml as /etc/clickhouse-keeper/keeper_config.xml", r.keeper)
	}

	// The nodes: real flags, reachable addresses, one storage, one schema.
	cluster, ttl, db := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, group := range []struct {
		prog  program
		names []string
	}{{progIngest, r.ingest}, {progQuery, r.query}} {
		addrFlag := strings.TrimPrefix(string(group.prog), "netview-") + ".addr"
		for _, n := range group.names {
			fs, err := b.composeFlags(n, group.prog)
			if err != nil {
				p.add("%v", err)
				continue
			}
			addr := val(fs, addrFlag)
			if !reachableAddr(addr) {
				p.add("compose service %s: --%s=%s is loopback; nginx could not reach it", n, addrFlag, addr)
			}
			if addrPort(addr) != addrPort(flagDefault(group.prog, addrFlag)) {
				p.add("compose service %s: listens on port %s, not %s's port %s", n, addrPort(addr), group.prog, addrPort(flagDefault(group.prog, addrFlag)))
			}
			if u := healthURL(svc[n]); u == nil || u.Port() != addrPort(addr) {
				p.add("compose service %s: healthcheck %v does not request the node's port %s", n, u, addrPort(addr))
			} else {
				checkReadinessPath(p, "compose service "+n+" healthcheck", group.prog, u.Path)
			}
			cluster[val(fs, "store.cluster")] = true
			ttl[val(fs, "store.events-ttl-days")] = true
			d := b.checkDSN(p, "compose service "+n, val(fs, "store.dsn"), r.server)
			db[d] = true
			var grace time.Duration
			if g := svc[n].StopGracePeriod; g != nil {
				grace = time.Duration(*g)
			}
			var need time.Duration
			if group.prog == progIngest {
				need = durFlag(fs, "ingest.ack-timeout") + 10*time.Second
			} else {
				need = durFlag(fs, "query.timeout") + 5*time.Second
			}
			if grace < need {
				p.add("compose service %s: stop_grace_period %v is under the %v it may take to finish its requests", n, grace, need)
			}
			if !svc[n].ReadOnly || !sameSet(svc[n].CapDrop, []string{"ALL"}) || len(svc[n].CapAdd) > 0 {
				p.add("compose service %s: want read_only, cap_drop [ALL] and no cap_add", n)
			}
			b.checkComposeNode(p, r, n, group.prog, fs)
		}
	}
	if len(cluster) != 1 || len(ttl) != 1 || len(db) != 1 {
		p.add("compose: ingest and query nodes disagree on --store.cluster %v, --store.events-ttl-days %v or the database %v", sortedKeys(cluster), sortedKeys(ttl), sortedKeys(db))
	}
	for c := range cluster {
		if c == "" {
			p.add("compose: the nodes run without --store.cluster, but the schema is the cluster form")
		}
		if b.chConfig["remote_servers.xml"].child("remote_servers", c) == nil {
			p.add("compose: --store.cluster=%s is not a cluster of clickhouse/config.d/remote_servers.xml", c)
		}
	}
	// Replicas open each other's cursors.
	secrets := map[string]bool{}
	for _, n := range r.query {
		secrets[envVal(svc[n], "NETVIEW_CURSOR_SECRET")] = true
		if fs, err := b.composeFlags(n, progQuery); err == nil && val(fs, "query.cursor-secret") != "" {
			secrets["flag:"+val(fs, "query.cursor-secret")] = true
		}
	}
	if len(secrets) != 1 || secrets[""] {
		p.add("compose: the query nodes do not share one cursor secret: %v", sortedKeys(secrets))
	}

	// The schema init step applies cluster.sql to the database the nodes use.
	if r.init != "" {
		s := svc[r.init]
		script := strings.Join(append(append([]string{}, s.Entrypoint...), s.Command...), "\n")
		dst := b.mountOf(r.init, "clickhouse/cluster.sql")
		for d := range db {
			for c := range cluster {
				want := fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s ON CLUSTER '%s'", d, c)
				if !strings.Contains(script, want) {
					p.add("compose service %s does not run %q", r.init, want)
				}
			}
			if !strings.Contains(script, "--database "+d) || !strings.Contains(script, "< "+dst) {
				p.add("compose service %s does not apply %s to database %s", r.init, dst, d)
			}
		}
		if s.Restart != "no" {
			p.add("compose service %s: restart %q; it runs once", r.init, s.Restart)
		}
	}

	// The compose sensor, if any: the DaemonSet's host access.
	for _, n := range r.sensor {
		s := svc[n]
		if s.NetworkMode != "host" || s.Pid != "host" {
			p.add("compose service %s: want network_mode host and pid host (the host's sockets and processes)", n)
		}
		if !sameSet(s.CapDrop, []string{"ALL"}) || !sameSet(s.CapAdd, sensorCaps) {
			p.add("compose service %s: capabilities drop %v add %v, want drop [ALL] add %v", n, s.CapDrop, s.CapAdd, sensorCaps)
		}
		if !s.ReadOnly || !contains(s.SecurityOpt, "apparmor=unconfined") || !contains(s.SecurityOpt, "no-new-privileges:true") {
			p.add("compose service %s: want read_only, no-new-privileges and apparmor=unconfined", n)
		}
		fs, err := b.composeFlags(n, progSensor)
		if err != nil {
			p.add("%v", err)
			continue
		}
		u, err := url.Parse(val(fs, "sensor.ingest"))
		defURL, _ := url.Parse(flagDefault(progSensor, "sensor.ingest"))
		if err != nil || u.Path != defURL.Path || !publishes(svc[r.nginx], u.Port()) || !isLoopbackHost(u.Hostname()) {
			p.add("compose service %s: --sensor.ingest=%s is not nginx's published ingest port on this host (path %s)", n, val(fs, "sensor.ingest"), defURL.Path)
		} else {
			b.checkComposeSensor(p, r, n, fs, u)
		}
		checkComposeSensorBinds(p, n, s, val(fs, "sensor.netns-dir"))
		_, named := b.mounts(n)
		state := false
		for _, m := range named {
			state = state || m.dst == val(fs, "sensor.state")
		}
		if !state {
			p.add("compose service %s: its state folder %s is not on a volume", n, val(fs, "sensor.state"))
		}
	}
}

// checkComposeSensorBinds: the compose sensor's host folders are Docker's
// state files and --sensor.netns-dir, each read-only at its host path (where
// the sensor reads it) with rslave propagation (namespaces made later
// appear; Docker's unmounts reach it); any other bind is a runtime's state
// folder under the same rules, and nothing else of the host is mounted.
func checkComposeSensorBinds(p *problems, n string, s types.ServiceConfig, netns string) {
	allowed := map[string]string{}
	for _, d := range runtimeStateDirs {
		allowed[d.path] = d.runtime + "'s state files"
	}
	want := []string{"/var/lib/docker/containers"}
	if netns != "" {
		allowed[netns] = "named network namespaces (--sensor.netns-dir)"
		want = append(want, netns)
	}
	seen := map[string]bool{}
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		what, ok := allowed[v.Source]
		if !ok {
			p.add("compose service %s: binds %s, not a folder the sensor reads (a runtime's state, --sensor.netns-dir)", n, v.Source)
			continue
		}
		seen[v.Source] = true
		if v.Target != v.Source {
			p.add("compose service %s: %s mounted at %s: the sensor reads it at its host path", n, v.Source, v.Target)
		}
		if !v.ReadOnly {
			p.add("compose service %s: %s (%s) is writable: want read_only", n, v.Source, what)
		}
		if v.Bind == nil || v.Bind.Propagation != types.PropagationRSlave {
			p.add("compose service %s: %s (%s) without bind propagation rslave: mounts made or unmade on the host later would not reach it", n, v.Source, what)
		}
	}
	for _, w := range want {
		if !seen[w] {
			p.add("compose service %s: %s is not mounted: the sensor would not see %s", n, w, allowed[w])
		}
	}
}

// publishes reports whether a Compose service publishes container port port.
func publishes(s types.ServiceConfig, port string) bool {
	for _, p := range s.Ports {
		if strconv.Itoa(int(p.Target)) == port {
			return true
		}
	}
	return false
}

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
			p.add("compose service %s serves plain HTTP (--%s.plain-http) yet publishes ports %v: only nginx, which terminates TLS, may reach it", n, tier, portsText(s))
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
	addr, err := netip.ParseAddr(ipv4On(b.compose.Services[nginxSvc], "default"))
	if err != nil {
		p.add("compose: %s has no fixed ipv4_address on the default network, so the ingest nodes cannot trust it alone (--%s)", nginxSvc, flag)
		return
	}
	var subnet netip.Prefix
	if nw, ok := b.compose.Networks["default"]; ok && len(nw.Ipam.Config) == 1 {
		subnet, _ = netip.ParsePrefix(nw.Ipam.Config[0].Subnet)
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

// TestInitSecrets: compose/init-secrets.sh makes private secrets once and
// never replaces them.
func TestInitSecrets(t *testing.T) {
	work := t.TempDir()
	src, err := os.ReadFile(filepath.Join(deployDir(t), "compose", "init-secrets.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(work, "init-secrets.sh")
	os.WriteFile(script, src, 0o755)
	if out, err := runCmd(work, nil, "bash", "-n", script); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	if out, err := runCmd(work, nil, "bash", script); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	first := snapshot(t, work)
	if out, err := runCmd(work, nil, "bash", script); err != nil || !strings.Contains(out, "nothing to do") {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if again := snapshot(t, work); fmt.Sprint(again) != fmt.Sprint(first) {
		t.Errorf("a second run changed the secrets:\n%v\n%v", first, again)
	}
	if first["secrets"] != "drwx------" || !strings.HasPrefix(first[".env"], "-rw-------") {
		t.Errorf("secrets folder %q and .env %q should be private", first["secrets"], first[".env"])
	}
	env, err := composeEnv(filepath.Join(work, ".env"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]string{}
	for k, v := range env {
		if len(v) < 32 {
			t.Errorf("%s is %d characters, want at least 32", k, len(v))
		}
		if other, dup := seen[v]; dup {
			t.Errorf("%s and %s are equal", k, other)
		}
		seen[v] = k
	}
	ingest, _ := os.ReadFile(filepath.Join(work, "secrets", "ingest.tokens"))
	sensor, _ := os.ReadFile(filepath.Join(work, "secrets", "sensor.enroll-secret"))
	if strings.TrimSpace(string(sensor)) == "" || !strings.Contains(string(ingest), strings.TrimSpace(string(sensor))) {
		t.Error("the sensor's enrollment secret is not one ingest accepts")
	}
	if admin, _ := os.ReadFile(filepath.Join(work, "secrets", "admin.tokens")); len(strings.TrimSpace(string(admin))) < 32 {
		t.Errorf("admin token %q, want at least 32 characters", admin)
	}
	if !strings.HasPrefix(first["secrets/tls/ca.key"], "-rw-------") {
		t.Errorf("the CA's key is %q, want 0600", first["secrets/tls/ca.key"])
	}

	// The certificate: signed by the CA, for this host's loopback names and
	// for $NETVIEW_TLS_NAMES, and made anew (by the same CA) once deleted.
	verify := func(names ...string) *x509.Certificate {
		t.Helper()
		caPEM, _ := os.ReadFile(filepath.Join(work, "secrets/tls/ca.crt"))
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			t.Fatal("secrets/tls/ca.crt holds no certificate")
		}
		pair, err := tls.LoadX509KeyPair(filepath.Join(work, "secrets/tls/server.crt"), filepath.Join(work, "secrets/tls/server.key"))
		if err != nil {
			t.Fatalf("server certificate and key: %v", err)
		}
		leaf, _ := x509.ParseCertificate(pair.Certificate[0])
		for _, n := range names {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: n}); err != nil {
				t.Errorf("the certificate does not verify for %s: %v", n, err)
			}
		}
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: "elsewhere.example.net"}); err == nil {
			t.Error("the certificate verifies for a name it was not made for")
		}
		return leaf
	}
	old := verify("localhost", "127.0.0.1", "::1")
	os.Remove(filepath.Join(work, "secrets/tls/server.crt"))
	if out, err := runCmd(work, []string{"NETVIEW_TLS_NAMES=netview.example.net,10.1.2.3"}, "bash", script); err != nil {
		t.Fatalf("renewing the certificate: %v\n%s", err, out)
	}
	if renewed := verify("localhost", "127.0.0.1", "netview.example.net", "10.1.2.3"); renewed.SerialNumber.Cmp(old.SerialNumber) == 0 {
		t.Error("the certificate was not made anew")
	}
}

// TestComposeReader: compose-go refuses what docker compose would
// (duplicate keys, unclosed flow collections, keys the Compose schema does
// not have, a required variable unset) and reads the rest as it does:
// merge keys, $$, ${VAR:-default}, every profile.
func TestComposeReader(t *testing.T) {
	read := func(src string, env map[string]string) (*types.Project, []string, []string) {
		dir := t.TempDir()
		os.MkdirAll(filepath.Join(dir, "compose"), 0o755)
		os.WriteFile(filepath.Join(dir, "compose", "compose.yaml"), []byte(src), 0o644)
		envFile := filepath.Join(dir, ".env")
		var lines []string
		for k, v := range env {
			lines = append(lines, k+"="+v)
		}
		os.WriteFile(envFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		return readCompose(dir, envFile, env)
	}
	for name, src := range map[string]string{
		"duplicate key":   "services:\n  a:\n    image: x:1\n  a:\n    image: y:1\n",
		"unclosed flow":   "services:\n  a:\n    image: x:1\n    command: [a, b\n",
		"unknown key":     "services:\n  a:\n    image: x:1\n    stop_grace_periode: 1s\n",
		"unset variable":  "services:\n  a:\n    image: x:1\n    command: [\"${NOPE:?set it}\"]\n",
		"no such service": "services:\n  a:\n    image: x:1\n    depends_on: [b]\n",
	} {
		if _, _, probs := read(src, nil); len(probs) == 0 {
			t.Errorf("%s: loaded without a problem", name)
		}
	}
	p, missing, probs := read("x-base: &base\n  image: x:1\n  command: [\"--a=${A}\", \"--b=${B:-dflt}\", \"$$C\"]\nservices:\n  a:\n    <<: *base\n    profiles: [opt]\n", map[string]string{"A": "one"})
	if len(probs) > 0 || len(missing) > 0 || p == nil {
		t.Fatalf("problems %v, missing %v", probs, missing)
	}
	if got := strings.Join(p.Services["a"].Command, " "); got != "--a=one --b=dflt $C" {
		t.Errorf("service a (merge key, in a profile) runs %q", got)
	}
	if _, missing, _ := read("services:\n  a:\n    image: x:1\n    command: [\"$X\", \"${Y:-y}\"]\n", nil); strings.Join(missing, ",") != "X" {
		t.Errorf("missing variables %v, want [X]", missing)
	}
}
