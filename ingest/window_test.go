package ingest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// A heartbeat whose events lie on 150 different days once failed, at the
// insert, the batch of every heartbeat sharing it (the engine refuses an
// insert into more than 100 partitions, and events are partitioned by day).
// Now it alone is refused, up front, with the member named, while a good
// heartbeat sent beside it is written; times at the window's very edge
// pass, and a sensor whose own clock is hours off is still accepted.
func TestTimeWindow(t *testing.T) {
	cfg := testConfig()
	cfg.BatchAge = 300 * time.Millisecond // so both heartbeats share a batch
	n := startNode(t, cfg, nil)
	now := time.Now().UTC().Truncate(time.Millisecond)

	bad := heartbeat.NewGenerator(51, heartbeat.Shape{Conns: 2, Events: 1})
	good := heartbeat.NewGenerator(52, heartbeat.Shape{Conns: 5, CompletedFlows: 2, Events: 3})
	answer := n.postAside(t, overDays(bad, now, -1))
	n.Send(good.Next(now))
	code, msg := answer()
	if code != 400 || !strings.Contains(msg, "events[2].time") || !strings.Contains(msg, "25h0m0s before sent_at") {
		t.Errorf("150 days of events: %d %s, want 400 naming events[2].time", code, msg)
	}
	if c := count(t, n.Store, "SELECT count() AS n FROM events WHERE sensor_id = {s:UUID}", store.P("s", bad.Sensor.SensorID.String())); c != 0 {
		t.Errorf("%d events of the refused heartbeat stored", c)
	}
	if c := count(t, n.Store, "SELECT count() AS n FROM events WHERE sensor_id = {s:UUID}", store.P("s", good.Sensor.SensorID.String())); c == 0 {
		t.Error("the good heartbeat's events were not stored")
	}

	edge := good.Next(now)
	edge.Events[0].Time, edge.Events[1].Time = now.Add(-24*time.Hour), now.Add(24*time.Hour)
	edge.CompletedFlows[0].StartedAt, edge.CompletedFlows[0].EndedAt = now.Add(-30*time.Hour), now.Add(-24*time.Hour)
	n.Send(edge)
	over := good.Next(now)
	over.CompletedFlows[1].EndedAt = now.Add(24*time.Hour + time.Millisecond)
	if code, msg, _ := n.post(encode(t, over), nil); code != 400 || !strings.Contains(msg, "completed_flows[1].ended_at") || !strings.Contains(msg, "after sent_at") {
		t.Errorf("a flow ended 1 ms past the window: %d %s", code, msg)
	}

	// A clock two hours behind: the heartbeat is whole in itself, so it is
	// taken; its skew is the Summary's business.
	late := heartbeat.NewGenerator(53, heartbeat.Shape{Conns: 3, Events: 2})
	n.Send(late.Next(now.Add(-2 * time.Hour)))
}

func encode(t *testing.T, h *heartbeat.Heartbeat) []byte {
	t.Helper()
	b, err := heartbeat.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// overDays is a heartbeat of g whose events lie on 150 days, one hour and
// then whole days after now (dir 1) or before it (dir -1).
func overDays(g *heartbeat.Generator, now time.Time, dir time.Duration) *heartbeat.Heartbeat {
	hb := g.Next(now)
	for i := range 150 {
		e := hb.Events[0]
		e.EventID, e.Time = uuid.New(), now.Add(dir*(time.Duration(i)*24*time.Hour+time.Hour))
		hb.Events = append(hb.Events, e)
	}
	return hb
}

// postAside posts hb from another goroutine, so what the test sends next
// may share its batch; answer waits for its status and body.
func (n *node) postAside(t *testing.T, hb *heartbeat.Heartbeat) (answer func() (int, string)) {
	body := encode(t, hb)
	var code int
	var msg string
	done := make(chan struct{})
	go func() {
		defer close(done)
		code, msg, _ = n.post(body, nil)
	}()
	return func() (int, string) { <-done; return code, msg }
}
