package query_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query/baseline"
)

// remotePorts lists a sensor's active connections by remote port (the
// tests give each connection its own), from v1 and, as a check, from v2.
func (f *fixture) remotePorts(sensorID string) []int {
	f.t.Helper()
	rest, rows := f.list("/api/v1/network/connections?page_size=500&sensor_id="+sensorID, "connections")
	var ports []int
	for _, r := range rows {
		ports = append(ports, int(num(r, "remote_port")))
	}
	sort.Ints(ports)
	if int(num(rest, "total")) != len(rows) {
		f.t.Errorf("total %v, %d rows", rest["total"], len(rows))
	}
	v2 := f.walk("/api/v2/network/connections?limit=2&sensor_id="+sensorID, "connections", nil)
	if !slices.Equal(keys("connections", v2), keys("connections", rows)) {
		f.t.Errorf("v2 walk %v != v1 %v", keys("connections", v2), keys("connections", rows))
	}
	return ports
}

func conns(ports ...uint16) []heartbeat.Conn {
	var out []heartbeat.Conn
	for _, p := range ports {
		out = append(out, conn(40000+p, "10.0.0.5", p, uint64(p)))
	}
	return out
}

// The newest heartbeat's snapshot is the view, whatever order heartbeats
// arrive in and however often one is retried.
func TestLatestSnapshotWins(t *testing.T) {
	f := start(t)
	s := sensor(sensorA, "edge-1")
	now := time.Now().Add(-time.Minute)
	h1, h2, h3 := beat(s, 1, now), beat(s, 2, now.Add(15*time.Second)), beat(s, 3, now.Add(30*time.Second))
	h1.TCPConnections = conns(1, 2)
	h2.TCPConnections = conns(1, 2, 4)
	h3.TCPConnections = conns(1, 3)
	h3.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: h3.TCPConnections[0].LocalAddress, LocalPort: 22, Inode: 7}}

	f.ingest.Send(h1)
	if got := f.remotePorts(sensorA); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("after seq 1: %v", got)
	}
	f.ingest.Send(h3) // seq 2 is late
	if got := f.remotePorts(sensorA); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("after seq 3: %v", got)
	}
	f.ingest.Send(h2) // arrives after seq 3: superseded already
	if got := f.remotePorts(sensorA); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("late seq 2 changed the view: %v, want [1 3]", got)
	}
	f.ingest.Send(h3) // retried: same heartbeat twice
	f.ingest.Send(h1) // and an old one again
	if got := f.remotePorts(sensorA); !slices.Equal(got, []int{1, 3}) {
		t.Errorf("after retries: %v, want [1 3]", got)
	}
	if _, ls := f.list("/api/v1/network/listening", "listening"); len(ls) != 1 {
		t.Errorf("listening after retries: %v", ls)
	}
	_, sum := f.list("/api/v1/network/summary", "sensors")
	if len(sum) != 1 || num(sum[0], "active_connections") != 2 || num(sum[0], "listeners") != 1 || str(sum[0], "last_heartbeat") != timeText(h3.SentAt) {
		t.Errorf("summary: %v", sum)
	}
}

// A connection that closed is gone at the next heartbeat, and only from
// its own sensor.
func TestClosedConnectionGone(t *testing.T) {
	f := start(t)
	a, b := sensor(sensorA, "edge-1"), sensor(sensorB, "edge-2")
	now := time.Now().Add(-time.Minute)
	for seq, ports := range [][]uint16{{1, 2, 3}, {1, 3}, {3, 5}} {
		h := beat(a, uint64(seq+1), now.Add(time.Duration(seq)*15*time.Second))
		h.TCPConnections = conns(ports...)
		f.ingest.Send(h)
		if seq == 0 {
			o := beat(b, 1, now)
			o.TCPConnections = conns(1, 2, 3)
			f.ingest.Send(o)
		}
		var want []int
		for _, p := range ports {
			want = append(want, int(p))
		}
		if got := f.remotePorts(sensorA); !slices.Equal(got, want) {
			t.Errorf("after seq %d: %v, want %v", seq+1, got, want)
		}
	}
	if got := f.remotePorts(sensorB); !slices.Equal(got, []int{1, 2, 3}) {
		t.Errorf("other sensor: %v", got)
	}
	// Everything closed: the sensor reports an empty list.
	f.ingest.Send(beat(a, 4, now.Add(45*time.Second)))
	if got := f.remotePorts(sensorA); len(got) != 0 {
		t.Errorf("after an empty heartbeat: %v", got)
	}
	_, sum := f.list("/api/v1/network/summary", "sensors")
	for _, r := range sum {
		want := map[string]float64{sensorA: 0, sensorB: 3}[str(r, "sensor_id")]
		if num(r, "active_connections") != want {
			t.Errorf("summary %s: %v connections, want %v", str(r, "hostname"), r["active_connections"], want)
		}
	}
}

// A sensor that went silent keeps its last state, marked stale, in every
// view and in the summary. Staleness is max(received_at) older than three
// intervals, and never less than 45 s. The silent sensors' heartbeats are
// written by the production decoder and batch insert with the node's clock
// set back (fixture.sendReceivedAt), so no test waits for the clock.
func TestSilentSensorStale(t *testing.T) {
	f := start(t)
	now := time.Now()
	cases := []struct {
		id       string
		interval uint32
		silent   time.Duration
		stale    bool
	}{
		{sensorA, 15, 10 * time.Minute, true},                                  // long gone
		{sensorB, 1, 20 * time.Second, false},                                  // 3 s would be stale; the 45 s floor says not yet
		{sensorC, 1, 50 * time.Second, true},                                   // past the floor
		{"d0000000-0000-4000-8000-00000000000d", 60, 150 * time.Second, false}, // within 3 x 60 s
		{"e0000000-0000-4000-8000-00000000000e", 60, 200 * time.Second, true},  // past 3 x 60 s
	}
	for i, c := range cases {
		s := sensor(c.id, "host-"+c.id[:1])
		s.IntervalSecs = c.interval
		h := beat(s, 7, now.Add(-c.silent))
		h.TCPConnections = conns(uint16(10 + i))
		h.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: h.TCPConnections[0].LocalAddress, LocalPort: 22, Inode: 1}}
		h.UDPListeners = []heartbeat.UDPSocket{{Family: "inet", LocalAddress: h.TCPConnections[0].LocalAddress, LocalPort: 2152, Inode: 2, Service: "gtp-u"}}
		h.ActiveFlows = []heartbeat.Flow{{FlowID: s.BootID, Protocol: "tcp", Direction: "outbound", SrcAddress: h.TCPConnections[0].LocalAddress,
			DstAddress: h.TCPConnections[0].RemoteAddress, StartedAt: h.SentAt, State: "ESTABLISHED", Source: "proc"}}
		f.sendReceivedAt(h, now.Add(-c.silent))
	}
	// A fresh sensor through the ingest node, for contrast.
	fresh := beat(sensor("f0000000-0000-4000-8000-00000000000f", "host-f"), 1, now)
	fresh.TCPConnections = conns(99)
	f.ingest.Send(fresh)

	want := map[string]bool{"f0000000-0000-4000-8000-00000000000f": false}
	for _, c := range cases {
		want[c.id] = c.stale
	}
	for _, view := range []string{"connections", "listening", "udp", "flows"} {
		_, rows := f.list("/api/v1/network/"+view, view)
		seen := map[string]bool{}
		for _, r := range rows {
			id := str(r, "sensor_id")
			seen[id] = true
			if r["sensor_stale"] != want[id] {
				t.Errorf("%s of %s: sensor_stale %v, want %v", view, id, r["sensor_stale"], want[id])
			}
		}
		for _, c := range cases {
			if !seen[c.id] {
				t.Errorf("%s: silent sensor %s disappeared", view, c.id)
			}
		}
	}
	_, sum := f.list("/api/v1/network/summary", "sensors")
	if len(sum) != len(want) {
		t.Fatalf("summary has %d sensors, want %d: %v", len(sum), len(want), sum)
	}
	for _, r := range sum {
		id := str(r, "sensor_id")
		if r["stale"] != want[id] {
			t.Errorf("summary %s: stale %v, want %v", id, r["stale"], want[id])
		}
		if num(r, "active_connections") != 1 {
			t.Errorf("summary %s keeps its last counts: %v", id, r)
		}
	}
}

// The summary: one row per sensor with its identity, last heartbeat and
// counts, and an anomaly score against the sensor's own recent baseline
// (standard deviations from its mean of the previous hour, deviation
// floored at 1); the most anomalous first.
func TestSummary(t *testing.T) {
	f := start(t)
	steady, burst := sensor(sensorA, "steady"), sensor(sensorB, "burst")
	burst.Flavor = "telecom"
	base := time.Now().Add(-2 * time.Minute)
	var last time.Time
	for k := range 6 {
		at := base.Add(time.Duration(k) * 15 * time.Second)
		last = at.UTC().Truncate(time.Millisecond)
		h := beat(steady, uint64(k+1), at)
		h.TCPConnections = conns(seqPorts(20)...)
		h.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: h.TCPConnections[0].LocalAddress, LocalPort: 22, Inode: 1}}
		f.ingest.Send(h)
		n := 20
		if k == 5 {
			n = 60
		}
		h = beat(burst, uint64(k+1), at)
		h.TCPConnections = conns(seqPorts(n)...)
		h.UDPListeners = []heartbeat.UDPSocket{{Family: "inet", LocalAddress: h.TCPConnections[0].LocalAddress, LocalPort: 8805, Inode: 2, Service: "pfcp"}}
		f.ingest.Send(h)
	}
	// A third sensor was busy more than an hour ago: that is not its
	// recent baseline.
	old := sensor(sensorC, "quiet")
	for k := range 4 {
		at, n := time.Now().Add(-2*time.Hour+time.Duration(k)*15*time.Second), 50
		if k >= 2 {
			at, n = base.Add(time.Duration(k)*15*time.Second), 10
		}
		h := beat(old, uint64(k+1), at)
		h.TCPConnections = conns(seqPorts(n)...)
		f.ingest.Send(h)
	}
	check := func(when string) {
		t.Helper()
		rest, sum := f.list("/api/v1/network/summary", "sensors")
		if rest["generated_at"] == nil || len(sum) != 3 {
			t.Fatalf("%s: summary %v %v", when, rest, sum)
		}
		b, s, q := sum[0], sum[1], sum[2]
		if str(q, "sensor_id") == sensorA {
			s, q = q, s
		}
		if str(b, "sensor_id") != sensorB || str(s, "sensor_id") != sensorA || str(q, "sensor_id") != sensorC {
			t.Fatalf("%s: the burst sensor must come first: %v", when, sum)
		}
		if num(q, "active_connections") != 10 || num(q, "baseline_connections") != 10 || num(q, "anomaly_score") != 0 {
			t.Errorf("%s: heartbeats over an hour old count in the baseline: %v", when, q)
		}
		if str(b, "hostname") != "burst" || str(b, "flavor") != "telecom" || num(b, "active_connections") != 60 || num(b, "udp_listeners") != 1 ||
			num(b, "baseline_connections") != 20 || num(b, "anomaly_score") != 40 || b["stale"] != false || str(b, "last_heartbeat") != timeText(last) {
			t.Errorf("%s: burst sensor: %v", when, b)
		}
		if str(s, "hostname") != "steady" || str(s, "flavor") != "standard" || num(s, "active_connections") != 20 || num(s, "listeners") != 1 ||
			num(s, "baseline_connections") != 20 || num(s, "anomaly_score") != 0 || s["stale"] != false {
			t.Errorf("%s: steady sensor: %v", when, s)
		}
	}
	check("after six heartbeats")

	// A heartbeat whose snapshots the sensor's spool dropped counts as a
	// heartbeat but is not the sensor's state: the view keeps the last
	// snapshot, and the summary must agree with the view.
	h := beat(steady, 7, base.Add(6*15*time.Second))
	h.TCPConnections = conns(seqPorts(20)...)
	h.Events = []heartbeat.Event{{EventID: h.HeartbeatID, Kind: "network_connect", Time: h.SentAt}}
	h.DropSnapshots()
	f.ingest.Send(h)
	if got := f.remotePorts(sensorA); len(got) != 20 {
		t.Fatalf("view after a dropped snapshot: %d connections", len(got))
	}
	check("after a heartbeat without snapshots")

	// Nor is it a point of the baseline (mean 20, deviation 0): the next
	// snapshot, two connections up, scores 2.
	h = beat(steady, 8, base.Add(7*15*time.Second))
	h.TCPConnections = conns(seqPorts(22)...)
	h.TCPListeners = []heartbeat.Listener{{Family: "inet", LocalAddress: h.TCPConnections[0].LocalAddress, LocalPort: 22, Inode: 1}}
	f.ingest.Send(h)
	last = h.SentAt
	_, sum := f.list("/api/v1/network/summary", "sensors")
	for _, r := range sum {
		if str(r, "sensor_id") == sensorA && (num(r, "anomaly_score") != 2 || num(r, "baseline_connections") != 20 || str(r, "last_heartbeat") != timeText(last)) {
			t.Errorf("steady sensor after the dropped snapshot: %v", r)
		}
	}
}

// The anomaly score is time-of-day aware: with 3 days or more of the same
// hour of day (from the baseline job's baseline_hourly), the baseline is
// that hour's mean and deviation over the past week, not the previous
// hour's; with less, the previous hour's as before.
func TestSummaryTimeOfDay(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	busy, quiet, young := sensor(sensorA, "busy-at-this-hour"), sensor(sensorB, "quiet-at-this-hour"), sensor(sensorC, "young")
	// The last few minutes: busy 20, 20, ..., then 60; quiet 60 throughout;
	// young 20, then 25.
	base := time.Now().Add(-2 * time.Minute)
	for k := range 6 {
		at := base.Add(time.Duration(k) * 15 * time.Second)
		for _, c := range []struct {
			s       heartbeat.Sensor
			n, last int
		}{{busy, 20, 60}, {quiet, 60, 60}, {young, 20, 25}} {
			n := c.n
			if k == 5 {
				n = c.last
			}
			h := beat(c.s, uint64(k+1), at)
			h.TCPConnections = conns(seqPorts(n)...)
			f.ingest.Send(h)
		}
	}
	// History in this hour of day and the next (the test may cross the
	// hour): busy had 58 to 62 connections over 4 days, quiet 10, young 60
	// but over 2 days only.
	history := func(s string, days int, expr string) {
		err := f.ingest.Store.Exec(ctx, store.Query{SQL: `INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at, tcp_connections, tcp_listeners)
SELECT {s:UUID}, 1000000 + number, t, t, ` + expr + `, 1
FROM (SELECT number, toStartOfHour(now64(3, 'UTC')) - toIntervalDay(1 + intDiv(number, 12)) + toIntervalMinute(10 * (number % 12)) AS t FROM numbers({n:UInt32}))`,
			Params: []store.Param{store.P("s", s), store.P("n", fmt.Sprint(12*days))}})
		if err != nil {
			t.Fatal(err)
		}
	}
	history(sensorA, 4, "58 + (number % 3) * 2")
	history(sensorB, 4, "10")
	history(sensorC, 2, "60")
	job, err := baseline.New(baseline.Defaults(), f.ingest.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := job.Process(ctx, time.Now().Add(-6*24*time.Hour), time.Now()); err != nil {
		t.Fatal(err)
	}
	_, sum := f.list("/api/v1/network/summary", "sensors")
	got := map[string][2]float64{}
	for _, r := range sum {
		got[str(r, "sensor_id")] = [2]float64{num(r, "baseline_connections"), num(r, "anomaly_score")}
	}
	want := map[string][2]float64{
		sensorA: {60, 0},  // 60 is usual at this hour, though the last hour had 20
		sensorB: {10, 50}, // 60 is usual for the last hour, not for this hour
		sensorC: {20, 5},  // too little history: the previous hour's mean
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("(baseline_connections, anomaly_score) by sensor:\n got %v\nwant %v", got, want)
	}
	if len(sum) < 3 || str(sum[0], "sensor_id") != sensorB {
		t.Errorf("the sensor off its hour's pattern must come first: %v", sum)
	}
}

func seqPorts(n int) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = uint16(i + 1)
	}
	return out
}

// The summary carries each sensor's heartbeat interval, from its newest
// heartbeat (by seq, not by arrival), so the Console can refresh at the
// sensors' cadence.
func TestSummaryIntervalSecs(t *testing.T) {
	f := start(t)
	at := time.Now().Add(-time.Minute)
	a, b := sensor(sensorA, "edge-1"), sensor(sensorB, "edge-2")
	a.IntervalSecs, b.IntervalSecs = 15, 60
	first := beat(a, 1, at)
	f.ingest.Send(first)
	f.ingest.Send(beat(b, 1, at))
	want := map[string]float64{sensorA: 15, sensorB: 60}
	check := func(when string) {
		t.Helper()
		_, sum := f.list("/api/v1/network/summary", "sensors")
		if len(sum) != 2 {
			t.Fatalf("%s: %d sensors", when, len(sum))
		}
		for _, r := range sum {
			if v, ok := r["interval_secs"].(float64); !ok || v != want[str(r, "sensor_id")] {
				t.Errorf("%s: %s interval_secs %v, want %v", when, str(r, "sensor_id"), r["interval_secs"], want[str(r, "sensor_id")])
			}
		}
	}
	check("first heartbeats")
	a.IntervalSecs = 30 // the sensor was reconfigured
	f.ingest.Send(beat(a, 2, at.Add(15*time.Second)))
	want[sensorA] = 30
	check("after a new interval")
	f.ingest.Send(first) // an old heartbeat retried late
	check("after a late retry of the old interval")
}
