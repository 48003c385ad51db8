package ingest

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Rejection reasons, the label values of heartbeats_rejected_total.
const (
	ReasonUnauthorized = "unauthorized"
	ReasonEncoding     = "bad_encoding"
	ReasonTooLarge     = "too_large"
	ReasonInvalid      = "invalid"
	ReasonFormat       = "unknown_format"
	ReasonUnavailable  = "storage_unavailable"
	ReasonQueueFull    = "queue_full"
	ReasonRefused      = "refused" // storage refused this heartbeat's rows alone (422)
	ReasonMethod       = "bad_request"
	ReasonBody         = "bad_body"
	ReasonInternal     = "internal"
	// Access: a revoked or expired key (the sensor enrolls again), a secret
	// used where it has no right, a heartbeat for another sensor than the
	// key's, rate limits, and enrollment refusals.
	ReasonRevoked         = "revoked"
	ReasonWrongCredential = "wrong_credential"
	ReasonSensorMismatch  = "sensor_mismatch"
	ReasonRateLimited     = "rate_limited"
	ReasonAuthLimited     = "auth_fail_limited"
	ReasonEnrolled        = "enrolled"
	ReasonBlocked         = "blocked"
	ReasonTaken           = "key_id_taken"
)

// Metrics are the ingest node's Prometheus metrics, in a set of the node's
// own: two nodes in one process (tests) count apart. The names and labels
// are those of docs/operations.md; dashboards depend on them.
type Metrics struct {
	set         *metrics.Set
	accepted    *metrics.Counter
	flushErrors *metrics.Counter
	batchRows   *metrics.PrometheusHistogram
	flushSecs   *metrics.PrometheusHistogram
	queue       func() int
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	s := metrics.NewSet()
	m := &Metrics{
		set:         s,
		accepted:    s.NewCounter("netview_ingest_heartbeats_accepted_total"),
		flushErrors: s.NewCounter("netview_ingest_flush_errors_total"),
		// Prometheus buckets (le), not the library's default vmrange ones,
		// so histogram_quantile over existing dashboards keeps working.
		batchRows: s.NewPrometheusHistogramExt("netview_ingest_batch_rows", []float64{100, 1000, 10_000, 50_000, 100_000, 500_000, 1_000_000}),
		flushSecs: s.NewPrometheusHistogramExt("netview_ingest_flush_seconds", []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}),
	}
	// The writer is made after the metrics it reports to; the gauge asks
	// for its queue when scraped.
	s.NewGauge("netview_ingest_queue_rows", func() float64 {
		if m.queue == nil {
			return 0
		}
		return float64(m.queue())
	})
	return m
}

// Reject counts one refused heartbeat. The reasons are the constants
// above, so the series stay few.
func (m *Metrics) Reject(reason string) {
	m.set.GetOrCreateCounter(fmt.Sprintf("netview_ingest_heartbeats_rejected_total{reason=%q}", reason)).Inc()
}

// Accept counts one acknowledged heartbeat.
func (m *Metrics) Accept() { m.accepted.Inc() }

func (m *Metrics) observeFlush(b *Batch, rows int, d time.Duration, refused []Refusal, err error) {
	m.flushSecs.Update(d.Seconds())
	if err != nil {
		m.flushErrors.Inc()
		return
	}
	m.batchRows.Update(float64(rows))
	for i, t := range b.every {
		if n := b.written(i, refused); n > 0 {
			m.set.GetOrCreateCounter(fmt.Sprintf("netview_ingest_rows_written_total{table=%q}", t.name)).Add(n)
		}
	}
}
