package fleetsim

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/sensor/uplink"
)

// A Day is a fleet on a simulated clock, for measuring what a job over the
// store (the baseline's "what is new") makes of a day of a fleet's life in
// minutes rather than a day. Unlike Run it is closed loop and driven by
// the caller: each Round sends one heartbeat from every sensor, stamped
// with the round's simulated time, and returns once ingest acknowledged
// them all, so that a job run after it reads the whole round.
//
// The hosts are stable (Config.Stable): the same listeners, peers, names
// and clients all day, with connections churning among them. Changes
// injected at chosen rounds on chosen sensors are what a baseline should
// flag; everything else it flags is noise.
type Day struct {
	cfg     Config
	targets []target
	start   time.Time
	sensors []*sensor
	phase   []time.Duration
	changes map[int][]Change // by round
	round   int
	encs    chan *encoder
	clients []*fasthttp.HostClient
	auth    string
}

// Kinds of Change.
const (
	// ChangeListener: a binary never run before listens on a new port
	// (ncat on 0.0.0.0:4444), and stays.
	ChangeListener = "listener"
	// ChangeDestination: one of the host's usual clients connects to an
	// address and port it never used (198.51.100.77:8443, no name lookup),
	// which joins its usual peers from then on.
	ChangeDestination = "destination"
	// ChangeBeacon: a new binary calls home every few heartbeats, each time
	// a name lookup of a new domain and a short connection to its address.
	ChangeBeacon = "beacon"
)

// Change is a change injected into sensor Sensor's host; it shows in the
// sensor's heartbeat of round Round.
type Change struct {
	Sensor, Round int
	Kind          string
}

// What the changes are made of, so that a measurement can tell the
// findings they cause from noise.
var (
	InjectedListener        = app{name: "ncat", path: "/usr/bin/ncat", uid: 1000, tcp: []uint16{4444}}
	InjectedDestination     = netip.AddrFrom4([4]byte{198, 51, 100, 77})
	InjectedDestinationPort = uint16(8443)
	InjectedBeacon          = app{name: "kdevtmpfsi", path: "/var/tmp/.kdevtmpfsi", uid: 1000, dsts: []uint16{443}}
	InjectedBeaconName      = "cdn-7f3a.update-check.org"
	InjectedBeaconAddr      = netip.AddrFrom4([4]byte{198, 51, 100, 66})
)

// beaconEvery is the beacon's period in heartbeats.
const beaconEvery = 4

// NewDay builds the fleet of cfg (Stable set; Duration, Drain, EnrollSecret
// and the Run-only fields are not used) starting at the simulated time
// start, with changes to inject.
func NewDay(cfg Config, start time.Time, changes []Change) (*Day, error) {
	cfg.Stable = true
	if cfg.Duration <= 0 {
		cfg.Duration = time.Second // unused; withDefaults wants one
	}
	c, targets, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.EnrollSecret != "" {
		return nil, errors.New("fleetsim: a Day sends with Token only")
	}
	d := &Day{cfg: c, targets: targets, start: start.UTC(), changes: map[int][]Change{}, auth: "Bearer " + c.Token}
	for _, ch := range changes {
		switch ch.Kind {
		case ChangeListener, ChangeDestination, ChangeBeacon:
		default:
			return nil, fmt.Errorf("fleetsim: change kind %q: want %q, %q or %q", ch.Kind, ChangeListener, ChangeDestination, ChangeBeacon)
		}
		if ch.Sensor < 0 || ch.Sensor >= c.Sensors || ch.Round < 0 {
			return nil, fmt.Errorf("fleetsim: change %+v: no such sensor or round", ch)
		}
		d.changes[ch.Round] = append(d.changes[ch.Round], ch)
	}
	telecom := make([]bool, c.Sensors)
	if nt := int(float64(c.Sensors)*c.TelecomShare + 0.5); c.TelecomShare > 0 {
		nt = min(max(nt, 1), c.Sensors)
		for j := range nt {
			telecom[j*c.Sensors/nt] = true
		}
	}
	for i := range c.Sensors {
		d.sensors = append(d.sensors, newSensor(&c, i, telecom[i], d.start))
		// Each sensor at its own phase of the interval, the same all day.
		d.phase = append(d.phase, time.Duration(uint64(i)*0x9e3779b97f4a7c15%uint64(c.Interval)))
	}
	d.encs = make(chan *encoder, runtime.GOMAXPROCS(0))
	for range cap(d.encs) {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			return nil, err
		}
		d.encs <- &encoder{z: z, doc: make([]byte, 0, 64<<10)}
	}
	for _, t := range targets {
		d.clients = append(d.clients, &fasthttp.HostClient{Addr: t.addr, IsTLS: t.tls, TLSConfig: c.TLS, Name: "netview-fleetsim",
			MaxConns: dayWorkers, MaxIdemponentCallAttempts: 1, MaxResponseBodySize: 64 << 10})
	}
	return d, nil
}

// dayWorkers is how many heartbeats a round has in flight at once.
const dayWorkers = 32

// Close releases the encoders and connections.
func (d *Day) Close() {
	for range cap(d.encs) {
		(<-d.encs).z.Close()
	}
	for _, hc := range d.clients {
		hc.CloseIdleConnections()
	}
}

// SensorID is sensor i's id.
func (d *Day) SensorID(i int) uuid.UUID { return d.sensors[i].id }

// Rounds is how many rounds were sent.
func (d *Day) Rounds() int { return d.round }

// RoundEnd is the simulated end of round k: every row of the round lies
// before it.
func (d *Day) RoundEnd(k int) time.Time { return d.start.Add(time.Duration(k+1) * d.cfg.Interval) }

// DayRound counts what one round sent.
type DayRound struct {
	Heartbeats, Rows, Retries int
}

// Round sends round Rounds() from every sensor, sensor i's heartbeat
// stamped start + round×Interval + its phase, and returns once all are
// acknowledged. A 429, 503 or connection error is retried with the same
// bytes (after Retry-After) until ctx ends; any other answer fails the
// round.
func (d *Day) Round(ctx context.Context) (DayRound, error) {
	k := d.round
	for _, ch := range d.changes[k] {
		s := d.sensors[ch.Sensor]
		s.pending = append(s.pending, ch.Kind)
	}
	var next, rows, retries atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, dayWorkers)
	for range min(dayWorkers, len(d.sensors)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := make([]byte, 0, 16<<10)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for {
				i := int(next.Add(1) - 1)
				if i >= len(d.sensors) || ctx.Err() != nil {
					return
				}
				s := d.sensors[i]
				at := d.start.Add(time.Duration(k)*d.cfg.Interval + d.phase[i])
				enc := <-d.encs
				doc, id, seq := s.next(enc.doc, &enc.hb, at.UnixMilli())
				enc.doc = doc
				body = enc.z.EncodeAll(doc, body[:0])
				d.encs <- enc
				n, tries, err := d.send(ctx, req, resp, i, body, id, seq)
				retries.Add(int64(tries))
				if err != nil {
					errs <- fmt.Errorf("fleetsim: round %d, sensor %d: %w", k, i, err)
					return
				}
				rows.Add(int64(n))
			}
		}()
	}
	wg.Wait()
	close(errs)
	d.round++
	out := DayRound{Heartbeats: len(d.sensors), Rows: int(rows.Load()), Retries: int(retries.Load())}
	if err := <-errs; err != nil {
		return out, err
	}
	return out, ctx.Err()
}

// send posts one heartbeat until it is acknowledged; it returns the rows
// ingest wrote and the retries it took.
func (d *Day) send(ctx context.Context, req *fasthttp.Request, resp *fasthttp.Response, i int, body []byte, id uuid.UUID, seq uint64) (int, int, error) {
	ti := i % len(d.targets)
	for retries := 0; ; retries++ {
		req.Reset()
		resp.Reset()
		req.SetRequestURI(d.targets[ti].uri)
		req.Header.SetMethod(fasthttp.MethodPost)
		req.Header.Set("Authorization", d.auth)
		req.Header.SetContentType("application/json")
		req.Header.Set("Content-Encoding", "zstd")
		req.SetBodyRaw(body)
		err := d.clients[ti].DoTimeout(req, resp, d.cfg.RequestTimeout)
		wait := d.cfg.MinBackoff
		switch {
		case err != nil:
		case resp.StatusCode() == fasthttp.StatusOK:
			rows, ok := parseAck(resp.Body(), id, seq)
			if !ok {
				return 0, retries, fmt.Errorf("acknowledgement of another heartbeat: %s", resp.Body())
			}
			return rows, retries, nil
		case resp.StatusCode() == fasthttp.StatusTooManyRequests, resp.StatusCode() == fasthttp.StatusServiceUnavailable:
			wait = max(wait, uplink.ParseRetryAfter(string(resp.Header.Peek("Retry-After")), time.Now()))
		default:
			return 0, retries, fmt.Errorf("HTTP %d: %s", resp.StatusCode(), resp.Body())
		}
		select {
		case <-ctx.Done():
			return 0, retries, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// change makes the sensor's pending changes at the heartbeat of now, and
// the beacon's call home when one is due.
func (s *sensor) change(now int64) {
	for _, kind := range s.pending {
		t := s.within(now)
		switch kind {
		case ChangeListener:
			a := InjectedListener
			p := s.addProc(a)
			s.listeners = append(s.listeners, listener{addr: netip.IPv4Unspecified(), port: a.tcp[0], inode: s.inode(), proc: p, firstSeen: t, base: true})
			s.event(evListen, t, "tcp", netip.IPv4Unspecified(), a.tcp[0], netip.Addr{}, 0, p)
			s.lisDirty = true
		case ChangeDestination:
			s.peers = append(s.peers, peer{addr: InjectedDestination, port: InjectedDestinationPort, proc: s.peers[0].proc})
			c := conn{state: stEstablished, inode: s.inode(), opened: t, firstSeen: t, out: true, peer: int16(len(s.peers) - 1),
				tracked: true, flowID: uuidFrom(s.rng), rateS: 500, rateR: 5000}
			s.dial(&c, &s.peers[c.peer])
			s.connect(&c, t, false)
			s.conns = append(s.conns, c)
		case ChangeBeacon:
			s.beacon = &peer{addr: InjectedBeaconAddr, port: InjectedBeacon.dsts[0], name: InjectedBeaconName, proc: s.addProc(InjectedBeacon)}
			s.beatN = 0
		}
	}
	s.pending = s.pending[:0]
	if s.beacon == nil {
		return
	}
	if s.beatN%beaconEvery == 0 {
		t := s.within(now)
		c := conn{state: stEstablished, inode: s.inode(), opened: t, firstSeen: t, out: true, peer: -1, tracked: true, flowID: uuidFrom(s.rng),
			sent: uint64(200 + s.rng.IntN(300)), recv: uint64(500 + s.rng.IntN(2000))}
		s.dial(&c, s.beacon)
		s.lookup(&c, s.beacon.name, t)
		s.connect(&c, t, false)
		s.complete(&c, t+int64(s.rng.IntN(int(max(now-t, 1)))), "established")
	}
	s.beatN++
}

// addProc adds a process running a to the host.
func (s *sensor) addProc(a app) int16 {
	s.procs = append(s.procs, heartbeat.Process{PID: uint32(300 + s.rng.IntN(400_000)), Binary: a.name, BinaryPath: a.path, UID: a.uid})
	return int16(len(s.procs) - 1)
}
