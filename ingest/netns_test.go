package ingest_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// TestFlowEventNetnsStored: a flow's and an event's network namespace reach
// the netns column of active_flows, flows and events, and a completed
// flow's derived network_flow event keeps the flow's; rows without one
// store 0.
func TestFlowEventNetnsStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(63, heartbeat.Shape{Conns: 1, Listeners: 1, ActiveFlows: 2, CompletedFlows: 2, Events: 2})
	h := g.Next(time.Now())
	// Distinct inodes, so a value landing in another table's row, or the
	// sensor's own namespace written in place of the row's, shows.
	const active, completed, event = 4026532101, 4026532102, 4026532103
	h.ActiveFlows[0].Netns = active
	h.CompletedFlows[0].Netns = completed
	h.Events[0].Netns = event // the second of each is left without one
	n.send(h)
	id := store.P("s", h.Sensor.SensorID.String())
	for _, c := range []struct {
		table, where string
		want         uint64
	}{
		{"active_flows", fmt.Sprint("netns = ", active), 1},
		{"active_flows", "netns = 0", 1},
		{"flows", fmt.Sprint("netns = ", completed), 1},
		{"flows", "netns = 0", 1},
		{"events", fmt.Sprint("kind = 'network_flow' AND netns = ", completed), 1},
		{"events", "kind = 'network_flow' AND netns = 0", 1},
		{"events", fmt.Sprint("kind != 'network_flow' AND netns = ", event), 1},
		{"events", "kind != 'network_flow' AND netns = 0", 1},
	} {
		if got := count(t, n.store, "SELECT count() AS n FROM "+c.table+" WHERE sensor_id = {s:UUID} AND "+c.where, id); got != c.want {
			t.Errorf("%s WHERE %s: %d rows, want %d", c.table, c.where, got, c.want)
		}
	}
}
