// Package analyst runs analysts' SQL, read-only by construction.
//
// Three layers keep a statement from changing or reaching anything:
//
//   - The store it runs on is opened with Settings: readonly=1, so the
//     engine refuses writes, DDL, settings changes (SET, and SETTINGS
//     clauses that change a value) and the table functions it marks as not
//     read-only (file, url, remote, s3, mysql, executable...), plus limits on
//     execution time, rows read, result rows and bytes, memory and statement
//     size.
//   - Guard asks the engine's parser for the statement's canonical form
//     (formatQuery) and allows only SELECT, WITH ... SELECT, SHOW, DESCRIBE,
//     EXPLAIN (of those) and EXISTS, and refuses what readonly=1 lets
//     through: INTO OUTFILE (writes a file), the file() function (reads
//     one), KILL QUERY, USE (switches a pooled connection's database),
//     BACKUP, and every table function that is not known to be harmless.
//   - Run executes the canonical form, the text the guard checked.
//
// Results are decoded block by block and written as they arrive, in JSON,
// JSONEachRow, CSV or TSV.
package analyst

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/netview/netview/internal/jsonw"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
)

// Limits bound what one statement may cost. A zero field takes its value
// from DefaultLimits.
type Limits struct {
	MaxExecution   time.Duration // max_execution_time
	MaxRowsRead    uint64        // max_rows_to_read, over every table the statement reads
	MaxResultRows  uint64        // max_result_rows; more is an error, never a truncated result
	MaxResultBytes uint64        // max_result_bytes (uncompressed, in the engine)
	MaxQueryBytes  int           // max_query_size: longest statement text
	MaxMemoryBytes uint64        // max_memory_usage of one statement
}

// DefaultLimits are sized for interactive questions over a fleet's recent
// data on the node that also ingests it.
func DefaultLimits() Limits {
	return Limits{
		MaxExecution:   30 * time.Second,
		MaxRowsRead:    1_000_000_000,
		MaxResultRows:  100_000,
		MaxResultBytes: 32 << 20,
		MaxQueryBytes:  256 << 10,
		MaxMemoryBytes: 512 << 20,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxExecution <= 0 {
		l.MaxExecution = d.MaxExecution
	}
	l.MaxRowsRead = cmp.Or(l.MaxRowsRead, d.MaxRowsRead)
	l.MaxResultRows = cmp.Or(l.MaxResultRows, d.MaxResultRows)
	l.MaxResultBytes = cmp.Or(l.MaxResultBytes, d.MaxResultBytes)
	if l.MaxQueryBytes <= 0 {
		l.MaxQueryBytes = d.MaxQueryBytes
	}
	l.MaxMemoryBytes = cmp.Or(l.MaxMemoryBytes, d.MaxMemoryBytes)
	return l
}

// Open opens the analysts' store on sc's engine: two read-only connections
// of their own with the default limits, so no statement there can write or
// lift a limit, and the views' connections are never theirs to hold.
func Open(ctx context.Context, sc store.Config) (store.Store, error) {
	sc.Conns = 2
	sc.Settings = append(append([]store.Setting(nil), sc.Settings...), Settings(DefaultLimits())...)
	return store.Open(ctx, sc)
}

// Settings returns the store settings an analyst store must be opened with
// (store.Config.Settings or store.EmbeddedConfig.Settings): the limits, and
// readonly=1 last, which also keeps statements from changing any of them;
// and a filter that makes the protected tables read as empty.
func Settings(l Limits) []store.Setting {
	l = l.withDefaults()
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	secs := strconv.FormatFloat(l.MaxExecution.Seconds(), 'f', -1, 64)
	return []store.Setting{
		{Name: "max_execution_time", Value: secs},
		{Name: "timeout_overflow_mode", Value: "throw"},
		{Name: "max_rows_to_read", Value: u(l.MaxRowsRead)},
		{Name: "read_overflow_mode", Value: "throw"},
		{Name: "max_result_rows", Value: u(l.MaxResultRows)},
		{Name: "max_result_bytes", Value: u(l.MaxResultBytes)},
		{Name: "result_overflow_mode", Value: "throw"},
		{Name: "max_memory_usage", Value: u(l.MaxMemoryBytes)},
		{Name: "max_query_size", Value: strconv.Itoa(l.MaxQueryBytes)},
		// The engine's own layer under the guard's: every read of a protected
		// table, directly or through a view, sees no row.
		{Name: "additional_table_filters", Value: protectedFilter()},
		{Name: "allow_ddl", Value: "0"},
		{Name: "readonly", Value: "1"},
	}
}

// protectedFilter is the additional_table_filters map that empties the
// protected tables: {'credentials':'0', 'system.processes':'0', ...}.
func protectedFilter() string {
	var b strings.Builder
	b.WriteByte('{')
	for _, t := range protectedNames {
		fmt.Fprintf(&b, "'%s':'0',", t)
	}
	for i, t := range ProtectedSystemTables {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "'system.%s':'0'", t)
	}
	b.WriteByte('}')
	return b.String()
}

// Formats are the output formats Run writes; the first is the default.
//
//   - JSON: {"columns":[{"name":..,"type":..}],"rows":[[..],..],"row_count":n}
//   - JSONEachRow: one {"column":value,...} object per line
//   - CSV: a header line of names, then RFC 4180 rows
//   - TSV: a header line of names, then tab-separated rows with \t \n \\ escaped
//
// In JSON, integers of 64 bits and more are strings (as in the engine's own
// JSON: JavaScript numbers lose their precision), NULL is null, arrays are
// arrays, maps are objects, tuples are arrays (objects when named). In CSV
// and TSV, NULL is an empty cell and arrays, maps and tuples are in the
// engine's text style (['a','b'], {'k':'v'}), and cells are made safe for
// spreadsheets and terminals (see safeCell). Times are RFC 3339 in UTC,
// dates YYYY-MM-DD, IPv4-mapped IPv6 addresses are written as IPv4.
var Formats = []string{"JSON", "JSONEachRow", "CSV", "TSV"}

var contentTypes = map[string]string{
	"JSON": "application/json", "JSONEachRow": "application/x-ndjson",
	"CSV": "text/csv; charset=utf-8", "TSV": "text/tab-separated-values; charset=utf-8",
}

// Format returns the canonical name of a format (case-insensitive; "" is
// JSON) and whether it is one of Formats.
func Format(name string) (string, bool) {
	if name == "" {
		return Formats[0], true
	}
	for _, f := range Formats {
		if strings.EqualFold(f, name) {
			return f, true
		}
	}
	return "", false
}

// ContentType returns the media type of a format's output ("" if unknown).
func ContentType(format string) string {
	f, _ := Format(format)
	return contentTypes[f]
}

// Run guards q (see Guard), executes it on s and writes the result to w in
// format. A refused statement or unknown format is a *Refusal; an error of
// the engine (a limit, an unknown table) is a *store.EngineError; a column
// that cannot be rendered is an *UnsupportedTypeError. On the embedded
// engine every such error comes before anything is written to w; on a
// server, an error can end a result that has begun.
func Run(ctx context.Context, s store.Store, q, format string, w io.Writer) error {
	_, err := RunRows(ctx, s, q, format, w)
	return err
}

// Progress is told, when the w given to Run implements it, how many rows
// have been written after each block: a caller that starts its answer
// before the statement ends knows how far it had got.
type Progress interface{ Rows(n int) }

// RunRows is Run, and returns how many rows it wrote.
func RunRows(ctx context.Context, s store.Store, q, format string, w io.Writer) (int, error) {
	f, ok := Format(format)
	if !ok {
		return 0, refuse("unknown format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	st, err := guard(ctx, s, q)
	if err != nil {
		return 0, err
	}
	// The store decodes into as many columns as the result has; the engine
	// says how many without running the statement (DESCRIBE). Statements
	// DESCRIBE cannot wrap are cheap and read no table data: their column
	// count is guessed and, if the guess is wrong, they run once more.
	var names, types []string
	guess := 1
	switch st.verb {
	case "SELECT", "WITH":
		names, types, err = describe(ctx, s, st.canonical)
		if err != nil {
			return 0, err
		}
		for i, t := range types {
			if _, _, err := build(proto.ColumnType(t)); err != nil {
				return 0, &UnsupportedTypeError{Column: names[i], Type: t}
			}
		}
		guess = len(names)
	case "DESCRIBE":
		guess = 7
	case "EXPLAIN":
		if strings.HasPrefix(st.canonical, "EXPLAIN ESTIMATE") {
			guess = 5
		}
	}
	out := &output{ctx: ctx, format: f, w: bufio.NewWriterSize(w, 64<<10)}
	out.progress, _ = w.(Progress)
	// A SELECT never runs twice: its column count comes from DESCRIBE.
	retry := st.verb != "SELECT" && st.verb != "WITH"
	err = selectAuto(ctx, s, st.canonical, guess, retry, out.block)
	if err != nil {
		return 0, err
	}
	return out.rows, out.finish(names, types)
}

// describe returns the names and types of a SELECT's result columns.
func describe(ctx context.Context, s store.Store, canonical string) (names, types []string, err error) {
	err = selectAuto(ctx, s, "DESCRIBE TABLE (\n"+canonical+"\n)", 7, true, func(cols []*autoCol, rows int) error {
		if len(cols) < 2 {
			return fmt.Errorf("analyst: DESCRIBE returned %d columns", len(cols))
		}
		for i := range rows {
			names = append(names, string(cols[0].r.text(nil, i, false)))
			types = append(types, string(cols[1].r.text(nil, i, false)))
		}
		return nil
	})
	return names, types, err
}

var mismatch = regexp.MustCompile(`(\d+) \(columns\) != (\d+) \(target\)`)

// selectAuto runs sql with n auto-typed result columns. When the result has
// another number of columns (the store reports it on the first block, before
// handing any over) and retry is set, it runs sql once more with that many.
func selectAuto(ctx context.Context, s store.Store, sql string, n int, retry bool, onBlock func(cols []*autoCol, rows int) error) error {
	for attempt := 0; ; attempt++ {
		res, cols := newResults(n)
		err := s.Select(ctx, store.Query{SQL: sql}, res, func(rows int) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			return onBlock(cols, rows)
		})
		var ute *UnsupportedTypeError
		if errors.As(err, &ute) {
			return ute
		}
		if err == nil || attempt > 0 || !retry {
			return err
		}
		m := mismatch.FindStringSubmatch(err.Error())
		if m == nil {
			return err
		}
		got, _ := strconv.Atoi(m[1])
		if got <= 0 || got == n || got > 10_000 {
			return err
		}
		n = got
	}
}

// output writes result blocks in one format.
type output struct {
	ctx     context.Context
	format  string
	w       *bufio.Writer
	started bool
	rows    int
	buf     []byte
	// progress, if set, hears the row count before each flush.
	progress Progress
}

func (o *output) header(names, types []string) {
	o.started = true
	b := o.buf[:0]
	switch o.format {
	case "JSON":
		b = append(b, `{"columns":[`...)
		for i := range names {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = jsonw.AppendString(b, names[i])
			b = append(b, `,"type":`...)
			b = jsonw.AppendString(b, types[i])
			b = append(b, '}')
		}
		b = append(b, `],"rows":[`...)
	case "CSV":
		if len(names) > 0 {
			for i, n := range names {
				if i > 0 {
					b = append(b, ',')
				}
				b = appendCSV(b, safeCell(nil, []byte(n), true))
			}
			b = append(b, '\n')
		}
	case "TSV":
		if len(names) > 0 {
			for i, n := range names {
				if i > 0 {
					b = append(b, '\t')
				}
				b = appendTSV(b, safeCell(nil, []byte(n), true))
			}
			b = append(b, '\n')
		}
	}
	o.buf = b
	o.w.Write(b)
}

func (o *output) block(cols []*autoCol, rows int) error {
	if !o.started {
		names := make([]string, len(cols))
		types := make([]string, len(cols))
		for i, c := range cols {
			names[i], types[i] = c.name(), string(c.t)
		}
		o.header(names, types)
	}
	var scratch, cell []byte
	var text []bool
	if o.format == "CSV" || o.format == "TSV" {
		text = make([]bool, len(cols))
		for j, c := range cols {
			text[j] = textual(c.r)
		}
	}
	for i := range rows {
		b := o.buf[:0]
		switch o.format {
		case "JSON":
			if o.rows > 0 {
				b = append(b, ',')
			}
			b = append(b, "\n["...)
			for j, c := range cols {
				if j > 0 {
					b = append(b, ',')
				}
				b = c.r.json(b, i)
			}
			b = append(b, ']')
		case "JSONEachRow":
			b = append(b, '{')
			for j, c := range cols {
				if j > 0 {
					b = append(b, ',')
				}
				b = jsonw.AppendString(b, c.name())
				b = append(b, ':')
				b = c.r.json(b, i)
			}
			b = append(b, "}\n"...)
		case "CSV", "TSV":
			for j, c := range cols {
				if j > 0 {
					if o.format == "CSV" {
						b = append(b, ',')
					} else {
						b = append(b, '\t')
					}
				}
				scratch = c.r.text(scratch[:0], i, false)
				cell = safeCell(cell[:0], scratch, text[j])
				if o.format == "CSV" {
					b = appendCSV(b, cell)
				} else {
					b = appendTSV(b, cell)
				}
			}
			if o.format == "CSV" && len(cols) == 1 && len(cell) == 0 {
				b = append(b, `""`...) // a blank line is no row to CSV readers
			}
			b = append(b, '\n')
		}
		o.rows++
		o.buf = b
		if o.progress != nil {
			o.progress.Rows(o.rows - 1)
		}
		if _, err := o.w.Write(b); err != nil {
			return fmt.Errorf("analyst: write result: %w", err)
		}
	}
	if o.progress != nil {
		o.progress.Rows(o.rows)
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("analyst: write result: %w", err)
	}
	return o.ctx.Err()
}

func (o *output) finish(names, types []string) error {
	if !o.started {
		o.header(names, types)
	}
	if o.format == "JSON" {
		b := o.buf[:0]
		if o.rows > 0 {
			b = append(b, '\n')
		}
		b = append(b, `],"row_count":`...)
		b = strconv.AppendInt(b, int64(o.rows), 10)
		b = append(b, "}\n"...)
		o.w.Write(b)
	}
	if err := o.w.Flush(); err != nil {
		return fmt.Errorf("analyst: write result: %w", err)
	}
	return nil
}

// safeCell appends s to dst made safe to open in a spreadsheet or print
// on a terminal: control characters other than tab, newline and carriage
// return (which each format quotes or escapes) become U+FFFD, and a text
// cell (text: of a string column, or a column name) that starts with =, +,
// -, @, a tab or a carriage return, which a spreadsheet would take for a
// formula, gets a leading single quote. Numbers (-5) are left as they are.
func safeCell(dst, s []byte, text bool) []byte {
	if text && len(s) > 0 {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			dst = append(dst, '\'')
		}
	}
	for k := 0; k < len(s); k++ {
		c := s[k]
		switch {
		case c < 0x20 && c != '\t' && c != '\n' && c != '\r', c == 0x7f:
			dst = append(dst, "\uFFFD"...)
		case c == 0xc2 && k+1 < len(s) && s[k+1] >= 0x80 && s[k+1] <= 0x9f: // U+0080..U+009F
			dst = append(dst, "\uFFFD"...)
			k++
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// textual reports whether a column's cells are text, which safeCell may
// quote: strings, enums, UUIDs, addresses and times, bare or Nullable or
// LowCardinality. Numbers, booleans, arrays, maps and tuples are not (the
// last three start with a bracket).
func textual(r renderer) bool {
	switch r := r.(type) {
	case *leaf:
		return r.kind == kString
	case *nullRenderer:
		return textual(r.values)
	case *lcRenderer:
		return textual(r.dict)
	}
	return false
}

// appendCSV appends a CSV field, quoted when it has to be.
func appendCSV(b, s []byte) []byte {
	need := len(s) > 0 && (s[0] == ' ' || s[0] == '\t')
	for _, c := range s {
		if c == ',' || c == '"' || c == '\n' || c == '\r' {
			need = true
			break
		}
	}
	if !need {
		return append(b, s...)
	}
	b = append(b, '"')
	for _, c := range s {
		if c == '"' {
			b = append(b, '"')
		}
		b = append(b, c)
	}
	return append(b, '"')
}

// appendTSV appends a TSV field with the engine's TSV escapes.
func appendTSV(b, s []byte) []byte {
	for _, c := range s {
		switch c {
		case '\\':
			b = append(b, '\\', '\\')
		case '\t':
			b = append(b, '\\', 't')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case 0:
			b = append(b, '\\', '0')
		case '\b':
			b = append(b, '\\', 'b')
		case '\f':
			b = append(b, '\\', 'f')
		default:
			b = append(b, c)
		}
	}
	return b
}
