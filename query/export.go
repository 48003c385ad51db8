package query

import (
	"bufio"
	"context"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/internal/store"
)

// An export is a list's whole answer as a file: the rows of the same
// sensor, scope and hunting filters, in the list's key order, with the
// list's columns, streamed as the engine makes them (never held whole) in
// CSV or NDJSON. It takes no cursor and no limit.

// exportFormat is one format= value of the exports.
type exportFormat struct {
	name, contentType string
	// header is written before the rows (CSV's names line).
	header func(names []string) []byte
	// field starts column j of a row ("{"name":" or ","), and cell writes
	// its value.
	field func(j int, name string) []byte
	cell  func(b []byte, c proto.ColResult, i int) []byte
	end   string // after each row's last cell
}

var exportFormats = []*exportFormat{
	{name: "csv", contentType: "text/csv; charset=utf-8",
		// CSVWithNames: a header of the column names, then one line a row.
		header: func(names []string) []byte { return []byte(strings.Join(names, ",") + "\n") },
		field: func(j int, _ string) []byte {
			if j == 0 {
				return nil
			}
			return []byte{','}
		},
		cell: appendCSVCell, end: "\n"},
	{name: "ndjson", contentType: "application/x-ndjson",
		// Each line is the object the list's JSON has for the row, byte
		// for byte: the same names, values and nulls (appendValue).
		header: func([]string) []byte { return nil },
		field: func(j int, name string) []byte {
			sep := byte(',')
			if j == 0 {
				sep = '{'
			}
			return append(appendString([]byte{sep}, name), ':')
		},
		cell: appendValue, end: "}\n"},
}

// format reads format=, which an export requires.
func (p *params) format() *exportFormat {
	v := p.str("format")
	for _, f := range exportFormats {
		if v == f.name && p.err == nil {
			return f
		}
	}
	if p.err == nil {
		p.err = badParam("format", "%q is not an export format: give format=csv or format=ndjson", v)
	}
	return nil
}

// exportView answers GET /api/v2/network/<view>/export: the v2 list's
// parameters (sensor_id and the scope), no cursor, no limit.
func (s *Server) exportView(v *view) handler {
	return func(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
		q := query(r, append([]string{"sensor_id", "format", "at"}, scopeParams...)...)
		sensor := q.sensor()
		sc := q.scope(targets[v.table])
		at := q.at(s.historyDays())
		if q.err != nil {
			return nil, q.err
		}
		// limit 0: the page query of the first page, without its LIMIT;
		// in key order, so the engine reads and groups in order.
		sqlText, params := v.sql(&page{sensor: sensor, scope: sc, at: at})
		return nil, s.export(ctx, r, q, v.name, store.Query{SQL: sqlText, Params: params}, v.out)
	}
}

// exportEvents answers GET /api/v2/events/export: the events list's
// parameters (kinds, window, sensor_id, scope), no cursor, no limit.
func (s *Server) exportEvents(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
	return s.eventsOrExport(ctx, r, true)
}

// exportLimits are a server's turns for exports.
//
// An export is bounded as a view's statement for time and memory: it runs
// on the views' store, with the views' engine settings (ViewSettings: the
// request's timeout, ViewMaxMemoryBytes) and the request's deadline, which
// also ends its stream. The analysts' limits do not fit: their 100,000
// result rows and 32 MiB would refuse the large answers an export is for.
//
// How many run at once is bounded as analysts' statements are (the
// query.sql.concurrent and query.sql.wait flags, then 429), not as views,
// which have no such bound: like an analyst's statement an export reads a
// whole scope, and it holds one of the views' connections for as long as
// its client reads. Exports get half the turns (at least one), so that
// with the defaults (4 turns, 4 store connections) the Console's views
// always keep connections of their own.
type exportLimits struct {
	turns   chan struct{}
	wait    time.Duration
	release func()
}

// newExportLimits makes the export turns of a server configured with c,
// reading st.
func newExportLimits(c SQLConfig, st store.Store) *exportLimits {
	d := DefaultSQLConfig()
	if c.Concurrent <= 0 {
		c.Concurrent = d.Concurrent
	}
	if c.Wait <= 0 {
		c.Wait = d.Wait
	}
	return &exportLimits{turns: make(chan struct{}, (c.Concurrent+1)/2), wait: c.Wait, release: releaser(st)}
}

// export streams the rows of q, whose columns are out, to r in the format
// q's format= names, as an attachment named after view and the time.
func (s *Server) export(ctx context.Context, r *fasthttp.RequestCtx, p *params, view string, q store.Query, out []string) error {
	f := p.format()
	if p.err != nil {
		return p.err
	}
	l := s.exports
	if takeTurn(ctx, l.turns, l.wait, r) != nil {
		return &apiError{Status: 429, Msg: "too many exports are running: try again in a few seconds"}
	}
	_, err := streamed(ctx, r, f.contentType, func() {
		<-l.turns
		if len(l.turns) == 0 {
			l.release()
		}
	}, func(ctx context.Context, w io.Writer) (int, error) {
		return exportRows(ctx, s.store, q, out, f, w)
	})
	if err != nil {
		return err
	}
	// Only a result is a file: an error is answered as JSON, in the page.
	r.Response.Header.Set("Content-Disposition", `attachment; filename="netview-`+view+"-"+
		time.Now().UTC().Format("20060102T150405Z")+"."+f.name+`"`)
	return nil
}

// exportRows runs q and writes its rows to w in format f, block by block as
// the engine returns them; it returns how many it wrote.
func exportRows(ctx context.Context, st store.Store, q store.Query, out []string, f *exportFormat, w io.Writer) (int, error) {
	res := make(proto.Results, len(out))
	fields := make([][]byte, len(out))
	names := make([]string, len(out))
	for j, e := range out {
		names[j] = alias(e)
		res[j] = proto.ResultColumn{Name: names[j], Data: &proto.ColAuto{}}
		fields[j] = f.field(j, names[j])
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	if _, err := bw.Write(f.header(names)); err != nil {
		return 0, err
	}
	n := 0
	var b []byte
	err := st.Select(ctx, q, res, func(rows int) error {
		for i := range rows {
			b = b[:0]
			for j := range res {
				b = append(b, fields[j]...)
				b = f.cell(b, res[j].Data, i)
			}
			if _, err := bw.Write(append(b, f.end...)); err != nil {
				return err
			}
			n++
		}
		// The client gets each block as it comes.
		return bw.Flush()
	})
	if err != nil {
		return 0, err
	}
	return n, bw.Flush()
}

// appendCSVCell appends row i of column c as a CSV field (RFC 4180): the
// value as the list's JSON has it, text without its JSON quotes, NULL as
// an empty field, arrays as JSON arrays. A text that a spreadsheet would
// take for a formula (=, +, -, @, tab or CR first) gets a leading ', and
// control characters become U+FFFD, as in analysts' CSV: an export is
// meant to be opened.
func appendCSVCell(b []byte, c proto.ColResult, i int) []byte {
	var s string
	text := false
	switch c := c.(type) {
	case *proto.ColAuto:
		return appendCSVCell(b, c.Data, i)
	case *proto.ColStr:
		s, text = c.Row(i), true
	case *proto.ColLowCardinality[string]:
		s, text = c.Row(i), true
	case *proto.ColUUID:
		s = c.Row(i).String()
	case *proto.ColIPv6:
		s = addr(c.Row(i)).String()
	case *proto.ColDateTime64:
		s = c.Row(i).UTC().Format("2006-01-02T15:04:05.000Z07:00")
	case *proto.ColNullable[uint32]:
		if c.Nulls[i] == 1 {
			return b
		}
		return appendCSVCell(b, c.Values, i)
	default: // numbers, booleans, arrays, maps: as JSON
		s = string(appendValue(nil, c, i))
	}
	if text {
		if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
			s = "'" + s
		}
		s = strings.Map(func(r rune) rune {
			if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || (r >= 0x7f && r <= 0x9f) {
				return utf8.RuneError
			}
			return r
		}, s)
	}
	if !strings.ContainsAny(s, ",\"\r\n") && !strings.HasPrefix(s, " ") {
		return append(b, s...)
	}
	return append(append(append(b, '"'), strings.ReplaceAll(s, `"`, `""`)...), '"')
}
