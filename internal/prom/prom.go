// Package prom serves Netview's metrics in the Prometheus text format. Each
// server keeps its metrics in a metrics.Set of its own, not the library's
// global one, so several servers in one process (tests, the all-in-one)
// neither collide nor mix; the process's Go runtime and process metrics are
// added once per scrape here.
package prom

import (
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"
)

func init() {
	// # HELP and # TYPE lines: dashboards and tests read the types, and the
	// hand-written exposition this replaced always had them.
	metrics.ExposeMetadata(true)
}

// ContentType is the text exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4"

// Write writes sets, then the process's Go runtime and process metrics.
func Write(w io.Writer, sets ...*metrics.Set) {
	for _, s := range sets {
		s.WritePrometheus(w)
	}
	metrics.WriteProcessMetrics(w)
}

// Handle answers a GET /metrics with sets.
func Handle(r *fasthttp.RequestCtx, sets ...*metrics.Set) {
	r.SetContentType(ContentType)
	Write(r, sets...)
}

// Counter adds to s a counter named name whose value f reads when scraped,
// for counts something else already keeps (the library's counters are
// only ever added to).
func Counter(s *metrics.Set, name string, f func() uint64) {
	s.RegisterMetricsWriter(func(w io.Writer) { metrics.WriteCounterUint64(w, name, f()) })
}

// Server is a server of GET /metrics alone, for a program with no HTTP
// server of its own (the sensor).
func Server(name string, sets ...*metrics.Set) *fasthttp.Server {
	return &fasthttp.Server{
		Name: name,
		Handler: func(r *fasthttp.RequestCtx) {
			if string(r.Path()) != "/metrics" {
				r.SetStatusCode(fasthttp.StatusNotFound)
				r.SetContentType("text/plain")
				r.WriteString("not found: only /metrics is served here\n")
				return
			}
			if !r.IsGet() && !r.IsHead() {
				r.Response.Header.Set("Allow", "GET")
				r.SetStatusCode(fasthttp.StatusMethodNotAllowed)
				return
			}
			Handle(r, sets...)
		},
		ReadTimeout:  10 * time.Second,
		WriteTimeout: 10 * time.Second,
		IdleTimeout:  2 * time.Minute,
		// A scrape is a GET: nothing to read.
		MaxRequestBodySize: 1 << 10,
	}
}
