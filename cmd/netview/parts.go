package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/analyst"
	"github.com/netview/netview/query/baseline"
	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sql/schema"
)

// parts are the running pieces and how to stop them, last started first.
// The order is the point: the sensor's last heartbeat reaches ingest, ingest
// drains into the store, and the store closes last. github.com/oklog/run,
// considered for this (issue #15), interrupts every actor of its group at
// once when one returns, so it would close the store under a draining
// ingest; a list of stops run backwards says the order in a few lines.
type parts struct {
	stops      []func()
	failed     chan error // a server that stopped on its own
	httpURL    string
	ingestURL  string
	remoteURL  string // of ingest, for other hosts' sensors; "" on loopback
	pin        string // of --tls-cert, for other hosts' sensors
	schemaVers int
	// metrics is ingest's: its /metrics serves every part's metrics, so one
	// scrape has them all (the query listener's has the query service's).
	metrics *metrics.Set
}

func (p *parts) onStop(f func()) { p.stops = append(p.stops, f) }

func (p *parts) stop(log *slog.Logger) {
	for i := len(p.stops) - 1; i >= 0; i-- {
		p.stops[i]()
	}
	if len(p.stops) > 0 {
		log.Info("stopped")
	}
}

// defaults returns what a package's RegisterFlags sets, so the all-in-one
// runs every part with its usual defaults (and its token variables).
func defaults(register func(*flag.FlagSet)) {
	register(flag.NewFlagSet("defaults", flag.ContinueOnError))
}

// start opens the listeners first (a busy port fails before the engine
// loads), then the store, the query service, ingest and the sensor.
func (p *parts) start(ctx context.Context, cfg appConfig, d *dataDir, sec secrets, log *slog.Logger) error {
	p.failed = make(chan error, 2)
	httpLn, err := listen(cfg, "--http", cfg.HTTP)
	if err != nil {
		return err
	}
	p.onStop(func() { httpLn.Close() }) // no-op once served: shutdown closes it
	ingestLn, err := listen(cfg, "--ingest", cfg.Ingest)
	if err != nil {
		return err
	}
	p.onStop(func() { ingestLn.Close() })
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
	}
	p.httpURL, p.ingestURL = localURL(scheme, httpLn.Addr())+"/", localURL(scheme, ingestLn.Addr())+"/v1/heartbeat"
	p.remoteURL = remoteURL(scheme, ingestLn.Addr())

	st, ro, err := p.openStores(ctx, d)
	if err != nil {
		return err
	}
	q, err := p.startQuery(httpLn, st, ro, sec.admin.value, log)
	if err != nil {
		return err
	}
	if err := p.startIngest(ingestLn, st, sec.enroll.value, log); err != nil {
		return err
	}
	if err := p.startBaseline(cfg, st, log); err != nil {
		return err
	}
	p.metrics.RegisterMetricsWriter(q.Metrics().WritePrometheus)
	return p.startSensor(cfg, d, sec.enroll.value, log)
}

// openStores opens the one embedded engine for ingest and views, and
// read-only connections with limits on the same engine for analysts' SQL,
// as netview-query does: both stores share the process's engine.
func (p *parts) openStores(ctx context.Context, d *dataDir) (st, ro store.Store, err error) {
	var sc store.Config
	defaults(sc.RegisterFlags)
	sc.DSN = "embedded:" + d.join(engineDirName)
	if st, p.schemaVers, err = schema.Open(ctx, sc); err != nil {
		return nil, nil, err
	}
	p.onStop(func() { st.Close() })
	if ro, err = analyst.Open(ctx, sc); err != nil {
		return nil, nil, err
	}
	p.onStop(func() { ro.Close() })
	return st, ro, nil
}

// listen opens a listener: TLS with --tls-cert, plain HTTP on loopback or
// with --plain-http, and otherwise not at all, as the separate services do.
func listen(cfg appConfig, flagName, addr string) (net.Listener, error) {
	srv := tlsconf.Server{CertFile: cfg.TLSCert, KeyFile: cfg.TLSKey, Plain: cfg.TLSCert == "" && (cfg.PlainHTTP || loopback(addr))}
	if cfg.TLSCert == "" && !srv.Plain {
		return nil, fmt.Errorf("%s %s is not a loopback address: give --tls-cert and --tls-key, or --plain-http to serve it without TLS", flagName, addr)
	}
	if (cfg.TLSCert == "") != (cfg.TLSKey == "") {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	ln, err := srv.Listen(addr)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flagName, err)
	}
	return ln, nil
}

// loopback says whether addr (host:port) can be reached only from this host.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// The token is an admin's: the local user owns the machine and its data.
// The enrollment secret is not among the query service's tokens.
func (p *parts) startQuery(ln net.Listener, st, ro store.Store, tok string, log *slog.Logger) (*query.Server, error) {
	var qc query.Config
	defaults(qc.RegisterFlags)
	qc.Addr, qc.AdminTokens.List = ln.Addr().String(), tok
	qc.TLS.Plain = true // ln is already TLS or plain, as listen chose
	srv, err := query.New(qc, st, query.AnalystSQL(ro, qc.SQL), log)
	if err != nil {
		return nil, err
	}
	hs := srv.HTTPServer()
	p.serve("query", hs, ln)
	p.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), qc.Timeout+5*time.Second)
		defer cancel()
		if err := hs.ShutdownWithContext(ctx); err != nil {
			log.Warn("query shutdown", "err", err)
		}
	})
	log.Info("query service listening", "addr", ln.Addr().String())
	return srv, nil
}

// startBaseline runs the baseline job (query/baseline) and the export of
// its findings, as a netview-query replica does. Both stop before the
// store closes.
func (p *parts) startBaseline(cfg appConfig, st store.Store, log *slog.Logger) error {
	job, err := baseline.New(cfg.Baseline, st, log)
	if err != nil {
		return err
	}
	notify, err := baseline.NewNotify(cfg.Notify, st, log)
	if err != nil {
		return err
	}
	if err := notify.ApplyTTL(context.Background(), ""); err != nil { // the embedded engine: no cluster
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var done sync.WaitGroup
	done.Go(func() { job.Run(ctx) })
	done.Go(func() { notify.Run(ctx) })
	p.onStop(func() { cancel(); done.Wait() })
	p.metrics.RegisterMetricsWriter(job.Metrics().WritePrometheus)
	p.metrics.RegisterMetricsWriter(notify.Metrics().WritePrometheus)
	return nil
}

func (p *parts) startIngest(ln net.Listener, st store.Store, enroll string, log *slog.Logger) error {
	var ic ingest.Config
	defaults(ic.RegisterFlags)
	// The static enrollment secret, not the admin token: this host's sensor
	// (and any other given it) enrolls with it for a key of its own, and
	// with shared tokens off (the default) it cannot post heartbeats.
	ic.Addr, ic.Tokens.List = ln.Addr().String(), enroll
	ic.TLS.Plain = true // ln is already TLS or plain, as listen chose
	srv, err := ingest.New(ic, st, log)
	if err != nil {
		return err
	}
	p.metrics = srv.Metrics()
	hs := srv.HTTPServer()
	p.serve("ingest", hs, ln)
	p.onStop(func() {
		ctx, cancel := context.WithTimeout(context.Background(), ic.AckTimeout+10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx, hs); err != nil {
			log.Warn("ingest shutdown", "err", err)
		}
		log.Info("ingest drained: every accepted heartbeat written")
	})
	log.Info("ingest listening", "addr", ln.Addr().String(), "schema_version", p.schemaVers)
	return nil
}

func (p *parts) serve(name string, hs *fasthttp.Server, ln net.Listener) {
	go func() {
		if err := hs.Serve(ln); err != nil {
			select {
			case p.failed <- fmt.Errorf("%s server: %w", name, err):
			default:
			}
		}
	}()
}

// startSensor reports this host to our own ingest. Stopping it writes a last
// heartbeat to its spool (sent at once, or at the next start).
func (p *parts) startSensor(cfg appConfig, d *dataDir, enroll string, log *slog.Logger) error {
	var sc sensor.Config
	defaults(sc.RegisterFlags)
	sc.StateDir, sc.Link.URL, sc.Link.EnrollSecret = d.join(sensorDirName), p.ingestURL, enroll
	if cfg.TLSCert != "" {
		pin, err := certPin(cfg.TLSCert)
		if err != nil {
			return err
		}
		sc.Link.TLS.Pin, p.pin = pin, pin // our own certificate, whoever signed it
	}
	sc.Interval, sc.PollInterval = cfg.Interval, min(sc.PollInterval, cfg.Interval)
	if err := sc.Validate(); err != nil {
		return err
	}
	s, err := sensor.New(sc, log)
	if err != nil {
		return err
	}
	p.metrics.RegisterMetricsWriter(s.Metrics().WritePrometheus)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(ctx) // returns only once ctx ends
	}()
	p.onStop(func() {
		cancel()
		select {
		case <-done:
			log.Info("sensor stopped; its last heartbeat is in its spool unless delivered")
		case <-time.After(30 * time.Second):
			log.Warn("sensor did not stop within 30s; going on")
		}
	})
	log.Info("sensor running", "ingest", sc.Link.URL, "interval", sc.Interval, "state", sc.StateDir)
	return nil
}

// certPin is the public-key pin of the first certificate in a PEM file.
func certPin(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("--tls-cert: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return "", fmt.Errorf("--tls-cert %s: no PEM certificate", file)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return "", fmt.Errorf("--tls-cert %s: %w", file, err)
	}
	return tlsconf.PinOf(cert), nil
}

// localURL is the URL this machine reaches a listener at.
func localURL(scheme string, a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok {
		return scheme + "://" + a.String()
	}
	ip := ta.IP
	if ip.IsUnspecified() {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return scheme + "://" + (&net.TCPAddr{IP: ip, Port: ta.Port}).String()
}

// remoteURL is the heartbeat URL other hosts reach a listener at: "" on
// loopback, THIS-HOST for an unspecified address.
func remoteURL(scheme string, a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() {
		return ""
	}
	host := ta.IP.String()
	if ta.IP.IsUnspecified() {
		host = "THIS-HOST"
	}
	return scheme + "://" + net.JoinHostPort(host, strconv.Itoa(ta.Port)) + "/v1/heartbeat"
}

// banner says where everything is, what each secret is for, and how
// other hosts' sensors join. A secret itself is shown only when it was
// just made. It goes out in one write, so the parts' log lines never cut
// it in half and whoever reads up to "Stop with Ctrl-C." has all of it.
func banner(out io.Writer, d *dataDir, p *parts, sec secrets) {
	w := new(bytes.Buffer)
	defer func() { out.Write(w.Bytes()) }()
	fmt.Fprintf(w, "Netview is running on %s\n", d.path)
	fmt.Fprintf(w, "  Console and API  %s\n", p.httpURL)
	fmt.Fprintf(w, "  Ingest           %s\n", p.ingestURL)
	fmt.Fprintf(w, "  Metrics          %s (every part's, for Prometheus)\n", strings.TrimSuffix(p.ingestURL, "/v1/heartbeat")+"/metrics")
	showSecret(w, "Admin token", sec.admin)
	fmt.Fprintf(w, "                   sign in to the Console / API with it (Authorization: Bearer <token>);\n")
	fmt.Fprintf(w, "                   it is an admin's: SQL, /api/v1/admin/\n")
	showSecret(w, "Enroll secret", sec.enroll)
	fmt.Fprintf(w, "                   give this to other hosts' sensors: --sensor.enroll-secret-file /\n")
	fmt.Fprintf(w, "                   NETVIEW_SENSOR_ENROLL_SECRET; it only enrolls, for a key of their own\n")
	fmt.Fprintf(w, "Another host's sensor, with a copy of %s (mode 0600) as FILE:\n", d.join(enrollSecretName))
	url := p.remoteURL
	if url == "" {
		url = p.ingestURL
	}
	cmd := fmt.Sprintf("  netview-sensor --sensor.ingest %s --sensor.enroll-secret-file FILE", url)
	if p.pin != "" {
		cmd += " --sensor.pin-sha256 " + p.pin
	}
	fmt.Fprintln(w, cmd)
	if p.remoteURL == "" {
		fmt.Fprintf(w, "  (ingest is on loopback: for other hosts serve --ingest on an address they reach, with --tls-cert and --tls-key)\n")
	}
	if os.Geteuid() != 0 {
		fmt.Fprintf(w, "Not root: the sensor names the process behind your own sockets only.\n")
	}
	fmt.Fprintf(w, "Stop with Ctrl-C.\n")
}

func showSecret(w io.Writer, name string, t token) {
	switch {
	case t.fresh:
		fmt.Fprintf(w, "  %-16s %s\n", name, t.value)
		fmt.Fprintf(w, "                   (new: shown only now; kept in %s, mode 0600)\n", t.from)
	case t.from == "--token":
		fmt.Fprintf(w, "  %-16s the one given with --token\n", name)
	default:
		fmt.Fprintf(w, "  %-16s in %s\n", name, strings.TrimPrefix(t.from, "--token-file "))
	}
}
