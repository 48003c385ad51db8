package deploy

// The checks: each reads a bundle and reports what is wrong with it. They
// take the truth from the programs themselves (flag sets, HTTP handlers,
// limits, the schema's migrations), so a deployment file that drifts from
// the code fails here.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netview/netview/query"
	"github.com/netview/netview/query/analyst"
	nsql "github.com/netview/netview/sql/schema"
)

// sensorCaps is the sensor's capability set, everywhere it runs: the
// DaemonSet, the Compose sensor and the systemd unit's bounding set.
// DAC_READ_SEARCH lists other users' /proc/<pid>/fd (mode 0500); SYS_PTRACE
// reads the links in it and /proc/<pid>/exe, ns/net.
// TestSensorCapabilitiesOnThisKernel shows both are needed and enough.
var sensorCaps = []string{"DAC_READ_SEARCH", "SYS_PTRACE"}

type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

type check struct {
	name      string
	fn        func(*bundle, *problems)
	needsYAML bool // reads the Compose or Kubernetes files
}

var checks = []check{
	{"images", checkImages, true},
	{"compose", checkCompose, true},
	{"nginx", checkNginx, true},
	{"k8s", checkK8s, true},
	{"sensor", checkSensorDaemonSet, true},
	{"systemd", checkSystemd, false},
	{"users", checkUsers, false},
	{"clickhouse", checkClickHouse, false},
	{"cluster-ddl", checkClusterDDL, false},
	{"dockerfile", checkDockerfile, false},
}

// runChecks runs every check; a check that panics on a broken bundle
// reports the panic as its finding.
func runChecks(b *bundle) []string {
	var all []string
	for _, c := range checks {
		var p problems
		func() {
			defer func() {
				if r := recover(); r != nil {
					p.add("check panicked: %v\n%s", r, debug.Stack())
				}
			}()
			c.fn(b, &p)
		}()
		for _, s := range p {
			all = append(all, c.name+": "+s)
		}
	}
	return all
}

// ---------------------------------------------------------------------------
// Images

func checkImages(b *bundle, p *problems) {
	type use struct{ where, image string }
	var uses []use
	for _, name := range sortedKeys(b.compose.Services) {
		s := b.compose.Services[name]
		if s.Image == "" {
			p.add("compose service %s: no image (a built service names its image too)", name)
			continue
		}
		uses = append(uses, use{"compose service " + name, s.Image})
	}
	for _, o := range b.k8s {
		switch o.Kind {
		case "Deployment", "DaemonSet", "StatefulSet":
		default:
			continue
		}
		w, err := workload(o)
		if err != nil {
			p.add("%v", err)
			continue
		}
		for _, c := range append(w.Template.Spec.InitContainers, w.Template.Spec.Containers...) {
			uses = append(uses, use{fmt.Sprintf("%s container %s", o, c.Name), c.Image})
		}
	}
	for _, st := range dockerStages(b.dockerfile) {
		if !st.fromStage && st.image != "scratch" {
			uses = append(uses, use{"Dockerfile FROM", st.image})
		}
	}
	if len(uses) == 0 {
		p.add("no images found")
	}
	tags := map[string][]string{}
	for _, u := range uses {
		if u.image == "" {
			p.add("%s: no image", u.where)
			continue
		}
		_, tag, digest := imageTag(u.image)
		if digest == "" && (tag == "" || tag == "latest") {
			p.add("%s: image %s is not pinned: give it a version tag or a digest, never :latest", u.where, u.image)
		}
		if strings.Contains(u.image, "$") {
			p.add("%s: image %s is not a fixed name", u.where, u.image)
		}
		if _, ok := imageProgram(u.image); ok {
			tags[tag] = append(tags[tag], u.where)
		}
	}
	if len(tags) > 1 {
		p.add("Netview's images carry different tags: %v (one release everywhere)", tags)
	}
}

// ---------------------------------------------------------------------------
// Dockerfile

type dockerStage struct {
	image, name string
	fromStage   bool     // FROM an earlier stage
	parent      string   // that stage
	lines       []string // its instructions
}

func dockerStages(src string) []dockerStage {
	var stages []dockerStage
	names := map[string]bool{}
	src = strings.ReplaceAll(src, "\\\n", " ")
	for _, l := range strings.Split(src, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		if strings.EqualFold(f[0], "FROM") {
			var st dockerStage
			for _, w := range f[1:] {
				if !strings.HasPrefix(w, "--") {
					st.image = w
					break
				}
			}
			if i := len(f) - 2; i > 1 && strings.EqualFold(f[i], "AS") {
				st.name = f[i+1]
			}
			if names[st.image] {
				st.fromStage, st.parent = true, st.image
			}
			names[st.name] = true
			stages = append(stages, st)
			continue
		}
		if len(stages) > 0 {
			stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, l)
		}
	}
	return stages
}

// stageInstr returns the arguments of a stage's instructions named instr.
func stageInstr(st dockerStage, instr string) []string {
	var out []string
	for _, l := range st.lines {
		f := strings.Fields(l)
		if strings.EqualFold(f[0], instr) {
			out = append(out, strings.TrimSpace(l[len(f[0]):]))
		}
	}
	return out
}

func checkDockerfile(b *bundle, p *problems) {
	stages := dockerStages(b.dockerfile)
	byName := map[string]dockerStage{}
	for _, st := range stages {
		byName[st.name] = st
	}
	// The Go toolchain image is at least go.mod's version.
	gomod, err := os.ReadFile(filepath.Join(b.repo, "go.mod"))
	if err != nil {
		p.add("%v", err)
		return
	}
	want := regexp.MustCompile(`(?m)^go (\d+\.\d+(?:\.\d+)?)`).FindStringSubmatch(string(gomod))
	foundGo := false
	for _, st := range stages {
		repo, tag, _ := imageTag(st.image)
		if repo != "golang" {
			continue
		}
		foundGo = true
		v := regexp.MustCompile(`^\d+\.\d+(?:\.\d+)?`).FindString(tag)
		if want == nil || v == "" || versionLess(v, want[1]) {
			p.add("Dockerfile builds with %s, but go.mod wants go %v", st.image, want)
		}
	}
	if !foundGo {
		p.add("Dockerfile: no golang build stage")
	}
	// It builds the three programs, from packages that exist.
	build := ""
	for _, st := range stages {
		for _, r := range stageInstr(st, "RUN") {
			if strings.Contains(r, "go build") {
				build += r + "\n"
			}
		}
	}
	for _, prog := range []program{progIngest, progQuery, progSensor} {
		pkg := "./cmd/" + string(prog)
		if !strings.Contains(build, pkg) {
			p.add("Dockerfile: go build does not build %s", pkg)
		}
		if _, err := os.Stat(filepath.Join(b.repo, pkg, "main.go")); err != nil {
			p.add("Dockerfile builds %s, which does not exist: %v", pkg, err)
		}
		st, ok := byName[strings.TrimPrefix(string(prog), "netview-")]
		if !ok {
			p.add("Dockerfile: no stage %q for %s", strings.TrimPrefix(string(prog), "netview-"), prog)
			continue
		}
		ep := strings.Join(stageInstr(st, "ENTRYPOINT"), " ")
		if !strings.Contains(ep, string(prog)) {
			p.add("Dockerfile stage %s: ENTRYPOINT %q does not run %s", st.name, ep, prog)
		}
		user := stageUser(stages, st)
		switch prog {
		case progSensor:
		default:
			if user == "" || user == "0" || user == "root" || strings.HasPrefix(user, "0:") || strings.HasPrefix(user, "root:") {
				p.add("Dockerfile stage %s: runs as %q; %s needs no root", st.name, user, prog)
			}
			port := addrPort(flagDefault(prog, map[program]string{progIngest: "ingest.addr", progQuery: "query.addr"}[prog]))
			if e := strings.Join(stageInstr(st, "EXPOSE"), " "); !strings.Contains(e, port) {
				p.add("Dockerfile stage %s: EXPOSE %q, want the program's port %s", st.name, e, port)
			}
		}
	}
	// Compose builds targets that exist, from this Dockerfile.
	for _, name := range sortedKeys(b.compose.Services) {
		s := b.compose.Services[name]
		if s.Build == nil {
			continue
		}
		// Paths relative to the repository root: compose.yaml is in deploy/compose.
		ctx := filepath.Join("deploy", "compose", s.Build.Context)
		if ctx != "." {
			p.add("compose service %s: build context %s is not the repository root", name, s.Build.Context)
		}
		if filepath.Join(ctx, s.Build.Dockerfile) != filepath.Join("deploy", "Dockerfile") {
			p.add("compose service %s builds %s in %s, not deploy/Dockerfile", name, s.Build.Dockerfile, s.Build.Context)
		}
		st, ok := byName[s.Build.Target]
		if !ok {
			p.add("compose service %s: build target %q is not a stage of the Dockerfile", name, s.Build.Target)
			continue
		}
		if prog, ok := imageProgram(s.Image); ok && !strings.Contains(strings.Join(stageInstr(st, "ENTRYPOINT"), " "), string(prog)) {
			p.add("compose service %s: image %s is built from stage %s, which does not run %s", name, s.Image, st.name, prog)
		}
	}
	// The context leaves out the engine library cache and build output.
	ignored := map[string]bool{}
	for _, l := range strings.Split(b.dockerignore, "\n") {
		ignored[strings.Trim(strings.TrimSpace(l), "/")] = true
	}
	for _, must := range []string{".cache", "bin", "data", ".git"} {
		if !ignored[must] {
			p.add("Dockerfile.dockerignore does not leave out %s (the build context would carry it)", must)
		}
	}
}

// stageUser is the USER a stage ends with, inherited from its parent stages.
func stageUser(stages []dockerStage, st dockerStage) string {
	if us := stageInstr(st, "USER"); len(us) > 0 {
		return us[len(us)-1]
	}
	if st.fromStage {
		for _, s := range stages {
			if s.name == st.parent {
				return stageUser(stages, s)
			}
		}
	}
	return ""
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// addrPort is the port of host:port.
func addrPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// reachableAddr reports whether a listen address accepts connections from
// other hosts (a load balancer, a Service): not loopback.
func reachableAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && (ip.IsUnspecified() || !ip.IsLoopback()) && host != "localhost"
}

// ---------------------------------------------------------------------------
// Compose

// mounts returns a Compose service's bind mounts (source resolved from the
// compose folder) and named volumes.
type mount struct{ src, dst string }

func (b *bundle) mounts(name string) (binds, named []mount) {
	for _, v := range b.compose.Services[name].Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 {
			continue
		}
		m := mount{src: parts[0], dst: parts[1]}
		if strings.HasPrefix(m.src, ".") || strings.HasPrefix(m.src, "/") {
			if !filepath.IsAbs(m.src) {
				m.src = filepath.Join(b.dir, "compose", m.src)
			}
			binds = append(binds, m)
		} else {
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
func healthURL(s composeService) *url.URL {
	if s.Healthcheck == nil {
		return nil
	}
	for _, a := range s.Healthcheck.Test {
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

func dependsOn(s composeService, on, condition string) bool {
	d, ok := s.DependsOn[on]
	return ok && d.Condition == condition
}

func checkCompose(b *bundle, p *problems) {
	if len(b.compose.Services) == 0 {
		p.add("compose.yaml has no services")
		return
	}
	r := b.roles(p)
	svc := b.compose.Services

	// Every ${VAR} is made by init-secrets.sh, and the password hashes it
	// writes are the hashes of its passwords.
	if _, missing := interpolate(b.composeRaw, b.env); len(missing) > 0 {
		p.add("compose.yaml uses %v, which init-secrets.sh does not set", missing)
	}
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
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
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
			if _, err := os.Stat(m.src); err != nil {
				p.add("compose service %s mounts %s, which does not exist", name, m.src)
			}
		}
		for _, m := range named {
			if _, ok := b.compose.Volumes[m.src]; !ok {
				p.add("compose service %s uses volume %s, which is not declared", name, m.src)
			}
		}
		for _, s := range svc[name].Secrets {
			if _, ok := b.compose.Secrets[s]; !ok {
				p.add("compose service %s uses secret %s, which is not declared", name, s)
			}
		}
	}
	for _, name := range sortedKeys(b.compose.Secrets) {
		f := filepath.Clean(b.compose.Secrets[name].File)
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
			raw, ok := s.Environment[v]
			val, _ := interpolate(raw, b.env)
			if !ok || val == "" {
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
			grace, err := time.ParseDuration(svc[n].StopGracePeriod)
			var need time.Duration
			if group.prog == progIngest {
				need = durFlag(fs, "ingest.ack-timeout") + 10*time.Second
			} else {
				need = durFlag(fs, "query.timeout") + 5*time.Second
			}
			if err != nil || grace < need {
				p.add("compose service %s: stop_grace_period %q is under the %v it may take to finish its requests", n, svc[n].StopGracePeriod, need)
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
		secrets[svc[n].Environment["NETVIEW_CURSOR_SECRET"]] = true
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
		if s.NetworkMode != "host" || s.PID != "host" {
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

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// publishes reports whether a Compose service publishes container port port.
func publishes(s composeService, port string) bool {
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if strings.Split(parts[len(parts)-1], "/")[0] == port {
			return true
		}
	}
	return false
}

func durFlag(fs *flag.FlagSet, name string) time.Duration {
	d, _ := time.ParseDuration(val(fs, name))
	return d
}

func sha256hex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// checkDSN checks a clickhouse:// DSN: a ClickHouse service of the stack
// (when server is not ""), a user of users.xml, and in Compose the password
// whose hash the server is given. It returns the database.
func (b *bundle) checkDSN(p *problems, where, dsn, server string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.Scheme != "clickhouse" || u.User == nil {
		p.add("%s: --store.dsn %q is not clickhouse://user:password@host:port/db", where, redact(dsn))
		return ""
	}
	db := strings.TrimPrefix(u.Path, "/")
	if db == "" {
		db = "netview"
	}
	user := u.User.Username()
	pw, _ := u.User.Password()
	un := b.users.child("users", user)
	if un == nil {
		p.add("%s: --store.dsn user %q is not a user of clickhouse/users.xml", where, user)
		return db
	}
	if prof := b.users.child("profiles", un.child("profile").text()); prof.child("readonly").text() != "" && prof.child("readonly").text() != "0" {
		p.add("%s: user %s has a read-only profile, but the program applies the schema migrations", where, user)
	}
	if server == "" {
		return db
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = "9000"
	}
	if host != server && host != b.compose.Services[server].Hostname {
		p.add("%s: --store.dsn host %q is not the ClickHouse service %q", where, host, server)
	}
	if port != "9000" {
		p.add("%s: --store.dsn port %s is not ClickHouse's native port 9000", where, port)
	}
	env := un.child("password_sha256_hex").attr("from_env")
	want, _ := interpolate(b.compose.Services[server].Environment[env], b.env)
	if env == "" || want != sha256hex(pw) {
		p.add("%s: the password in --store.dsn is not the one whose SHA-256 %s gives ClickHouse for user %s", where, env, user)
	}
	return db
}

func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		return u.Redacted()
	}
	return "(unparsable)"
}

// checkReadinessPath: a readiness (health) path answers 200 while storage
// is up and something else while it is down, on the program's real handler.
func checkReadinessPath(p *problems, where string, prog program, path string) {
	up, err := routeStatus(prog, path, true)
	if err != nil {
		p.add("%s: %v", where, err)
		return
	}
	down, _ := routeStatus(prog, path, false)
	if up != 200 {
		p.add("%s: GET %s answers %d from %s, not 200: not a health route of the program", where, path, up, prog)
	} else if down == 200 {
		p.add("%s: GET %s answers 200 from %s while storage is down: it does not tell readiness", where, path, prog)
	}
}

// checkLivenessPath: a liveness path answers 200 even while storage is
// down, or a ClickHouse outage would restart every node.
func checkLivenessPath(p *problems, where string, prog program, path string) {
	up, err := routeStatus(prog, path, true)
	if err != nil {
		p.add("%s: %v", where, err)
		return
	}
	down, _ := routeStatus(prog, path, false)
	switch {
	case up != 200:
		p.add("%s: GET %s answers %d from %s, not 200: not a route of the program", where, path, up, prog)
	case down != 200:
		p.add("%s: GET %s answers %d from %s while storage is down: a ClickHouse outage would restart every node", where, path, down, prog)
	}
}

// ---------------------------------------------------------------------------
// nginx

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
	bin, err := exec.LookPath("nginx")
	if err != nil {
		return
	}
	src, err := os.ReadFile(filepath.Join(b.dir, "nginx", "nginx.conf"))
	if err != nil {
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

// ---------------------------------------------------------------------------
// Kubernetes

func checkK8s(b *bundle, p *problems) {
	namespaces := map[string]*k8sObject{}
	for _, o := range b.objects("Namespace") {
		namespaces[o.Metadata.Name] = o
	}
	for _, o := range append(append([]*k8sObject{}, b.k8s...), b.secrets...) {
		if o.APIVersion == "" || o.Kind == "" || o.Metadata.Name == "" {
			p.add("%s: missing apiVersion, kind or metadata.name", o)
		}
		if o.Kind != "Namespace" && namespaces[o.Metadata.Namespace] == nil {
			p.add("%s: namespace %q is not created by the manifests", o, o.Metadata.Namespace)
		}
	}
	// kustomization.yaml lists every manifest but the secret example.
	files, _ := filepath.Glob(filepath.Join(b.dir, "k8s", "*.yaml"))
	var want []string
	for _, f := range files {
		if base := filepath.Base(f); base != "kustomization.yaml" && base != "secret.example.yaml" {
			want = append(want, base)
		}
	}
	if !sameSet(want, b.kustomize) {
		p.add("k8s/kustomization.yaml resources %v, want %v", b.kustomize, want)
	}

	deployments := map[string]bool{}
	for _, o := range b.objects("Deployment") {
		deployments[o.Metadata.Namespace+"/"+o.Metadata.Name] = true
		checkDeployment(b, p, o)
	}
	for _, prog := range []program{progIngest, progQuery} {
		found := false
		for _, o := range b.objects("Deployment") {
			w, err := workload(o)
			if err != nil {
				continue
			}
			for _, c := range w.Template.Spec.Containers {
				if q, ok := imageProgram(c.Image); ok && q == prog {
					found = true
				}
			}
		}
		if !found {
			p.add("no Deployment runs %s", prog)
		}
	}

	// Services select pods and reach their ports.
	for _, o := range b.objects("Service") {
		var s serviceSpec
		if err := json.Unmarshal(o.Spec, &s); err != nil {
			p.add("%s: %v", o, err)
			continue
		}
		pod := b.selectPods(o.Metadata.Namespace, s.Selector)
		if pod == nil {
			p.add("%s: selector %v matches no pod template", o, s.Selector)
			continue
		}
		for _, sp := range s.Ports {
			if !podHasPort(pod, sp.TargetPort) {
				p.add("%s: port %d targets %q, which no container of its pods has", o, sp.Port, sp.TargetPort)
			}
		}
	}

	// HPAs scale Deployments that exist and can be measured.
	scaled := map[string]bool{}
	for _, o := range b.objects("HorizontalPodAutoscaler") {
		var h hpaSpec
		if err := json.Unmarshal(o.Spec, &h); err != nil {
			p.add("%s: %v", o, err)
			continue
		}
		if o.APIVersion != "autoscaling/v2" {
			p.add("%s: apiVersion %s, want autoscaling/v2", o, o.APIVersion)
		}
		ref := h.ScaleTargetRef
		target := b.object(ref.Kind, o.Metadata.Namespace, ref.Name)
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || target == nil {
			p.add("%s: scaleTargetRef %s %s/%s is not a Deployment of the manifests", o, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		scaled[o.Metadata.Namespace+"/"+ref.Name] = true
		if h.MinReplicas == nil || *h.MinReplicas < 2 || h.MaxReplicas < *h.MinReplicas {
			p.add("%s: want minReplicas at least 2 (no single node) and maxReplicas above it", o)
		}
		w, _ := workload(target)
		if w != nil && w.Replicas != nil {
			p.add("%s sets replicas, which fights its HorizontalPodAutoscaler", target)
		}
		if len(h.Metrics) == 0 {
			p.add("%s: no metrics", o)
		}
		for _, m := range h.Metrics {
			if m.Type != "Resource" || m.Resource == nil {
				continue
			}
			for _, c := range w.Template.Spec.Containers {
				if c.Resources.Requests[m.Resource.Name] == "" && m.Resource.Target.Type == "Utilization" {
					p.add("%s: scales on %s utilization, but container %s of %s requests no %s", o, m.Resource.Name, c.Name, target, m.Resource.Name)
				}
			}
		}
	}
	for d := range deployments {
		if !scaled[d] {
			p.add("Deployment %s has no HorizontalPodAutoscaler", d)
		}
	}

	// Pod Security: Deployments live in "restricted" namespaces; the
	// privileged namespace holds the sensor alone.
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		for _, o := range b.objects(kind) {
			ns := namespaces[o.Metadata.Namespace]
			if ns == nil {
				continue
			}
			level := ns.Metadata.Labels["pod-security.kubernetes.io/enforce"]
			if kind == "Deployment" && level != "restricted" {
				p.add("%s: its namespace %s enforces Pod Security %q, want restricted", o, ns.Metadata.Name, level)
			}
			if kind == "DaemonSet" && level == "privileged" {
				for _, other := range b.objects("Deployment") {
					if other.Metadata.Namespace == ns.Metadata.Name {
						p.add("%s shares the privileged namespace %s with the sensor", other, ns.Metadata.Name)
					}
				}
			}
		}
	}
}

// selectPods returns the pod template a selector picks in ns.
func (b *bundle) selectPods(ns string, sel map[string]string) *podSpec {
	if len(sel) == 0 {
		return nil
	}
	for _, kind := range []string{"Deployment", "DaemonSet"} {
		for _, o := range b.objects(kind) {
			if o.Metadata.Namespace != ns {
				continue
			}
			w, err := workload(o)
			if err != nil {
				continue
			}
			match := true
			for k, v := range sel {
				match = match && w.Template.Metadata.Labels[k] == v
			}
			if match {
				return &w.Template.Spec
			}
		}
	}
	return nil
}

func podHasPort(pod *podSpec, port intOrString) bool {
	for _, c := range pod.Containers {
		if containerPort(&c, port) != 0 {
			return true
		}
	}
	return false
}

// containerPort resolves a port given by name or number to the number,
// or 0 if the container does not have it.
func containerPort(c *container, port intOrString) int {
	for _, cp := range c.Ports {
		if string(port) == cp.Name || string(port) == strconv.Itoa(cp.ContainerPort) {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkDeployment(b *bundle, p *problems, o *k8sObject) {
	w, err := workload(o)
	if err != nil {
		p.add("%v", err)
		return
	}
	ns := o.Metadata.Namespace
	pod := w.Template.Spec
	for k, v := range w.Selector.MatchLabels {
		if w.Template.Metadata.Labels[k] != v {
			p.add("%s: selector %s=%s does not match its pod template", o, k, v)
		}
	}
	if pod.HostNetwork || pod.HostPID || pod.HostIPC {
		p.add("%s: host namespaces; ingest and query need none", o)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.add("%s: mounts a service account token it never uses", o)
	}
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			p.add("%s: hostPath volume %s", o, v.Name)
		}
	}
	for i := range pod.Containers {
		c := &pod.Containers[i]
		where := fmt.Sprintf("%s container %s", o, c.Name)
		prog, ok := imageProgram(c.Image)
		if !ok {
			p.add("%s: image %s is not a Netview program", where, c.Image)
			continue
		}
		env, probs := b.containerEnv(ns, c)
		for _, s := range probs {
			p.add("%s: %s", o, s)
		}
		args, missing := expandArgs(c.Args, env)
		if len(missing) > 0 {
			p.add("%s: args use $(%s), which its environment does not define", where, strings.Join(missing, "), $("))
		}
		if len(c.Command) > 0 {
			p.add("%s: command overrides the image's entrypoint", where)
		}
		fs, err := parseFlags(prog, args)
		if err != nil {
			p.add("%s: %v", where, err)
			continue
		}
		scheme := b.checkK8sServing(p, where, ns, w, c, prog, args, fs)
		checkProbeScheme(p, where, "readinessProbe", c.ReadinessProbe, scheme)
		checkProbeScheme(p, where, "livenessProbe", c.LivenessProbe, scheme)
		checkProbeScheme(p, where, "startupProbe", c.StartupProbe, scheme)
		addrFlag := strings.TrimPrefix(string(prog), "netview-") + ".addr"
		addr := val(fs, addrFlag)
		port, _ := strconv.Atoi(addrPort(addr))
		if !reachableAddr(addr) {
			p.add("%s: --%s=%s is loopback; the Service could not reach it", where, addrFlag, addr)
		}
		if addrPort(addr) != addrPort(flagDefault(prog, addrFlag)) {
			p.add("%s: listens on %s, not %s's port %s", where, addrPort(addr), prog, addrPort(flagDefault(prog, addrFlag)))
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port {
			p.add("%s: containerPort %v, want the one the program listens on, %d", where, c.Ports, port)
		}
		b.checkDSN(p, where, val(fs, "store.dsn"), "")
		if val(fs, "store.cluster") == "" {
			p.add("%s: no --store.cluster, but deploy/clickhouse holds the cluster schema", where)
		} else if b.chConfig["remote_servers.xml"].child("remote_servers", val(fs, "store.cluster")) == nil {
			p.add("%s: --store.cluster=%s is not a cluster of clickhouse/config.d/remote_servers.xml", where, val(fs, "store.cluster"))
		}
		// Probes on the program's real routes.
		rp, lp := c.ReadinessProbe, c.LivenessProbe
		switch {
		case rp == nil:
			p.add("%s: no readinessProbe", where)
		case rp.HTTPGet == nil:
			p.add("%s: readinessProbe is not an HTTP GET of the health route", where)
		default:
			if containerPort(c, rp.HTTPGet.Port) != port {
				p.add("%s: readinessProbe port %q is not the port it listens on", where, rp.HTTPGet.Port)
			}
			checkReadinessPath(p, where+" readinessProbe", prog, rp.HTTPGet.Path)
		}
		for _, pr := range []struct {
			name string
			p    *probe
		}{{"livenessProbe", lp}, {"startupProbe", c.StartupProbe}} {
			switch {
			case pr.p == nil && pr.name == "livenessProbe":
				p.add("%s: no livenessProbe", where)
			case pr.p == nil:
			case pr.p.HTTPGet != nil:
				if containerPort(c, pr.p.HTTPGet.Port) != port {
					p.add("%s: %s port %q is not the port it listens on", where, pr.name, pr.p.HTTPGet.Port)
				}
				checkLivenessPath(p, where+" "+pr.name, prog, pr.p.HTTPGet.Path)
			case pr.p.TCPSocket != nil:
				if containerPort(c, pr.p.TCPSocket.Port) != port {
					p.add("%s: %s port %q is not the port it listens on", where, pr.name, pr.p.TCPSocket.Port)
				}
			default:
				p.add("%s: %s is neither an HTTP GET nor a TCP check (the image has nothing else to run)", where, pr.name)
			}
		}
		if c.Resources.Requests["cpu"] == "" || c.Resources.Requests["memory"] == "" || c.Resources.Limits["memory"] == "" {
			p.add("%s: want cpu and memory requests and a memory limit", where)
		}
		// Time to finish what was accepted.
		var need time.Duration
		if prog == progIngest {
			need = durFlag(fs, "ingest.ack-timeout") + 10*time.Second
		} else {
			need = durFlag(fs, "query.timeout") + 5*time.Second
		}
		if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second < need {
			p.add("%s: terminationGracePeriodSeconds %v is under the %v the program may take to finish on SIGTERM", o, g, need)
		}
		// Restricted pod security.
		sc := c.SecurityContext
		psc := pod.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		seccomp := (sc != nil && sc.SeccompProfile != nil && sc.SeccompProfile.Type == "RuntimeDefault") || (psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == "RuntimeDefault")
		if !nonRoot || !seccomp || sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.Capabilities == nil ||
			!sameSet(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 || (sc.Privileged != nil && *sc.Privileged) {
			p.add("%s: want runAsNonRoot, RuntimeDefault seccomp, no privilege escalation, a read-only root and every capability dropped", where)
		}
		// Token files come from mounted Secrets.
		for _, f := range tokenFileFlags {
			if fs.Lookup(f) == nil || val(fs, f) == "" {
				continue
			}
			if err := b.secretFile(ns, &pod, c, val(fs, f)); err != nil {
				p.add("%s: --%s: %v", where, f, err)
			}
		}
	}
}

// secretFile checks that path is a key of a Secret (in secret.example.yaml)
// mounted into the container.
func (b *bundle) secretFile(ns string, pod *podSpec, c *container, path string) error {
	_, err := b.secretOf(ns, pod, c, path)
	return err
}

// secretOf returns the Secret whose key path is, mounted into the container.
func (b *bundle) secretOf(ns string, pod *podSpec, c *container, path string) (*k8sObject, error) {
	for _, m := range c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			s := b.secret(ns, v.Secret.SecretName)
			if s == nil {
				return nil, fmt.Errorf("Secret %s/%s is not in secret.example.yaml", ns, v.Secret.SecretName)
			}
			for _, it := range v.Secret.Items {
				if it.Path == rel {
					if _, ok := s.StringData[it.Key]; !ok {
						return nil, fmt.Errorf("Secret %s/%s has no key %q", ns, v.Secret.SecretName, it.Key)
					}
					return s, nil
				}
			}
			if len(v.Secret.Items) == 0 {
				if _, ok := s.StringData[rel]; ok {
					return s, nil
				}
			}
		}
	}
	return nil, fmt.Errorf("%s is not a file of a Secret mounted into the container", path)
}

// ---------------------------------------------------------------------------
// The sensor DaemonSet

// sensorDaemonSet returns the DaemonSet running the sensor and its container.
func (b *bundle) sensorDaemonSet() (*k8sObject, *workloadSpec, *container) {
	for _, o := range b.objects("DaemonSet") {
		w, err := workload(o)
		if err != nil {
			continue
		}
		for i := range w.Template.Spec.Containers {
			if p, ok := imageProgram(w.Template.Spec.Containers[i].Image); ok && p == progSensor {
				return o, w, &w.Template.Spec.Containers[i]
			}
		}
	}
	return nil, nil, nil
}

// daemonSetCaps returns the capabilities the sensor's DaemonSet adds.
func (b *bundle) daemonSetCaps() []string {
	_, _, c := b.sensorDaemonSet()
	if c == nil || c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
		return nil
	}
	return c.SecurityContext.Capabilities.Add
}

func checkSensorDaemonSet(b *bundle, p *problems) {
	o, w, c := b.sensorDaemonSet()
	if o == nil {
		p.add("no DaemonSet runs netview-sensor")
		return
	}
	if n := len(b.objects("DaemonSet")); n != 1 {
		p.add("%d DaemonSets, want the sensor's alone", n)
	}
	pod := w.Template.Spec
	if !pod.HostNetwork || !pod.HostPID {
		p.add("%s: want hostNetwork and hostPID: the sensor reads the node's sockets and finds their processes", o)
	}
	if pod.HostIPC {
		p.add("%s: hostIPC, which the sensor does not need", o)
	}
	if pod.DNSPolicy != "ClusterFirstWithHostNet" {
		p.add("%s: dnsPolicy %q: with hostNetwork only ClusterFirstWithHostNet resolves the ingest Service", o, pod.DNSPolicy)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.add("%s: mounts a service account token it never uses", o)
	}
	everywhere := false
	for _, t := range pod.Tolerations {
		everywhere = everywhere || (t.Key == "" && t.Operator == "Exists" && t.Effect == "")
	}
	if !everywhere {
		p.add("%s: no toleration of every taint ({operator: Exists}): tainted nodes would go unwatched", o)
	}
	if len(pod.Containers) != 1 || len(pod.InitContainers) != 0 {
		p.add("%s: want the sensor container alone", o)
	}

	sc := c.SecurityContext
	switch {
	case sc == nil || sc.Capabilities == nil:
		p.add("%s: no securityContext.capabilities", o)
	default:
		if !sameSet(sc.Capabilities.Drop, []string{"ALL"}) {
			p.add("%s: capabilities.drop %v, want [ALL]", o, sc.Capabilities.Drop)
		}
		if !sameSet(sc.Capabilities.Add, sensorCaps) {
			p.add("%s: capabilities.add %v, want exactly %v", o, sc.Capabilities.Add, sensorCaps)
		}
		if sc.Privileged != nil && *sc.Privileged {
			p.add("%s: privileged", o)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.add("%s: allowPrivilegeEscalation is not false", o)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p.add("%s: readOnlyRootFilesystem is not true", o)
		}
		if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
			p.add("%s: runAsUser is not 0: Kubernetes grants added capabilities to uid 0 only", o)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != "RuntimeDefault" {
			p.add("%s: seccomp profile is not RuntimeDefault", o)
		}
		if sc.AppArmorProfile == nil || sc.AppArmorProfile.Type != "Unconfined" {
			p.add("%s: the runtime's default AppArmor profile denies reading other processes' fd links: want appArmorProfile Unconfined", o)
		}
	}

	env, probs := b.containerEnv(o.Metadata.Namespace, c)
	for _, s := range probs {
		p.add("%s: %s", o, s)
	}
	args, missing := expandArgs(c.Args, env)
	if len(missing) > 0 {
		p.add("%s: args use $(%s), which its environment does not define", o, strings.Join(missing, "), $("))
	}
	fs, err := parseFlags(progSensor, args)
	if err != nil {
		p.add("%s: %v", o, err)
		return
	}
	if val(fs, "sensor.proc") != "/proc" {
		p.add("%s: --sensor.proc=%s: any root but /proc turns netlink flow tracking off", o, val(fs, "sensor.proc"))
	}
	// The only hostPath is the state folder, mounted where --sensor.state says.
	for _, v := range pod.Volumes {
		if v.HostPath == nil {
			continue
		}
		mounted := ""
		for _, m := range c.VolumeMounts {
			if m.Name == v.Name {
				mounted = m.MountPath
			}
		}
		if mounted != val(fs, "sensor.state") || v.HostPath.Path != val(fs, "sensor.state") {
			p.add("%s: hostPath %s mounted at %q: the only host folder it needs is its state, --sensor.state=%s", o, v.HostPath.Path, mounted, val(fs, "sensor.state"))
		}
	}
	stateOnHost := false
	for _, m := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			stateOnHost = stateOnHost || (v.Name == m.Name && v.HostPath != nil && m.MountPath == val(fs, "sensor.state") && !m.ReadOnly)
		}
	}
	if !stateOnHost {
		p.add("%s: --sensor.state=%s is not a writable hostPath: identity and spool would die with the pod", o, val(fs, "sensor.state"))
	}
	var caps []string
	if sc != nil && sc.Capabilities != nil {
		caps = sc.Capabilities.Add
	}
	b.checkDaemonSetLink(p, o, &pod, c, fs, caps)
	// The ingest URL is the ingest Service.
	u, err := url.Parse(val(fs, "sensor.ingest"))
	defURL, _ := url.Parse(flagDefault(progSensor, "sensor.ingest"))
	if err != nil || u.Path != defURL.Path {
		p.add("%s: --sensor.ingest=%s does not post to %s", o, val(fs, "sensor.ingest"), defURL.Path)
		return
	}
	parts := strings.Split(u.Hostname(), ".")
	if len(parts) < 2 {
		p.add("%s: --sensor.ingest host %s is not SERVICE.NAMESPACE...", o, u.Hostname())
		return
	}
	svc := b.object("Service", parts[1], parts[0])
	if svc == nil {
		p.add("%s: --sensor.ingest host %s is not a Service of the manifests", o, u.Hostname())
		return
	}
	var s serviceSpec
	json.Unmarshal(svc.Spec, &s)
	found := false
	for _, sp := range s.Ports {
		found = found || strconv.Itoa(sp.Port) == u.Port()
	}
	pod2 := b.selectPods(svc.Metadata.Namespace, s.Selector)
	runsIngest := false
	if pod2 != nil {
		for _, pc := range pod2.Containers {
			if q, ok := imageProgram(pc.Image); ok && q == progIngest {
				runsIngest = true
			}
		}
	}
	if !found || !runsIngest {
		p.add("%s: --sensor.ingest=%s is not the port of a Service in front of netview-ingest", o, u)
	}
}

// ---------------------------------------------------------------------------
// systemd

func checkSystemd(b *bundle, p *problems) {
	u := b.unit
	if u == nil {
		return
	}
	svc := "Service"
	caps := strings.Fields(u.last(svc, "CapabilityBoundingSet"))
	var names []string
	for _, c := range caps {
		names = append(names, strings.TrimPrefix(c, "CAP_"))
	}
	if !sameSet(names, sensorCaps) || (b.withYAML && !sameSet(names, b.daemonSetCaps())) {
		p.add("unit: CapabilityBoundingSet %v, want the DaemonSet's %v", caps, sensorCaps)
	}
	if amb := strings.Fields(u.last(svc, "AmbientCapabilities")); len(amb) > 0 && !sameSet(amb, caps) {
		p.add("unit: AmbientCapabilities %v beyond the bounding set", amb)
	}
	if user := u.last(svc, "User"); user != "" && user != "root" && u.last(svc, "AmbientCapabilities") == "" {
		p.add("unit: runs as %s without AmbientCapabilities: it would have no capability", user)
	}
	want := map[string][]string{
		"NoNewPrivileges":       {"yes", "true"},
		"ProtectSystem":         {"strict"},
		"ProtectHome":           {"yes", "true", "read-only", "tmpfs"},
		"PrivateTmp":            {"yes", "true"},
		"ProtectKernelTunables": {"yes", "true"},
		"ProtectKernelModules":  {"yes", "true"},
		"ProtectControlGroups":  {"yes", "true"},
		"RestrictSUIDSGID":      {"yes", "true"},
		"Restart":               {"always", "on-failure"},
	}
	for _, k := range sortedKeys(want) {
		if !contains(want[k], u.last(svc, k)) {
			p.add("unit: %s=%q, want one of %v", k, u.last(svc, k), want[k])
		}
	}
	// What would blind the sensor.
	for k, bad := range map[string][]string{
		"PrivateNetwork": {"yes", "true"},
		"PrivateUsers":   {"yes", "true"},
		"ProtectProc":    {"invisible", "noaccess", "ptraceable"},
		"ProcSubset":     {"pid"},
		"PrivatePIDs":    {"yes", "true"},
	} {
		if contains(bad, u.last(svc, k)) {
			p.add("unit: %s=%s hides the host's sockets or processes from the sensor", k, u.last(svc, k))
		}
	}
	fam := strings.Fields(strings.Join(u[svc]["RestrictAddressFamilies"], " "))
	for _, f := range []string{"AF_NETLINK", "AF_INET", "AF_INET6"} {
		if len(fam) > 0 && (!contains(fam, f) || strings.HasPrefix(fam[0], "~")) {
			p.add("unit: RestrictAddressFamilies %v does not allow %s", fam, f)
		}
	}
	if len(fam) == 0 {
		p.add("unit: no RestrictAddressFamilies")
	}
	if u.last("Install", "WantedBy") != "multi-user.target" {
		p.add("unit: WantedBy=%q, want multi-user.target", u.last("Install", "WantedBy"))
	}

	// ExecStart: the binary install.sh installs, real flags, the token file
	// install.sh writes, the state folder systemd makes.
	exec := strings.Fields(u.last(svc, "ExecStart"))
	if len(exec) == 0 {
		p.add("unit: no ExecStart")
		return
	}
	args, missing := expandUnitEnv(exec[1:], b.unitEnv)
	if len(missing) > 0 {
		p.add("unit: ExecStart uses $%v, which install.sh's %s does not set", missing, u.last(svc, "EnvironmentFile"))
	}
	fs, err := parseFlags(progSensor, args)
	if err != nil {
		p.add("unit: ExecStart: %v", err)
		return
	}
	if b.installRoot != "" {
		if st, err := os.Stat(filepath.Join(b.installRoot, exec[0])); err != nil || st.Mode().Perm() != 0o755 {
			p.add("unit: ExecStart runs %s, which install.sh does not install (mode 0755)", exec[0])
		}
		if ef := strings.TrimPrefix(u.last(svc, "EnvironmentFile"), "-"); ef != "" {
			if _, err := os.Stat(filepath.Join(b.installRoot, ef)); err != nil {
				p.add("unit: EnvironmentFile %s is not written by install.sh", ef)
			}
		}
		tf := val(fs, "sensor.enroll-secret-file")
		st, err := os.Stat(filepath.Join(b.installRoot, tf))
		if err != nil || st.Mode().Perm() != 0o600 {
			p.add("unit: --sensor.enroll-secret-file=%s is not the 0600 file install.sh writes", tf)
		} else if tok, _ := os.ReadFile(filepath.Join(b.installRoot, tf)); strings.TrimSpace(string(tok)) != installToken {
			p.add("unit: install.sh wrote %q into %s, not the enrollment secret it was given", tok, tf)
		}
		ca := val(fs, "sensor.ca-file")
		st, err = os.Stat(filepath.Join(b.installRoot, ca))
		if ca == "" || err != nil || st.Mode().Perm() != 0o644 {
			p.add("unit: --sensor.ca-file=%q is not the 0644 CA file install.sh installs from its --ca-file", ca)
		} else if got, _ := os.ReadFile(filepath.Join(b.installRoot, ca)); string(got) != installCA {
			p.add("unit: install.sh wrote another CA into %s than it was given", ca)
		}
		if val(fs, "sensor.ingest") != installIngest {
			p.add("unit: --sensor.ingest expands to %q, not the URL given to install.sh", val(fs, "sensor.ingest"))
		}
	}
	if sd := u.last(svc, "StateDirectory"); sd == "" || val(fs, "sensor.state") != "/var/lib/"+sd {
		p.add("unit: --sensor.state=%s is not StateDirectory=%s (/var/lib/%s), the one writable folder under ProtectSystem=strict", val(fs, "sensor.state"), sd, sd)
	}
	if val(fs, "sensor.proc") != "/proc" {
		p.add("unit: --sensor.proc=%s turns netlink flow tracking off", val(fs, "sensor.proc"))
	}
	checkSensorSecrets(p, "unit", fs)
	checkEBPF(p, "unit", fs, names)
	checkSystemdAnalyze(b, p, exec[0])
}

// checkSystemdAnalyze runs systemd-analyze verify and security on the unit
// when the tool is here.
func checkSystemdAnalyze(b *bundle, p *problems, binary string) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return
	}
	src, err := os.ReadFile(filepath.Join(b.dir, "systemd", "netview-sensor.service"))
	if err != nil {
		return
	}
	// verify wants the binary to exist; /bin/true stands in.
	text := []byte(strings.ReplaceAll(string(src), binary, "/bin/true"))
	work, out, err := memoRun("verify", [][]byte{text}, func(work string) (string, error) {
		unitPath := filepath.Join(work, "netview-sensor.service")
		if err := os.WriteFile(unitPath, text, 0o644); err != nil {
			return "", err
		}
		return runCmd(work, nil, tool, "verify", "--man=no", unitPath)
	})
	if err != nil || strings.TrimSpace(out) != "" {
		p.add("systemd-analyze verify: %v\n%s", err, out)
	}
	_, out, err = memoRun("security", [][]byte{text}, func(string) (string, error) {
		return runCmd(work, nil, tool, "security", "--offline=true", "--no-pager", filepath.Join(work, "netview-sensor.service"))
	})
	m := regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`).FindStringSubmatch(out)
	if err != nil || m == nil {
		p.add("systemd-analyze security: %v\n%s", err, out)
		return
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 3.5 {
		p.add("systemd-analyze security: exposure %s, above 3.5: the unit lost hardening", m[1])
	}
}

// ---------------------------------------------------------------------------
// users.xml

func checkUsers(b *bundle, p *problems) {
	x := b.users
	if x == nil {
		return
	}
	profiles, quotas, users := x.child("profiles"), x.child("quotas"), x.child("users")
	for _, name := range []string{"ingest", "query", "analyst"} {
		u := users.child(name)
		if u == nil {
			p.add("users.xml: no user %s", name)
			continue
		}
		if u.child("password") != nil || u.child("password_double_sha1_hex") != nil || u.child("no_password") != nil {
			p.add("users.xml: user %s has a password in the file (or none); want password_sha256_hex from_env", name)
		}
		pw := u.child("password_sha256_hex")
		if pw == nil || pw.attr("from_env") == "" || pw.text() != "" {
			p.add("users.xml: user %s: want <password_sha256_hex from_env=\"...\"/>", name)
		}
		if len(u.child("networks").Children) == 0 {
			p.add("users.xml: user %s has no networks", name)
		}
		if profiles.child(u.child("profile").text()) == nil {
			p.add("users.xml: user %s's profile %q does not exist", name, u.child("profile").text())
		}
		if quotas.child(u.child("quota").text()) == nil {
			p.add("users.xml: user %s's quota %q does not exist", name, u.child("quota").text())
		}
	}
	if d := users.child("default"); d != nil {
		for _, ip := range d.child("networks").Children {
			if addr := net.ParseIP(strings.Split(ip.text(), "/")[0]); ip.XMLName.Local != "ip" || addr == nil || !addr.IsLoopback() {
				p.add("users.xml: the passwordless default user is open to %s %s, want loopback only", ip.XMLName.Local, ip.text())
			}
		}
	}

	// The analyst: read-only, the limits of POST /api/v1/sql, a quota.
	a := users.child("analyst")
	prof := profiles.child(a.child("profile").text())
	ro := prof.child("readonly").text()
	if ro != "1" && ro != "2" {
		p.add("users.xml: the analyst profile has readonly=%q, want 1 (or 2)", ro)
	}
	if prof.child("allow_ddl").text() != "0" {
		p.add("users.xml: the analyst profile does not set allow_ddl=0")
	}
	l := analyst.DefaultLimits()
	limits := map[string]string{
		"max_execution_time": strconv.Itoa(int(l.MaxExecution / time.Second)),
		"max_rows_to_read":   strconv.FormatUint(l.MaxRowsRead, 10),
		"max_result_rows":    strconv.FormatUint(l.MaxResultRows, 10),
		"max_result_bytes":   strconv.FormatUint(l.MaxResultBytes, 10),
		"max_memory_usage":   strconv.FormatUint(l.MaxMemoryBytes, 10),
		"max_query_size":     strconv.Itoa(l.MaxQueryBytes),
	}
	for _, k := range sortedKeys(limits) {
		if got := prof.child(k).text(); got != limits[k] {
			p.add("users.xml: analyst %s=%q, want %s as for POST /api/v1/sql (query/analyst.DefaultLimits)", k, got, limits[k])
		}
		if ro == "2" && prof.child("constraints", k, "max").text() != limits[k] {
			p.add("users.xml: readonly=2 lets the analyst change %s: want a constraint <max>%s</max>", k, limits[k])
		}
	}
	if prof.child("result_overflow_mode").text() != "throw" {
		p.add("users.xml: analyst result_overflow_mode=%q, want throw: a result is never silently cut", prof.child("result_overflow_mode").text())
	}
	for _, g := range a.child("grants").all("query") {
		if q := strings.ToUpper(g.text()); !strings.HasPrefix(q, "GRANT SELECT ON ") && !strings.HasPrefix(q, "REVOKE ") {
			p.add("users.xml: the analyst is granted %q; want SELECT only", g.text())
		}
	}
	checkAnalystProtection(p, prof, a)
	if a.child("access_management").text() == "1" {
		p.add("users.xml: the analyst may manage access")
	}
	q := quotas.child(a.child("quota").text())
	intervals := q.all("interval")
	if len(intervals) == 0 {
		p.add("users.xml: the analyst's quota has no interval")
	}
	perStatement := map[string]string{
		"queries": "1", "errors": "1",
		"result_rows":    limits["max_result_rows"],
		"read_rows":      limits["max_rows_to_read"],
		"execution_time": limits["max_execution_time"],
	}
	for i, in := range intervals {
		if d, _ := strconv.Atoi(in.child("duration").text()); d <= 0 {
			p.add("users.xml: analyst quota interval %d has no duration", i+1)
		}
		for _, k := range sortedKeys(perStatement) {
			v, err := strconv.ParseUint(in.child(k).text(), 10, 64)
			min, _ := strconv.ParseUint(perStatement[k], 10, 64)
			if err != nil || v == 0 {
				p.add("users.xml: analyst quota interval %d does not limit %s", i+1, k)
			} else if v < min {
				p.add("users.xml: analyst quota interval %d: %s=%d is below what one statement may use (%d)", i+1, k, v, min)
			}
		}
	}
	// The services may write and migrate.
	for _, name := range []string{"ingest", "query"} {
		u := users.child(name)
		if pr := profiles.child(u.child("profile").text()); pr.child("readonly").text() != "" && pr.child("readonly").text() != "0" {
			p.add("users.xml: user %s is read-only, but it applies the schema migrations", name)
		}
	}
}

// ---------------------------------------------------------------------------
// ClickHouse server and Keeper configuration

func checkClickHouse(b *bundle, p *problems) {
	rs := b.chConfig["remote_servers.xml"].child("remote_servers")
	keeper := b.chConfig["keeper.xml"]
	macros := b.chConfig["macros.xml"].child("macros")
	if rs == nil || keeper == nil || macros == nil {
		p.add("clickhouse/config.d: want remote_servers.xml, keeper.xml and macros.xml with their sections")
		return
	}
	r := b.roles(&problems{})
	onCluster := map[string]bool{}
	for _, m := range regexp.MustCompile(`ON CLUSTER '([^']*)'`).FindAllStringSubmatch(b.clusterSQL, -1) {
		onCluster[m[1]] = true
	}
	if len(onCluster) != 1 {
		p.add("cluster.sql names clusters %v, want one", sortedKeys(onCluster))
	}
	for c := range onCluster {
		cl := rs.child(c)
		if cl == nil {
			p.add("remote_servers.xml has no cluster %q, the one cluster.sql is made for", c)
			continue
		}
		if cl.child("secret") == nil {
			p.add("remote_servers.xml cluster %s: no <secret>: distributed queries would run as the default user, not the analyst", c)
		}
		shards := cl.all("shard")
		if len(shards) == 0 {
			p.add("remote_servers.xml cluster %s has no shard", c)
		}
		for i, s := range shards {
			if s.child("internal_replication").text() != "true" {
				p.add("remote_servers.xml cluster %s shard %d: internal_replication is not true, as Replicated tables need", c, i+1)
			}
			for _, rep := range s.all("replica") {
				host, port := rep.child("host").text(), rep.child("port").text()
				if port != "9000" {
					p.add("remote_servers.xml: replica %s port %q, want the native port 9000", host, port)
				}
				if r.server != "" && host != r.server && host != composeHostname(b, r.server) {
					p.add("remote_servers.xml: replica host %s is not the Compose ClickHouse service %s", host, r.server)
				}
			}
		}
	}
	for _, m := range []string{"shard", "replica"} {
		n := macros.child(m)
		if n == nil || (n.text() == "" && n.attr("from_env") == "") {
			p.add("macros.xml: no {%s} macro, which cluster.sql's Replicated engines use", m)
		}
	}
	// Keeper: the server finds it where Compose runs it.
	kport := b.keeper.child("keeper_server", "tcp_port").text()
	nodes := keeper.child("zookeeper").all("node")
	if len(nodes) == 0 {
		p.add("keeper.xml: no <zookeeper><node>")
	}
	for _, n := range nodes {
		if n.child("port").text() != kport {
			p.add("keeper.xml: node port %s, but Keeper listens on %s", n.child("port").text(), kport)
		}
		if r.keeper != "" && n.child("host").text() != r.keeper && n.child("host").text() != composeHostname(b, r.keeper) {
			p.add("keeper.xml: node host %s is not the Compose Keeper service %s", n.child("host").text(), r.keeper)
		}
	}
	id := b.keeper.child("keeper_server", "server_id").text()
	found := false
	for _, s := range b.keeper.child("keeper_server", "raft_configuration").all("server") {
		if s.child("id").text() == id {
			found = true
			if r.keeper != "" && s.child("hostname").text() != r.keeper && s.child("hostname").text() != composeHostname(b, r.keeper) {
				p.add("keeper_config.xml: raft server %s is not the Compose Keeper service %s", s.child("hostname").text(), r.keeper)
			}
		}
	}
	if !found {
		p.add("keeper_config.xml: server_id %q is not in raft_configuration", id)
	}
}

func composeHostname(b *bundle, service string) string {
	return b.compose.Services[service].Hostname
}

// ---------------------------------------------------------------------------
// Cluster DDL

var (
	sqlCreateRe  = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w+)(?:\(([^)]*)\))?(.*)$`)
	sqlAlterRe   = regexp.MustCompile(`(?s)^ALTER TABLE (\w+)\s+(.*)$`)
	clusterHead  = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER '([^']*)'\s*(.*)$`)
	clusterAlter = regexp.MustCompile(`(?s)^ALTER TABLE (\w+) ON CLUSTER '([^']*)'\s+(.*)$`)
	spaceRe      = regexp.MustCompile(`\s+`)
)

// splitSQL cuts SQL into statements at semicolons that end a line, after
// dropping -- comments.
func splitSQL(text string) []string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if i := strings.Index(l, "--"); i >= 0 {
			l = l[:i]
		}
		b.WriteString(l)
		b.WriteString("\n")
	}
	var out []string
	for _, s := range regexp.MustCompile(`;\s*\n`).Split(b.String(), -1) {
		if s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func norm(s string) string { return strings.TrimSpace(spaceRe.ReplaceAllString(s, " ")) }

// engineClause splits "... ENGINE = Name(args) rest" at the engine,
// reading args with balanced parentheses and quotes.
func engineClause(stmt string) (before, name, args, rest string, ok bool) {
	loc := regexp.MustCompile(`ENGINE\s*=\s*(\w+)`).FindStringSubmatchIndex(stmt)
	if loc == nil {
		return "", "", "", "", false
	}
	before, name = stmt[:loc[0]], stmt[loc[2]:loc[3]]
	i := loc[1]
	if i >= len(stmt) || stmt[i] != '(' {
		return before, name, "", stmt[i:], true
	}
	depth, quote := 0, byte(0)
	for j := i; j < len(stmt); j++ {
		c := stmt[j]
		switch {
		case quote != 0:
			if c == '\\' {
				j++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth == 0 {
				return before, name, stmt[i+1 : j], stmt[j+1:], true
			}
		}
	}
	return "", "", "", "", false
}

// splitArgs splits engine arguments at top-level commas.
func splitArgs(s string) []string {
	var out []string
	depth, quote, start := 0, byte(0), 0
	for j := 0; j < len(s); j++ {
		c := s[j]
		switch {
		case quote != 0:
			if c == '\\' {
				j++
			} else if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			out = append(out, strings.TrimSpace(s[start:j]))
			start = j + 1
		}
	}
	if strings.TrimSpace(s[start:]) != "" {
		out = append(out, strings.TrimSpace(s[start:]))
	}
	return out
}

type table struct {
	cols, engine, args, rest string
}

func checkClusterDDL(b *bundle, p *problems) {
	// The source: every migration, and the bootstrap table the sql package
	// creates before them.
	files, _ := filepath.Glob(filepath.Join(b.repo, "sql", "schema", "migrations", "*.sql"))
	if len(files) == 0 {
		p.add("no sql/schema/migrations/*.sql")
		return
	}
	sort.Strings(files)
	tables := map[string]table{"schema_migrations": {engine: "ReplacingMergeTree"}}
	var alters [][2]string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			p.add("%v", err)
			continue
		}
		for _, st := range splitSQL(string(src)) {
			if m := sqlCreateRe.FindStringSubmatch(st); m != nil {
				tables[m[1]] = table{cols: norm(m[2]), engine: m[3], args: norm(m[4]), rest: norm(m[5])}
			} else if m := sqlAlterRe.FindStringSubmatch(st); m != nil {
				alters = append(alters, [2]string{m[1], norm(m[2])})
			} else {
				p.add("%s: a statement the cluster form does not cover: %.60q", filepath.Base(f), st)
			}
		}
	}
	if want, err := nsql.Tables(); err == nil && !sameSet(want, sortedKeys(tables)) {
		p.add("the migrations create %v, but the sql package lists %v", sortedKeys(tables), want)
	}

	// The cluster form.
	locals, dists := map[string][4]string{}, map[string][2]string{}
	altered := map[string]bool{}
	for _, st := range splitSQL(b.clusterSQL) {
		if m := clusterAlter.FindStringSubmatch(st); m != nil {
			altered[m[1]+" "+norm(m[3])] = true
			continue
		}
		m := clusterHead.FindStringSubmatch(st)
		if m == nil {
			p.add("cluster.sql: a statement neither CREATE TABLE nor ALTER TABLE ON CLUSTER: %.60q", st)
			continue
		}
		name, body := m[1], m[3]
		before, eng, args, rest, ok := engineClause(body)
		if !ok {
			p.add("cluster.sql: %s has no ENGINE", name)
			continue
		}
		if as, isAs := strings.CutPrefix(strings.TrimSpace(before), "AS "); isAs {
			dists[name] = [2]string{strings.TrimSpace(as), eng + "(" + args + ")"}
		} else {
			locals[name] = [4]string{norm(before), eng, args, norm(rest)}
		}
	}
	var cluster string
	if m := regexp.MustCompile(`ON CLUSTER '([^']*)'`).FindStringSubmatch(b.clusterSQL); m != nil {
		cluster = m[1]
	}
	for _, name := range sortedKeys(tables) {
		t := tables[name]
		local := name + "_local"
		l, ok := locals[local]
		if !ok {
			p.add("cluster.sql: table %s has no local table %s", name, local)
		} else {
			args := splitArgs(l[2])
			wantArgs := []string{"'/clickhouse/tables/{shard}/{database}/" + local + "'", "'{replica}'"}
			if t.args != "" {
				wantArgs = append(wantArgs, splitArgs(t.args)...)
			}
			if l[1] != "Replicated"+t.engine || strings.Join(args, ", ") != strings.Join(wantArgs, ", ") {
				p.add("cluster.sql: %s has ENGINE = %s(%s), want Replicated%s(%s)", local, l[1], l[2], t.engine, strings.Join(wantArgs, ", "))
			}
			if t.cols != "" && (l[0] != t.cols || l[3] != t.rest) {
				p.add("cluster.sql: %s's columns or keys differ from the migration of %s", local, name)
			}
		}
		d, ok := dists[name]
		if !ok {
			p.add("cluster.sql: table %s has no Distributed table", name)
			continue
		}
		_, eng, args, _, _ := engineClause("ENGINE = " + d[1])
		a := splitArgs(args)
		if d[0] != local || eng != "Distributed" || len(a) != 4 || a[0] != "'"+cluster+"'" || a[1] != "currentDatabase()" || a[2] != local {
			p.add("cluster.sql: %s is AS %s ENGINE = %s, want AS %s ENGINE = Distributed('%s', currentDatabase(), %s, <sharding key>)", name, d[0], d[1], local, cluster, local)
		} else if strings.Contains(t.cols, "sensor_id ") && !strings.Contains(a[3], "sensor_id") {
			p.add("cluster.sql: %s is sharded by %s, not by sensor_id: a sensor's rows would spread over shards", name, a[3])
		}
	}
	for name := range locals {
		if _, ok := tables[strings.TrimSuffix(name, "_local")]; !ok {
			p.add("cluster.sql: %s has no table in sql/schema/migrations", name)
		}
	}
	for _, al := range alters {
		targets := []string{al[0] + "_local"}
		if strings.Contains(al[1], "COLUMN") { // the Distributed table shows columns too
			targets = append(targets, al[0])
		}
		for _, target := range targets {
			if !altered[target+" "+al[1]] {
				p.add("cluster.sql: the migrations' ALTER TABLE %s %s is not applied to %s", al[0], al[1], target)
			}
		}
	}
}
