// Command netview-sensor reports this host's network to the ingest tier.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netview/netview/internal/config"
	"github.com/netview/netview/sensor"
)

const about = `netview-sensor reports this host's sockets, flows and network events to
ingest in a heartbeat every --sensor.interval, spooled on disk until acknowledged.`

func main() {
	var cfg sensor.Config
	cfg.RegisterFlags(flag.CommandLine)
	if err := config.Parse(flag.CommandLine, os.Args[1:], about); err != nil {
		fmt.Fprintln(os.Stderr, "netview-sensor:", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(cfg, log); err != nil {
		fmt.Fprintln(os.Stderr, "netview-sensor:", err)
		os.Exit(1)
	}
}

func run(cfg sensor.Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := sensor.New(cfg, log)
	if err != nil {
		return err
	}
	log.Info("sensor running", "ingest", cfg.Link.URL, "interval", cfg.Interval, "flavor", cfg.Flavor)
	return s.Run(ctx)
}
