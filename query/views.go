package query

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// view is one snapshot list of the Network View: the newest heartbeat's
// rows of a table, one per socket (or flow), in the order of a unique key.
type view struct {
	name  string   // list name in responses, and the cursor's view
	table string   // snapshot table
	key   []keyCol // unique sort key: pages never overlap
	aggs  string   // per-key values of the newest row
	out   []string // response fields, as SQL expressions ending in their name
	// counted is the heartbeats column that counts this view's rows.
	counted string
	// sortable are the fields of out a v1 list may be sorted by.
	sortable []string
}

type keyCol struct{ name, typ string }

// sensorInfo joins each row to its sensor's name and staleness at the
// moment: a sensor that has not reported for three intervals (at least
// 45 s) keeps its last state, marked stale.
func sensorInfo(m moment) string {
	return `SELECT sensor_id, argMax(hostname, seq) AS hostname,
    CAST(max(received_at) < ` + m.clock() + ` - toIntervalSecond(greatest(3 * argMax(interval_secs, seq), 45)) AS Bool) AS sensor_stale
FROM ` + m.sensors() + ` GROUP BY sensor_id`
}

var proc = `argMax(uid, seq) AS uid, argMax(pid, seq) AS pid, argMax(binary, seq) AS binary, argMax(binary_path, seq) AS binary_path,
    argMax(unit, seq) AS unit, argMax(container_id, seq) AS container_id, argMax(container_runtime, seq) AS container_runtime,
    argMax(pod_uid, seq) AS pod_uid, argMax(container_name, seq) AS container_name, argMax(container_image, seq) AS container_image,
    argMax(pod, seq) AS pod, argMax(pod_namespace, seq) AS pod_namespace`
var procOut = []string{"nullIf(pid, 0) AS pid", "CAST(binary AS String) AS binary", "CAST(binary_path AS String) AS binary_path", "uid",
	"CAST(unit AS String) AS unit", "container_id", "CAST(container_runtime AS String) AS container_runtime", "pod_uid",
	"container_name", "CAST(container_image AS String) AS container_image", "pod", "CAST(pod_namespace AS String) AS pod_namespace"}

func fields(f ...[]string) []string {
	var out []string
	for _, x := range f {
		out = append(out, x...)
	}
	return out
}

// listenService names a TCP listening port the way the sensor names UDP
// ports (heartbeat.ServicePorts, the one list of them): UDP rows carry the
// name stored at ingest, TCP rows get it here, so the list needs no
// migration and follows the Go table.
var listenService = func() string {
	ports := make([]string, len(heartbeat.ServicePorts))
	names := make([]string, len(heartbeat.ServicePorts))
	for i, s := range heartbeat.ServicePorts {
		ports[i] = strconv.Itoa(int(s.Port))
		names[i] = store.Quote(s.Name)
	}
	return "transform(local_port, CAST([" + strings.Join(ports, ", ") + "] AS Array(UInt16)), [" +
		strings.Join(names, ", ") + "], '') AS service"
}()

var (
	connectionsView = &view{
		name: "connections", table: "tcp_connections", counted: "tcp_connections",
		key: []keyCol{{"sensor_id", "UUID"}, {"netns", "UInt64"}, {"local_address", "IPv6"}, {"local_port", "UInt16"},
			{"remote_address", "IPv6"}, {"remote_port", "UInt16"}, {"inode", "UInt64"}},
		aggs: proc + `, argMax(family, seq) AS family, argMax(state, seq) AS state, argMax(duration_secs, seq) AS duration_secs,
            min(first_seen) AS first_seen, max(observed_at) AS last_seen`,
		out: fields([]string{"sensor_id", "hostname", "'tcp' AS protocol", "CAST(family AS String) AS family",
			"local_address", "local_port", "remote_address", "remote_port", "CAST(state AS String) AS state"},
			procOut, []string{"inode", "netns", "duration_secs", "first_seen", "last_seen", "sensor_stale"}),
		sortable: []string{"sensor_id", "hostname", "local_address", "local_port", "remote_address", "remote_port", "state",
			"pid", "binary", "uid", "duration_secs", "first_seen", "last_seen"},
	}
	listeningView = &view{
		name: "listening", table: "tcp_listeners", counted: "tcp_listeners",
		key:  []keyCol{{"sensor_id", "UUID"}, {"netns", "UInt64"}, {"local_address", "IPv6"}, {"local_port", "UInt16"}, {"inode", "UInt64"}},
		aggs: proc + `, argMax(family, seq) AS family, min(first_seen) AS first_seen, max(observed_at) AS last_seen`,
		out: fields([]string{"sensor_id", "hostname", "'tcp' AS protocol", "CAST(family AS String) AS family", "local_address", "local_port", listenService},
			procOut, []string{"inode", "netns", "first_seen", "last_seen", "sensor_stale"}),
		sortable: []string{"sensor_id", "hostname", "local_address", "local_port", "service", "pid", "binary", "uid", "first_seen", "last_seen"},
	}
	udpView = &view{
		name: "udp", table: "udp_listeners", counted: "udp_listeners",
		key: []keyCol{{"sensor_id", "UUID"}, {"netns", "UInt64"}, {"local_address", "IPv6"}, {"local_port", "UInt16"},
			{"remote_address", "IPv6"}, {"remote_port", "UInt16"}, {"inode", "UInt64"}},
		aggs: proc + `, argMax(family, seq) AS family, argMax(service, seq) AS service, min(first_seen) AS first_seen, max(observed_at) AS last_seen`,
		out: fields([]string{"sensor_id", "hostname", "'udp' AS protocol", "CAST(family AS String) AS family",
			"local_address", "local_port", "remote_address", "remote_port", "CAST(service AS String) AS service"},
			procOut, []string{"inode", "netns", "first_seen", "last_seen", "sensor_stale"}),
		sortable: []string{"sensor_id", "hostname", "local_address", "local_port", "remote_address", "remote_port", "service",
			"pid", "binary", "uid", "first_seen", "last_seen"},
	}
	flowsView = &view{
		name: "flows", table: "active_flows", counted: "active_flows",
		key: []keyCol{{"sensor_id", "UUID"}, {"flow_id", "UUID"}},
		aggs: proc + `, argMax(protocol, seq) AS protocol, argMax(direction, seq) AS direction,
            argMax(src_address, seq) AS src_address, argMax(src_port, seq) AS src_port,
            argMax(dst_address, seq) AS dst_address, argMax(dst_port, seq) AS dst_port, argMax(netns, seq) AS netns,
            min(started_at) AS started_at, max(observed_at) AS last_seen,
            argMax(bytes_sent, seq) AS bytes_sent, argMax(bytes_received, seq) AS bytes_received,
            argMax(state, seq) AS state, argMax(source, seq) AS source`,
		out: fields([]string{"sensor_id", "hostname", "flow_id", "CAST(protocol AS String) AS protocol", "CAST(direction AS String) AS direction",
			"src_address", "src_port", "dst_address", "dst_port", "netns"}, procOut,
			[]string{"started_at", "toUInt64(greatest(0, dateDiff('second', started_at, last_seen))) AS duration_secs",
				"bytes_sent", "bytes_received", "CAST(state AS String) AS state", "CAST(source AS String) AS source", "last_seen", "sensor_stale"}),
		sortable: []string{"sensor_id", "hostname", "src_address", "src_port", "dst_address", "dst_port", "protocol", "direction",
			"pid", "binary", "uid", "duration_secs", "bytes_sent", "bytes_received", "state", "started_at", "last_seen"},
	}
)

// alias is the name an output expression ends in.
func alias(expr string) string {
	if i := strings.LastIndex(expr, " AS "); i >= 0 {
		return expr[i+4:]
	}
	return expr
}

func (v *view) keys() string {
	names := make([]string, len(v.key))
	for i, k := range v.key {
		names[i] = k.name
	}
	return strings.Join(names, ", ")
}

// page asks for one page: of one sensor or all, after a keyset position or
// at an offset (v1 page numbers), limit rows, in key order or sorted.
type page struct {
	sensor string   // UUID or empty
	scope  scope    // containers, pods and namespaces, or all
	after  []string // keyset position (key order only), or nil
	offset uint64
	limit  int
	sort   order
	// from is the first sensor of a deep v1 page found by seek: the page
	// reads from it on, at the offset left within it.
	from string
	at   moment // the moment shown (at.go); zero: now
}

// order is a sort by one of a view's fields; the zero order is the key
// order. Ties are broken by the unique key, so the order is total and
// pages by number neither overlap nor skip.
type order struct {
	field string // one of view.sortable, or "" for the key order
	desc  bool
}

// parseSort reads sort=<field> or sort=-<field>.
func (v *view) parseSort(s string) (order, bool) {
	o := order{field: s}
	if f, ok := strings.CutPrefix(s, "-"); ok {
		o = order{field: f, desc: true}
	}
	if !slices.Contains(v.sortable, o.field) {
		return order{}, false
	}
	if o.field == v.key[0].name && !o.desc {
		// The first key ascending, ties broken by the key, is the key
		// order itself: keep its in-order plan.
		return order{}, true
	}
	return o, true
}

func (v *view) where(p *page) (string, []store.Param) {
	w := " WHERE " + p.at.latest()
	var params []store.Param
	p.at.bind(&params)
	if p.sensor != "" {
		w += " AND sensor_id = {sensor:UUID}"
		params = append(params, store.P("sensor", p.sensor))
	}
	w += p.scope.where(v.table, &params)
	if p.after != nil {
		ph := make([]string, len(v.key))
		for i, k := range v.key {
			ph[i] = "{k" + strconv.Itoa(i) + ":" + k.typ + "}"
			params = append(params, store.P("k"+strconv.Itoa(i), p.after[i]))
		}
		w += " AND (" + v.keys() + ") > (" + strings.Join(ph, ", ") + ")"
	}
	return w, params
}

// sql returns the page query.
//
// In key order the keyset condition and LIMIT apply on the table's own sort
// key, so the engine reads in order and stops early. Aggregating in the
// table's order is what lets it stop after LIMIT groups: BenchmarkQuery
// measured page 1 of 1,000,000 rows at about 30 ms with it and 900 ms
// without (the setting must sit on the outer query).
//
// In another order no early stop is possible: the whole scope is grouped
// and sorted, keeping the top offset+limit. So that is done for the key
// and the sort field alone (the engine drops the aggregates the page does
// not use), and only the page's rows are then read whole, by key: half the
// time of grouping every column of every row (BenchmarkQuery, sort=binary
// and sort=-duration_secs on 1,000,000 connections). Ties are broken by the
// key. A null (a connection that predates the sensor, an unattributed pid)
// sorts as the smallest value.
func (v *view) sql(p *page) (string, []store.Param) {
	where, params := v.where(p)
	if p.from != "" {
		where += " AND sensor_id >= {from:UUID}"
		params = append(params, store.P("from", p.from))
	}
	limit := ""
	if p.limit > 0 { // 0: every row, as an export asks (export.go)
		limit = " LIMIT {limit:UInt64}"
		params = append(params, store.P("limit", strconv.Itoa(p.limit)))
	}
	if p.offset > 0 {
		limit += " OFFSET {offset:UInt64}"
		params = append(params, store.P("offset", strconv.FormatUint(p.offset, 10)))
	}
	keys := v.keys()
	info := sensorInfo(p.at)
	q := "SELECT " + strings.Join(v.out, ", ") + " FROM (SELECT " + keys + ", " + v.aggs + " FROM " + p.at.from(v.table) + where
	group := " GROUP BY " + keys
	if p.sort.field == "" {
		return q + group + " ORDER BY " + keys + limit + ") AS v LEFT JOIN (" + info + ") AS s USING (sensor_id) ORDER BY " +
			keys + " SETTINGS optimize_aggregation_in_order = 1", params
	}
	by := p.sort.field + " ASC NULLS FIRST, " + keys
	if p.sort.desc {
		by = p.sort.field + " DESC NULLS LAST, " + keys
	}
	// The page's keys, in the sort's order; the field as the page shows it.
	top := "SELECT " + keys
	if !v.isKey(p.sort.field) {
		top += ", " + v.output(p.sort.field)
	}
	top += " FROM (SELECT " + keys + ", " + v.aggs + " FROM " + p.at.from(v.table) + where + group + ") AS v"
	if p.sort.field == "hostname" { // the only field of the sensor's
		top += " LEFT JOIN (" + info + ") AS s USING (sensor_id)"
	}
	top += " ORDER BY " + by + limit
	return q + " AND (" + keys + ") IN (SELECT " + keys + " FROM (" + top + "))" + group +
		") AS v LEFT JOIN (" + info + ") AS s USING (sensor_id) ORDER BY " + by, params
}

func (v *view) isKey(name string) bool {
	return slices.ContainsFunc(v.key, func(k keyCol) bool { return k.name == name })
}

// output is the expression of field name in out ("" if none).
func (v *view) output(name string) string {
	for _, e := range v.out {
		if alias(e) == name {
			return e
		}
	}
	return ""
}

// Every sortable field must be a field of its view: checked once at start,
// not found by a request.
func init() {
	for _, v := range []*view{connectionsView, listeningView, udpView, flowsView} {
		for _, f := range v.sortable {
			if v.output(f) == "" {
				panic("query: " + v.name + " cannot sort by " + f + ": not one of its fields")
			}
		}
	}
}

// count returns how many rows the view holds for the page's sensor filter,
// from the row counts ingest keeps per heartbeat: exact (FINAL collapses a
// retried heartbeat) and a tenth of the cost of grouping the view
// (BenchmarkQuery: grouping 1,000,000 rows took about 300 ms).
//
// A page narrowed to containers, pods or namespaces, or at a moment (the
// counts are of the sensors' newest heartbeats), has no such count: its
// rows are counted, grouped by the view's key as the page is.
func (v *view) count(ctx context.Context, st store.Store, p *page) (uint64, error) {
	q := "SELECT toUInt64(sum(" + v.counted + ")) AS n FROM heartbeats FINAL" +
		" WHERE (sensor_id, seq) IN (SELECT sensor_id, max(seq) FROM sensors GROUP BY sensor_id)"
	var params []store.Param
	if !p.scope.empty() || !p.at.now() {
		w, ps := v.where(&page{sensor: p.sensor, scope: p.scope, at: p.at})
		q, params = "SELECT toUInt64(count()) AS n FROM (SELECT 1 FROM "+p.at.from(v.table)+w+" GROUP BY "+v.keys()+")", ps
	} else if p.sensor != "" {
		q += " AND sensor_id = {sensor:UUID}"
		params = append(params, store.P("sensor", p.sensor))
	}
	var n proto.ColUInt64
	var total uint64
	err := st.Select(ctx, store.Query{SQL: q, Params: params},
		proto.Results{{Name: "n", Data: &n}}, func(int) error { total = n.Row(0); return nil })
	return total, err
}

// seek counts the view as count does and, for a v1 page by number deep in
// the whole fleet's key order, moves the page to the sensor its offset
// lands in, leaving the remainder as its offset. A plain OFFSET makes the
// engine group every socket before the page (BenchmarkQuery: page 1,000 of
// 1,000,000 connections took 430 ms p50); from a sensor on it reads only
// that sensor's rows and the page's. The per-sensor counts are those count
// sums, read once for both. The page is the plain OFFSET's page as long as
// a sensor's rows are its latest heartbeat's: a heartbeat in flight can
// shift it by the sockets it opens, as it shifts the plain OFFSET's page.
//
// A page of one sensor, of a scope or hunt, sorted, or at a moment keeps
// the plain OFFSET: the counts are of whole sensors' newest heartbeats,
// and only the key order runs sensor by sensor.
func (v *view) seek(ctx context.Context, st store.Store, p *page) (uint64, error) {
	if p.offset == 0 || p.sensor != "" || !p.scope.empty() || p.sort.field != "" || p.after != nil || !p.at.now() {
		return v.count(ctx, st, p)
	}
	// any: only the newest seq of each sensor is left, and a retried
	// heartbeat's duplicate rows carry the same counts.
	q := "SELECT sensor_id, toUInt64(any(" + v.counted + ")) AS n FROM heartbeats" +
		" WHERE (sensor_id, seq) IN (SELECT sensor_id, max(seq) FROM sensors GROUP BY sensor_id)" +
		" GROUP BY sensor_id ORDER BY sensor_id"
	var ids proto.ColUUID
	var n proto.ColUInt64
	var total, rest uint64 = 0, p.offset
	from, last, lastN := "", "", uint64(0)
	err := st.Select(ctx, store.Query{SQL: q}, proto.Results{{Name: "sensor_id", Data: &ids}, {Name: "n", Data: &n}},
		func(rows int) error {
			for i := range rows {
				c := n.Row(i)
				total += c
				switch {
				case from != "":
				case rest < c:
					from = ids.Row(i).String()
				default:
					rest -= c
					last, lastN = ids.Row(i).String(), c
				}
			}
			return nil
		})
	if err != nil {
		return 0, err
	}
	if from == "" && last != "" {
		// Past the end: read from the last sensor on, past its rows, an
		// empty page as the plain OFFSET's, without grouping the fleet.
		from, rest = last, rest+lastN
	}
	if from != "" {
		p.from, p.offset = from, rest
	}
	return total, nil
}

// rows runs the page query and appends its rows to b as JSON objects,
// separated by commas. It returns the number of rows and the key of the
// last one.
func (v *view) rows(ctx context.Context, st store.Store, p *page, b []byte) ([]byte, int, []string, error) {
	q, params := v.sql(p)
	return selectJSON(ctx, st, store.Query{SQL: q, Params: params}, v.out, v.key, b)
}

// selectJSON runs q whose columns are named by out and appends each row to
// b as a JSON object; it also returns the values of the key columns of the
// last row, as parameter text.
func selectJSON(ctx context.Context, st store.Store, q store.Query, out []string, key []keyCol, b []byte) ([]byte, int, []string, error) {
	res := make(proto.Results, len(out))
	names := make([]string, len(out))
	for i, e := range out {
		names[i] = alias(e)
		res[i] = proto.ResultColumn{Name: names[i], Data: &proto.ColAuto{}}
	}
	keyAt := make([]int, len(key))
	for i, k := range key {
		keyAt[i] = -1
		for j, n := range names {
			if n == k.name {
				keyAt[i] = j
			}
		}
	}
	var last []string
	n := 0
	err := st.Select(ctx, q, res, func(rows int) error {
		for i := range rows {
			if n > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			for j, name := range names {
				if j > 0 {
					b = append(b, ',')
				}
				b = appendString(b, name)
				b = append(b, ':')
				b = appendValue(b, res[j].Data, i)
			}
			b = append(b, '}')
			n++
		}
		if rows > 0 && len(key) > 0 {
			last = make([]string, len(key))
			for i, j := range keyAt {
				last[i] = appendParam(res[j].Data, rows-1)
			}
		}
		return nil
	})
	return b, n, last, err
}
