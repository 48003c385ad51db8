package query

import (
	"strconv"
	"time"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

// Time travel: every snapshot view takes at=<RFC 3339 or Unix ms> and then
// shows, for each sensor, its heartbeat in force at that moment
// (schema.InForce), read from the snapshot tables' history. The rest of a
// view's SQL (filters, sorts, cursors, scope) is the same as now's.

// moment is the time a view shows: the zero moment is now, read from the
// snapshot tables themselves.
type moment struct {
	t time.Time
	// days is how far back the history reaches (--store.history-ttl-days).
	days int
}

// maxAtAhead is how far past this node's clock an at may be: a client's
// clock runs a little ahead, but a moment that has not come is refused
// rather than shown as now.
const maxAtAhead = 5 * time.Second

// DefaultHistoryDays is how long the history is kept unless configured:
// the default of --store.history-ttl-days.
const DefaultHistoryDays = 7

func (s *Server) historyDays() int {
	if s.cfg.HistoryDays > 0 {
		return s.cfg.HistoryDays
	}
	return DefaultHistoryDays
}

// at reads at=: empty is now; otherwise a moment within the history.
func (p *params) at(days int) moment {
	v := p.str("at")
	if v == "" || p.err != nil {
		return moment{}
	}
	var t time.Time
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		t = time.UnixMilli(ms)
	} else if t, err = time.Parse(time.RFC3339Nano, v); err != nil {
		p.err = badParam("at", "%q is neither an RFC 3339 time (e.g. 2026-11-25T03:12:00Z) nor Unix milliseconds", v)
		return moment{}
	}
	t = t.UTC().Truncate(time.Millisecond)
	now := time.Now()
	switch {
	case t.After(now.Add(maxAtAhead)):
		p.err = badParam("at", "%s is in the future", t.Format(time.RFC3339Nano))
	case t.Before(now.Add(-time.Duration(days) * 24 * time.Hour)):
		p.err = badParam("at", "%s is older than the history kept (%d days, --store.history-ttl-days)", t.Format(time.RFC3339Nano), days)
	}
	return moment{t: t, days: days}
}

func (m moment) now() bool { return m.t.IsZero() }

// from is the table a view of table reads, under the table's own name (the
// scope's conditions name columns as table.column).
func (m moment) from(table string) string {
	if m.now() {
		return table
	}
	return table + "_history AS " + table
}

// latest is the condition that picks each sensor's rows to show.
func (m moment) latest() string {
	if m.now() {
		return schema.Latest
	}
	return schema.InForce()
}

// sensors is the sensors table as known at the moment.
func (m moment) sensors() string {
	if m.now() {
		return "sensors"
	}
	return "(" + schema.SensorsAt + ") AS sensors"
}

// clock is the SQL time that staleness and recent windows are measured
// from: the engine's now, or the moment.
func (m moment) clock() string {
	if m.now() {
		return "now64(3)"
	}
	return "{as_of:DateTime64(3, 'UTC')}"
}

// bind appends the moment's parameters, if any.
func (m moment) bind(params *[]store.Param) {
	if !m.now() {
		*params = append(*params, store.P("as_of", m.t.Format("2006-01-02 15:04:05.000")),
			store.P("as_of_days", strconv.Itoa(m.days)))
	}
}

// key is the moment as a cursor's filter ends in: a cursor of one moment
// is refused at another, or now.
func (m moment) key() string {
	if m.now() {
		return ""
	}
	return " at=" + strconv.FormatInt(m.t.UnixMilli(), 10)
}

// appendAt appends the echoed at member: null for now.
func (m moment) appendAt(b []byte) []byte {
	b = field(b, "at")
	if m.now() {
		return append(b, "null"...)
	}
	return appendTime(b, m.t)
}
