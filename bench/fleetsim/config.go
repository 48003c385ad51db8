package fleetsim

import (
	"cmp"
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config describes a simulated fleet and how long it sends.
type Config struct {
	// Sensors is the number of virtual sensors (required, > 0).
	Sensors int
	// Interval is each sensor's heartbeat period; default 15 s.
	Interval time.Duration
	// Jitter moves each tick by a uniform amount within ±Jitter×Interval
	// (the first tick of each sensor is at a random phase of the interval
	// anyway); default 0.1, at most 0.45. Negative means none.
	Jitter float64
	// Duration is how long heartbeats are offered (required, > 0). Each
	// sensor takes a snapshot at every tick in [start, start+Duration)
	// whatever happened to the previous ones: the offered rate is fixed by
	// the schedule (open loop), never by the server's answers.
	Duration time.Duration
	// Drain is how long after Duration the sensors keep delivering what
	// they hold (retries included); heartbeats still unacknowledged then
	// are reported as in doubt (attempted) or unsent. Default 30 s;
	// negative means stop at once.
	Drain time.Duration

	// Targets are ingest base URLs (http://host:port, path /v1/heartbeat
	// added when the URL has none) or full heartbeat URLs. Required.
	Targets []string
	// Assign says how sensors use Targets: AssignSensor (default) pins
	// sensor i to Targets[i mod len]; AssignRoundRobin sends each attempt
	// of each sensor to the next target, so a retry goes to another node.
	Assign string
	// Token is the bearer token sent with every heartbeat, on nodes that
	// take shared tokens (--ingest.shared-tokens); with EnrollSecret it is
	// not used.
	Token string
	// EnrollSecret, if set, enrolls every sensor with it before the clock
	// starts (POST /v1/enroll at its first target, 8 at a time), as a real
	// sensor does, and each sensor then heartbeats with its own key. Keys
	// are derived from EnrollSecret, Seed and the sensor, so a run repeated
	// against the same store enrolls again with the same keys.
	EnrollSecret string
	// TLS configures https targets (trusted roots, pins); nil: the system's.
	TLS *tls.Config

	// Seed makes the fleet: sensor ids, host names, shapes and flavors are
	// a function of Seed and the sensor's index. Default 1.
	Seed uint64
	// StartSeq is the seq of each sensor's first heartbeat. 0 means the
	// current Unix time in milliseconds, as a real sensor that lost its
	// state restarts, so runs with the same Seed against the same store
	// never reuse a seq; tests set 1. Flow and event ids are drawn from
	// Seed, the sensor and StartSeq, so they are new in every such run.
	StartSeq uint64
	// TelecomShare is the share of telecom sensors (GTP-U, PFCP, RADIUS
	// UDP sockets, SCTP associations and endpoints), 0..1; default 0.05.
	// Negative means none. Any share > 0 gives at least one.
	TelecomShare float64
	// Shape sets the mean size of a heartbeat; zero members take
	// DefaultShape's, negative ones mean none.
	Shape Shape
	// Stable makes steady hosts, the quiet fleet a baseline should learn
	// (Day sets it): listeners keep their ports when their service
	// restarts, and inbound connections come from a fixed set of clients
	// per host. Connections still churn among the host's usual peers,
	// names and listeners, and loads drift.
	Stable bool

	// MaxQueue is how many heartbeats a sensor holds while ingest does not
	// acknowledge (its spool); when full, the oldest one not in flight is
	// dropped (counted in Report.Dropped). Default 100.
	MaxQueue int
	// RequestTimeout bounds one attempt; default 35 s (ingest answers 503
	// after its 30 s ack timeout).
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the full-jitter exponential backoff
	// between retries, as sensor/uplink does; defaults 500 ms and 60 s. A
	// retry never comes before the Retry-After of a 429 or 503.
	MinBackoff, MaxBackoff time.Duration
	// AuthBackoff is the wait after a 401 or 403; default 2 minutes.
	AuthBackoff time.Duration

	// DiscardAcks keeps only counters, not each sensor's acknowledged
	// heartbeats (Report.Sensors[i].Acked stays empty), for long runs.
	DiscardAcks bool
	// SensorZstd compresses at zstd's default level, as real sensors do
	// (heartbeat.Compress). By default the simulator uses the fastest
	// level: on these heartbeats the bodies come out less than 1% larger
	// for up to a quarter less of the simulator's CPU (BenchmarkHeartbeat).
	SensorZstd bool

	// Progress, if set, is called about every ProgressEvery (default 1 s)
	// while Run runs, from one goroutine.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Assignment of sensors to targets.
const (
	AssignSensor     = "sensor"
	AssignRoundRobin = "round-robin"
)

// Shape is the mean content of a heartbeat; each sensor scales it by a
// factor of its own (log-normal: most hosts near 1, a few up to 6 times
// busier). In a Config, zero members take DefaultShape's and negative
// ones mean none.
type Shape struct {
	// Conns is the number of established TCP connections a sensor holds.
	Conns int
	// Listeners is the number of TCP listening sockets (mostly stable).
	Listeners int
	// UDP is the number of UDP sockets; telecom sensors add GTP-U, PFCP,
	// GTP-C and RADIUS ones.
	UDP int
	// Churn is the share of established connections that close between
	// two heartbeats (as many new ones open). A closed connection ends its
	// flow (a completed flow) and about half of them linger in TIME_WAIT
	// for one heartbeat.
	Churn float64
	// ShortLived is the number of connections opened and closed between
	// two heartbeats, seen only as completed flows and events.
	ShortLived int
	// DNSShare is the share of new outbound connections preceded by a name
	// lookup (dns_lookup, dns_query, dns_resolution events).
	DNSShare float64
	// SCTPAssocs is the number of SCTP associations of a telecom sensor.
	SCTPAssocs int
}

// DefaultShape is a busy server: on average over a fleet about 250 rows,
// 77 KiB of JSON and 10 KiB of zstd per heartbeat (about 80 connections,
// 65 active flows, 11 completed flows, 28 events).
var DefaultShape = Shape{Conns: 80, Listeners: 16, UDP: 8, Churn: 0.1, ShortLived: 4, DNSShare: 0.5, SCTPAssocs: 6}

// Progress is a running count, given to Config.Progress.
type Progress struct {
	Elapsed                   time.Duration
	Offered, Accepted, Rows   uint64
	Retries, Errors, Rejected uint64
	// Queued is heartbeats held by sensors (in flight included).
	Queued int64
	// InFlight is requests waiting for an answer.
	InFlight int64
}

type target struct {
	raw  string
	addr string // host:port
	uri  string // full URL
	tls  bool
}

func (c *Config) withDefaults() (Config, []target, error) {
	d := *c
	if d.Sensors <= 0 {
		return d, nil, errors.New("fleetsim: Sensors must be positive")
	}
	if d.Duration <= 0 {
		return d, nil, errors.New("fleetsim: Duration must be positive")
	}
	d.Interval = cmp.Or(d.Interval, 15*time.Second)
	if d.Interval < time.Millisecond {
		return d, nil, errors.New("fleetsim: Interval must be at least 1 ms")
	}
	d.Jitter = min(max(cmp.Or(d.Jitter, 0.1), 0), 0.45)
	d.Drain = max(cmp.Or(d.Drain, 30*time.Second), 0)
	if len(d.Targets) == 0 {
		return d, nil, errors.New("fleetsim: no Targets")
	}
	switch d.Assign {
	case "":
		d.Assign = AssignSensor
	case AssignSensor, AssignRoundRobin:
	default:
		return d, nil, fmt.Errorf("fleetsim: Assign %q: want %q or %q", d.Assign, AssignSensor, AssignRoundRobin)
	}
	d.Seed = cmp.Or(d.Seed, 1)
	if d.StartSeq == 0 {
		d.StartSeq = uint64(time.Now().UnixMilli())
	}
	d.TelecomShare = min(max(cmp.Or(d.TelecomShare, 0.05), 0), 1)
	s, def := &d.Shape, DefaultShape
	s.Conns = cmp.Or(s.Conns, def.Conns)
	s.Listeners = cmp.Or(s.Listeners, def.Listeners)
	s.UDP = cmp.Or(s.UDP, def.UDP)
	s.Churn = cmp.Or(s.Churn, def.Churn)
	s.ShortLived = cmp.Or(s.ShortLived, def.ShortLived)
	s.DNSShare = cmp.Or(s.DNSShare, def.DNSShare)
	s.SCTPAssocs = cmp.Or(s.SCTPAssocs, def.SCTPAssocs)
	s.Conns, s.Listeners, s.UDP, s.ShortLived, s.SCTPAssocs = max(s.Conns, 0), max(s.Listeners, 1), max(s.UDP, 0), max(s.ShortLived, 0), max(s.SCTPAssocs, 0)
	s.Churn = min(max(s.Churn, 0), 1)
	s.DNSShare = min(max(s.DNSShare, 0), 1)
	d.MaxQueue = cmp.Or(d.MaxQueue, 100)
	d.MaxQueue = max(d.MaxQueue, 2)
	if d.RequestTimeout <= 0 {
		d.RequestTimeout = 35 * time.Second
	}
	if d.MinBackoff <= 0 {
		d.MinBackoff = 500 * time.Millisecond
	}
	if d.MaxBackoff <= 0 {
		d.MaxBackoff = 60 * time.Second
	}
	d.MaxBackoff = max(d.MaxBackoff, d.MinBackoff)
	if d.AuthBackoff <= 0 {
		d.AuthBackoff = 2 * time.Minute
	}
	if d.ProgressEvery <= 0 {
		d.ProgressEvery = time.Second
	}
	ts := make([]target, 0, len(d.Targets))
	for _, raw := range d.Targets {
		t, err := parseTarget(raw)
		if err != nil {
			return d, nil, err
		}
		ts = append(ts, t)
	}
	d.Targets = append([]string(nil), d.Targets...)
	return d, ts, nil
}

func parseTarget(raw string) (target, error) {
	s := strings.TrimSpace(raw)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return target{}, fmt.Errorf("fleetsim: target %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, fmt.Errorf("fleetsim: target %q: scheme must be http or https", raw)
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("fleetsim: target %q: no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/heartbeat"
	}
	addr := u.Host
	if u.Port() == "" {
		if u.Scheme == "https" {
			addr += ":443"
		} else {
			addr += ":80"
		}
	}
	return target{raw: raw, addr: addr, uri: u.String(), tls: u.Scheme == "https"}, nil
}
