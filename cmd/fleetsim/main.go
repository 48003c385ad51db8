// Command fleetsim simulates a fleet of Netview sensors against ingest
// nodes and reports what the nodes took: offered and accepted heartbeats
// per second, rows per second, acknowledgement latency, retries and errors
// by kind (bench/fleetsim).
//
//	fleetsim --sensors 2000 --interval 15s --duration 2m --target http://10.0.0.5:8090 --token-file token
//	fleetsim --sensors 500 --interval 1s --duration 30s --target a:8090,b:8090 --assign round-robin --json
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/internal/config"
)

const about = `fleetsim runs N virtual sensors, each sending realistic zstd JSON heartbeats
(churning connections, listeners, UDP sockets, flows, events; a share of
telecom sensors with GTP-U, PFCP, RADIUS and SCTP) to POST /v1/heartbeat on
its own schedule (open loop), retrying like a real sensor, and reports
offered and accepted heartbeats/s, rows/s, latency, retries and errors.`

type targets []string

func (t *targets) String() string { return strings.Join(*t, ",") }
func (t *targets) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*t = append(*t, s)
		}
	}
	return nil
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleetsim:", err)
		os.Exit(1)
	}
}

func run() error {
	var c fleetsim.Config
	var tg targets
	var tokenFile, enrollFile string
	var asJSON, acks bool
	var progress time.Duration
	var cpuProfile string
	d := fleetsim.DefaultShape
	fs := flag.CommandLine
	fs.IntVar(&c.Sensors, "sensors", 1000, "number of virtual sensors")
	fs.DurationVar(&c.Interval, "interval", 15*time.Second, "heartbeat interval of each sensor")
	fs.Float64Var(&c.Jitter, "jitter", 0.1, "each tick moves by up to ±jitter × interval (negative: none)")
	fs.DurationVar(&c.Duration, "duration", time.Minute, "how long heartbeats are offered")
	fs.DurationVar(&c.Drain, "drain", 30*time.Second, "how long sensors keep delivering what they hold after --duration (negative: stop at once)")
	fs.Var(&tg, "target", "ingest URL (http://host:port, /v1/heartbeat added); repeat or separate with commas (default http://127.0.0.1:8090)")
	fs.StringVar(&c.Assign, "assign", fleetsim.AssignSensor, "how sensors use the targets: sensor (sensor i to target i mod n) or round-robin (each attempt to the next)")
	fs.StringVar(&c.Token, "token", "", "sensor bearer token")
	fs.StringVar(&tokenFile, "token-file", "", "file holding the sensor bearer token")
	fs.StringVar(&c.EnrollSecret, "enroll-secret", "", "enroll every sensor with this enrollment secret first, then heartbeat with its own key (as real sensors do; for nodes that refuse shared tokens)")
	fs.StringVar(&enrollFile, "enroll-secret-file", "", "file holding the enrollment secret (bin/netview writes <data>/enroll-secret)")
	fs.Uint64Var(&c.Seed, "seed", 1, "makes the fleet: sensor ids, hosts and flavors follow from it")
	fs.Uint64Var(&c.StartSeq, "start-seq", 0, "seq of each sensor's first heartbeat (0: Unix time in ms, so runs never reuse a seq)")
	fs.Float64Var(&c.TelecomShare, "telecom-share", 0.05, "share of telecom sensors (negative: none)")
	fs.IntVar(&c.Shape.Conns, "conns", d.Conns, "mean established TCP connections per sensor")
	fs.IntVar(&c.Shape.Listeners, "listeners", d.Listeners, "mean TCP listeners per sensor")
	fs.IntVar(&c.Shape.UDP, "udp", d.UDP, "mean UDP sockets per sensor")
	fs.Float64Var(&c.Shape.Churn, "churn", d.Churn, "share of connections that close between two heartbeats")
	fs.IntVar(&c.Shape.ShortLived, "short-lived", d.ShortLived, "mean connections opened and closed between two heartbeats")
	fs.Float64Var(&c.Shape.DNSShare, "dns-share", d.DNSShare, "share of new outbound connections preceded by DNS events")
	fs.IntVar(&c.Shape.SCTPAssocs, "sctp-assocs", d.SCTPAssocs, "mean SCTP associations per telecom sensor")
	fs.IntVar(&c.MaxQueue, "max-queue", 100, "heartbeats a sensor holds while unacknowledged; the oldest unsent is dropped beyond")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 35*time.Second, "timeout of one attempt")
	fs.DurationVar(&c.MinBackoff, "min-backoff", 500*time.Millisecond, "first retry backoff (full jitter, doubling)")
	fs.DurationVar(&c.MaxBackoff, "max-backoff", time.Minute, "largest retry backoff")
	fs.DurationVar(&c.AuthBackoff, "auth-backoff", 2*time.Minute, "wait after a 401 or 403")
	fs.BoolVar(&c.SensorZstd, "sensor-zstd", false, "compress at zstd's default level like real sensors (default: fastest level, bodies <1% larger, less CPU)")
	fs.BoolVar(&asJSON, "json", false, "write the report as JSON instead of a table")
	fs.BoolVar(&acks, "acks", false, "with --json: include each sensor's acknowledged (seq, heartbeat_id) and in-doubt heartbeats")
	fs.DurationVar(&progress, "progress", 5*time.Second, "print a progress line to stderr this often (0: never)")
	fs.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the simulator to this file")
	if err := config.Parse(fs, os.Args[1:], about); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		return err
	}
	// In Config a zero means "the default"; on the command line it means zero.
	for _, f := range []*float64{&c.Jitter, &c.TelecomShare, &c.Shape.Churn, &c.Shape.DNSShare} {
		if *f == 0 {
			*f = -1
		}
	}
	for _, n := range []*int{&c.Shape.Conns, &c.Shape.UDP, &c.Shape.ShortLived, &c.Shape.SCTPAssocs} {
		if *n == 0 {
			*n = -1
		}
	}
	if c.Drain == 0 {
		c.Drain = -1
	}
	c.Targets = tg
	if len(c.Targets) == 0 {
		c.Targets = []string{"http://127.0.0.1:8090"}
	}
	if tokenFile != "" {
		b, err := os.ReadFile(tokenFile)
		if err != nil {
			return err
		}
		c.Token = strings.TrimSpace(string(b))
	}
	if enrollFile != "" {
		b, err := os.ReadFile(enrollFile)
		if err != nil {
			return err
		}
		c.EnrollSecret = strings.TrimSpace(string(b))
	}
	c.DiscardAcks = !acks
	if progress > 0 {
		c.ProgressEvery = progress
		c.Progress = func(p fleetsim.Progress) {
			fmt.Fprintf(os.Stderr, "%6.0fs  offered %d  accepted %d  rows %d  retries %d  errors %d  queued %d  in flight %d\n",
				p.Elapsed.Seconds(), p.Offered, p.Accepted, p.Rows, p.Retries, p.Errors, p.Queued, p.InFlight)
		}
	}

	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := fleetsim.Run(ctx, c)
	interrupted := err != nil && ctx.Err() != nil
	if err != nil && !interrupted {
		return err
	}
	if !acks {
		rep.PerSensor = nil
	}
	if asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(os.Stdout); err != nil {
		return err
	}
	if interrupted {
		return errors.New("interrupted: the report covers the run until then")
	}
	return nil
}
