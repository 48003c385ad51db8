package sensor

import (
	"errors"
	"fmt"
	"net"

	"github.com/VictoriaMetrics/metrics"

	"github.com/netview/netview/internal/prom"
)

// newMetrics makes the sensor's metrics, in a set of its own (two sensors
// in one process, as in tests, count apart). Most are read when scraped
// from what the spool, its sender and the probes already count; only
// spooled heartbeats are counted here. Called by New once the probes are
// loaded or refused.
func (s *Sensor) newMetrics() {
	set := metrics.NewSet()
	s.metrics = set
	s.spooled = set.NewCounter("netview_sensor_heartbeats_spooled_total")
	// Since this start: what the sender did.
	prom.Counter(set, "netview_sensor_heartbeats_sent_total", func() uint64 { return s.sender.Stats().Sent })
	prom.Counter(set, "netview_sensor_delivery_retries_total", func() uint64 { return s.sender.Stats().Retries })
	// Over the life of the state folder, as the spool keeps them across
	// restarts and crashes (spool.Dropped): what will never reach ingest.
	prom.Counter(set, "netview_sensor_heartbeats_dropped_total", func() uint64 { return s.spool.Dropped().Heartbeats })
	prom.Counter(set, "netview_sensor_heartbeats_refused_total", func() uint64 { return s.spool.Dropped().Rejected })
	set.NewGauge("netview_sensor_spool_heartbeats", func() float64 { return float64(s.spool.Len()) })
	set.NewGauge("netview_sensor_spool_bytes", func() float64 { return float64(s.spool.Bytes()) })
	set.NewGauge("netview_sensor_last_delivery_timestamp_seconds", func() float64 {
		if t := s.sender.Stats().LastSuccess; !t.IsZero() {
			return float64(t.UnixMilli()) / 1000
		}
		return 0
	})
	// The capabilities ebpf_probes and ebpf_lost_events, as numbers; the
	// probes are loaded by New and never replaced, so no lock is needed.
	set.NewGauge("netview_sensor_ebpf_probes_active", func() float64 {
		if s.probes == nil {
			return 0
		}
		return float64(len(s.probes.probes.Attached()))
	})
	prom.Counter(set, "netview_sensor_ebpf_lost_events_total", func() uint64 {
		if s.probes == nil {
			return 0
		}
		n := s.probes.probes.Counters()
		return n.Lost + n.Bad
	})
}

// Metrics is the set the sensor's metrics are kept in, for a /metrics
// that serves more than this sensor (the all-in-one netview).
func (s *Sensor) Metrics() *metrics.Set { return s.metrics }

// MetricsAddr is where --sensor.metrics-listen listens, nil when it is off.
func (s *Sensor) MetricsAddr() net.Addr {
	if s.metricsLn == nil {
		return nil
	}
	return s.metricsLn.Addr()
}

// listenMetrics opens --sensor.metrics-listen, in New, so a busy port fails
// the start rather than a later Run.
func (s *Sensor) listenMetrics() error {
	if s.cfg.MetricsListen == "" {
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("sensor: metrics-listen: %w", err)
	}
	s.metricsLn = ln
	return nil
}

func validMetricsListen(addr string) error {
	if addr == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return errors.New("sensor: metrics-listen " + addr + ": want host:port, e.g. 127.0.0.1:9108")
	}
	return nil
}
