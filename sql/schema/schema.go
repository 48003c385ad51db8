// Package schema holds Netview's ClickHouse schema as versioned migrations,
// applies them idempotently, and derives the cluster form (Replicated
// engines behind Distributed tables) from the same source.
package schema

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

//go:embed migrations/*.sql
var files embed.FS

// Migration is one versioned schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
}

// bootstrap records applied versions; it exists before any migration runs.
const bootstrap = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version     UInt32,
    name        String,
    applied_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1`

// Migrations returns every migration in version order.
func Migrations() ([]Migration, error) {
	names, err := fs.Glob(files, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "migrations/"), ".sql")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must be NNNN_description.sql", n)
		}
		if len(out) > 0 && out[len(out)-1].Version >= v {
			return nil, fmt.Errorf("migration %s: version %d is not above the previous one", n, v)
		}
		text, err := files.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: base, Statements: Split(string(text))})
	}
	return out, nil
}

// Split cuts SQL text into statements at semicolons that end a line, after
// dropping -- comments. Migrations keep string literals free of ";\n".
func Split(text string) []string {
	var b strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.Index(line, "--"); i >= 0 {
			line = line[:i]
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		b.WriteString(strings.TrimRight(line, " \t\r"))
		b.WriteByte('\n')
	}
	var out []string
	for _, s := range strings.Split(b.String(), ";\n") {
		if s = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Options tune Migrate.
type Options struct {
	// Cluster, when set, applies the cluster form of every statement
	// (ON CLUSTER, Replicated engines, Distributed tables).
	Cluster string
	// EventsTTLDays, when above zero, sets how long events and completed
	// flows are kept, and the addresses of host_addresses after they were
	// last seen.
	EventsTTLDays int
	// HistoryTTLDays, when above zero, sets how long the snapshot tables'
	// history (at= on the views) is kept.
	HistoryTTLDays int
}

// Migrate brings the database to the newest version. It is safe to run from
// every node at once: statements are idempotent and versions are recorded
// in a table that collapses duplicates.
func Migrate(ctx context.Context, s store.Store, o Options) (int, error) {
	ms, err := Migrations()
	if err != nil {
		return 0, err
	}
	if err := execAll(ctx, s, o.Cluster, bootstrap); err != nil {
		return 0, fmt.Errorf("schema_migrations: %w", err)
	}
	current, err := Version(ctx, s)
	if err != nil {
		return 0, err
	}
	for _, m := range ms {
		if m.Version <= current {
			continue
		}
		if err := execAll(ctx, s, o.Cluster, m.Statements...); err != nil {
			return current, fmt.Errorf("migration %s: %w", m.Name, err)
		}
		err := s.Exec(ctx, store.Query{
			SQL:    "INSERT INTO schema_migrations (version, name, applied_at) VALUES ({v:UInt32}, {n:String}, {t:DateTime64(3, 'UTC')})",
			Params: []store.Param{store.P("v", strconv.Itoa(m.Version)), store.P("n", m.Name), store.P("t", time.Now().UTC().Format("2006-01-02 15:04:05.000"))},
		})
		if err != nil {
			return current, fmt.Errorf("record migration %s: %w", m.Name, err)
		}
		current = m.Version
	}
	if o.EventsTTLDays > 0 {
		// host_addresses is kept as long as events are, so that the
		// addresses of every stored event resolve at its time.
		for table, column := range map[string]string{"events": "time", "flows": "ended_at", "host_addresses": "last_seen"} {
			if err := SetTTL(ctx, s, o.Cluster, table, column, o.EventsTTLDays); err != nil {
				return current, err
			}
		}
	}
	if o.HistoryTTLDays > 0 {
		for _, h := range HistoryTables {
			if err := SetTTL(ctx, s, o.Cluster, h.History, h.TimeColumn, o.HistoryTTLDays); err != nil {
				return current, err
			}
		}
	}
	return current, nil
}

// Open opens the store sc names and migrates it to the newest version, with
// sc's cluster and event retention: what every service does before it
// serves. It returns the schema version reached.
func Open(ctx context.Context, sc store.Config) (store.Store, int, error) {
	st, err := store.Open(ctx, sc)
	if err != nil {
		return nil, 0, err
	}
	v, err := Migrate(ctx, st, Options{Cluster: sc.Cluster, EventsTTLDays: sc.EventsTTLDays, HistoryTTLDays: sc.HistoryTTLDays})
	if err != nil {
		st.Close()
		return nil, 0, err
	}
	return st, v, nil
}

// Version returns the newest applied migration, 0 when none.
func Version(ctx context.Context, s store.Store) (int, error) {
	var v proto.ColUInt32
	var got int
	err := s.Select(ctx, store.Query{SQL: "SELECT toUInt32(max(version)) AS v FROM schema_migrations"},
		proto.Results{{Name: "v", Data: &v}}, func(int) error { got = int(v.Row(0)); return nil })
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return got, nil
}

func execAll(ctx context.Context, s store.Store, cluster string, stmts ...string) error {
	for _, st := range stmts {
		forms := []string{st}
		if cluster != "" {
			forms = ClusterForm(st, cluster)
		}
		for _, f := range forms {
			if err := s.Exec(ctx, store.Query{SQL: f}); err != nil {
				return err
			}
		}
	}
	return nil
}

// SetTTL sets table's TTL on column to days when it differs; old parts are
// not rewritten, they expire as merges reach them. On a cluster the ALTER
// goes to every node's local table.
func SetTTL(ctx context.Context, s store.Store, cluster, table, column string, days int) error {
	var engine proto.ColStr
	var full string
	err := s.Select(ctx, store.Query{
		SQL:    "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}",
		Params: []store.Param{store.P("t", localName(table, cluster))},
	}, proto.Results{{Name: "engine_full", Data: &engine}}, func(int) error { full = engine.Row(0); return nil })
	if err != nil {
		return fmt.Errorf("read %s TTL: %w", table, err)
	}
	if strings.Contains(full, fmt.Sprintf("toIntervalDay(%d)", days)) {
		return nil
	}
	stmt := fmt.Sprintf("ALTER TABLE %s MODIFY TTL toDateTime(%s) + INTERVAL %d DAY SETTINGS materialize_ttl_after_modify = 0", table, column, days)
	return execAll(ctx, s, cluster, stmt)
}

var (
	createRe = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS (\w+)\s*(\(.*\))\s*ENGINE\s*=\s*(\w+)(?:\(([^)]*)\))?(.*)$`)
	alterRe  = regexp.MustCompile(`(?s)^ALTER TABLE (\w+)\s+(.*)$`)
	mvRe     = regexp.MustCompile(`(?s)^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) TO (\w+) AS (SELECT .* FROM) (\w+)(.*)$`)
)

func localName(table, cluster string) string {
	if cluster == "" {
		return table
	}
	return table + "_local"
}

// ClusterForm rewrites one statement for a cluster: a table becomes
// NAME_local with the Replicated form of its engine on every node, plus a
// Distributed NAME in front of it sharded by sensor; an ALTER goes to both.
// A materialized view runs on every node, from one local table to another:
// each shard's inserts fill its own history.
func ClusterForm(stmt, cluster string) []string {
	on := " ON CLUSTER " + store.Quote(cluster)
	if m := mvRe.FindStringSubmatch(stmt); m != nil {
		return []string{fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s_local AS %s %s_local%s", m[1], on, m[2], m[3], m[4], m[5])}
	}
	if m := createRe.FindStringSubmatch(stmt); m != nil {
		name, cols, eng, args, rest := m[1], m[2], m[3], m[4], m[5]
		local := name + "_local"
		rargs := store.Quote("/clickhouse/tables/{shard}/{database}/"+local) + ", '{replica}'"
		if strings.TrimSpace(args) != "" {
			rargs += ", " + args
		}
		shard := "rand()"
		if strings.Contains(cols, "sensor_id ") {
			shard = "cityHash64(sensor_id)"
		}
		return []string{
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s\n%s\nENGINE = Replicated%s(%s)%s", local, on, cols, eng, rargs, rest),
			fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s%s AS %s\nENGINE = Distributed(%s, currentDatabase(), %s, %s)", name, on, local, store.Quote(cluster), local, shard),
		}
	}
	if m := alterRe.FindStringSubmatch(stmt); m != nil {
		out := []string{fmt.Sprintf("ALTER TABLE %s_local%s %s", m[1], on, m[2])}
		if strings.Contains(m[2], "COLUMN") {
			out = append(out, fmt.Sprintf("ALTER TABLE %s%s %s", m[1], on, m[2]))
		}
		return out
	}
	return []string{stmt}
}

// ClusterDDL returns the whole schema in cluster form, for operators who
// create it by hand (deploy/clickhouse).
func ClusterDDL(cluster string) (string, error) {
	ms, err := Migrations()
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString("-- Generated from sql/schema/migrations by `make cluster-ddl`; do not edit.\n")
	for _, st := range append([]string{bootstrap}, flatten(ms)...) {
		for _, f := range ClusterForm(st, cluster) {
			b.WriteString(f)
			b.WriteString(";\n\n")
		}
	}
	return b.String(), nil
}

func flatten(ms []Migration) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Statements...)
	}
	return out
}

// Tables lists the tables the schema creates, bootstrap included.
func Tables() ([]string, error) {
	ms, err := Migrations()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, st := range append([]string{bootstrap}, flatten(ms)...) {
		if m := createRe.FindStringSubmatch(st); m != nil {
			out = append(out, m[1])
		}
	}
	return out, nil
}
