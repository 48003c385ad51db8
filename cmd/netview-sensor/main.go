// Command netview-sensor reports this host's network to the ingest tier.
package main

import (
	"context"
	"log/slog"

	"github.com/netview/netview/internal/program"
	"github.com/netview/netview/sensor"
)

const about = `netview-sensor reports this host's sockets, flows and network events to
ingest in a heartbeat every --sensor.interval, spooled on disk until acknowledged.`

func main() {
	var cfg sensor.Config
	program.Main("netview-sensor", about, cfg.RegisterFlags, func(ctx context.Context, log *slog.Logger) error {
		if err := cfg.Validate(); err != nil {
			return err
		}
		s, err := sensor.New(cfg, log)
		if err != nil {
			return err
		}
		log.Info("sensor running", "ingest", cfg.Link.URL, "interval", cfg.Interval, "flavor", cfg.Flavor)
		return s.Run(ctx)
	})
}
