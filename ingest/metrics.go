package ingest

import (
	"fmt"
	"io"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"
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

// Metrics are the ingest node's Prometheus metrics, written in the text
// exposition format without a client library.
type Metrics struct {
	accepted    atomic.Uint64
	rejected    sync.Map // reason -> *atomic.Uint64
	rows        sync.Map // table -> *atomic.Uint64
	flushErrors atomic.Uint64
	batchRows   histogram
	flushSecs   histogram
	queue       func() int
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		batchRows: newHistogram(100, 1000, 10_000, 50_000, 100_000, 500_000, 1_000_000),
		flushSecs: newHistogram(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
	}
}

func (m *Metrics) counter(set *sync.Map, key string) *atomic.Uint64 {
	if c, ok := set.Load(key); ok {
		return c.(*atomic.Uint64)
	}
	c, _ := set.LoadOrStore(key, new(atomic.Uint64))
	return c.(*atomic.Uint64)
}

// Reject counts one refused heartbeat.
func (m *Metrics) Reject(reason string) { m.counter(&m.rejected, reason).Add(1) }

// Accept counts one acknowledged heartbeat.
func (m *Metrics) Accept() { m.accepted.Add(1) }

func (m *Metrics) observeFlush(b *Batch, rows int, d time.Duration, refused []Refusal, err error) {
	m.flushSecs.observe(d.Seconds())
	if err != nil {
		m.flushErrors.Add(1)
		return
	}
	m.batchRows.observe(float64(rows))
	for i, t := range b.every {
		if n := b.written(i, refused); n > 0 {
			m.counter(&m.rows, t.name).Add(uint64(n))
		}
	}
}

// Write writes every metric in the Prometheus text format.
func (m *Metrics) Write(w io.Writer) {
	fmt.Fprintf(w, "# HELP netview_ingest_heartbeats_accepted_total Heartbeats written to storage and acknowledged.\n# TYPE netview_ingest_heartbeats_accepted_total counter\nnetview_ingest_heartbeats_accepted_total %d\n", m.accepted.Load())
	writeSet(w, "netview_ingest_heartbeats_rejected_total", "Heartbeats refused, by reason.", "reason", &m.rejected)
	writeSet(w, "netview_ingest_rows_written_total", "Rows written, by table.", "table", &m.rows)
	fmt.Fprintf(w, "# HELP netview_ingest_flush_errors_total Batch writes that failed.\n# TYPE netview_ingest_flush_errors_total counter\nnetview_ingest_flush_errors_total %d\n", m.flushErrors.Load())
	m.batchRows.write(w, "netview_ingest_batch_rows", "Rows per written batch.")
	m.flushSecs.write(w, "netview_ingest_flush_seconds", "Time to write one batch.")
	if m.queue != nil {
		fmt.Fprintf(w, "# HELP netview_ingest_queue_rows Rows accepted and not yet written.\n# TYPE netview_ingest_queue_rows gauge\nnetview_ingest_queue_rows %d\n", m.queue())
	}
}

func writeSet(w io.Writer, name, help, label string, set *sync.Map) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", name, help, name)
	var keys []string
	set.Range(func(k, _ any) bool { keys = append(keys, k.(string)); return true })
	sort.Strings(keys)
	for _, k := range keys {
		c, _ := set.Load(k)
		fmt.Fprintf(w, "%s{%s=%q} %d\n", name, label, k, c.(*atomic.Uint64).Load())
	}
}

type histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	sum    atomic.Uint64   // float64 bits
}

func newHistogram(bounds ...float64) histogram {
	return histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

func (h *histogram) observe(v float64) {
	i := sort.SearchFloat64s(h.bounds, v)
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *histogram) write(w io.Writer, name, help string) {
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, math.Float64frombits(h.sum.Load()), name, cum)
}
