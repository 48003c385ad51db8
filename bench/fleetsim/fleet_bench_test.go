package fleetsim

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/ingest/ingesttest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkFleet runs a fleet against one ingest node on the embedded
// engine in this process (production batch settings) and reports what the
// node sustained. The simulator and the node share the machine's cores, so
// on a small machine run the node apart (netview-ingest) and point the
// command at it instead. b.N is ignored: one run is the measurement.
//
//	FLEETSIM_SENSORS=2000 FLEETSIM_INTERVAL=10s FLEETSIM_DURATION=30s \
//	  go test -run '^$' -bench Fleet -benchtime 1x ./bench/fleetsim/
//
//	offered-hb/s, accepted-hb/s  heartbeats per second over the offering window
//	rows/s                       acknowledged rows per second over the window
//	p50-ms, p99-ms               acknowledgement latency, from the schedule
//	lag-p99-ms                   how late the simulator made heartbeats
func BenchmarkFleet(b *testing.B) {
	sensors := envInt("FLEETSIM_SENSORS", 2000)
	interval := envDuration("FLEETSIM_INTERVAL", 10*time.Second)
	duration := envDuration("FLEETSIM_DURATION", 30*time.Second)
	cfg := ingesttest.Config()
	cfg.MaxBodyBytes, cfg.MaxDecodedBytes = 4<<20, 32<<20
	cfg.BatchRows, cfg.BatchAge, cfg.MaxPending, cfg.AckTimeout = 100_000, 200*time.Millisecond, 1_000_000, 30*time.Second
	node := ingesttest.Start(b, cfg, nil)
	ctx, cancel := context.WithTimeout(context.Background(), duration+2*time.Minute)
	defer cancel()
	b.ResetTimer()
	rep, err := Run(ctx, Config{Sensors: sensors, Interval: interval, Duration: duration, Drain: time.Minute,
		Targets: []string{node.URL}, Token: ingesttest.Token, DiscardAcks: true})
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	var s strings.Builder
	rep.WriteText(&s)
	b.Logf("\n%s", s.String())
	if rep.Accepted == 0 {
		b.Fatal("nothing acknowledged")
	}
	b.ReportMetric(rep.OfferedPerSec, "offered-hb/s")
	b.ReportMetric(rep.AcceptedPerSec, "accepted-hb/s")
	b.ReportMetric(rep.RowsPerSec, "rows/s")
	b.ReportMetric(float64(rep.Latency.P50.Microseconds())/1e3, "p50-ms")
	b.ReportMetric(float64(rep.Latency.P99.Microseconds())/1e3, "p99-ms")
	b.ReportMetric(float64(rep.ScheduleLag.P99.Microseconds())/1e3, "lag-p99-ms")
	b.ReportMetric(0, "ns/op")
}
