package deploy

// ClickHouse: users.xml, config.d, Keeper's configuration (encoding/xml
// into a generic tree: ClickHouse's configuration has no schema to decode
// into), the --store.dsn every node is given, and cluster.sql against the
// schema's migrations.

import (
	"encoding/xml"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/netview/netview/query/analyst"
	nsql "github.com/netview/netview/sql/schema"
)

type xmlNode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Text     string     `xml:",chardata"`
	Children []*xmlNode `xml:",any"`
}

func parseXML(b []byte) (*xmlNode, error) {
	var n xmlNode
	if err := xml.Unmarshal(b, &n); err != nil {
		return nil, err
	}
	return &n, nil
}

// child follows a path of element names; nil if any is missing.
func (n *xmlNode) child(path ...string) *xmlNode {
	for _, name := range path {
		if n == nil {
			return nil
		}
		var next *xmlNode
		for _, c := range n.Children {
			if c.XMLName.Local == name {
				next = c
				break
			}
		}
		n = next
	}
	return n
}

// all returns the children named name.
func (n *xmlNode) all(name string) []*xmlNode {
	if n == nil {
		return nil
	}
	var out []*xmlNode
	for _, c := range n.Children {
		if c.XMLName.Local == name {
			out = append(out, c)
		}
	}
	return out
}

func (n *xmlNode) text() string {
	if n == nil {
		return ""
	}
	return strings.TrimSpace(n.Text)
}

func (n *xmlNode) attr(name string) string {
	if n == nil {
		return ""
	}
	for _, a := range n.Attrs {
		if a.Name.Local == name {
			return a.Value
		}
	}
	return ""
}

// fromEnv collects the from_env variables named anywhere under n.
func (n *xmlNode) fromEnv(into map[string]bool) {
	if n == nil {
		return
	}
	if v := n.attr("from_env"); v != "" {
		into[v] = true
	}
	for _, c := range n.Children {
		c.fromEnv(into)
	}
}

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
	want := envVal(b.compose.Services[server], env)
	if env == "" || want != sha256hex(pw) {
		p.add("%s: the password in --store.dsn is not the one whose SHA-256 %s gives ClickHouse for user %s", where, env, user)
	}
	return db
}

var (
	sqlCreateRe  = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w+)(?:\(([^)]*)\))?(.*)$`)
	sqlAlterRe   = regexp.MustCompile(`(?s)^ALTER TABLE (\w+)\s+(.*)$`)
	clusterHead  = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER '([^']*)'\s*(.*)$`)
	clusterAlter = regexp.MustCompile(`(?s)^ALTER TABLE (\w+) ON CLUSTER '([^']*)'\s+(.*)$`)
	// A materialized view that copies one table's inserts into another
	// (the snapshot history's feeds, schema 14): in a cluster it must read
	// and write the local tables, since a Distributed table's insert
	// reaches the shards' local tables, not the Distributed one.
	sqlFeedRe     = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS (SELECT .*) FROM (\w+)$`)
	clusterFeedRe = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) ON CLUSTER '[^']*' TO (\w+) AS (SELECT .*) FROM (\w+)$`)
	spaceRe       = regexp.MustCompile(`\s+`)
	engineRe      = regexp.MustCompile(`ENGINE\s*=\s*(\w+)`)
	// quotedRe is a quoted string with its backslash escapes.
	quotedRe = regexp.MustCompile(`(?s)'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"`)
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
	loc := engineRe.FindStringSubmatchIndex(stmt)
	if loc == nil {
		return "", "", "", "", false
	}
	before, name = stmt[:loc[0]], stmt[loc[2]:loc[3]]
	i := loc[1]
	if i >= len(stmt) || stmt[i] != '(' {
		return before, name, "", stmt[i:], true
	}
	// A parenthesis inside a quoted string does not count: blank the
	// strings out (same length, so the indexes hold), then match.
	masked := quotedRe.ReplaceAllStringFunc(stmt[i:], func(q string) string { return strings.Repeat(" ", len(q)) })
	depth := 0
	for j := 0; j < len(masked); j++ {
		switch masked[j] {
		case '\'', '"':
			return "", "", "", "", false // a quote left open before the ')'
		case '(':
			depth++
		case ')':
			if depth--; depth == 0 {
				return before, name, stmt[i+1 : i+j], stmt[i+j+1:], true
			}
		}
	}
	return "", "", "", "", false
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
	feeds := map[string]string{} // name: "to select from", as the cluster form must read
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
			} else if m := sqlFeedRe.FindStringSubmatch(st); m != nil {
				feeds[m[1]] = m[2] + "_local " + norm(m[3]) + " " + m[4] + "_local"
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
		if m := clusterFeedRe.FindStringSubmatch(st); m != nil {
			if want, ok := feeds[m[1]]; !ok {
				p.add("cluster.sql: materialized view %s has no migration", m[1])
			} else if got := m[2] + " " + norm(m[3]) + " " + m[4]; got != want {
				p.add("cluster.sql: materialized view %s is %q, want %q (the local tables)", m[1], got, want)
			}
			delete(feeds, m[1])
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
			args := analyst.SplitTopLevel(l[2])
			wantArgs := []string{"'/clickhouse/tables/{shard}/{database}/" + local + "'", "'{replica}'"}
			if t.args != "" {
				wantArgs = append(wantArgs, analyst.SplitTopLevel(t.args)...)
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
		a := analyst.SplitTopLevel(args)
		if d[0] != local || eng != "Distributed" || len(a) != 4 || a[0] != "'"+cluster+"'" || a[1] != "currentDatabase()" || a[2] != local {
			p.add("cluster.sql: %s is AS %s ENGINE = %s, want AS %s ENGINE = Distributed('%s', currentDatabase(), %s, <sharding key>)", name, d[0], d[1], local, cluster, local)
		} else if strings.Contains(t.cols, "sensor_id ") && !strings.Contains(a[3], "sensor_id") {
			p.add("cluster.sql: %s is sharded by %s, not by sensor_id: a sensor's rows would spread over shards", name, a[3])
		}
	}
	for _, name := range sortedKeys(feeds) {
		p.add("cluster.sql: the migrations' materialized view %s is missing", name)
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
