package query

import (
	"strconv"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Route labels of requests that are no endpoint of the API: the Console's
// pages and files, and paths under /api/ that are not served. Every other
// request is labelled with its endpoint's path, which is one of the fixed
// strings route matches, never a client's raw path: the series stay few.
const (
	routeConsole = "console"
	routeUnknown = "unknown"
)

// latencyBuckets reach --query.timeout's default of 30 s.
var latencyBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// serverMetrics are the service's metrics, in a set of its own: two
// services in one process (tests, the all-in-one) count apart.
type serverMetrics struct{ set *metrics.Set }

func newServerMetrics() serverMetrics { return serverMetrics{set: metrics.NewSet()} }

// observe counts one answered request. d runs until the handler returned:
// a streamed SQL answer is timed to its first rows.
func (m serverMetrics) observe(route string, status int, d time.Duration) {
	label := `{route="` + route + `"}`
	m.set.GetOrCreatePrometheusHistogramExt("netview_query_request_duration_seconds"+label, latencyBuckets).Update(d.Seconds())
	class := strconv.Itoa(status/100) + "xx"
	m.set.GetOrCreateCounter(`netview_query_requests_total{route="` + route + `",status="` + class + `"}`).Inc()
}
