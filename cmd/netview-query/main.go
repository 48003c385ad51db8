// Command netview-query runs one stateless query service replica.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/netview/netview/internal/program"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/analyst"
	"github.com/netview/netview/query/baseline"
	"github.com/netview/netview/sql/schema"
)

const about = `netview-query serves the JSON API (and the Console) over Netview's ClickHouse
tables. On the embedded engine it cannot run beside netview-ingest on the same
data folder: use the all-in-one netview there.`

func main() {
	var sc store.Config
	var qc query.Config
	var bc baseline.Config
	var nc baseline.NotifyConfig
	program.Main("netview-query", about, program.Flags(sc.RegisterFlags, qc.RegisterFlags, bc.RegisterFlags, nc.RegisterFlags),
		func(ctx context.Context, log *slog.Logger) error { return run(ctx, sc, qc, bc, nc, log) })
}

func run(ctx context.Context, sc store.Config, qc query.Config, bc baseline.Config, nc baseline.NotifyConfig, log *slog.Logger) error {
	// TLS, or plain HTTP asked for by name: checked before anything starts.
	if err := qc.TLS.Validate(); err != nil {
		return err
	}
	if err := bc.Validate(); err != nil {
		return err
	}
	if err := nc.Validate(); err != nil {
		return err
	}
	// The views' statements, too, carry the engine's limits of memory and time.
	base := sc.Settings
	sc.Settings = append(append([]store.Setting(nil), base...), query.ViewSettings(qc.Timeout)...)
	st, _, err := schema.Open(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	// The baseline job: every replica runs it; findings have ids of their
	// own data, so replicas never write one twice. It stops before the
	// store closes (defers run last first).
	job, err := baseline.New(bc, st, log)
	if err != nil {
		return err
	}
	jctx, stopJob := context.WithCancel(ctx)
	jobDone := make(chan struct{})
	go func() { defer close(jobDone); job.Run(jctx) }()
	defer func() { stopJob(); <-jobDone }()
	// The export of findings, beside it: on the replica given a sink
	// (every replica given one sends everything, once each).
	notify, err := baseline.NewNotify(nc, st, log)
	if err != nil {
		return err
	}
	if err := notify.ApplyTTL(ctx, sc.Cluster); err != nil {
		return err
	}
	nctx, stopNotify := context.WithCancel(ctx)
	notifyDone := make(chan struct{})
	go func() { defer close(notifyDone); notify.Run(nctx) }()
	defer func() { stopNotify(); <-notifyDone }()
	// Analysts' SQL runs on connections of its own, without the views' settings.
	roCfg := sc
	roCfg.Settings = base
	ro, err := analyst.Open(ctx, roCfg)
	if err != nil {
		return err
	}
	defer ro.Close()
	qc.HistoryDays = sc.HistoryTTLDays // at= reaches as far back as the history is kept
	srv, err := query.New(qc, st, query.AnalystSQL(ro, qc.SQL), log)
	if err != nil {
		return err
	}
	srv.Metrics().RegisterMetricsWriter(job.Metrics().WritePrometheus)
	srv.Metrics().RegisterMetricsWriter(notify.Metrics().WritePrometheus)
	ln, err := qc.TLS.Listen(qc.Addr)
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	log.Info("query service listening", "addr", ln.Addr().String(), "tls", !qc.TLS.Plain)
	if err := program.Serve(ctx, hs, ln); err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), qc.Timeout+5*time.Second)
	defer cancel()
	return hs.ShutdownWithContext(sctx)
}
