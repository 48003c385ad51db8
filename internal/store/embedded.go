package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"
)

// nativeVersion is the protocol revision used to encode and decode the Native
// format for the embedded engine: the newest below custom serialization,
// whose extra byte the engine's Native reader rejects.
const nativeVersion = int(proto.FeatureCustomSerialization) - 1

// EmbeddedConfig configures the in-process engine.
type EmbeddedConfig struct {
	Dir      string // data folder, created if missing
	Database string // database that holds the tables
	Conns    int    // parallel statements
	Library  string // path of libchdb.so; see LibraryPath
	Settings []Setting
}

// engine is the process-wide embedded ClickHouse: libchdb runs one data folder
// per process, and shutting it down and booting it again is unsafe, so one
// anchor connection stays open for the life of the process.
var engine struct {
	mu     sync.Mutex
	dir    string
	lib    *libchdb
	anchor unsafe.Pointer
}

// Embedded is a Store on the in-process engine.
type Embedded struct {
	lib   *libchdb
	db    string
	conns chan unsafe.Pointer
	all   []unsafe.Pointer
	// bufs keeps one encode buffer per connection. A free list, not a
	// sync.Pool: the profile showed pooled buffers dropped at every GC and
	// regrown column by column (growslice in EncodeColumn, a fifth of CPU).
	bufs   chan *proto.Buffer
	closed atomic.Bool
}

var _ Store = (*Embedded)(nil)

// OpenEmbedded starts the in-process engine on cfg.Dir (once per process) and
// opens cfg.Conns connections whose current database is cfg.Database.
func OpenEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if !validIdent(cfg.Database) {
		return nil, fmt.Errorf("store: invalid database name %q", cfg.Database)
	}
	if cfg.Conns <= 0 {
		cfg.Conns = 4
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("store: data folder: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("store: data folder: %w", err)
	}
	lib, err := loadLib(cfg.Library)
	if err != nil {
		return nil, err
	}

	engine.mu.Lock()
	defer engine.mu.Unlock()
	if engine.anchor == nil {
		a, _, err := connect(lib, dir)
		if err != nil {
			return nil, err
		}
		engine.dir, engine.lib, engine.anchor = dir, lib, a
	} else if engine.dir != dir {
		return nil, fmt.Errorf("store: the embedded engine already runs on %s; one data folder per process (asked for %s)", engine.dir, dir)
	}
	if err := lib.query(engine.anchor, "CREATE DATABASE IF NOT EXISTS "+cfg.Database, "Native", nil, nil); err != nil {
		return nil, fmt.Errorf("store: create database: %w", err)
	}

	e := &Embedded{lib: lib, db: cfg.Database, conns: make(chan unsafe.Pointer, cfg.Conns), bufs: make(chan *proto.Buffer, cfg.Conns)}
	for range cfg.Conns {
		c, pc, err := connect(lib, dir, cfg.Settings...)
		if err == nil {
			err = lib.query(c, "USE "+cfg.Database, "Native", nil, nil)
		}
		if err != nil {
			e.Close()
			return nil, err
		}
		e.all = append(e.all, pc)
		e.conns <- c
	}
	return e, nil
}

// connect opens one connection on dir and returns its chdb_connection
// value, and the chdb_connection* that closing it takes.
func connect(lib *libchdb, dir string, settings ...Setting) (conn, pconn unsafe.Pointer, err error) {
	args := [][]byte{cstr("netview"), cstr("--path=" + dir)}
	for _, st := range settings {
		// Query-level settings given at connect apply to this connection only.
		args = append(args, cstr("--"+st.Name+"="+st.Value))
	}
	argv := make([]*byte, len(args))
	for i := range args {
		argv[i] = &args[i][0]
	}
	pc := lib.connect(int32(len(argv)), &argv[0])
	if pc == nil {
		return nil, nil, fmt.Errorf("store: %w: cannot open the embedded engine on %s (is another process using it, or is a setting invalid?)", ErrUnavailable, dir)
	}
	// chdb_connect returns chdb_connection*; statements take the connection itself.
	return *(*unsafe.Pointer)(pc), pc, nil
}

func (e *Embedded) acquire(ctx context.Context) (unsafe.Pointer, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	select {
	case c := <-e.conns:
		return c, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for a connection: %w", ErrUnavailable, ctx.Err())
	}
}

func (e *Embedded) release(c unsafe.Pointer) { e.conns <- c }

// Exec implements Store.
func (e *Embedded) Exec(ctx context.Context, q Query) error {
	c, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(c)
	return e.lib.query(c, q.SQL, "Native", escapeParams(q.Params), nil)
}

// Insert implements Store: the block is encoded in the Native format and
// streamed through the engine's insert API, which takes binary data whole.
func (e *Embedded) Insert(ctx context.Context, table string, cols proto.Input) error {
	if !validIdent(table) {
		return fmt.Errorf("store: invalid table name %q", table)
	}
	if len(cols) == 0 || cols[0].Data.Rows() == 0 {
		return nil
	}
	var buf *proto.Buffer
	select {
	case buf = <-e.bufs:
		buf.Reset()
	default:
		buf = new(proto.Buffer)
	}
	defer func() {
		select {
		case e.bufs <- buf:
		default:
		}
	}()
	block := proto.Block{Columns: len(cols), Rows: cols[0].Data.Rows()}
	if err := block.EncodeRawBlock(buf, nativeVersion, cols); err != nil {
		return fmt.Errorf("store: encode %s: %w", table, err)
	}
	c, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(c)
	if err := e.lib.insert(c, "INSERT INTO "+e.db+"."+table+" "+cols.Columns(), "Native", buf.Buf); err != nil {
		return fmt.Errorf("store: insert into %s: %w", table, err)
	}
	return nil
}

// Select implements Store. The result streams from the engine in Native
// chunks, each decoded from engine memory straight into the columns, so a
// large result is never held whole; ctx ending cancels the statement.
func (e *Embedded) Select(ctx context.Context, q Query, result proto.Results, onBlock func(rows int) error) error {
	c, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(c)
	sql := strings.TrimRight(strings.TrimSpace(q.SQL), ";")
	params := escapeParams(q.Params)
	n := 0
	decode := func(data []byte) error {
		r := proto.NewReader(bytes.NewReader(data))
		for ; ; n++ {
			var b proto.Block
			if err := b.DecodeRawBlock(r, nativeVersion, result); err != nil {
				// The chunk ends exactly where a block would start.
				if errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					return nil
				}
				return fmt.Errorf("store: decode result block %d: %w", n, err)
			}
			if b.Rows > 0 && onBlock != nil {
				if err := onBlock(b.Rows); err != nil {
					return err
				}
			}
			resetResults(result)
		}
	}
	// A fetch blocks until the engine has a block, which a slow statement
	// may take minutes to build; ending ctx then stops it from outside, by
	// a KILL on the anchor connection that finds it by a mark in its text.
	mark := "netview-select:" + uuid.NewString()
	sql = "/* " + mark + " */ " + sql
	w := &fetchWatch{ctx: ctx}
	killed := make(chan struct{})
	stopKill := context.AfterFunc(ctx, func() {
		w.interrupt(func() { e.kill(mark) })
		close(killed)
	})
	err = e.lib.stream(c, sql, "Native", params, w, decode)
	if errors.Is(err, errNoStream) {
		err = e.lib.query(c, sql, "Native", params, decode)
	}
	if !stopKill() {
		// ctx ended: wait for a KILL under way, so it never outlives the
		// statement's connection going back to the pool. The caller's
		// reason, not the engine's QUERY_WAS_CANCELLED, is why it ended.
		<-killed
		if err != nil {
			return ctx.Err()
		}
	}
	return err
}

// kill asks the engine to stop the statement whose text holds mark. ASYNC:
// the statement's own connection is blocked in a fetch and returns
// QUERY_WAS_CANCELLED; SYNC would wait for that here, under engine.mu. The
// mark is split in the KILL's text, so the KILL never matches itself.
func (e *Embedded) kill(mark string) {
	name, id, _ := strings.Cut(mark, ":")
	engine.mu.Lock()
	defer engine.mu.Unlock()
	// Nothing to do if it fails: the statement then ends at its own
	// max_execution_time, or is already gone.
	_ = e.lib.query(engine.anchor, "KILL QUERY WHERE position(query, concat('"+name+":', '"+id+"')) > 0 ASYNC", "Native", nil, nil)
}

// ReleaseMemory hands back to the OS the memory the engine's allocator
// keeps for reuse (SYSTEM JEMALLOC PURGE), on the anchor connection, so a
// store opened read-only may ask too. The engine is in this process: after
// eight analyst statements of 32 MiB results its RSS stayed 30 to 100%
// above where it began (query's TestAnalystResultsInBoundedMemory), and
// came back to within 3% once purged.
func (e *Embedded) ReleaseMemory(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	engine.mu.Lock()
	defer engine.mu.Unlock()
	return e.lib.query(engine.anchor, "SYSTEM JEMALLOC PURGE", "Native", nil, nil)
}

// QueryNative runs sql and hands fn its whole result in the Native format
// (revision 0 layout: no block info, no custom-serialization flags), in
// engine memory valid only during fn. Unlike Select, parameter values are
// passed as given: they must already be in the engine's escaped text form,
// as a ClickHouse server has them after unquoting the native protocol's
// parameters. It exists for internal/store/storetest/chfront, the test-only
// native-protocol front of this engine.
func (e *Embedded) QueryNative(ctx context.Context, sql string, escapedParams []Param, fn func(native []byte) error) error {
	c, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(c)
	return e.lib.query(c, sql, "Native", escapedParams, fn)
}

// InsertNative streams blocks already encoded in the Native format (revision
// 0 layout) into the table of stmt, an INSERT statement without data or
// FORMAT clause ("INSERT INTO t (a, b)"). For internal/store/storetest/chfront.
func (e *Embedded) InsertNative(ctx context.Context, stmt string, native []byte) error {
	c, err := e.acquire(ctx)
	if err != nil {
		return err
	}
	defer e.release(c)
	return e.lib.insert(c, stmt, "Native", native)
}

// Close implements Store: it waits for the statements running on its
// connections and closes them. The engine itself stays up for the process
// on its anchor connection.
func (e *Embedded) Close() error {
	if e.closed.Swap(true) {
		return nil
	}
	for range e.all {
		<-e.conns
	}
	for _, pc := range e.all {
		e.lib.closeConn(pc)
	}
	return nil
}

func resetResults(r proto.Results) {
	for _, c := range r {
		if rc, ok := c.Data.(proto.Resettable); ok {
			rc.Reset()
		}
	}
}
