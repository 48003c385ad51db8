package query

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/audit"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query/analyst"
)

// SQLConfig bounds how many analyst statements run at once on a node that
// also ingests: each holds engine memory up to its limits.
type SQLConfig struct {
	// Concurrent statements; more wait up to Wait for a turn, then get 429.
	Concurrent int
	Wait       time.Duration
}

// DefaultSQLConfig is what AnalystSQL uses when given no SQLConfig.
func DefaultSQLConfig() SQLConfig { return SQLConfig{Concurrent: 4, Wait: 2 * time.Second} }

// RegisterFlags registers the flags of analysts' SQL with a "query.sql." prefix.
func (c *SQLConfig) RegisterFlags(fs *flag.FlagSet) {
	d := DefaultSQLConfig()
	fs.IntVar(&c.Concurrent, "query.sql.concurrent", d.Concurrent, "analyst statements (POST /api/v1/sql) run at once; more wait, then get 429")
	fs.DurationVar(&c.Wait, "query.sql.wait", d.Wait, "how long an analyst statement waits for a turn before 429")
}

// ViewSettings are the engine limits of the views' statements, for the
// store the query service reads them from: no view may hold more memory or
// run longer than a request may take (timeout), whatever data it meets.
func ViewSettings(timeout time.Duration) []store.Setting {
	return []store.Setting{
		{Name: "max_execution_time", Value: strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)},
		{Name: "timeout_overflow_mode", Value: "throw"},
		{Name: "max_memory_usage", Value: strconv.Itoa(ViewMaxMemoryBytes)},
	}
}

// ViewMaxMemoryBytes is what one view statement may hold in the engine.
const ViewMaxMemoryBytes = 1 << 30

// headBytes of a result are held before the answer starts: a statement that
// fails within them gets its own status; a longer result is streamed, and
// an error after that breaks the response off (no final chunk), so a client
// never takes a cut result for a whole one.
const headBytes = 1 << 20

// AnalystSQL returns the runner of POST /api/v1/sql on ro, a store opened
// with analyst.Settings: read-only and limited by the engine itself, with
// analyst.Guard refusing what readonly alone would let through. The result
// is rendered block by block as the engine makes it, into the response
// body stream, so it is never held whole; the statement stops when the
// client goes away or the request's deadline passes.
func AnalystSQL(ro store.Store, cfg ...SQLConfig) SQLRunner {
	c := DefaultSQLConfig()
	if len(cfg) > 0 {
		c = cfg[0]
	}
	if c.Concurrent <= 0 {
		c.Concurrent = DefaultSQLConfig().Concurrent
	}
	turns := make(chan struct{}, c.Concurrent)
	release := releaser(ro)
	return func(ctx context.Context, q, format string, r *fasthttp.RequestCtx) (int, error) {
		if err := takeTurn(ctx, turns, c.Wait, r); err != nil {
			return 0, err
		}
		rows, err := runStreamed(ctx, ro, q, format, r, func() {
			<-turns
			if len(turns) == 0 {
				release()
			}
		})
		if err != nil {
			return 0, sqlError(err)
		}
		return rows, nil
	}
}

// releaser returns what to call when the last running statement ended:
// with an engine in this process (store.MemoryReleaser), the memory its
// allocator kept from the statements goes back to the OS, so a burst of
// large results does not leave ingest, in the same process, with less.
// One release runs at a time, in the background; one asked for meanwhile
// is dropped, since the one running covers it.
func releaser(s store.Store) func() {
	m, ok := s.(store.MemoryReleaser)
	if !ok {
		return func() {}
	}
	var running atomic.Bool
	return func() {
		if !running.CompareAndSwap(false, true) {
			return
		}
		go func() {
			defer running.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := m.ReleaseMemory(ctx); err != nil {
				slog.Debug("query: engine memory not released", "err", err)
			}
		}()
	}
}

// takeTurn waits up to wait for one of the concurrent statements' turns.
func takeTurn(ctx context.Context, turns chan struct{}, wait time.Duration, r *fasthttp.RequestCtx) error {
	select {
	case turns <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case turns <- struct{}{}:
		return nil
	case <-t.C:
	case <-ctx.Done():
	}
	r.Response.Header.Set("Retry-After", "2")
	return &apiError{Status: 429, Msg: "too many analyst statements are running: try again in a few seconds"}
}

// head collects the first headBytes of a result; past them it asks for the
// response stream (once) and writes everything there.
type head struct {
	buf    bytes.Buffer
	rows   int            // rows written so far (analyst.Progress)
	begin  chan int       // rows written so far, sent when the result outgrows buf
	stream chan io.Writer // the response stream, handed back after begin
	out    io.Writer
}

// Rows implements analyst.Progress.
func (h *head) Rows(n int) { h.rows = n }

func (h *head) Write(p []byte) (int, error) {
	if h.out == nil && h.buf.Len()+len(p) <= headBytes {
		return h.buf.Write(p)
	}
	if h.out == nil {
		h.begin <- h.rows
		h.out = <-h.stream
		if _, err := h.out.Write(h.buf.Bytes()); err != nil {
			return 0, err
		}
		h.buf = bytes.Buffer{}
	}
	return h.out.Write(p)
}

// result is how a statement ended.
type result struct {
	rows int
	err  error
}

// runStreamed runs q with its result going to r: whole when it fits in
// headBytes, streamed otherwise. done runs when the statement has ended.
// The rows returned are those written before the answer began.
func runStreamed(ctx context.Context, ro store.Store, q, format string, r *fasthttp.RequestCtx, done func()) (int, error) {
	return streamed(ctx, r, analyst.ContentType(format), done, func(ctx context.Context, w io.Writer) (int, error) {
		return analyst.RunRows(ctx, ro, q, format, w)
	})
}

// streamed answers r with what run writes, of type contentType, as
// runStreamed does: run is the statement (analysts' SQL, or a view's
// export, export.go).
func streamed(ctx context.Context, r *fasthttp.RequestCtx, contentType string, done func(), run func(context.Context, io.Writer) (int, error)) (int, error) {
	// The statement outlives the handler when it streams: it keeps the
	// request's deadline, not its cancellation, and stops when the client
	// stops reading (a failed write) or the deadline passes.
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	if dl, ok := ctx.Deadline(); ok {
		sctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), dl)
	}
	h := &head{begin: make(chan int), stream: make(chan io.Writer)}
	end := make(chan result, 1)
	go func() {
		defer done()
		defer cancel()
		n, err := run(sctx, h)
		if h.out != nil {
			// Streaming: the status is sent; an error breaks the body off.
			pw := h.out.(*io.PipeWriter)
			if err != nil {
				pw.CloseWithError(err)
			} else {
				pw.Close()
			}
		}
		end <- result{n, err}
	}()
	select {
	case res := <-end:
		if res.err != nil {
			return 0, res.err
		}
		r.SetContentType(contentType)
		r.SetBody(h.buf.Bytes())
		return res.rows, nil
	case n := <-h.begin:
		pr, pw := io.Pipe()
		r.SetContentType(contentType)
		// fasthttp reads the pipe after the handler returns (the audit row
		// is written by then) and closes it when the client goes away or
		// the body is dropped, which fails the statement's next write.
		r.SetBodyStream(pr, -1)
		h.stream <- pw
		return n, nil
	}
}

var engineCode = regexp.MustCompile(`\(([A-Z][A-Z0-9_]+)\)\s*$`)

// sqlError turns a failed statement into its answer. The engine's own text
// stays in the log, never in the answer: it can quote data and internals.
func sqlError(err error) error {
	var refusal *analyst.Refusal
	var engine *store.EngineError
	var unsupported *analyst.UnsupportedTypeError
	switch {
	case errors.As(err, &refusal) && refusal.Forbidden:
		return &apiError{Status: 403, Msg: "refused: " + refusal.Reason}
	case errors.As(err, &refusal):
		return &apiError{Status: 400, Msg: "refused: " + refusal.Reason}
	case errors.As(err, &unsupported):
		return &apiError{Status: 400, Msg: err.Error()}
	case errors.As(err, &engine):
		return engineAnswer(engine)
	}
	return err
}

// engineAnswers says what an analyst can do about the engine's refusals by
// their code; "" is a refusal without one.
var engineAnswers = map[string]apiError{
	"MEMORY_LIMIT_EXCEEDED":  {Status: 422, Msg: "the statement needs more memory than an analyst statement may use: read fewer rows or columns, aggregate, or add LIMIT"},
	"TIMEOUT_EXCEEDED":       {Status: 422, Msg: "the statement ran longer than an analyst statement may and was stopped: narrow its time range or tables"},
	"TOO_MANY_ROWS_OR_BYTES": {Status: 422, Msg: "the result is larger than an analyst statement may return: add LIMIT, select fewer columns, or aggregate"},
	"TOO_MANY_ROWS":          {Status: 422, Msg: "the statement reads more rows than an analyst statement may: narrow its time range or filter on the sorting key"},
	"QUERY_WAS_CANCELLED":    {Status: 503, Msg: "the statement was stopped: try again"},
	"":                       {Status: 400, Msg: "the engine refused the statement: check it with DESCRIBE or EXPLAIN"},
}

// engineAnswer names what stopped a statement and what to do about it.
func engineAnswer(e *store.EngineError) error {
	code := ""
	if m := engineCode.FindStringSubmatch(e.Message); m != nil {
		code = m[1]
	}
	if a, ok := engineAnswers[code]; ok {
		return &a
	}
	return &apiError{Status: 400, Msg: "the engine refused the statement (" + code + "): check table and column names, types and syntax"}
}

// sqlDetailText bounds the statement's text in its audit detail, leaving
// room under audit.MaxText for the header and how the statement ended.
const sqlDetailText = 2048

// sqlDetail is the audit detail of an analyst's statement: its length and
// SHA-256 as received, then its text normalised (analyst.Normalize:
// comments dropped, whitespace collapsed) and cut at sqlDetailText bytes.
// A long comment before the statement cannot push it out of the row, and
// the hash ties the row to the exact body.
func sqlDetail(stmt string) string {
	sum := sha256.Sum256([]byte(stmt))
	return "bytes=" + strconv.Itoa(len(stmt)) + " sha256=" + hex.EncodeToString(sum[:]) + "\n" +
		audit.Cut(analyst.Normalize(stmt), sqlDetailText)
}
