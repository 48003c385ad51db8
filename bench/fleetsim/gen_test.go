package fleetsim

import (
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/cputime"
)

func testConfig(sensors int) Config {
	c, _, err := (&Config{Sensors: sensors, Duration: time.Second, Interval: 15 * time.Second, Targets: []string{"127.0.0.1:1"}, StartSeq: 1}).withDefaults()
	if err != nil {
		panic(err)
	}
	return c
}

// sensorBeats makes n heartbeats of one sensor, interval apart.
func sensorBeats(t testing.TB, cfg *Config, i int, telecom bool, n int) []heartbeat.Heartbeat {
	t.Helper()
	start := time.Now()
	s := newSensor(cfg, i, telecom, start)
	var enc heartbeat.Encoder
	var buf []byte
	out := make([]heartbeat.Heartbeat, n)
	for k := range n {
		doc, id, seq := s.next(buf, &enc, start.Add(time.Duration(k+1)*cfg.Interval).UnixMilli())
		buf = doc
		if err := json.Unmarshal(doc, &out[k]); err != nil {
			t.Fatalf("heartbeat %d: %v\n%s", k, err, doc)
		}
		if out[k].HeartbeatID != id || out[k].Seq != seq {
			t.Fatalf("heartbeat %d: id/seq %v/%d, document says %v/%d", k, id, seq, out[k].HeartbeatID, out[k].Seq)
		}
	}
	return out
}

// Every generated heartbeat is valid for the real decoder, and the rows the
// simulator expects are the rows ingest writes.
func TestGeneratedHeartbeatsDecode(t *testing.T) {
	cfg := testConfig(40)
	var dec ingest.Decoder
	kinds := map[string]int{}
	states := map[string]int{}
	for i := range 40 {
		telecom := i%10 == 0
		s := newSensor(&cfg, i, telecom, time.Now())
		var enc heartbeat.Encoder
		var buf []byte
		for k := range 30 {
			b := ingest.NewBatch()
			now := time.Now().Add(time.Duration(k) * cfg.Interval)
			doc, id, seq := s.next(buf, &enc, now.UnixMilli())
			buf = doc
			sum, err := dec.Decode(doc, b)
			if err != nil {
				t.Fatalf("sensor %d heartbeat %d: %v\n%s", i, k, err, doc)
			}
			if sum.Rows != s.rows || sum.HeartbeatID != id || sum.Seq != seq || sum.SensorID != s.id {
				t.Fatalf("sensor %d heartbeat %d: decoder says %+v, simulator %d rows %v seq %d", i, k, sum, s.rows, id, seq)
			}
			var h heartbeat.Heartbeat
			if err := json.Unmarshal(doc, &h); err != nil {
				t.Fatal(err)
			}
			for _, e := range h.Events {
				kinds[e.Kind]++
			}
			for _, c := range h.TCPConnections {
				states[c.State]++
			}
			for _, f := range h.CompletedFlows {
				states["final:"+f.State]++
			}
		}
	}
	for _, k := range heartbeat.EventKinds {
		if kinds[k] == 0 {
			t.Errorf("no %s event in 1,200 heartbeats (%v)", k, kinds)
		}
	}
	for _, s := range []string{"ESTABLISHED", "TIME_WAIT", "CLOSE_WAIT", "SYN_SENT", "final:established", "final:refused", "final:half-closed", "final:stale"} {
		if states[s] == 0 {
			t.Errorf("no %s in 1,200 heartbeats (%v)", s, states)
		}
	}
	t.Logf("event kinds %v; states %v", kinds, states)
}

func TestTelecomSensor(t *testing.T) {
	cfg := testConfig(1)
	hbs := sensorBeats(t, &cfg, 0, true, 3)
	h := hbs[2]
	if h.Sensor.Flavor != "telecom" || h.Sensor.Capabilities["sctp"] != "available" {
		t.Fatalf("sensor %+v", h.Sensor)
	}
	services := map[string]bool{}
	for _, u := range h.UDPListeners {
		services[u.Service] = true
	}
	for _, s := range []string{"gtp-u", "pfcp", "radius", "radius-acct", "gtp-c", "ntp", "dns"} {
		if !services[s] {
			t.Errorf("no %s UDP socket: %v", s, services)
		}
	}
	if len(h.SCTPEndpoints) == 0 || len(h.SCTPAssociations) == 0 {
		t.Fatalf("SCTP: %d endpoints, %d associations", len(h.SCTPEndpoints), len(h.SCTPAssociations))
	}
	ngap := false
	for _, e := range h.SCTPEndpoints {
		ngap = ngap || e.LocalPort == 38412
		if len(e.LocalAddresses) < 2 {
			t.Errorf("endpoint %d not multi-homed: %v", e.LocalPort, e.LocalAddresses)
		}
	}
	if !ngap {
		t.Errorf("no NGAP endpoint (SCTP 38412): %+v", h.SCTPEndpoints)
	}
	std := sensorBeats(t, &cfg, 1, false, 1)[0]
	if std.Sensor.Flavor != "standard" || len(std.SCTPAssociations)+len(std.SCTPEndpoints) != 0 || std.Sensor.Capabilities["sctp"] != "not_telecom" {
		t.Fatalf("standard sensor: %+v, %d SCTP rows", std.Sensor, len(std.SCTPAssociations)+len(std.SCTPEndpoints))
	}
}

type connKey struct {
	local, remote netip.Addr
	lport, rport  uint16
	inode         uint64
}

// Between two heartbeats of one sensor some connections close and new ones
// open, the others age by the interval; closed flows complete; listeners
// stay.
func TestChurn(t *testing.T) {
	cfg := testConfig(1)
	for i := range 5 {
		hbs := sensorBeats(t, &cfg, i, i == 0, 6)
		for k := 1; k < len(hbs); k++ {
			prev, cur := hbs[k-1], hbs[k]
			pc := map[connKey]heartbeat.Conn{}
			for _, c := range prev.TCPConnections {
				pc[connKey{c.LocalAddress, c.RemoteAddress, c.LocalPort, c.RemotePort, c.Inode}] = c
			}
			kept, opened, aged := 0, 0, 0
			for _, c := range cur.TCPConnections {
				p, ok := pc[connKey{c.LocalAddress, c.RemoteAddress, c.LocalPort, c.RemotePort, c.Inode}]
				if !ok {
					opened++
					continue
				}
				kept++
				delete(pc, connKey{c.LocalAddress, c.RemoteAddress, c.LocalPort, c.RemotePort, c.Inode})
				if (p.DurationSecs == nil) != (c.DurationSecs == nil) {
					t.Fatalf("duration known in one heartbeat only: %v %v", p.DurationSecs, c.DurationSecs)
				}
				if c.DurationSecs != nil {
					grew := int(*c.DurationSecs) - int(*p.DurationSecs)
					if grew < 14 || grew > 16 {
						t.Fatalf("sensor %d heartbeat %d: duration %d -> %d over 15 s", i, k, *p.DurationSecs, *c.DurationSecs)
					}
					aged++
				}
				if !c.FirstSeen.Equal(p.FirstSeen) {
					t.Fatalf("first_seen moved: %v -> %v", p.FirstSeen, c.FirstSeen)
				}
			}
			closed := len(pc)
			if kept == 0 || opened == 0 || closed == 0 || aged == 0 {
				t.Fatalf("sensor %d heartbeat %d: %d kept, %d opened, %d closed, %d aged of %d", i, k, kept, opened, closed, aged, len(cur.TCPConnections))
			}
			// Flows: an active flow of the previous heartbeat that is gone
			// now completed with the same flow_id.
			act := map[uuid.UUID]heartbeat.Flow{}
			for _, f := range prev.ActiveFlows {
				act[f.FlowID] = f
			}
			for _, f := range cur.ActiveFlows {
				if p, ok := act[f.FlowID]; ok {
					if f.BytesReceived < p.BytesReceived || f.BytesSent < p.BytesSent || !f.StartedAt.Equal(p.StartedAt) {
						t.Fatalf("flow %v went back: %+v -> %+v", f.FlowID, p, f)
					}
					delete(act, f.FlowID)
				}
			}
			completed := map[uuid.UUID]heartbeat.Flow{}
			for _, f := range cur.CompletedFlows {
				completed[f.FlowID] = f
				if f.EndedAt.Before(f.StartedAt) || f.EndedAt.After(cur.SentAt) || !slices.Contains(heartbeat.FinalStates, f.State) {
					t.Fatalf("completed flow %+v (sent_at %v)", f, cur.SentAt)
				}
			}
			for id := range act {
				if _, ok := completed[id]; !ok {
					t.Fatalf("sensor %d heartbeat %d: active flow %v vanished without completing", i, k, id)
				}
			}
			if len(cur.CompletedFlows) == 0 {
				t.Fatalf("sensor %d heartbeat %d: no completed flow", i, k)
			}
			for _, e := range cur.Events {
				if e.Time.After(cur.SentAt) || !e.Time.After(prev.SentAt.Add(-time.Second)) {
					t.Fatalf("event %s at %v outside (%v, %v]", e.Kind, e.Time, prev.SentAt, cur.SentAt)
				}
			}
			if k == len(hbs)-1 {
				t.Logf("sensor %d: %d connections: %d kept, %d opened, %d closed; %d active, %d completed flows, %d events",
					i, len(cur.TCPConnections), kept, opened, closed, len(cur.ActiveFlows), len(cur.CompletedFlows), len(cur.Events))
			}
		}
		// Listeners: mostly the same sockets from first to last.
		first, last := map[uint64]bool{}, 0
		for _, l := range hbs[0].TCPListeners {
			first[l.Inode] = true
		}
		for _, l := range hbs[len(hbs)-1].TCPListeners {
			if first[l.Inode] {
				last++
			}
		}
		if last < len(hbs[0].TCPListeners)-1 {
			t.Fatalf("sensor %d: only %d of %d listeners survived 5 heartbeats", i, last, len(hbs[0].TCPListeners))
		}
	}
}

// A sensor's identity depends on the seed and its index only; the contents
// (flow and event ids) also on StartSeq.
func TestIdentityStableContentsFresh(t *testing.T) {
	a, b := testConfig(1), testConfig(1)
	b.StartSeq = 1000
	ha, hb := sensorBeats(t, &a, 3, false, 1)[0], sensorBeats(t, &b, 3, false, 1)[0]
	if ha.Sensor.SensorID != hb.Sensor.SensorID || ha.Sensor.Hostname != hb.Sensor.Hostname {
		t.Fatalf("identity changed with StartSeq: %v %v", ha.Sensor, hb.Sensor)
	}
	if hb.Seq != 1000 || ha.Seq != 1 {
		t.Fatalf("seqs %d %d", ha.Seq, hb.Seq)
	}
	if ha.HeartbeatID == hb.HeartbeatID || len(ha.ActiveFlows) > 0 && len(hb.ActiveFlows) > 0 && ha.ActiveFlows[0].FlowID == hb.ActiveFlows[0].FlowID {
		t.Fatal("ids repeat across runs with different StartSeq")
	}
	c := testConfig(1)
	c.Seed = 2
	if hc := sensorBeats(t, &c, 3, false, 1)[0]; hc.Sensor.SensorID == ha.Sensor.SensorID {
		t.Fatal("seed does not change the fleet")
	}
}

func TestHistogram(t *testing.T) {
	var h hist
	for i := 1; i <= 1000; i++ {
		h.add(time.Duration(i) * time.Millisecond)
	}
	l := h.summary()
	near := func(got, want time.Duration) bool { return got > want*96/100 && got < want*104/100 }
	if l.Count != 1000 || l.Min != time.Millisecond || l.Max != time.Second || !near(l.P50, 500*time.Millisecond) || !near(l.P90, 900*time.Millisecond) || !near(l.P99, 990*time.Millisecond) {
		t.Fatalf("%+v", l)
	}
	if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) {
		t.Fatalf("out of order: %+v", l)
	}
}

// BenchmarkHeartbeat is the simulator's own cost per heartbeat: make the
// next heartbeat of a default-shape sensor (telecom one in 20) and compress
// it as Run does, at zstd's fastest level (Run's default) or its default
// level (real sensors'), or not at all. cpu-µs/hb is the process's CPU time
// (getrusage) per heartbeat, steadier than ns/op on a loaded machine.
func BenchmarkHeartbeat(b *testing.B) {
	for _, mode := range []string{"make-only", "zstd-fastest", "zstd-default"} {
		b.Run(mode, func(b *testing.B) {
			cfg := testConfig(64)
			level := zstd.SpeedFastest
			if mode == "zstd-default" {
				level = zstd.SpeedDefault
			}
			z, _ := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(level))
			sensors := make([]*sensor, 64)
			for i := range sensors {
				sensors[i] = newSensor(&cfg, i, i%20 == 0, time.Now())
			}
			var enc heartbeat.Encoder
			doc, body := make([]byte, 0, 64<<10), make([]byte, 0, 16<<10)
			now := time.Now().UnixMilli()
			var docBytes, bodyBytes, rows int
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cputime.Self()
			for i := range b.N {
				s := sensors[i%len(sensors)]
				if i%len(sensors) == 0 {
					now += 15_000
				}
				doc, _, _ = s.next(doc, &enc, now)
				if mode != "make-only" {
					body = z.EncodeAll(doc, body[:0])
				}
				docBytes += len(doc)
				bodyBytes += len(body)
				rows += s.rows
			}
			b.ReportMetric(float64((cputime.Self()-cpu0).Microseconds())/float64(b.N), "cpu-µs/hb")
			b.ReportMetric(float64(docBytes)/float64(b.N), "json-B/hb")
			b.ReportMetric(float64(bodyBytes)/float64(b.N), "zstd-B/hb")
			b.ReportMetric(float64(rows)/float64(b.N), "rows/hb")
		})
	}
}
