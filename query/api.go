package query

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// params reads a request's query string, refusing names it does not know,
// so a misspelt filter is an error instead of being silently ignored, and
// names given twice, of which only the first would be read.
type params struct {
	args *fasthttp.Args
	err  error
}

func query(r *fasthttp.RequestCtx, known ...string) *params {
	p := &params{args: r.QueryArgs()}
	var seen uint64
	p.args.VisitAll(func(k, _ []byte) {
		for i, n := range known {
			if string(k) == n {
				if seen&(1<<i) != 0 && p.err == nil && !slices.Contains(scopeParams, n) {
					p.err = badParam(n, "given more than once (a list of kinds is comma-separated; the filters container, pod, netns, addr, port, state and the others may repeat)")
				}
				seen |= 1 << i
				return
			}
		}
		if p.err == nil {
			p.err = badParam(string(k), "unknown parameter (known: %s)", strings.Join(known, ", "))
		}
	})
	return p
}

func (p *params) str(name string) string { return string(p.args.Peek(name)) }

// has says whether name was given a value (empty is the same as absent).
func (p *params) has(name string) bool { return len(p.args.Peek(name)) > 0 }

func (p *params) sensor() string {
	v := p.str("sensor_id")
	if v == "" || p.err != nil {
		return ""
	}
	u, err := uuid.Parse(v)
	if err != nil {
		p.err = badParam("sensor_id", "%q is not a UUID", v)
		return ""
	}
	return u.String()
}

func (p *params) int(name string, def, lo, hi int) int {
	v := p.str(name)
	if v == "" || p.err != nil {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.err = badParam(name, "%q must be a whole number from %d to %d", v, lo, hi)
		return def
	}
	return n
}

func (p *params) time(name string, def time.Time) time.Time {
	v := p.str(name)
	if v == "" || p.err != nil {
		return def
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		p.err = badParam(name, "%q is not an RFC 3339 time (e.g. 2026-11-25T10:00:00Z)", v)
		return def
	}
	return t.UTC()
}

// list wraps rows appended by fn in {"name":[...], more}.
func list(name string, fn func(b []byte) ([]byte, error), more func(b []byte) []byte) ([]byte, error) {
	b := make([]byte, 0, 16<<10)
	b = append(b, '{')
	b = appendString(b, name)
	b = append(b, ":["...)
	b, err := fn(b)
	if err != nil {
		return nil, err
	}
	b = append(b, ']')
	if more != nil {
		b = more(b)
	}
	return append(b, '}'), nil
}

// appendCursor appends the next_cursor member: null on the last page.
func appendCursor(b []byte, next string) []byte {
	b = field(b, "next_cursor")
	if next == "" {
		return append(b, "null"...)
	}
	return appendString(b, next)
}

func field(b []byte, name string) []byte {
	b = append(b, ',')
	b = appendString(b, name)
	return append(b, ':')
}

// sort reads the sort parameter of view v: sort=<field> ascending,
// sort=-<field> descending, absent for the view's key order.
func (p *params) sort(v *view) order {
	s := p.str("sort")
	if s == "" || p.err != nil {
		return order{}
	}
	o, ok := v.parseSort(s)
	if !ok {
		p.err = badParam("sort", "%q is not a sortable field of %s; sortable: %s (sort=-<field> for descending)",
			s, v.name, strings.Join(v.sortable, ", "))
	}
	return o
}

// listV1 answers the v1 snapshot lists, by page number. Connections are the
// seed's paged view: always a page, with the first active flows of the same
// scope beside it. The other lists are a page when page or page_size is
// given, and otherwise every row up to the safety cap, as the seed's were,
// with total and truncated. Either way in key order or as sort asks.
func (s *Server) listV1(v *view) handler {
	return func(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
		q := query(r, append([]string{"sensor_id", "page", "page_size", "sort", "at"}, scopeParams...)...)
		sensor := q.sensor()
		sc := q.scope(targets[v.table])
		pageNo := q.int("page", 1, 1, 1<<30)
		size := q.int("page_size", 100, 1, 500)
		sort := q.sort(v)
		at := q.at(s.historyDays())
		if q.err != nil {
			return nil, q.err
		}
		seed := v == connectionsView
		paged := seed || q.has("page") || q.has("page_size")
		p := &page{sensor: sensor, scope: sc, limit: s.cfg.MaxListRows, sort: sort, at: at}
		if paged {
			p.offset, p.limit = uint64(pageNo-1)*uint64(size), size
		}
		total, err := v.seek(ctx, s.store, p)
		if err != nil {
			return nil, err
		}
		var flows []byte
		if seed {
			// The flows beside the page are of the same scope, its
			// namespaces and filters included.
			flows, _, _, err = flowsView.rows(ctx, s.store, &page{sensor: sensor, scope: sc.forFlows(), limit: size, at: at}, nil)
			if err != nil {
				return nil, err
			}
		}
		return list(v.name, func(b []byte) ([]byte, error) {
			b, _, _, err := v.rows(ctx, s.store, p, b)
			return b, err
		}, func(b []byte) []byte {
			if seed {
				b = field(b, "flows")
				b = append(append(append(b, '['), flows...), ']')
			}
			b = field(b, "total")
			b = strconv.AppendUint(b, total, 10)
			b = at.appendAt(b)
			if !paged {
				b = field(b, "truncated")
				return strconv.AppendBool(b, total > uint64(s.cfg.MaxListRows))
			}
			b = field(b, "page_count")
			b = strconv.AppendUint(b, (total+uint64(size)-1)/uint64(size), 10)
			b = field(b, "current_page")
			b = strconv.AppendInt(b, int64(pageNo), 10)
			b = field(b, "page_size")
			return strconv.AppendInt(b, int64(size), 10)
		})
	}
}

// listV2 pages a view by cursor: keyset pagination on the view's unique
// key, so a page costs the same wherever it is and heartbeats arriving
// between pages never make a row repeat or disappear from the walk.
func (s *Server) listV2(v *view) handler {
	return func(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
		q := query(r, append([]string{"sensor_id", "limit", "cursor", "at"}, scopeParams...)...)
		sensor := q.sensor()
		sc := q.scope(targets[v.table])
		limit := q.int("limit", 100, 1, 1000)
		at := q.at(s.historyDays())
		if q.err != nil {
			return nil, q.err
		}
		p := &page{sensor: sensor, scope: sc, limit: limit, at: at}
		filter := "sensor=" + sensor + sc.key() + at.key()
		if c := q.str("cursor"); c != "" {
			after, err := s.cursors.open(c, v.name, filter, len(v.key))
			if err != nil {
				return nil, badParam("cursor", "not a cursor of this view, filter and at; start again without one")
			}
			p.after = after
		}
		var next string
		return list(v.name, func(b []byte) ([]byte, error) {
			b, n, last, err := v.rows(ctx, s.store, p, b)
			if n == limit {
				next = s.cursors.seal(v.name, filter, last)
			}
			return b, err
		}, func(b []byte) []byte {
			b = appendCursor(b, next)
			b = field(b, "limit")
			b = strconv.AppendInt(b, int64(limit), 10)
			return at.appendAt(b)
		})
	}
}

// summaryOut is one row per sensor for the fleet summary.
var summaryOut = []string{"sensor_id", "hostname", "flavor", "version", "last_heartbeat", "interval_secs", "stale",
	"active_connections", "listeners", "udp_listeners", "active_flows",
	"baseline_connections", "anomaly_score", "capabilities", "clock_skew_secs", "namespaces", "containers"}

// The anomaly score is how many standard deviations the newest connection
// count is from the sensor's own mean for the same hour of day (UTC) over
// the past 7 days (the deviation floored at 1, so a steady sensor's small
// wobble scores low): a host busy every afternoon is not anomalous every
// afternoon. That mean is the baseline job's (baseline_hourly, a few rows a
// sensor); with fewer than 3 days of that hour (the job's default
// --baseline.connection-min-days), or the job off, it is the mean over the
// previous hour.
//
// The newest count is that of the sensor's latest snapshot, the heartbeat
// the views show (its newest sensors row), not of the newest heartbeat:
// one whose snapshots the sensor's spool dropped, or one still being
// written, has counts of zero that are no observation. The baseline leaves
// out heartbeats that reported no socket and no flow at all for the same
// reason (the heartbeats table does not say which were dropped).
//
// The namespaces and containers are those of the latest snapshot's
// sockets (connections, listeners, UDP): how much of the host lives in
// containers.
//
// The clock skew is how far the sensor's clock runs ahead of this node's
// (behind when negative): sent_at less received_at. The delay in between
// only ever lowers that difference, and a heartbeat replayed from the
// spool lowers it by as long as it waited, so the estimate is the largest
// difference over the heartbeats received in the past hour. Their sent_at
// bounds the scan to the partitions of a few days; a sensor further off
// than that, or silent for an hour, is shown its newest heartbeat's.
//
// At a moment (at=) every one of these is as it was then: the sensors
// rows and heartbeats received by then, the counts of the heartbeat in
// force, and "now" (staleness, the past hour, the hour of day) the moment.
func summarySQL(m moment) string {
	return `SELECT sensor_id, hostname, flavor, version, last_heartbeat, interval_secs, stale,
    active_connections, listeners, udp_listeners, active_flows,
    round(if(d.days >= 3, d.mean, baseline), 1) AS baseline_connections,
    round((active_connections - if(d.days >= 3, d.mean, baseline)) / greatest(if(d.days >= 3, d.dev, deviation), 1), 2) AS anomaly_score, capabilities,
    round(if(k.heartbeats > 0, k.skew_ms, latest_skew_ms) / 1000, 1) AS clock_skew_secs,
    n.namespaces AS namespaces, n.containers AS containers
FROM (
    SELECT sensor_id, argMax(hostname, seq) AS hostname, CAST(argMax(flavor, seq) AS String) AS flavor,
        CAST(argMax(sensor_version, seq) AS String) AS version, max(sent_at) AS last_heartbeat, max(seq) AS latest,
        argMax(interval_secs, seq) AS interval_secs,
        CAST(max(received_at) < ` + m.clock() + ` - toIntervalSecond(greatest(3 * interval_secs, 45)) AS Bool) AS stale,
        CAST(argMax(capabilities, seq) AS Map(String, String)) AS capabilities,
        argMax(dateDiff('millisecond', received_at, sent_at), seq) AS latest_skew_ms
    FROM ` + m.sensors() + ` GROUP BY sensor_id
) AS s
LEFT JOIN (
    SELECT sensor_id, toUInt64(argMax(tcp_connections, seq)) AS active_connections, toUInt64(argMax(tcp_listeners, seq)) AS listeners,
        toUInt64(argMax(udp_listeners, seq)) AS udp_listeners, toUInt64(argMax(active_flows, seq)) AS active_flows,
        ifNotFinite(avgIf(tcp_connections, seq < latest_seq AND observed), toFloat64(argMax(tcp_connections, seq))) AS baseline,
        ifNotFinite(stddevPopIf(tcp_connections, seq < latest_seq AND observed), 0) AS deviation
    FROM (
        SELECT h.sensor_id AS sensor_id, h.seq AS seq, h.tcp_connections AS tcp_connections, h.tcp_listeners AS tcp_listeners,
            h.udp_listeners AS udp_listeners, h.active_flows AS active_flows, l.latest_seq AS latest_seq,
            h.tcp_connections + h.tcp_listeners + h.udp_listeners + h.active_flows > 0 AS observed
        FROM heartbeats AS h FINAL
        INNER JOIN (SELECT sensor_id, max(seq) AS latest_seq FROM ` + m.sensors() + ` GROUP BY sensor_id) AS l ON h.sensor_id = l.sensor_id
        WHERE h.seq = l.latest_seq OR (h.seq < l.latest_seq AND h.sent_at > ` + m.clock() + ` - INTERVAL 1 HOUR)
    )
    GROUP BY sensor_id
) AS h USING (sensor_id)
LEFT JOIN (
    SELECT sensor_id, sum(heartbeats) AS n, sum(connections) / n AS mean, sqrt(greatest(sum(squares) / n - mean * mean, 0)) AS dev,
        uniqExact(toDate(hour)) AS days
    FROM baseline_hourly FINAL
    WHERE toHour(hour) = toHour(` + m.clock() + `) AND hour < toStartOfHour(` + m.clock() + `) AND hour >= toStartOfHour(` + m.clock() + `) - INTERVAL 7 DAY
    GROUP BY sensor_id
) AS d USING (sensor_id)
LEFT JOIN (
    SELECT sensor_id, max(dateDiff('millisecond', received_at, sent_at)) AS skew_ms, count() AS heartbeats
    FROM heartbeats
    WHERE sent_at BETWEEN ` + m.clock() + ` - INTERVAL 2 DAY AND ` + m.clock() + ` + INTERVAL 2 DAY
        AND received_at > ` + m.clock() + ` - INTERVAL 1 HOUR AND received_at <= ` + m.clock() + `
    GROUP BY sensor_id
) AS k USING (sensor_id)
LEFT JOIN (
    SELECT sensor_id, toUInt64(uniqExact(netns)) AS namespaces, toUInt64(uniqExactIf(container_id, container_id != '')) AS containers
    FROM (
        SELECT sensor_id, netns, container_id FROM ` + m.from("tcp_connections") + ` WHERE ` + m.latest() + `
        UNION ALL SELECT sensor_id, netns, container_id FROM ` + m.from("tcp_listeners") + ` WHERE ` + m.latest() + `
        UNION ALL SELECT sensor_id, netns, container_id FROM ` + m.from("udp_listeners") + ` WHERE ` + m.latest() + `
    )
    GROUP BY sensor_id
) AS n USING (sensor_id)
ORDER BY anomaly_score DESC, sensor_id`
}

// summaryNow and summaryAt are the summary's statements, made once: the
// moment is bound as a parameter, so any one makes the statement of all.
var summaryNow, summaryAt = summarySQL(moment{}), summarySQL(moment{t: time.Unix(0, 0)})

func (s *Server) summary(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
	q := query(r, "at")
	at := q.at(s.historyDays())
	if q.err != nil {
		return nil, q.err
	}
	sq := store.Query{SQL: summaryNow}
	if !at.now() {
		sq.SQL = summaryAt
		at.bind(&sq.Params)
	}
	return list("sensors", func(b []byte) ([]byte, error) {
		b, _, _, err := selectJSON(ctx, s.store, sq, summaryOut, nil, b)
		return b, err
	}, func(b []byte) []byte {
		b = field(b, "generated_at")
		b = appendTime(b, time.Now())
		return at.appendAt(b)
	})
}

var eventOut = []string{"event_id", "sensor_id", "hostname", "CAST(kind AS String) AS kind", "time", "received_at",
	"CAST(protocol AS String) AS protocol", "src_address", "src_port", "dst_address", "dst_port", "netns", "uid", "nullIf(pid, 0) AS pid",
	"CAST(binary AS String) AS binary", "CAST(binary_path AS String) AS binary_path", "CAST(unit AS String) AS unit", "container_id", "CAST(container_runtime AS String) AS container_runtime", "pod_uid", "container_name", "CAST(container_image AS String) AS container_image", "pod", "CAST(pod_namespace AS String) AS pod_namespace", "query_name", "CAST(query_type AS String) AS query_type",
	"answers", "duration_ms", "bytes_sent", "bytes_received", "CAST(state AS String) AS state", "CAST(source AS String) AS source"}

var eventKey = []keyCol{{"time", "DateTime64(3, 'UTC')"}, {"event_id", "UUID"}}

// eventKinds are the kinds /events lists and filters: what sensors and
// ingest store, and the baseline job's findings (query/baseline).
var eventKinds = append(slices.Clone(heartbeat.AllEventKinds), heartbeat.BaselineEventKinds...)

// events lists events of some kinds in a time window, newest first, by
// keyset cursor on (time, event_id). The window is fixed by the first page
// and carried in the cursor, so later pages walk the same window.
func (s *Server) events(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
	return s.eventsOrExport(ctx, r, false)
}

// eventsOrExport answers the events list, or with export its whole window
// streamed (export.go): one query for both, so they cannot differ.
func (s *Server) eventsOrExport(ctx context.Context, r *fasthttp.RequestCtx, export bool) ([]byte, error) {
	known := []string{"sensor_id", "kind", "since", "until", "limit", "cursor"}
	if export {
		known = []string{"sensor_id", "kind", "since", "until", "format"}
	}
	q := query(r, append(known, scopeParams...)...)
	sensor := q.sensor()
	sc := q.scope(targets["events"])
	limit := q.int("limit", 100, 1, 1000)
	now := time.Now().UTC().Truncate(time.Millisecond)
	until := q.time("until", now)
	since := q.time("since", until.Add(-time.Hour))
	kinds := eventKinds
	if k := q.str("kind"); k != "" && q.err == nil {
		kinds = nil
		for _, one := range strings.Split(k, ",") {
			if !contains(eventKinds, one) {
				q.err = badParam("kind", "%q is not one of %s", one, strings.Join(eventKinds, ", "))
				break
			}
			kinds = append(kinds, one)
		}
	}
	if q.err != nil {
		return nil, q.err
	}
	since, until = since.Truncate(time.Millisecond), until.Truncate(time.Millisecond)
	if !since.Before(until) || until.Sub(since) > 92*24*time.Hour {
		return nil, badParam("since", "the window since..until must be positive and at most 92 days (got %s .. %s)", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	base := fmt.Sprintf("sensor=%s kinds=%s", sensor, strings.Join(kinds, ",")) + sc.key()
	var after []string
	if c := q.str("cursor"); c != "" {
		// The cursor carries the first page's window: later pages walk it
		// whether the client repeats since and until or not (the default
		// window ends at the first page's now, which a client cannot
		// repeat). A window given again must be the cursor's.
		var given [2]int64
		if q.str("since") != "" {
			given[0] = since.UnixMilli()
		}
		if q.str("until") != "" {
			given[1] = until.UnixMilli()
		}
		cs, cu, key, ok := s.cursors.openWindow(c, "events", 2, base, given)
		if !ok {
			return nil, badParam("cursor", "not a cursor of this query (kinds, sensor, filters and window must not change); start again without one")
		}
		since, until, after = time.UnixMilli(cs).UTC(), time.UnixMilli(cu).UTC(), key
	}
	filter := base + cursorWindow(since.UnixMilli(), until.UnixMilli())
	quoted := make([]string, len(kinds))
	for i, k := range kinds {
		quoted[i] = store.Quote(k)
	}
	sqlText := `SELECT ` + strings.Join(eventOut, ", ") + ` FROM (
        SELECT * FROM events FINAL
        WHERE kind IN {kinds:Array(String)} AND time >= {since:DateTime64(3, 'UTC')} AND time < {until:DateTime64(3, 'UTC')}`
	params := []store.Param{store.P("kinds", "["+strings.Join(quoted, ",")+"]"),
		store.P("since", since.Format("2006-01-02 15:04:05.000")), store.P("until", until.Format("2006-01-02 15:04:05.000")),
		store.P("limit", strconv.Itoa(limit))}
	if sensor != "" {
		sqlText += ` AND sensor_id = {sensor:UUID}`
		params = append(params, store.P("sensor", sensor))
	}
	sqlText += sc.where("events", &params)
	if after != nil {
		sqlText += ` AND (time, event_id) < ({t:DateTime64(3, 'UTC')}, {id:UUID})`
		params = append(params, store.P("t", after[0]), store.P("id", after[1]))
	}
	sqlText += ` ORDER BY time DESC, event_id DESC`
	if !export {
		sqlText += ` LIMIT {limit:UInt64}`
	}
	sqlText += `
    ) AS e LEFT JOIN (SELECT sensor_id, argMax(hostname, seq) AS hostname FROM sensors GROUP BY sensor_id) AS s USING (sensor_id)
    ORDER BY time DESC, event_id DESC` +
		// FINAL's exact mode adds back every granule whose key range
		// overlaps one a hunting index kept, which at 100 M events undid the
		// skipping (the address hunt read 2,513 of 2,861 granules; see
		// docs/performance.md). Exact mode is not needed here: the copies of
		// one event key are the same event re-sent by a retried heartbeat
		// (only received_at differs, and no filter reads it), so a filter
		// matches all copies or none, and the index keeps every granule
		// holding a copy that matches.
		`
    SETTINGS use_skip_indexes_if_final_exact_mode = 0`
	if export {
		return nil, s.export(ctx, r, q, "events", store.Query{SQL: sqlText, Params: params}, eventOut)
	}
	var next string
	return list("events", func(b []byte) ([]byte, error) {
		b, n, last, err := selectJSON(ctx, s.store, store.Query{SQL: sqlText, Params: params}, eventOut, eventKey, b)
		if n == limit {
			next = s.cursors.seal("events", filter, last)
		}
		return b, err
	}, func(b []byte) []byte {
		b = appendCursor(b, next)
		b = field(b, "since")
		b = appendTime(b, since)
		b = field(b, "until")
		return appendTime(b, until)
	})
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// actionSQL is the audit action of an analyst's statement.
const actionSQL = "sql"

// analystSQL runs an analyst's statement: the body is the SQL, the format
// comes from ?format= (JSON by default). The result is held in the response
// until the statement's audit row is written: when it cannot be, the result
// is dropped and the answer is 503, so no analyst sees data the audit log
// does not account for. (The statement itself is read-only.)
func (s *Server) analystSQL(ctx context.Context, r *fasthttp.RequestCtx, p *principal) ([]byte, error) {
	stmt := string(r.PostBody())
	a := auditEntry{action: actionSQL, detail: sqlDetail(stmt)}
	q := query(r, "format")
	if q.err != nil {
		s.record(ctx, r, p, a, q.err)
		return nil, q.err
	}
	format := q.str("format")
	if format == "" {
		format = "JSON"
	}
	rows, err := s.sql(ctx, stmt, format, r)
	if err == nil {
		a.target = "rows=" + strconv.Itoa(rows)
	}
	if werr := s.record(ctx, r, p, a, err); werr != nil && err == nil {
		r.ResetBody()
		return nil, unaudited(werr)
	}
	return nil, err
}
