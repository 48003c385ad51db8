// Package store is Netview's one storage layer: ClickHouse reached either
// in-process (the embedded engine, libchdb) or over the native protocol
// (a ClickHouse server or cluster), with ch-go proto columns as the only
// currency in and out.
package store

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/ClickHouse/ch-go/proto"
)

// Store runs statements on ClickHouse. Both backends run the same SQL.
type Store interface {
	// Exec runs a statement that returns no rows (DDL, INSERT ... SELECT).
	Exec(ctx context.Context, q Query) error
	// Insert writes the rows held in cols into table in one block.
	Insert(ctx context.Context, table string, cols proto.Input) error
	// Select runs q and decodes each block of its result into result, then
	// calls onBlock with the block's row count. The columns hold only that
	// block's rows and are reset after onBlock returns, so onBlock must copy
	// what it keeps.
	Select(ctx context.Context, q Query, result proto.Results, onBlock func(rows int) error) error
	// Close releases connections. The store must not be used afterwards.
	Close() error
}

// Query is SQL text with named parameters bound by the engine: the text uses
// {name:Type} placeholders and values never enter the SQL text.
// Settings a statement needs go in its SQL (a SETTINGS clause); settings of
// every statement go in Config.Settings.
type Query struct {
	SQL    string
	Params []Param
}

// Param binds one {name:Type} placeholder. Value is the plain text form of
// the value (for example 2026-01-02 03:04:05.000 or a UUID); the engine
// parses it as the placeholder's type.
type Param struct{ Name, Value string }

// Setting is one query-level ClickHouse setting.
type Setting struct{ Name, Value string }

// P is a short constructor for Param.
func P(name, value string) Param { return Param{Name: name, Value: value} }

var (
	// ErrUnavailable reports that the storage cannot be reached right now;
	// callers answer 503 and let the client retry.
	ErrUnavailable = errors.New("storage unavailable")
	// ErrClosed reports use of a closed store.
	ErrClosed = errors.New("store closed")
)

// Config chooses and tunes a backend.
type Config struct {
	// DSN is "embedded:" or "embedded:DIR" for the in-process engine (data in
	// DIR, default ./data/clickhouse), or clickhouse://user:pass@host:9000/db
	// for a server.
	DSN string
	// Database holds Netview's tables on the embedded engine (a server DSN
	// names its own database in its path).
	Database string
	// Conns is the number of parallel connections (embedded) or the pool
	// size (server).
	Conns int
	// Library is the path of libchdb.so; empty means $NETVIEW_LIBCHDB, then
	// the default search list (see LibraryPath).
	Library string
	// Cluster names the ClickHouse cluster whose Replicated/Distributed
	// schema to use; empty for a single server or the embedded engine.
	Cluster string
	// EventsTTLDays is how long events and flows are kept.
	EventsTTLDays int
	// HistoryTTLDays is how long the snapshot tables' history is kept: how
	// far back the views' at= reaches.
	HistoryTTLDays int
	// Settings apply to every statement of this store: a store opened with
	// readonly=1 and limits is what analysts' SQL runs on.
	Settings []Setting
}

// MemoryReleaser is a store whose engine runs in this process and can hand
// the memory it keeps for reuse back to the OS (the embedded engine). A
// ClickHouse server manages its own.
type MemoryReleaser interface {
	ReleaseMemory(ctx context.Context) error
}

// RegisterFlags registers the storage flags with a "store." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.DSN, "store.dsn", "embedded:data/clickhouse", "embedded:DIR for the in-process engine, or clickhouse://user:pass@host:9000/db")
	fs.StringVar(&c.Database, "store.database", "netview", "database of the embedded engine")
	fs.IntVar(&c.Conns, "store.conns", 4, "parallel storage connections")
	fs.StringVar(&c.Library, "store.libchdb", "", "path of libchdb.so (default: $NETVIEW_LIBCHDB, then .cache/chdb/package)")
	fs.StringVar(&c.Cluster, "store.cluster", "", "ClickHouse cluster name for the replicated schema")
	fs.IntVar(&c.EventsTTLDays, "store.events-ttl-days", 30, "days events and completed flows are kept")
	fs.IntVar(&c.HistoryTTLDays, "store.history-ttl-days", 7, "days the snapshot tables' history is kept (how far back the views' at= reaches)")
}

// Open connects to the backend the DSN names.
func Open(ctx context.Context, c Config) (Store, error) {
	if c.Conns <= 0 {
		c.Conns = 4
	}
	if c.Cluster != "" {
		// The views filter rows by `sensor_id IN (SELECT ... FROM sensors)`.
		// On Distributed tables ClickHouse refuses such a subquery by default
		// (distributed_product_mode = deny); every table is sharded by
		// cityHash64(sensor_id), so a sensor's rows and its sensors row live
		// on one shard and each shard may answer the subquery alone.
		c.Settings = append([]Setting{{Name: "distributed_product_mode", Value: "local"}}, c.Settings...)
	}
	switch {
	case c.DSN == "" || c.DSN == "embedded" || strings.HasPrefix(c.DSN, "embedded:"):
		dir := strings.TrimPrefix(strings.TrimPrefix(c.DSN, "embedded"), ":")
		if dir == "" {
			dir = "data/clickhouse"
		}
		db := c.Database
		if db == "" {
			db = "netview"
		}
		return OpenEmbedded(ctx, EmbeddedConfig{Dir: dir, Database: db, Conns: c.Conns, Library: c.Library, Settings: c.Settings})
	case strings.HasPrefix(c.DSN, "clickhouse://"):
		return OpenServer(ctx, c.DSN, c.Conns, c.Settings...)
	default:
		u, err := url.Parse(c.DSN)
		scheme := ""
		if err == nil {
			scheme = u.Scheme
		}
		return nil, fmt.Errorf("store: unknown DSN scheme %q: want embedded:DIR or clickhouse://user:pass@host:9000/db", scheme)
	}
}

// Quote returns s as a ClickHouse string literal. Only for identifiers and
// settings the program itself chooses; user values go through Param.
func Quote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

// validIdent reports whether s can be used bare as a database or table name.
func validIdent(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// Ping asks storage for one row. It reads the row (a ClickHouse server
// refuses a statement that returns rows to Exec), so it answers the same
// on every backend.
func Ping(ctx context.Context, st Store) error {
	var ok proto.ColUInt8
	return st.Select(ctx, Query{SQL: "SELECT toUInt8(1) AS ok"}, proto.Results{{Name: "ok", Data: &ok}}, func(int) error { return nil })
}
