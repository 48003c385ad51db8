package query_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
)

// v1 page numbers: first, middle, last, past the end (an empty page, still
// 200, total still right), exactly one page; pages join up to the whole
// list, in key order, never overlapping.
func TestConnectionsV1Pages(t *testing.T) {
	f := start(t)
	gens := f.fleet(3, 2, heartbeat.Shape{Conns: 20})
	rest, all := f.list("/api/v1/network/connections?page_size=500", "connections")
	if len(all) != 60 || num(rest, "total") != 60 || num(rest, "page_count") != 1 {
		t.Fatalf("whole list: %d rows, %v", len(all), rest)
	}
	f.checkKeyOrder("connections", all, "v1 connections")

	var joined []row
	for page, want := range []int{25, 25, 10, 0, 0} {
		p := fmt.Sprintf("/api/v1/network/connections?page_size=25&page=%d", page+1)
		if page == 4 {
			p = "/api/v1/network/connections?page_size=25&page=1000000"
		}
		rest, rows := f.list(p, "connections")
		if len(rows) != want || num(rest, "total") != 60 || num(rest, "page_count") != 3 || num(rest, "page_size") != 25 {
			t.Errorf("%s: %d rows, %v; want %d rows of 60 in 3 pages", p, len(rows), rest, want)
		}
		if page < 4 && num(rest, "current_page") != float64(page+1) {
			t.Errorf("%s: current_page %v", p, rest["current_page"])
		}
		joined = append(joined, rows...)
	}
	if !slices.Equal(keys("connections", joined), keys("connections", all)) {
		t.Errorf("pages of 25 do not join up to the whole list")
	}

	// Exactly one page.
	for _, p := range []string{"?page_size=60", "?page_size=60&page=1"} {
		rest, rows := f.list("/api/v1/network/connections"+p, "connections")
		if len(rows) != 60 || num(rest, "page_count") != 1 {
			t.Errorf("%s: %d rows, %v", p, len(rows), rest)
		}
	}
	if rest, rows := f.list("/api/v1/network/connections?page_size=60&page=2", "connections"); len(rows) != 0 || num(rest, "total") != 60 {
		t.Errorf("past the only page: %d rows, %v", len(rows), rest)
	}
	// The default page size is 100.
	if rest, rows := f.list("/api/v1/network/connections", "connections"); len(rows) != 60 || num(rest, "page_size") != 100 {
		t.Errorf("defaults: %d rows, %v", len(rows), rest)
	}

	// One sensor's pages.
	id := gens[1].Sensor.SensorID.String()
	var mine []row
	for page := 1; page <= 3; page++ {
		rest, rows := f.list(fmt.Sprintf("/api/v1/network/connections?sensor_id=%s&page_size=7&page=%d", id, page), "connections")
		if num(rest, "total") != 20 || num(rest, "page_count") != 3 {
			t.Errorf("sensor page %d: %v", page, rest)
		}
		mine = append(mine, rows...)
	}
	var want []row
	for _, r := range all {
		if str(r, "sensor_id") == id {
			want = append(want, r)
		}
	}
	if len(mine) != 20 || !slices.Equal(keys("connections", mine), keys("connections", want)) {
		t.Errorf("one sensor's pages: %d rows, not its part of the whole list", len(mine))
	}

	for _, bad := range []struct{ q, param string }{
		{"page_size=0", "page_size"}, {"page_size=501", "page_size"}, {"page_size=-1", "page_size"}, {"page_size=ten", "page_size"},
		{"page=0", "page"}, {"page=-3", "page"}, {"page=1.5", "page"},
	} {
		f.badRequest("/api/v1/network/connections?"+bad.q, bad.param)
	}
}

// A deep v1 page of the whole fleet starts at the sensor its offset lands
// in (view.seek) instead of a plain OFFSET: every page of every size must be
// the plain page, the slice of the whole key-order list, for sensors of
// different sizes and after churn (two heartbeats). Sizes 1, 3, 4 and 10
// make pages start on a sensor's first row, its last, across two sensors
// and one past a sensor's end; pages past the end are empty.
func TestConnectionsV1DeepPages(t *testing.T) {
	f := start(t)
	base := time.Now().Add(-30 * time.Second)
	var gens []*heartbeat.Generator
	for i, conns := range []int{4, 1, 9, 3, 12, 4} {
		gens = append(gens, heartbeat.NewGenerator(uint64(2000+i), heartbeat.Shape{Conns: conns}))
	}
	for k := range 2 {
		for _, g := range gens {
			f.ingest.Send(g.Next(base.Add(time.Duration(k) * 15 * time.Second)))
		}
	}
	_, all := f.list("/api/v1/network/connections?page_size=500", "connections")
	if len(all) != 33 {
		t.Fatalf("whole list: %d rows, want 33", len(all))
	}
	whole := keys("connections", all)
	// The offsets where a sensor's rows start, for the report.
	var bounds []int
	for i := range all {
		if i == 0 || str(all[i], "sensor_id") != str(all[i-1], "sensor_id") {
			bounds = append(bounds, i)
		}
	}
	if len(bounds) != 6 {
		t.Fatalf("%d sensors in the list, want 6", len(bounds))
	}
	for _, size := range []int{1, 3, 4, 10, 33} {
		for page := 1; (page-1)*size <= len(all)+size; page++ {
			rest, rows := f.list(fmt.Sprintf("/api/v1/network/connections?page_size=%d&page=%d", size, page), "connections")
			lo, hi := min((page-1)*size, len(all)), min(page*size, len(all))
			if got := keys("connections", rows); !slices.Equal(got, whole[lo:hi]) || num(rest, "total") != 33 {
				t.Errorf("page %d of size %d (offset %d, sensors start at %v): %d rows, total %v; want rows %d..%d of the whole list",
					page, size, lo, bounds, len(rows), rest["total"], lo, hi)
			}
		}
	}
	// A page far past the end is empty, the total still right.
	if rest, rows := f.list("/api/v1/network/connections?page_size=500&page=1000000", "connections"); len(rows) != 0 || num(rest, "total") != 33 {
		t.Errorf("far past the end: %d rows, %v", len(rows), rest)
	}
}

// A retried heartbeat, stored twice before a merge, counts once: in the
// total of the fleet and of its sensor, and in the per-sensor counts a deep
// page seeks by (view.latestCounts reads heartbeats without FINAL). The
// merges of heartbeats are stopped so the two copies stay apart.
func TestCountsRetriedHeartbeatOnce(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	if err := f.ingest.Store.Exec(ctx, store.Query{SQL: "SYSTEM STOP MERGES heartbeats"}); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-30 * time.Second)
	var gens []*heartbeat.Generator
	for i, conns := range []int{4, 2, 5} {
		gens = append(gens, heartbeat.NewGenerator(uint64(3000+i), heartbeat.Shape{Conns: conns}))
	}
	var last *heartbeat.Heartbeat
	for k := range 2 {
		for _, g := range gens {
			last = g.Next(base.Add(time.Duration(k) * 15 * time.Second))
			f.ingest.Send(last)
		}
	}
	_, before := f.list("/api/v1/network/connections?page_size=500", "connections")
	f.ingest.Send(last) // retried: the sensor got no acknowledgement
	id := last.Sensor.SensorID.String()
	if n := ingesttest.Count(t, f.ingest.Store, "SELECT count() AS n FROM heartbeats WHERE sensor_id = {s:UUID} AND seq = {q:UInt64}",
		store.P("s", id), store.P("q", strconv.FormatUint(last.Seq, 10))); n != 2 {
		t.Fatalf("the retried heartbeat has %d heartbeats rows unmerged, want 2", n)
	}
	whole := keys("connections", before)
	if len(whole) != 11 {
		t.Fatalf("whole list: %d rows, want 11", len(whole))
	}
	for _, size := range []int{2, 5} {
		for page := 1; (page-1)*size < len(whole)+size; page++ {
			rest, rows := f.list(fmt.Sprintf("/api/v1/network/connections?page_size=%d&page=%d", size, page), "connections")
			lo, hi := min((page-1)*size, len(whole)), min(page*size, len(whole))
			if got := keys("connections", rows); !slices.Equal(got, whole[lo:hi]) || num(rest, "total") != 11 {
				t.Errorf("page %d of size %d: %d rows, total %v; want rows %d..%d of 11", page, size, len(rows), rest["total"], lo, hi)
			}
		}
	}
	if rest, rows := f.list("/api/v1/network/connections?sensor_id="+id, "connections"); len(rows) != 5 || num(rest, "total") != 5 {
		t.Errorf("the retried sensor's list: %d rows, total %v; want 5", len(rows), rest["total"])
	}
	if rest, _ := f.list("/api/v1/network/listening?page_size=500", "listening"); num(rest, "total") != float64(len(f.v1All("listening", ""))) {
		t.Errorf("listening total %v is not its row count", rest["total"])
	}
}

// badRequest requires a 400 whose answer names param.
func (f *fixture) badRequest(path, param string) {
	f.t.Helper()
	var out map[string]string
	code := f.get(path, &out)
	if code != 400 || out["parameter"] != param || !strings.Contains(out["error"], param) {
		f.t.Errorf("GET %s: %d %v; want 400 naming %q", path, code, out, param)
	}
}

var v2Views = []string{"connections", "listening", "udp", "flows"}

// v1 lists every row of a view (connections with one big page).
func (f *fixture) v1All(view, filter string) []row {
	f.t.Helper()
	p := "/api/v1/network/" + view + "?page_size=500"
	if view != "connections" {
		p = "/api/v1/network/" + view + "?"
	}
	if filter != "" {
		p += "&" + filter
	}
	p = strings.Replace(p, "?&", "?", 1)
	_, rows := f.list(p, view)
	return rows
}

// Walking a v2 view by cursor returns every row exactly once, in key
// order, whatever the page size, with or without a sensor filter.
func TestV2WalkEveryView(t *testing.T) {
	f := start(t)
	gens := f.fleet(3, 2, heartbeat.Shape{Conns: 20, Listeners: 4, UDP: 3, ActiveFlows: 5})
	id := gens[2].Sensor.SensorID.String()
	for _, view := range v2Views {
		all := f.v1All(view, "")
		if len(all) == 0 {
			t.Fatalf("%s: empty", view)
		}
		limits := []int{4, 7, len(all), len(all) + 1, 1000}
		if len(all) <= 15 {
			limits = append(limits, 1)
		}
		for _, limit := range limits {
			got := f.walk(fmt.Sprintf("/api/v2/network/%s?limit=%d", view, limit), view, nil)
			if !slices.Equal(keys(view, got), keys(view, all)) {
				t.Errorf("%s limit %d: walk of %d rows is not the %d rows in key order", view, limit, len(got), len(all))
			}
		}
		f.checkKeyOrder(view, all, view)
		mine := f.v1All(view, "sensor_id="+id)
		got := f.walk(fmt.Sprintf("/api/v2/network/%s?sensor_id=%s&limit=2", view, id), view, nil)
		if len(mine) == 0 || !slices.Equal(keys(view, got), keys(view, mine)) {
			t.Errorf("%s of one sensor: walk %d rows, list %d", view, len(got), len(mine))
		}
		for _, r := range got {
			if str(r, "sensor_id") != id {
				t.Errorf("%s: filter leaked %v", view, r)
			}
		}
		// A page of exactly the rows left ends the walk with an empty
		// page, not an error.
		rest, rows := f.list(fmt.Sprintf("/api/v2/network/%s?limit=%d", view, len(all)), view)
		if len(rows) != len(all) || num(rest, "limit") != float64(len(all)) {
			t.Errorf("%s: one full page: %d rows, %v", view, len(rows), rest)
		}
		if c, _ := rest["next_cursor"].(string); c != "" {
			if _, rows := f.list(fmt.Sprintf("/api/v2/network/%s?limit=%d&cursor=%s", view, len(all), c), view); len(rows) != 0 {
				t.Errorf("%s: the page after the last: %d rows", view, len(rows))
			}
		}
		for _, q := range []string{"limit=0", "limit=1001", "limit=x"} {
			f.badRequest("/api/v2/network/"+view+"?"+q, "limit")
		}
	}
}

// While a client walks a view, sensors keep reporting and connections
// open and close between its pages: no row comes twice, every row that
// was there all along comes, and nothing comes that was never there.
func TestV2CursorStableUnderChurn(t *testing.T) {
	f := start(t)
	gens := f.fleet(2, 1, heartbeat.Shape{Conns: 30})
	for _, view := range []string{"connections"} {
		snapshots := [][]string{keys(view, f.v1All(view, ""))}
		at := time.Now()
		got := f.walk("/api/v2/network/"+view+"?limit=5", view, func(int) {
			for _, g := range gens {
				at = at.Add(time.Second)
				f.ingest.Send(g.Next(at))
			}
			snapshots = append(snapshots, keys(view, f.v1All(view, "")))
		})
		if len(snapshots) < 5 {
			t.Fatalf("%s: only %d pages", view, len(snapshots))
		}
		f.checkKeyOrder(view, got, view+" walk under churn") // also: no row twice
		returned := map[string]bool{}
		for _, k := range keys(view, got) {
			returned[k] = true
		}
		ever, throughout := map[string]bool{}, map[string]int{}
		for _, s := range snapshots {
			for _, k := range s {
				ever[k] = true
				throughout[k]++
			}
		}
		kept := 0
		for k, n := range throughout {
			if n == len(snapshots) {
				kept++
				if !returned[k] {
					t.Errorf("%s: %s was there throughout the walk but not returned", view, k)
				}
			}
		}
		for k := range returned {
			if !ever[k] {
				t.Errorf("%s: %s returned but never in the view", view, k)
			}
		}
		if kept == len(ever) || kept == 0 {
			t.Fatalf("%s: no churn to test against (%d kept of %d)", view, kept, len(ever))
		}
		t.Logf("%s: %d pages, %d rows returned, %d there throughout, %d ever", view, len(snapshots), len(got), kept, len(ever))
	}
}

// A cursor is good only for the view and filter that made it: a changed
// byte, another view's cursor, another sensor filter's, garbage: 400
// naming cursor.
func TestTamperedCursor(t *testing.T) {
	f := start(t)
	gens := f.fleet(2, 1, heartbeat.Shape{Conns: 10, Listeners: 5, Events: 10})
	id := gens[0].Sensor.SensorID.String()
	other := gens[1].Sensor.SensorID.String()
	cursor := func(path string) string {
		rest, _ := f.list(path, strings.Split(strings.TrimPrefix(strings.TrimPrefix(path, "/api/v2/network/"), "/api/v2/"), "?")[0])
		c, _ := rest["next_cursor"].(string)
		if c == "" {
			t.Fatalf("%s: no next_cursor", path)
		}
		return c
	}
	conns := cursor("/api/v2/network/connections?limit=3")
	mineConns := cursor("/api/v2/network/connections?limit=3&sensor_id=" + id)
	listening := cursor("/api/v2/network/listening?limit=3")
	events := cursor("/api/v2/events?limit=3")

	// The genuine article works.
	f.list("/api/v2/network/connections?limit=3&cursor="+conns, "connections")
	f.list("/api/v2/network/connections?limit=3&sensor_id="+id+"&cursor="+mineConns, "connections")

	flip := func(c string, i int) string {
		b := []byte(c)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	dot := strings.IndexByte(conns, '.')
	for name, path := range map[string]string{
		"payload byte":         "/api/v2/network/connections?cursor=" + flip(conns, 5),
		"last payload byte":    "/api/v2/network/connections?cursor=" + flip(conns, dot-1),
		"mac byte":             "/api/v2/network/connections?cursor=" + flip(conns, dot+3),
		"truncated":            "/api/v2/network/connections?cursor=" + conns[:len(conns)-2],
		"no mac":               "/api/v2/network/connections?cursor=" + conns[:dot],
		"garbage":              "/api/v2/network/connections?cursor=garbage",
		"dots":                 "/api/v2/network/connections?cursor=...",
		"listening's cursor":   "/api/v2/network/connections?cursor=" + listening,
		"connections' on udp":  "/api/v2/network/udp?cursor=" + conns,
		"connections' on flow": "/api/v2/network/flows?cursor=" + conns,
		"events' cursor":       "/api/v2/network/connections?cursor=" + events,
		"filter dropped":       "/api/v2/network/connections?cursor=" + mineConns,
		"filter changed":       "/api/v2/network/connections?sensor_id=" + other + "&cursor=" + mineConns,
		"filter added":         "/api/v2/network/connections?sensor_id=" + id + "&cursor=" + conns,
		"view's on events":     "/api/v2/events?cursor=" + conns,
		"events kind changed":  "/api/v2/events?kind=dns_query&cursor=" + events,
		"events sensor added":  "/api/v2/events?sensor_id=" + id + "&cursor=" + events,
		"events window moved":  "/api/v2/events?since=2020-01-01T00:00:00Z&until=2020-01-02T00:00:00Z&cursor=" + events,
	} {
		t.Run(name, func(t *testing.T) {
			f := *f
			f.t = t
			f.badRequest(path, "cursor")
		})
	}
}
