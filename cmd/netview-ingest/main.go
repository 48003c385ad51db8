// Command netview-ingest runs one stateless ingest node.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/program"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

const about = `netview-ingest takes sensors' heartbeats (POST /v1/heartbeat) and writes
them to ClickHouse: the embedded engine (--store.dsn=embedded:DIR) or a server.
Sensors enroll (POST /v1/enroll) with an enrollment secret for a key of their
own. It serves TLS (--ingest.tls-cert, --ingest.tls-key), or plain HTTP only
with --ingest.plain-http.`

func main() {
	var sc store.Config
	var ic ingest.Config
	program.Main("netview-ingest", about, program.Flags(sc.RegisterFlags, ic.RegisterFlags),
		func(ctx context.Context, log *slog.Logger) error { return run(ctx, sc, ic, log) })
}

func run(ctx context.Context, sc store.Config, ic ingest.Config, log *slog.Logger) error {
	if err := ic.Validate(); err != nil { // before touching storage
		return err
	}
	if err := ic.TLS.Validate(); err != nil {
		return err
	}
	st, v, err := schema.Open(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := ingest.New(ic, st, log)
	if err != nil {
		return err
	}
	ln, err := ic.Listen()
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	log.Info("ingest listening", "addr", ln.Addr().String(), "tls", !ic.TLS.Plain, "shared_tokens", ic.SharedTokens, "schema_version", v)
	if err := program.Serve(ctx, hs, ln); err != nil {
		return err
	}
	log.Info("shutting down: finishing requests and writing what was accepted")
	sctx, cancel := context.WithTimeout(context.Background(), ic.AckTimeout+10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx, hs); err != nil {
		log.Warn("shutdown", "err", err)
	}
	log.Info("stopped")
	return nil
}
