// Package audit writes and reads the audit_log table: what was done with
// administrative power and every SQL statement an analyst ran, who did it
// (a credential id, never a secret), from where, and how it ended.
package audit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/internal/store"
)

// Outcomes of an audited request.
const (
	Allowed = "allowed" // carried out
	Refused = "refused" // not allowed: wrong role, invalid input, a refused statement
	Failed  = "error"   // allowed, but it failed (storage, the engine)
)

// MaxText bounds Target and Detail (an analyst's statement is Detail):
// longer text is cut, at a UTF-8 boundary, and marked as cut.
const MaxText = 4096

// Entry is one row of audit_log.
type Entry struct {
	Time       time.Time
	EventID    uuid.UUID
	Actor      string // credential id, or static:<role>#<8 hex of the token's SHA-256>
	Role       string
	RemoteAddr string
	Action     string // token.create, sql, ...
	Target     string // what the action was done to (a credential id, a sensor id)
	Detail     string // the statement, or what went wrong
	Outcome    string // Allowed, Refused or Failed
}

// Log writes and reads audit entries in st.
type Log struct{ st store.Store }

// New returns the audit log stored in st (which holds audit_log).
func New(st store.Store) *Log { return &Log{st: st} }

// Write stores e, filling its time and event id when unset. It returns only
// once the engine has the row, so a caller can refuse to act without it.
func (l *Log) Write(ctx context.Context, e Entry) error {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	if e.EventID == uuid.Nil {
		e.EventID = uuid.New()
	}
	if e.Outcome == "" || e.Action == "" || e.Actor == "" {
		return errors.New("audit: an entry needs an actor, an action and an outcome")
	}
	var c columns
	c.init()
	c.append(&e)
	if err := l.st.Insert(ctx, "audit_log", c.input()); err != nil {
		return fmt.Errorf("write audit entry: %w", err)
	}
	return nil
}

// Cut shortens s to at most n bytes at a UTF-8 boundary, saying how much was
// left out.
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	end := n
	for end > 0 && !utf8.RuneStart(s[end]) {
		end--
	}
	return s[:end] + fmt.Sprintf("… [cut: %d bytes in all]", len(s))
}

// Filter selects entries, newest first.
type Filter struct {
	Actor, Action string    // "" for any
	Since, Until  time.Time // Since <= time < Until; zero for no bound
	// Before continues a listing: only entries ordered after the
	// (time, event id) given, in newest-first order.
	BeforeTime time.Time
	BeforeID   uuid.UUID
	Limit      int
}

const listSQL = `SELECT time, event_id, actor, CAST(role AS String) AS role, remote_addr,
    CAST(action AS String) AS action, target, detail, CAST(outcome AS String) AS outcome
FROM audit_log
WHERE ({actor:String} = '' OR actor = {actor:String}) AND ({action:String} = '' OR action = {action:String})
  AND time >= {since:DateTime64(3, 'UTC')} AND time < {until:DateTime64(3, 'UTC')}
  AND ({has_before:UInt8} = 0 OR (time, event_id) < ({before_t:DateTime64(3, 'UTC')}, {before_id:UUID}))
ORDER BY time DESC, event_id DESC
LIMIT {limit:UInt32}`

const timeParam = "2006-01-02 15:04:05.000"

// List returns the entries f selects, newest first.
func (l *Log) List(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		return nil, errors.New("audit: list: limit must be positive")
	}
	since, until := f.Since, f.Until
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	if until.IsZero() {
		until = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	hasBefore := "0"
	if !f.BeforeTime.IsZero() {
		hasBefore = "1"
	}
	q := store.Query{SQL: listSQL, Params: []store.Param{
		store.P("actor", f.Actor), store.P("action", f.Action),
		store.P("since", since.UTC().Format(timeParam)), store.P("until", until.UTC().Format(timeParam)),
		store.P("has_before", hasBefore), store.P("before_t", f.BeforeTime.UTC().Format(timeParam)), store.P("before_id", f.BeforeID.String()),
		store.P("limit", fmt.Sprint(f.Limit)),
	}}
	var c columns
	c.init()
	var out []Entry
	err := l.st.Select(ctx, q, c.results(), func(n int) error {
		for i := range n {
			out = append(out, c.row(i))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return out, nil
}

// columns are audit_log's columns as ch-go buffers.
type columns struct {
	time                                                     proto.ColDateTime64
	eventID                                                  proto.ColUUID
	actor, role, remoteAddr, action, target, detail, outcome proto.ColStr
}

func (c *columns) init() { c.time.WithPrecision(proto.PrecisionMilli).WithLocation(time.UTC) }

func (c *columns) append(e *Entry) {
	c.time.Append(e.Time.UTC().Truncate(time.Millisecond))
	c.eventID.Append(e.EventID)
	c.actor.Append(Cut(e.Actor, 256))
	c.role.Append(e.Role)
	c.remoteAddr.Append(e.RemoteAddr)
	c.action.Append(e.Action)
	c.target.Append(Cut(e.Target, MaxText))
	c.detail.Append(Cut(strings.ToValidUTF8(e.Detail, "\uFFFD"), MaxText))
	c.outcome.Append(e.Outcome)
}

func (c *columns) input() proto.Input {
	return proto.Input{
		{Name: "time", Data: &c.time}, {Name: "event_id", Data: &c.eventID}, {Name: "actor", Data: &c.actor},
		{Name: "role", Data: &c.role}, {Name: "remote_addr", Data: &c.remoteAddr}, {Name: "action", Data: &c.action},
		{Name: "target", Data: &c.target}, {Name: "detail", Data: &c.detail}, {Name: "outcome", Data: &c.outcome},
	}
}

func (c *columns) results() proto.Results {
	in := c.input()
	out := make(proto.Results, len(in))
	for i, col := range in {
		out[i] = proto.ResultColumn{Name: col.Name, Data: col.Data.(proto.ColResult)}
	}
	return out
}

func (c *columns) row(i int) Entry {
	return Entry{
		Time: c.time.Row(i).UTC(), EventID: c.eventID.Row(i), Actor: c.actor.Row(i), Role: c.role.Row(i),
		RemoteAddr: c.remoteAddr.Row(i), Action: c.action.Row(i), Target: c.target.Row(i), Detail: c.detail.Row(i),
		Outcome: c.outcome.Row(i),
	}
}
