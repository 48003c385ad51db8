// Command netview-ingest runs one stateless ingest node.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/config"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql"
)

const about = `netview-ingest takes sensors' heartbeats (POST /v1/heartbeat) and writes
them to ClickHouse: the embedded engine (--store.dsn=embedded:DIR) or a server.`

func main() {
	var sc store.Config
	var ic ingest.Config
	sc.RegisterFlags(flag.CommandLine)
	ic.RegisterFlags(flag.CommandLine)
	if err := config.Parse(flag.CommandLine, os.Args[1:], about); err != nil {
		fmt.Fprintln(os.Stderr, "netview-ingest:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(sc, ic, log); err != nil {
		fmt.Fprintln(os.Stderr, "netview-ingest:", err)
		os.Exit(1)
	}
}

func run(sc store.Config, ic ingest.Config, log *slog.Logger) error {
	if err := ic.Validate(); err != nil { // before touching storage
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(ctx, sc)
	if err != nil {
		return err
	}
	defer st.Close()
	v, err := sql.Migrate(ctx, st, sql.Options{Cluster: sc.Cluster, EventsTTLDays: sc.EventsTTLDays})
	if err != nil {
		return err
	}
	srv, err := ingest.New(ic, st, log)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", ic.Addr)
	if err != nil {
		return err
	}
	hs := srv.HTTPServer()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	log.Info("ingest listening", "addr", ln.Addr().String(), "schema_version", v)

	select {
	case <-ctx.Done():
	case err := <-served:
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
