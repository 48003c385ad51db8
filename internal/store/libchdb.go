package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// libchdb holds the entry points of libchdb.so. It is loaded on first use of
// the embedded engine only, so a binary talking to a ClickHouse server starts
// without the library on the machine.
type libchdb struct {
	setSignalHandlers   func(enabled int32)
	connect             func(argc int32, argv **byte) unsafe.Pointer
	closeConn           func(pconn unsafe.Pointer)
	queryWithParamsN    entryN
	streamQueryN        entryN
	streamFetch         func(conn unsafe.Pointer, stream unsafe.Pointer) unsafe.Pointer
	streamCancel        func(conn unsafe.Pointer, stream unsafe.Pointer)
	resultBuffer        func(res unsafe.Pointer) *byte
	resultLength        func(res unsafe.Pointer) uintptr
	resultError         func(res unsafe.Pointer) *byte
	destroyResult       func(res unsafe.Pointer)
	streamInsertN       func(conn unsafe.Pointer, q *byte, qlen uintptr, f *byte, flen uintptr) unsafe.Pointer
	streamAppend        func(stream unsafe.Pointer, data *byte, n uintptr) int32
	streamDone          func(stream unsafe.Pointer) unsafe.Pointer
	streamInsertError   func(stream unsafe.Pointer) *byte
	destroyInsertStream func(stream unsafe.Pointer)
}

// ErrNoLibrary reports that libchdb.so could not be found or loaded.
var ErrNoLibrary = errors.New("embedded engine library libchdb.so not loaded")

var (
	libOnce sync.Once
	libVal  *libchdb
	libErr  error
)

// LibraryPath returns where libchdb.so is looked for: the explicit path, then
// $NETVIEW_LIBCHDB, then the project's cache folder (make deps puts it there)
// relative to the working directory and to the executable.
func LibraryPath(explicit string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	if env := os.Getenv("NETVIEW_LIBCHDB"); env != "" {
		return []string{env}
	}
	rel := filepath.Join(".cache", "chdb", "package", "libchdb.so")
	paths := []string{rel}
	if exe, err := os.Executable(); err == nil {
		dir := filepath.Dir(exe)
		paths = append(paths, filepath.Join(dir, "libchdb.so"), filepath.Join(dir, "..", rel))
	}
	return append(paths, "/usr/local/lib/libchdb.so", "libchdb.so")
}

func loadLib(explicit string) (*libchdb, error) {
	libOnce.Do(func() { libVal, libErr = openLib(LibraryPath(explicit)) })
	return libVal, libErr
}

func openLib(paths []string) (*libchdb, error) {
	var h uintptr
	var errs []error
	for _, p := range paths {
		var err error
		if h, err = purego.Dlopen(p, purego.RTLD_NOW|purego.RTLD_LOCAL); err == nil {
			break
		}
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	if h == 0 {
		return nil, fmt.Errorf("%w (run `make deps`, or set NETVIEW_LIBCHDB): %w", ErrNoLibrary, errors.Join(errs...))
	}
	l := &libchdb{}
	for name, fn := range map[string]any{
		"chdb_set_signal_handlers_enabled": &l.setSignalHandlers,
		"chdb_connect":                     &l.connect,
		"chdb_close_conn":                  &l.closeConn,
		"chdb_query_with_params_n":         &l.queryWithParamsN,
		"chdb_stream_query_with_params_n":  &l.streamQueryN,
		"chdb_stream_fetch_result":         &l.streamFetch,
		"chdb_stream_cancel_query":         &l.streamCancel,
		"chdb_result_buffer":               &l.resultBuffer,
		"chdb_result_length":               &l.resultLength,
		"chdb_result_error":                &l.resultError,
		"chdb_destroy_query_result":        &l.destroyResult,
		"chdb_stream_insert_n":             &l.streamInsertN,
		"chdb_stream_append":               &l.streamAppend,
		"chdb_stream_done":                 &l.streamDone,
		"chdb_stream_insert_error":         &l.streamInsertError,
		"chdb_destroy_insert_stream":       &l.destroyInsertStream,
	} {
		if _, err := purego.Dlsym(h, name); err != nil {
			return nil, fmt.Errorf("%w: symbol %s missing: %w", ErrNoLibrary, name, err)
		}
		purego.RegisterLibFunc(fn, h, name)
	}
	// The engine's own SIGSEGV handler would turn a Go nil dereference into a
	// hang; with it off, Go's runtime keeps its signals (see docs/ENGINE facts).
	l.setSignalHandlers(0)
	return l, nil
}

// cstr copies s into a NUL-terminated byte slice.
func cstr(s string) []byte {
	b := make([]byte, len(s)+1)
	copy(b, s)
	return b
}

// goString copies a NUL-terminated C string.
func goString(p *byte) string {
	if p == nil {
		return ""
	}
	n := 0
	for *(*byte)(unsafe.Add(unsafe.Pointer(p), n)) != 0 {
		n++
	}
	return string(unsafe.Slice(p, n))
}

// ptr returns the address of b's first byte, or nil for an empty slice.
func ptr(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}

// cParams holds parameters as the C API takes them, pinned until unpin.
type cParams struct {
	pin                 runtime.Pinner
	names, values       []*byte
	nameLens, valueLens []uintptr
}

func newCParams(params []Param) *cParams {
	c := &cParams{}
	n := len(params)
	if n == 0 {
		return c
	}
	c.names, c.values = make([]*byte, n), make([]*byte, n)
	c.nameLens, c.valueLens = make([]uintptr, n), make([]uintptr, n)
	for i, p := range params {
		nb, vb := cstr(p.Name), cstr(p.Value)
		c.pin.Pin(&nb[0])
		c.pin.Pin(&vb[0])
		c.names[i], c.values[i] = &nb[0], &vb[0]
		c.nameLens[i], c.valueLens[i] = uintptr(len(nb)-1), uintptr(len(vb)-1)
	}
	return c
}

// args returns the four array pointers and the count of the C calls.
func (c *cParams) args() (names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, n uintptr) {
	if len(c.names) == 0 {
		return nil, nil, nil, nil, 0
	}
	return &c.names[0], &c.nameLens[0], &c.values[0], &c.valueLens[0], uintptr(len(c.names))
}

func (c *cParams) unpin() {
	c.pin.Unpin()
	runtime.KeepAlive(c.names)
	runtime.KeepAlive(c.values)
}

// entryN is the form of the engine's statement entry points that take
// parameters: chdb_query_with_params_n and chdb_stream_query_with_params_n.
type entryN func(conn unsafe.Pointer, q *byte, qlen uintptr, f *byte, flen uintptr, names **byte, nameLens *uintptr, values **byte, valueLens *uintptr, n uintptr) unsafe.Pointer

// run calls entry with sql, format and params laid out in memory the engine
// may read until it returns: Go memory pinned, and kept alive past the call.
func run(entry entryN, conn unsafe.Pointer, sql, format string, params []Param) unsafe.Pointer {
	q, f := []byte(sql), []byte(format)
	cp := newCParams(params)
	defer cp.unpin()
	pn, pnl, pv, pvl, n := cp.args()
	res := entry(conn, ptr(q), uintptr(len(q)), ptr(f), uintptr(len(f)), pn, pnl, pv, pvl, n)
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	return res
}

// query runs one statement on conn and hands its result bytes (in C memory,
// valid only during fn) to fn. Parameter values must already be in the
// engine's escaped text form (see escapeParams). The engine holds the whole
// result before fn sees it: statements that return rows go through stream.
func (l *libchdb) query(conn unsafe.Pointer, sql string, format string, params []Param, fn func([]byte) error) error {
	res := run(l.queryWithParamsN, conn, sql, format, params)
	if res == nil {
		return errors.New("chdb: query returned no result")
	}
	defer l.destroyResult(res)
	if msg := goString(l.resultError(res)); msg != "" {
		return engineError(msg)
	}
	if size := l.resultLength(res); size > 0 && fn != nil {
		return fn(unsafe.Slice(l.resultBuffer(res), size))
	}
	return nil
}

// stream runs one statement on conn and hands fn its result one chunk at a
// time (each chunk whole blocks of format, in C memory valid only during
// fn), so no more than a chunk of the result is held at once, here or in the
// engine, which pauses the statement until the next fetch. When fn fails or
// w's context ends (checked before each fetch) the statement is cancelled
// in the engine: fetch and cancel of one stream must not run at the same
// time, so they both happen here, one after the other. A fetch in progress
// is w's to interrupt (see fetchWatch).
func (l *libchdb) stream(conn unsafe.Pointer, sql, format string, params []Param, w *fetchWatch, fn func([]byte) error) error {
	st := run(l.streamQueryN, conn, sql, format, params)
	if st == nil {
		return errors.New("chdb: streaming query returned no handle")
	}
	defer l.destroyResult(st)
	if msg := goString(l.resultError(st)); msg != "" {
		if strings.Contains(msg, "Streaming query is not supported") {
			return errNoStream
		}
		return engineError(msg)
	}
	for {
		if err := w.begin(); err != nil {
			l.streamCancel(conn, st)
			return err
		}
		chunk := l.streamFetch(conn, st)
		w.end()
		if chunk == nil {
			return errors.New("chdb: stream fetch returned no result")
		}
		done, err := l.takeChunk(chunk, fn)
		if err != nil {
			var ee *EngineError
			if errors.As(err, &ee) {
				if why := w.ctx.Err(); why != nil {
					// Killed from outside for that reason: cancel here
					// too, which waits for the statement to leave the
					// engine.
					l.streamCancel(conn, st)
					return why
				}
				return err
			}
			l.streamCancel(conn, st)
			return err
		}
		if done {
			return nil
		}
	}
}

// fetchWatch lets a stream's fetch, which blocks until the engine has a
// block (minutes, for a slow statement), be interrupted when ctx ends, and
// only then: a cancel between fetches is the stream's own, and the engine
// drops a statement at once that way, while one killed from outside
// lingers a few hundred milliseconds.
type fetchWatch struct {
	ctx      context.Context
	mu       sync.Mutex
	fetching bool
}

// begin reports ctx's end, or marks a fetch as under way.
func (w *fetchWatch) begin() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.ctx.Err(); err != nil {
		return err
	}
	w.fetching = true
	return nil
}

func (w *fetchWatch) end() {
	w.mu.Lock()
	w.fetching = false
	w.mu.Unlock()
}

// interrupt runs stop if a fetch is under way. ctx has ended when it is
// called, so a fetch that has not begun never will.
func (w *fetchWatch) interrupt(stop func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fetching {
		stop()
	}
}

// errNoStream reports a statement the engine runs only whole (DESCRIBE,
// SHOW, EXPLAIN...): small answers, which query returns instead.
var errNoStream = errors.New("chdb: statement cannot stream")

// takeChunk hands one fetched chunk to fn and frees it; done reports the
// end of the stream (an empty chunk).
func (l *libchdb) takeChunk(chunk unsafe.Pointer, fn func([]byte) error) (done bool, err error) {
	defer l.destroyResult(chunk)
	if msg := goString(l.resultError(chunk)); msg != "" {
		return false, engineError(msg)
	}
	size := l.resultLength(chunk)
	if size == 0 {
		return true, nil
	}
	return false, fn(unsafe.Slice(l.resultBuffer(chunk), size))
}

// insert streams data, already in format, into the statement's table.
func (l *libchdb) insert(conn unsafe.Pointer, stmt, format string, data []byte) error {
	q, f := []byte(stmt), []byte(format)
	stream := l.streamInsertN(conn, ptr(q), uintptr(len(q)), ptr(f), uintptr(len(f)))
	runtime.KeepAlive(q)
	runtime.KeepAlive(f)
	if stream == nil {
		return errors.New("chdb: insert stream not created")
	}
	defer l.destroyInsertStream(stream)
	if msg := goString(l.streamInsertError(stream)); msg != "" {
		return engineError(msg)
	}
	if len(data) > 0 {
		rc := l.streamAppend(stream, &data[0], uintptr(len(data)))
		runtime.KeepAlive(data)
		if rc != 0 {
			if msg := goString(l.streamInsertError(stream)); msg != "" {
				return engineError(msg)
			}
			return errors.New("chdb: insert append failed")
		}
	}
	res := l.streamDone(stream)
	if res == nil {
		if msg := goString(l.streamInsertError(stream)); msg != "" {
			return engineError(msg)
		}
		return errors.New("chdb: insert not committed")
	}
	defer l.destroyResult(res)
	if msg := goString(l.resultError(res)); msg != "" {
		return engineError(msg)
	}
	return nil
}

// EngineError is an exception raised by the ClickHouse engine.
type EngineError struct{ Message string }

func (e *EngineError) Error() string { return "clickhouse: " + e.Message }

func engineError(msg string) error { return &EngineError{Message: msg} }

// escapeParams returns ps with each value in the engine's escaped text form,
// ps itself when no value needs escaping.
func escapeParams(ps []Param) []Param {
	var out []Param
	for i, p := range ps {
		e := escapeParam(p.Value)
		if e == p.Value && out == nil {
			continue
		}
		if out == nil {
			out = append(make([]Param, 0, len(ps)), ps[:i]...)
		}
		out = append(out, Param{Name: p.Name, Value: e})
	}
	if out == nil {
		return ps
	}
	return out
}

// escapeParam writes a parameter value in the engine's escaped text form,
// in which a backslash starts an escape and a raw newline or tab would end
// or split the value.
func escapeParam(v string) string {
	if !strings.ContainsAny(v, "\\\n\t\r\x00") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
