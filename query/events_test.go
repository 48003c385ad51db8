package query_test

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
)

func ev(id, kind string, at time.Time) heartbeat.Event {
	e := heartbeat.Event{EventID: uuid.MustParse(id), Kind: kind, Time: at.UTC().Truncate(time.Millisecond), Protocol: "tcp",
		SrcAddress: netip.MustParseAddr("10.9.0.1"), SrcPort: 40000, DstAddress: netip.MustParseAddr("10.0.0.5"), DstPort: 443,
		Process: heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl", UID: 1000}, Source: "proc"}
	if strings.HasPrefix(kind, "dns_") {
		e.Protocol, e.DstPort, e.QueryName, e.QueryType = "udp", 53, "example.com", "A"
		e.Answers = []netip.Addr{netip.MustParseAddr("93.184.216.34")}
	}
	return e
}

// eventIDs lists the event_id of each event.
func eventIDs(rows []row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = str(r, "event_id")
	}
	return out
}

// newestFirst sorts ids of events (given their times) the documented way:
// time descending, ties by event_id descending in the engine's UUID order.
func (f *fixture) newestFirst(times map[string]time.Time, ids []string) []string {
	rank := f.uuidRank(ids)
	out := slices.Clone(ids)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := times[out[i]], times[out[j]]
		if !a.Equal(b) {
			return a.After(b)
		}
		return rank[out[i]] > rank[out[j]]
	})
	return out
}

// Events: the kinds filter (several, comma-separated), the sensor filter,
// the window (since inclusive, until exclusive, the last hour by default),
// newest first with ties broken by event_id; network_flow events derived
// from completed flows.
func TestEventsFilters(t *testing.T) {
	f := start(t)
	T := time.Now().Add(-10 * time.Minute).UTC().Truncate(time.Second)
	times := map[string]time.Time{}
	type spec struct {
		id, kind string
		at       time.Time
	}
	a := []spec{
		{"00000000-0000-4000-8000-000000000001", "network_connect", T},
		{"00000000-0000-4000-8000-000000000002", "dns_query", T}, // same time: tie
		{"00000000-0000-4000-8000-000000000003", "network_accept", T.Add(-time.Second)},
		{"00000000-0000-4000-8000-000000000004", "network_connect", T.Add(time.Second)},
		{"00000000-0000-4000-8000-000000000005", "network_listen", T.Add(-2 * time.Hour)}, // outside the default window
		{"00000000-0000-4000-8000-000000000006", "dns_lookup", time.Now().Add(-59 * time.Minute)},
		{"00000000-0000-4000-8000-000000000007", "lsm_net_connect", time.Now().Add(-61 * time.Minute)},
	}
	b := []spec{
		{"ff000000-0000-4000-8000-0000000000ff", "network_connect", T}, // ties with sensor A's
		{"00000000-0000-4000-8000-000000000012", "dns_query", T.Add(2 * time.Second)},
		{"00000000-0000-4000-8000-000000000013", "dns_resolution", T.Add(2 * time.Second)},
	}
	send := func(s heartbeat.Sensor, specs []spec) *heartbeat.Heartbeat {
		h := beat(s, 1, time.Now())
		for _, e := range specs {
			h.Events = append(h.Events, ev(e.id, e.kind, e.at))
			times[e.id] = e.at.UTC().Truncate(time.Millisecond)
		}
		return h
	}
	ha := send(sensor(sensorA, "edge-1"), a)
	flowID := "00000000-0000-4000-8000-0000000000f1"
	ha.CompletedFlows = []heartbeat.Flow{{FlowID: uuid.MustParse(flowID), Protocol: "tcp", Direction: "outbound",
		SrcAddress: netip.MustParseAddr("10.9.0.1"), SrcPort: 40001, DstAddress: netip.MustParseAddr("10.0.0.5"), DstPort: 443,
		Process: heartbeat.Process{PID: 4242, Binary: "curl", BinaryPath: "/usr/bin/curl"}, StartedAt: T.Add(-1500 * time.Millisecond),
		EndedAt: T.Add(3 * time.Second), BytesSent: 11, BytesReceived: 22, State: "half-closed", Source: "inet_diag"}}
	times[flowID] = T.Add(3 * time.Second)
	f.ingest.Send(ha)
	f.ingest.Send(send(sensor(sensorB, "edge-2"), b))

	pick := func(keep func(id string) bool) []string {
		var out []string
		for id := range times {
			if keep(id) {
				out = append(out, id)
			}
		}
		return f.newestFirst(times, out)
	}
	kindOf := map[string]string{flowID: "network_flow"}
	sensorOf := map[string]string{flowID: sensorA}
	for _, e := range a {
		kindOf[e.id], sensorOf[e.id] = e.kind, sensorA
	}
	for _, e := range b {
		kindOf[e.id], sensorOf[e.id] = e.kind, sensorB
	}
	lastHour := func(id string) bool { return time.Since(times[id]) < time.Hour }
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", pick(lastHour)},
		{"kind=network_connect,dns_query", pick(func(id string) bool {
			return lastHour(id) && (kindOf[id] == "network_connect" || kindOf[id] == "dns_query")
		})},
		{"kind=network_connect&sensor_id=" + sensorA, []string{"00000000-0000-4000-8000-000000000004", "00000000-0000-4000-8000-000000000001"}},
		{"sensor_id=" + sensorB, pick(func(id string) bool { return sensorOf[id] == sensorB })},
		{"kind=network_flow", []string{flowID}},
		{"since=" + ts(T) + "&until=" + ts(T.Add(2*time.Second)), pick(func(id string) bool {
			return !times[id].Before(T) && times[id].Before(T.Add(2*time.Second))
		})},
		{"since=" + ts(T.Add(-3*time.Hour)) + "&until=" + ts(T.Add(-time.Hour)), []string{"00000000-0000-4000-8000-000000000005"}},
		{"since=" + ts(T.Add(-3*time.Hour)), pick(func(id string) bool { return true })},
		{"until=" + ts(T), pick(func(id string) bool { return times[id].Before(T) && times[id].After(T.Add(-time.Hour)) })},
		{"kind=lsm_net_connect", nil}, // 61 minutes old
	} {
		for _, v := range []string{"v1", "v2"} {
			rest, rows := f.list("/api/"+v+"/events?"+c.query, "events")
			if got := eventIDs(rows); !slices.Equal(got, c.want) {
				t.Errorf("%s events?%s:\n got %v\nwant %v", v, c.query, got, c.want)
			}
			if rest["next_cursor"] != nil {
				t.Errorf("%s events?%s: next_cursor %v on the only page", v, c.query, rest["next_cursor"])
			}
		}
	}
	// A window given on the first page only is the cursor's: later pages
	// sent without it walk [until-1h, until), not the last hour.
	var walked []string
	next := ""
	for page := 0; page < 10; page++ {
		p := "/api/v2/events?limit=2&until=" + ts(T)
		if next != "" {
			p = "/api/v2/events?limit=2&cursor=" + next
		}
		rest, rows := f.list(p, "events")
		walked = append(walked, eventIDs(rows)...)
		if next, _ = rest["next_cursor"].(string); next == "" {
			break
		}
		if str(rest, "until") != timeText(T) {
			t.Errorf("page %d: window %v .. %v, want the first page's", page, rest["since"], rest["until"])
		}
	}
	if want := pick(func(id string) bool { return times[id].Before(T) && !times[id].Before(T.Add(-time.Hour)) }); !slices.Equal(walked, want) {
		t.Errorf("walk of a window given once:\n got %v\nwant %v", walked, want)
	}

	// The reported window: the last hour by default.
	rest, _ := f.list("/api/v2/events", "events")
	until, err1 := time.Parse(time.RFC3339, str(rest, "until"))
	since, err2 := time.Parse(time.RFC3339, str(rest, "since"))
	if err1 != nil || err2 != nil || time.Since(until) > time.Minute || time.Since(until) < -time.Second || until.Sub(since) != time.Hour {
		t.Errorf("default window: %v .. %v", rest["since"], rest["until"])
	}
	// The derived network_flow event: event_id is the flow_id, time its end.
	_, rows := f.list("/api/v2/events?kind=network_flow", "events")
	if len(rows) != 1 {
		t.Fatalf("network_flow events: %v", rows)
	}
	r := rows[0]
	if str(r, "sensor_id") != sensorA || str(r, "hostname") != "edge-1" || str(r, "time") != timeText(T.Add(3*time.Second)) ||
		num(r, "duration_ms") != 4500 || num(r, "bytes_sent") != 11 || num(r, "bytes_received") != 22 || str(r, "state") != "half-closed" ||
		str(r, "binary") != "curl" || num(r, "dst_port") != 443 || str(r, "kind") != "network_flow" {
		t.Errorf("network_flow event: %v", r)
	}
	_, rows = f.list("/api/v2/events?kind=dns_query&sensor_id="+sensorA, "events")
	if len(rows) != 1 || str(rows[0], "query_name") != "example.com" || fmt.Sprint(rows[0]["answers"]) != "[93.184.216.34]" {
		t.Errorf("dns_query event: %v", rows)
	}
}

// Walking events by cursor covers the window exactly once, newest first,
// with the filters repeated and the window either repeated or left to the
// cursor (which carries the window of the first page); events that
// arrive during the walk never make one come twice.
func TestEventsCursorWalk(t *testing.T) {
	f := start(t)
	gens := f.fleet(2, 4, heartbeat.Shape{Conns: 2, CompletedFlows: 3, Events: 11})
	id := gens[0].Sensor.SensorID.String()

	for _, filter := range []string{"", "kind=network_flow,dns_query,network_connect", "sensor_id=" + id} {
		all, rows := f.list("/api/v2/events?limit=1000&"+filter, "events")
		if len(rows) < 20 {
			t.Fatalf("events?%s: only %d", filter, len(rows))
		}
		times := map[string]time.Time{}
		for _, r := range rows {
			at, err := time.Parse(time.RFC3339Nano, str(r, "time"))
			if err != nil {
				t.Fatal(err)
			}
			times[str(r, "event_id")] = at
		}
		want := eventIDs(rows)
		if ordered := f.newestFirst(times, want); !slices.Equal(want, ordered) {
			t.Errorf("events?%s: not newest first, ties by event_id", filter)
		}
		window := "since=" + str(all, "since") + "&until=" + str(all, "until")
		for _, how := range []struct{ name, path string }{
			{"window repeated", "/api/v2/events?limit=7&" + window + "&" + filter},
			{"window from the cursor", "/api/v2/events?limit=7&" + filter},
			{"v1, window from the cursor", "/api/v1/events?limit=6&" + filter},
		} {
			got := eventIDs(f.walk(how.path, "events", nil))
			if how.name == "window repeated" {
				if !slices.Equal(got, want) {
					t.Errorf("events?%s, %s: walk of %d is not the %d events in order", filter, how.name, len(got), len(want))
				}
				continue
			}
			// Without the window in the query the first page's window
			// ends now, which is no earlier than the reference's.
			if len(got) < len(want) || !slices.Equal(got[len(got)-len(want):], want) {
				t.Errorf("events?%s, %s: walk of %d does not end with the %d events in order", filter, how.name, len(got), len(want))
			}
		}
	}

	// New events arrive between the pages, in the window and after it.
	_, before := f.list("/api/v2/events?limit=1000", "events")
	at := time.Now()
	seen := map[string]int{}
	got := f.walk("/api/v2/events?limit=9", "events", func(int) {
		for _, g := range gens {
			at = at.Add(time.Second)
			f.ingest.Send(g.Next(at.Add(-30 * time.Second)))
		}
	})
	for _, r := range got {
		seen[str(r, "event_id")]++
	}
	for id, n := range seen {
		if n > 1 {
			t.Errorf("event %s came %d times", id, n)
		}
	}
	for _, id := range eventIDs(before) {
		if seen[id] != 1 {
			t.Errorf("event %s, there all along, came %d times", id, seen[id])
		}
	}
	for i := 1; i < len(got); i++ {
		if str(got[i-1], "time") < str(got[i], "time") {
			t.Fatalf("walk under arrivals not newest first at %d", i)
		}
	}
}
