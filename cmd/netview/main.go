// Command netview runs all of Netview for one machine in one process: ingest,
// the query service with the Console, and a sensor for this host, on the
// embedded engine, whose data folder only one process can hold.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/netview/netview/internal/program"
	"github.com/netview/netview/query/baseline"
)

const about = `netview runs ingest, the query service with the Console, and a sensor for this
host in one process, on the embedded engine in --data. Two secrets, each made
at the first start and kept in the data folder: the token (DATA/token, or
--token, --token-file) signs in to the Console and the API with the admin
role; the enrollment secret (DATA/enroll-secret) lets sensors, this host's
and others, enroll for a key of their own, and nothing else. Operators'
tokens are at least 32 characters. More: $NETVIEW_INGEST_TOKEN (enrollment
secrets), $NETVIEW_API_TOKEN (viewers), $NETVIEW_ANALYST_TOKEN (analysts),
$NETVIEW_ADMIN_TOKEN (admins), and tokens made with the admin API. The data
folder must be yours alone to write (new ones are made 0700). Plain HTTP is
served on loopback addresses; elsewhere give --tls-cert and --tls-key, or
--plain-http. The engine library is found as for netview-ingest
($NETVIEW_LIBCHDB, .cache/chdb, next to the binary).`

type appConfig struct {
	Data      string        // everything lives here: engine, sensor state, secrets, lock
	HTTP      string        // Console and API
	Ingest    string        // sensors' heartbeats
	Interval  time.Duration // sensor heartbeat
	Token     string
	TokenFile string
	TLSCert   string // both listeners serve TLS with it
	TLSKey    string
	PlainHTTP bool // plain HTTP on an address that is not loopback
	Baseline  baseline.Config
	Notify    baseline.NotifyConfig // export of findings
}

func (c *appConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Data, "data", "./data", "`folder` for all data: engine, sensor identity and spool, token, enrollment secret, lock; yours alone to write")
	fs.StringVar(&c.HTTP, "http", "127.0.0.1:8080", "`address` of the Console and the API")
	fs.StringVar(&c.Ingest, "ingest", "127.0.0.1:8090", "`address` of the heartbeat endpoint (this host's sensor and others)")
	fs.DurationVar(&c.Interval, "interval", 15*time.Second, "time between this host's heartbeats (at least 1s)")
	fs.StringVar(&c.Token, "token", "", "the admin token that signs in to the Console and API, at least 32 characters; wins over --token-file, and every user sees flags: prefer $NETVIEW_TOKEN (default: made at first start, kept in DATA/token)")
	fs.StringVar(&c.TokenFile, "token-file", "", "`file` holding the admin token (its first line), yours alone to read")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "PEM certificate `file` to serve the Console, API and ingest with TLS")
	fs.StringVar(&c.TLSKey, "tls-key", "", "PEM private key `file` of --tls-cert")
	fs.BoolVar(&c.PlainHTTP, "plain-http", false, "serve plain HTTP on addresses that are not loopback (loopback is always allowed plain)")
	// The baseline job's flags and its export's, as netview-query has them.
	c.Baseline.RegisterFlags(fs)
	c.Notify.RegisterFlags(fs)
}

func main() {
	var cfg appConfig
	program.Main("netview", about, cfg.registerFlags, func(ctx context.Context, log *slog.Logger) error {
		return run(ctx, cfg, os.Stdout, log)
	})
}

// run holds the data folder and runs the parts until ctx ends, then stops
// them in reverse order of start: sensor, ingest (drained), query, store.
func run(ctx context.Context, cfg appConfig, out io.Writer, log *slog.Logger) error {
	if cfg.Interval < time.Second {
		return fmt.Errorf("--interval %v: must be at least 1s", cfg.Interval)
	}
	if err := cfg.Baseline.Validate(); err != nil {
		return err
	}
	if err := cfg.Notify.Validate(); err != nil {
		return err
	}
	d, err := openDataDir(cfg.Data) // before the engine, which would only say "in use"
	if err != nil {
		return err
	}
	defer d.close()
	sec, err := loadSecrets(cfg, d)
	if err != nil {
		return err
	}
	var p parts
	defer p.stop(log) // runs the stops registered below, last first
	if err := p.start(ctx, cfg, d, sec, log); err != nil {
		if ctx.Err() != nil { // Ctrl-C while starting is a stop, not a failure
			return nil
		}
		return err
	}
	banner(out, d, &p, sec)
	select {
	case <-ctx.Done():
		log.Info("stopping: sensor, then ingest (writing what it accepted), query, store; Ctrl-C again quits at once")
		return nil
	case err := <-p.failed:
		return err
	}
}
