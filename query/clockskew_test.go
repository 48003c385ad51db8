package query_test

import (
	"math"
	"testing"
	"time"
)

// A sensor whose clock is wrong stays in the Summary with its skew shown:
// ahead, behind by more than the days the estimate scans, and one whose
// newest heartbeat was replayed late from its spool (which must not read
// as a clock running behind).
func TestSummaryClockSkew(t *testing.T) {
	f := start(t)
	now := time.Now()
	on, ahead, behind := sensor(sensorA, "on-time"), sensor(sensorB, "ahead"), sensor(sensorC, "behind")
	f.ingest.Send(beat(on, 1, now))
	f.ingest.Send(beat(on, 2, now.Add(-20*time.Minute))) // replayed from the spool
	f.ingest.Send(beat(ahead, 1, now.Add(3*time.Hour)))
	f.ingest.Send(beat(behind, 1, now.Add(-5*24*time.Hour)))
	_, sum := f.list("/api/v1/network/summary", "sensors")
	want := map[string]float64{sensorA: 0, sensorB: 3 * 3600, sensorC: -5 * 24 * 3600}
	if len(sum) != len(want) {
		t.Fatalf("summary has %d sensors, want %d: %v", len(sum), len(want), sum)
	}
	for _, r := range sum {
		id := str(r, "sensor_id")
		got, ok := r["clock_skew_secs"].(float64)
		// The allowance is the time from building the heartbeat to its
		// write, which a loaded machine stretches.
		if !ok || math.Abs(got-want[id]) > 30 {
			t.Errorf("%s (%s): clock_skew_secs %v, want %v", str(r, "hostname"), id, r["clock_skew_secs"], want[id])
		}
	}
}
