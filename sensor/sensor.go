package sensor

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/program"
	"github.com/netview/netview/internal/prom"
	"github.com/netview/netview/sensor/diag"
	"github.com/netview/netview/sensor/ebpf"
	"github.com/netview/netview/sensor/flows"
	"github.com/netview/netview/sensor/procnet"
	"github.com/netview/netview/sensor/procs"
	"github.com/netview/netview/sensor/spool"
	"github.com/netview/netview/sensor/uplink"
)

// Version is the sensor's version, reported in every heartbeat.
const Version = "0.1.0"

// Config configures a sensor.
type Config struct {
	ProcRoot string
	StateDir string
	// Link is how the sensor reaches ingest: URL, TLS trust, and its
	// credentials (an enrollment secret for its own key, or a shared token).
	Link         uplink.Link
	Flavor       string
	Hostname     string
	Interval     time.Duration
	PollInterval time.Duration
	SpoolBytes   int64
	// MaxBackoff caps the wait between delivery attempts while ingest is down.
	MaxBackoff time.Duration
	// StopTimeout bounds how long a stopping sensor keeps delivering its
	// spool (the final heartbeat among it); what is left goes at the next
	// start.
	StopTimeout time.Duration
	// Source forces the flow tracker's source: "inet_diag", "proc" or ""
	// for the best available.
	Source string
	// EBPF says whether kernel probes follow connections and DNS besides
	// the polls: "auto" (when they load), "on" (fail if they do not), "off".
	EBPF string
	// AllNetns reads every network namespace that has a process, not only
	// the sensor's own.
	AllNetns bool
	// NetnsDir holds named network namespaces (bind mounts, as `ip netns`
	// makes them), read too with AllNetns even when no process is in them;
	// "" reads none.
	NetnsDir string
	// MetricsListen is the host:port GET /metrics is served on, plain HTTP
	// with no token; "" (the default) serves none.
	MetricsListen string
	// Site names the network the host is in (heartbeat.ValidSite), so that
	// its addresses resolve to it only among sensors of the same site; ""
	// is the default site.
	Site string
}

// RegisterFlags registers the sensor flags with a "sensor." prefix.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.ProcRoot, "sensor.proc", "/proc", "proc filesystem to read")
	fs.StringVar(&c.StateDir, "sensor.state", "/var/lib/netview-sensor", "folder for the sensor's identity and spool")
	c.Link.RegisterFlags(fs)
	fs.StringVar(&c.Flavor, "sensor.flavor", "standard", "standard or telecom")
	fs.StringVar(&c.Hostname, "sensor.hostname", "", "hostname to report (default: the host's)")
	fs.DurationVar(&c.Interval, "sensor.interval", 15*time.Second, "time between heartbeats")
	fs.DurationVar(&c.PollInterval, "sensor.poll", time.Second, "time between flow tracker polls")
	fs.Int64Var(&c.SpoolBytes, "sensor.spool-bytes", 256<<20, "largest size of the on-disk spool")
	fs.DurationVar(&c.MaxBackoff, "sensor.max-backoff", time.Minute, "longest wait between delivery attempts while ingest is down")
	fs.DurationVar(&c.StopTimeout, "sensor.stop-timeout", 5*time.Second, "how long a stopping sensor keeps delivering its spool")
	fs.StringVar(&c.Source, "sensor.flow-source", "", "flow source: inet_diag, proc, or empty for the best available")
	fs.StringVar(&c.EBPF, "sensor.ebpf", "auto", "kernel probes for exact flows and DNS: auto (use them when they load), on (fail if they cannot), off")
	fs.BoolVar(&c.AllNetns, "sensor.all-netns", true, "read the sockets of every network namespace that has a process (containers'), not only the sensor's own")
	fs.StringVar(&c.NetnsDir, "sensor.netns-dir", "/run/netns", "folder of named network namespaces (ip netns) to read, even with no process in them; empty: none")
	fs.StringVar(&c.Site, "sensor.site", "", "site or network the host is in (a data centre, a VPC: 1 to 63 of a-z, 0-9, '.', '_', '-'), so that other sensors' remote addresses resolve to this host only within it; empty: the default site")
	fs.StringVar(&c.MetricsListen, "sensor.metrics-listen", "", "host:port to serve Prometheus metrics on (GET /metrics, plain HTTP, no token), e.g. 127.0.0.1:9108; empty: none")
}

// Validate reports the first bad setting and resolves the token.
func (c *Config) Validate() error {
	if c.Flavor != "standard" && c.Flavor != "telecom" {
		return fmt.Errorf("sensor: flavor %q: want standard or telecom", c.Flavor)
	}
	if c.Source != "" && c.Source != "inet_diag" && c.Source != "proc" {
		return fmt.Errorf("sensor: flow source %q: want inet_diag, proc or empty", c.Source)
	}
	switch c.EBPF {
	case "":
		c.EBPF = "auto"
	case "auto", "on", "off":
	default:
		return fmt.Errorf("sensor: ebpf %q: want auto, on or off", c.EBPF)
	}
	if c.Interval < time.Second || c.PollInterval <= 0 || c.PollInterval > c.Interval {
		return errors.New("sensor: interval must be at least 1s and poll between 0 and interval")
	}
	if err := validMetricsListen(c.MetricsListen); err != nil {
		return err
	}
	if c.Site != "" {
		if err := heartbeat.ValidSite(c.Site); err != nil {
			return fmt.Errorf("sensor: site %w", err)
		}
	}
	return c.Link.Validate()
}

// Sensor reads one host and delivers its heartbeats.
type Sensor struct {
	cfg Config
	log *slog.Logger
	fs  procnet.FS
	res *procs.Resolver
	// mu guards the tracker and the kernel's pending events: the probes'
	// reader feeds them while polls and heartbeats read them.
	mu      sync.Mutex
	tracker *flows.Tracker
	probes  *kernelSource // nil when the probes are off or did not load
	// ebpf and lsm are the capabilities of the same names.
	ebpf     string
	lsm      string
	id       *identity
	boot     uuid.UUID
	started  time.Time
	hostname string
	kernel   string
	spool    *spool.Spool
	sender   *uplink.Sender // its Client is set by Run
	snap     snapshot
	lastPoll time.Time
	// carried over from a heartbeat the spool could not store
	carryFlows  []heartbeat.Flow
	carryEvents []heartbeat.Event

	metrics   *metrics.Set
	spooled   *metrics.Counter
	metricsLn net.Listener // nil without --sensor.metrics-listen
}

// New prepares a sensor: identity, spool, flow source. It reads nothing yet.
func New(cfg Config, log *slog.Logger) (*Sensor, error) {
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("sensor: state folder: %w", err)
	}
	id, err := loadIdentity(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	sp, err := spool.Open(filepath.Join(cfg.StateDir, "spool"), cfg.SpoolBytes)
	if err != nil {
		return nil, err
	}
	if last, ok := sp.LastSeq(); ok {
		id.resumeAbove(last)
	}
	s := &Sensor{
		cfg: cfg, log: log, fs: procnet.NewFS(cfg.ProcRoot), res: procs.NewResolver(cfg.ProcRoot),
		id: id, boot: bootID(cfg.ProcRoot), started: time.Now().UTC(), spool: sp,
		sender:   &uplink.Sender{Spool: sp, Log: log},
		hostname: cfg.Hostname, kernel: kernelRelease(cfg.ProcRoot),
	}
	if s.hostname == "" {
		s.hostname, _ = os.Hostname()
	}
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	own, _ := s.fs.Netns(0)
	s.tracker = flows.New(flows.Config{StaleAfter: 10 * cfg.PollInterval, Netns: own}, src, s.owners, nil)
	if err := s.startKernel(); err != nil {
		return nil, err
	}
	s.newMetrics()
	if err := s.listenMetrics(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// startKernel loads the eBPF probes as --sensor.ebpf says. When they are
// refused (not root, no BTF, a load error) the sensor polls, and says why
// in one log line and in its ebpf capability.
func (s *Sensor) startKernel() error {
	s.lsm = ebpf.LSMStatus()
	if s.cfg.EBPF == "off" {
		s.ebpf = "off"
		return nil
	}
	var err error
	var p *ebpf.Probes
	if s.cfg.ProcRoot != "/proc" {
		err = errors.New("--sensor.proc is not /proc: the probes would see another host than the polls")
	} else {
		p, err = ebpf.Load(ebpf.Options{})
	}
	if err != nil {
		if s.cfg.EBPF == "on" {
			return fmt.Errorf("sensor: ebpf: %w", err)
		}
		msg := "unavailable: " + err.Error()
		s.ebpf = msg[:min(len(msg), 250)] // ingest caps values at 256 bytes
		s.log.Warn("eBPF probes unavailable, following flows by polling only", "err", err)
		return nil
	}
	s.ebpf = "active"
	s.probes = &kernelSource{s: s, probes: p}
	s.tracker.UseKernel()
	go func() {
		if err := p.Run(s.probes); err != nil {
			s.log.Error("eBPF ring buffer reader stopped", "err", err)
		}
	}()
	return nil
}

// Close detaches the eBPF probes and closes the metrics listener; Run does
// it when it returns.
func (s *Sensor) Close() error {
	if s.metricsLn != nil {
		s.metricsLn.Close() // already closed once Run served it
	}
	if s.probes == nil {
		return nil
	}
	err := s.probes.probes.Close()
	return err
}

// source picks how flows are observed: netlink socket diagnostics give
// byte counters; /proc/net is the fallback.
func (s *Sensor) source() (flows.Source, error) {
	if s.cfg.Source == "proc" || s.cfg.ProcRoot != "/proc" {
		return &procSource{fs: s.fs}, nil
	}
	c, err := diag.Open()
	if err != nil {
		if s.cfg.Source == "inet_diag" {
			return nil, err
		}
		s.log.Warn("flow tracker: netlink socket diagnostics unavailable, polling /proc/net (no byte counts)", "err", err)
		return &procSource{fs: s.fs}, nil
	}
	return &diagSource{conn: c}, nil
}

// owners attributes socket inodes to processes for the flow tracker.
func (s *Sensor) owners(inodes []uint64) map[uint64]heartbeat.Process {
	if len(inodes) == 0 {
		return nil
	}
	found, _ := s.res.Resolve(inodes)
	out := make(map[uint64]heartbeat.Process, len(found))
	for ino, p := range found {
		out[ino] = process(p)
	}
	return out
}

func process(p procs.Process) heartbeat.Process {
	m := p.State.Of()
	hp := heartbeat.Process{PID: p.PID, Binary: p.Comm, BinaryPath: p.Exe, UID: p.UID, Unit: p.Unit,
		ContainerID: p.ContainerID, ContainerRuntime: p.Runtime, PodUID: p.PodUID,
		ContainerName: m.Name, ContainerImage: m.Image, Pod: m.Pod, PodNamespace: m.PodNamespace}
	hp.Fit()
	return hp
}

// Run polls flows and sends heartbeats until ctx ends; heartbeats are
// spooled first, so a stop or crash loses none.
func (s *Sensor) Run(ctx context.Context) error {
	s.cfg.Link.StateDir = s.cfg.StateDir
	client, err := s.cfg.Link.Client(s.id.SensorID, s.hostname, s.cfg.MaxBackoff, s.log)
	if err != nil {
		return err
	}
	sent := make(chan error, 1)
	// Delivery outlives ctx by up to StopTimeout, so the final heartbeat
	// reaches ingest now rather than at the next start.
	sendCtx, stopSending := context.WithCancel(context.WithoutCancel(ctx))
	defer stopSending()
	s.sender.Client = client
	go func() { sent <- s.sender.Run(sendCtx) }()
	defer s.Close()
	if s.metricsLn != nil {
		// Served until Run returns, the last delivery included.
		hs := prom.Server("netview-sensor", s.metrics)
		go func() {
			if err := program.Serve(ctx, hs, s.metricsLn); err != nil {
				s.log.Error("metrics server stopped", "err", err)
			}
		}()
		defer hs.Shutdown()
		s.log.Info("serving metrics", "addr", s.metricsLn.Addr().String())
	}
	poll := time.NewTicker(s.cfg.PollInterval)
	defer poll.Stop()
	beat := time.NewTicker(s.cfg.Interval)
	defer beat.Stop()
	s.Poll()
	s.beat()
	for {
		select {
		case <-ctx.Done():
			// A last heartbeat keeps the events and flows since the previous
			// one; the spool sends it at the next start if not now.
			s.beat()
			for end := time.Now().Add(s.cfg.StopTimeout); s.spool.Len() > 0 && time.Now().Before(end); {
				time.Sleep(20 * time.Millisecond)
			}
			stopSending()
			<-sent
			return nil
		case <-poll.C:
			s.Poll()
		case <-beat.C:
			s.beat()
		}
	}
}

// Poll lets the flow tracker look at the sockets once; Run calls it every
// poll interval.
func (s *Sensor) Poll() {
	s.syncKernel()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pollLocked()
}

func (s *Sensor) pollLocked() {
	s.lastPoll = time.Now()
	if err := s.tracker.Poll(); err != nil {
		s.log.Warn("flow poll", "err", err)
	}
}

// syncKernel handles every record the probes wrote so far, so that a
// connection a poll finds gone has had its close handled first.
func (s *Sensor) syncKernel() {
	if s.probes != nil {
		s.probes.probes.Sync(time.Second)
	}
}

func (s *Sensor) beat() {
	h, err := s.Heartbeat(time.Now())
	if err != nil {
		s.log.Error("heartbeat", "err", err)
		return
	}
	if err := s.spool.Put(h); err != nil {
		if errors.Is(err, spool.ErrOverCap) {
			s.spooled.Inc()
			s.log.Warn("spool over its cap", "err", err) // stored; only shrinking failed
			return
		}
		// Not stored (disk full?): its snapshots are superseded by the next
		// heartbeat, its events and completed flows ride along with it.
		s.carryFlows, s.carryEvents = h.CompletedFlows, h.Events
		s.log.Error("spool heartbeat", "seq", h.Seq, "err", err)
		return
	}
	s.spooled.Inc()
}

// Heartbeat reads the host now and returns the next heartbeat.
func (s *Sensor) Heartbeat(now time.Time) (*heartbeat.Heartbeat, error) {
	now = now.UTC().Truncate(time.Millisecond)
	s.syncKernel()
	s.mu.Lock()
	defer s.mu.Unlock()
	// The tracker's view must be fresh; a poll in the last half interval is
	// (walking the socket table costs as much as the rest of a heartbeat).
	if time.Since(s.lastPoll) > s.cfg.PollInterval/2 {
		s.pollLocked()
	}
	seq, err := s.id.nextSeq()
	if err != nil {
		return nil, fmt.Errorf("record seq: %w", err)
	}
	h := &heartbeat.Heartbeat{
		Format: heartbeat.Format, HeartbeatID: uuid.New(), Seq: seq, SentAt: now,
		Sensor: heartbeat.Sensor{
			SensorID: s.id.SensorID, Hostname: s.hostname, Flavor: s.cfg.Flavor, Version: Version,
			BootID: s.boot, StartedAt: s.started.Truncate(time.Millisecond), IntervalSecs: uint32(s.cfg.Interval / time.Second),
			Kernel:       s.kernel,
			Site:         s.cfg.Site,
			Capabilities: s.capabilities(),
		},
	}
	if err := s.snap.read(s, h, now); err != nil {
		return nil, err
	}
	h.ActiveFlows = s.tracker.Active()
	h.CompletedFlows, h.Events = s.tracker.Take()
	if s.probes != nil {
		h.Events = append(h.Events, s.probes.events...)
		s.probes.events = nil
	}
	// What a heartbeat that could not be spooled carried is sent with this one.
	h.CompletedFlows = append(s.carryFlows, h.CompletedFlows...)
	h.Events = append(s.carryEvents, h.Events...)
	s.carryFlows, s.carryEvents = nil, nil
	return h, nil
}

// capabilities say what this sensor observes and how (heartbeat.md,
// sensor.capabilities); called under s.mu.
func (s *Sensor) capabilities() map[string]string {
	c := map[string]string{
		"flow_source": s.tracker.Source(),
		"ebpf":        s.ebpf,
		"lsm":         s.lsm,
		"dns":         "unavailable: needs the eBPF probes",
	}
	if s.probes != nil {
		n := s.probes.probes.Counters()
		c["ebpf_probes"] = strings.Join(s.probes.probes.Attached(), ",")
		c["ebpf_lost_events"] = strconv.FormatUint(n.Lost+n.Bad, 10)
		c["attribution_failures"] = strconv.FormatUint(s.probes.unassigned+n.Untracked, 10)
		c["dns"] = s.probes.probes.DNSStatus
	}
	for k, v := range c {
		if len(v) > 256 {
			c[k] = v[:256]
		}
	}
	return c
}

func kernelRelease(procRoot string) string {
	b, _ := os.ReadFile(filepath.Join(procRoot, "sys/kernel/osrelease"))
	return strings.TrimSpace(string(b))
}
