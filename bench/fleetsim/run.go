package fleetsim

import (
	"context"
	"errors"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/klauspost/compress/zstd"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/cputime"
	"github.com/netview/netview/sensor/uplink"
)

// How Run works. Each virtual sensor has two goroutines. Its scheduler
// wakes at the sensor's ticks (a random phase, then every Interval with
// jitter), makes the heartbeat from the sensor's state, compresses it and
// puts it in the sensor's queue, whatever happened to earlier heartbeats:
// that is the open loop. Its sender sends the oldest queued heartbeat,
// retries the same bytes (same heartbeat_id and seq) after connection
// errors, 429, 5xx, 401/403 with backoff and never before Retry-After, and
// takes the next one only once it is acknowledged (or refused for good
// with 400, 413 or 415), like sensor/uplink. Each sensor has its own HTTP
// connection per target, as real sensors do.

type entry struct {
	seq      uint64
	id       uuid.UUID
	body     *[]byte
	rows     int
	offered  time.Time // when the schedule said to take it
	attempts int
	// maybe: an attempt may have reached storage without an
	// acknowledgement (cut mid-flight, timed out, 5xx).
	maybe bool
}

type sensorRun struct {
	s       *sensor
	telecom bool
	targets []int // indices of the targets it uses, in order

	mu     sync.Mutex
	q      []*entry
	notify chan struct{}

	// scheduler's
	offered, dropped uint64
	firstSeq         uint64
	// sender's
	acks             []Ack
	nAcked, rejected uint64
	rr               int
	clients          []*fasthttp.HostClient
	req              *fasthttp.Request
	resp             *fasthttp.Response
	rng              *rand.Rand
	auth             string // Authorization header: the enrolled key's, or the runner's
}

type encoder struct {
	z   *zstd.Encoder
	doc []byte
	hb  heartbeat.Encoder
}

type second struct {
	offered, accepted, rows, retries, errors atomic.Uint64
	latSum, latMax                           atomic.Int64 // µs
}

type runner struct {
	cfg     Config
	targets []target
	auth    string // Authorization header

	start, offerEnd, hardEnd time.Time
	stop                     chan struct{}
	stopOnce                 sync.Once
	offerDone                chan struct{}
	encs                     chan *encoder
	bodies                   sync.Pool
	conns                    connTracker

	lat, reqLat, lag hist

	offered, accepted, rows, rowsWindow, acceptedWindow  atomic.Uint64
	attempts, retries, rejected, dropped, errorsN, dials atomic.Uint64
	rowMismatch, ackMismatch                             atomic.Uint64
	genNanos, docBytes, bodyBytes, genRows               atomic.Int64
	queued, inflight                                     atomic.Int64

	errMu sync.Mutex
	errs  map[string]uint64

	timeline []second
}

// Run simulates the fleet described by cfg until cfg.Duration has passed
// and the sensors have delivered what they hold (or cfg.Drain ran out),
// and reports what happened. Cancelling ctx stops everything at once
// (connections are closed, heartbeats in flight count as in doubt); Run
// then returns the report so far and ctx.Err(). Other errors are
// configuration errors, returned before anything is sent.
func Run(ctx context.Context, cfg Config) (Report, error) {
	c, targets, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	r := &runner{cfg: c, targets: targets, auth: "Bearer " + c.Token, stop: make(chan struct{}), offerDone: make(chan struct{}), errs: map[string]uint64{}}
	level := zstd.SpeedFastest
	if c.SensorZstd {
		level = zstd.SpeedDefault
	}
	nenc := runtime.GOMAXPROCS(0)
	r.encs = make(chan *encoder, nenc)
	for range nenc {
		z, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(1<<20), zstd.WithEncoderLevel(level))
		if err != nil {
			return Report{}, err
		}
		r.encs <- &encoder{z: z, doc: make([]byte, 0, 64<<10)}
	}
	defer func() {
		for range nenc {
			(<-r.encs).z.Close()
		}
	}()

	// The fleet, built before the clock starts.
	telecom := make([]bool, c.Sensors)
	if nt := int(math.Round(c.TelecomShare * float64(c.Sensors))); c.TelecomShare > 0 {
		nt = min(max(nt, 1), c.Sensors)
		for j := range nt {
			telecom[j*c.Sensors/nt] = true
		}
	}
	built := time.Now()
	runs := make([]*sensorRun, c.Sensors)
	for i := range runs {
		sr := &sensorRun{s: newSensor(&c, i, telecom[i], built), telecom: telecom[i], notify: make(chan struct{}, 1),
			rng: rand.New(rand.NewPCG(c.Seed^0x2545f4914f6cdd1d, uint64(i))), req: &fasthttp.Request{}, resp: &fasthttp.Response{}}
		sr.firstSeq = sr.s.seq + 1
		if c.Assign == AssignRoundRobin {
			for k := range targets {
				sr.targets = append(sr.targets, (i+k)%len(targets))
			}
		} else {
			sr.targets = []int{i % len(targets)}
		}
		sr.clients = make([]*fasthttp.HostClient, len(targets))
		sr.auth = r.auth
		runs[i] = sr
	}
	if c.EnrollSecret != "" {
		if err := r.enrollAll(ctx, runs); err != nil {
			return Report{}, err
		}
	}

	cpu0 := cputime.Self()
	r.start = time.Now()
	r.offerEnd = r.start.Add(c.Duration)
	r.hardEnd = r.offerEnd.Add(c.Drain)
	r.timeline = make([]second, int((c.Duration+c.Drain)/time.Second)+2)

	done := make(chan struct{})
	go func() {
		t := time.NewTimer(time.Until(r.hardEnd))
		defer t.Stop()
		select {
		case <-ctx.Done():
			r.halt()
			r.conns.closeAll() // ends requests in flight now
		case <-t.C:
			r.halt()
		case <-done:
		}
	}()
	if c.Progress != nil {
		go r.progress(done)
	}

	var sched, send sync.WaitGroup
	for _, sr := range runs {
		sched.Add(1)
		go r.schedule(sr, &sched)
		send.Add(1)
		go r.deliver(sr, &send)
	}
	sched.Wait()
	close(r.offerDone)
	send.Wait()
	end := time.Now()
	close(done)
	for _, sr := range runs {
		for _, hc := range sr.clients {
			if hc != nil {
				hc.CloseIdleConnections()
			}
		}
	}
	rep := r.report(runs, end, cputime.Self()-cpu0)
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	return rep, nil
}

func (r *runner) halt() { r.stopOnce.Do(func() { close(r.stop) }) }

func (r *runner) stopped() bool {
	select {
	case <-r.stop:
		return true
	default:
		return false
	}
}

func (r *runner) sec(t time.Time) *second {
	i := int(t.Sub(r.start) / time.Second)
	return &r.timeline[min(max(i, 0), len(r.timeline)-1)]
}

// schedule offers the sensor's heartbeats at its ticks until offerEnd.
func (r *runner) schedule(sr *sensorRun, wg *sync.WaitGroup) {
	defer wg.Done()
	rng := rand.New(rand.NewPCG(r.cfg.Seed^0x5851f42d4c957f2d, uint64(sr.s.idx)^r.cfg.StartSeq))
	iv := r.cfg.Interval
	phase := time.Duration(rng.Int64N(int64(iv)))
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for k := int64(0); ; k++ {
		jitter := time.Duration((rng.Float64()*2 - 1) * r.cfg.Jitter * float64(iv))
		if k == 0 {
			jitter = 0
		}
		due := r.start.Add(phase + time.Duration(k)*iv + jitter)
		if !due.Before(r.offerEnd) {
			return
		}
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.stop:
				return
			}
		} else if r.stopped() {
			return
		}
		r.offer(sr, due)
	}
}

func (r *runner) body() *[]byte {
	if b, ok := r.bodies.Get().(*[]byte); ok {
		return b
	}
	b := make([]byte, 0, 16<<10)
	return &b
}

// offer makes, compresses and queues the sensor's next heartbeat.
func (r *runner) offer(sr *sensorRun, due time.Time) {
	enc := <-r.encs
	t0 := time.Now()
	doc, id, seq := sr.s.next(enc.doc, &enc.hb, t0.UnixMilli())
	enc.doc = doc
	body := r.body()
	*body = enc.z.EncodeAll(doc, (*body)[:0])
	r.encs <- enc
	r.genNanos.Add(int64(time.Since(t0)))
	r.lag.add(t0.Sub(due))
	r.docBytes.Add(int64(len(doc)))
	r.bodyBytes.Add(int64(len(*body)))
	r.genRows.Add(int64(sr.s.rows))

	e := &entry{seq: seq, id: id, body: body, rows: sr.s.rows, offered: due}
	sr.offered++
	r.offered.Add(1)
	r.sec(due).offered.Add(1)
	r.queued.Add(1)
	sr.mu.Lock()
	var drop *entry
	if len(sr.q) >= r.cfg.MaxQueue {
		drop = sr.q[1] // the oldest one not being sent
		sr.q = append(sr.q[:1], sr.q[2:]...)
	}
	sr.q = append(sr.q, e)
	sr.mu.Unlock()
	if drop != nil {
		sr.dropped++
		r.dropped.Add(1)
		r.queued.Add(-1)
		r.bodies.Put(drop.body)
	}
	select {
	case sr.notify <- struct{}{}:
	default:
	}
}

// head waits for the sensor's oldest heartbeat; nil when there is none
// left to send or the run is stopping.
func (r *runner) head(sr *sensorRun) *entry {
	for {
		sr.mu.Lock()
		if len(sr.q) > 0 {
			e := sr.q[0]
			sr.mu.Unlock()
			return e
		}
		sr.mu.Unlock()
		select {
		case <-sr.notify:
		case <-r.offerDone:
			sr.mu.Lock()
			n := len(sr.q)
			sr.mu.Unlock()
			if n == 0 {
				return nil
			}
		case <-r.stop:
			return nil
		}
	}
}

func (r *runner) pop(sr *sensorRun, e *entry) {
	sr.mu.Lock()
	if len(sr.q) > 0 && sr.q[0] == e {
		sr.q[0] = nil
		sr.q = sr.q[1:]
	}
	sr.mu.Unlock()
	r.queued.Add(-1)
	r.bodies.Put(e.body)
	e.body = nil
}

type outcome int

const (
	acked outcome = iota
	rejected
	retry
	aborted
)

// deliver is the sensor's sender.
func (r *runner) deliver(sr *sensorRun, wg *sync.WaitGroup) {
	defer wg.Done()
	failures := 0
	var wait *time.Timer
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		if r.stopped() {
			return
		}
		e := r.head(sr)
		if e == nil {
			return
		}
		t0 := time.Now()
		res, after, kind, rows, mismatch := r.attempt(sr, e)
		if (res == aborted || res == retry) && ambiguous(kind) {
			e.maybe = true
		}
		switch res {
		case aborted:
			return
		case acked:
			now := time.Now()
			lat := now.Sub(e.offered)
			r.lat.add(lat)
			r.reqLat.add(now.Sub(t0))
			r.accepted.Add(1)
			r.rows.Add(uint64(rows))
			if now.Before(r.offerEnd) {
				r.acceptedWindow.Add(1)
				r.rowsWindow.Add(uint64(rows))
			}
			sc := r.sec(now)
			sc.accepted.Add(1)
			sc.rows.Add(uint64(rows))
			us := lat.Microseconds()
			sc.latSum.Add(us)
			for m := sc.latMax.Load(); us > m && !sc.latMax.CompareAndSwap(m, us); m = sc.latMax.Load() {
			}
			if rows != e.rows {
				r.rowMismatch.Add(1)
			}
			if mismatch {
				r.ackMismatch.Add(1)
			}
			sr.nAcked++
			if !r.cfg.DiscardAcks {
				sr.acks = append(sr.acks, Ack{Seq: e.seq, HeartbeatID: e.id, Rows: rows, Attempts: e.attempts, Latency: lat})
			}
			r.pop(sr, e)
			failures = 0
		case rejected:
			r.countError(kind)
			sr.rejected++
			r.rejected.Add(1)
			r.pop(sr, e)
			failures = 0
		case retry:
			r.countError(kind)
			r.retries.Add(1)
			r.sec(time.Now()).retries.Add(1)
			d := max(uplink.Backoff(failures, r.cfg.MinBackoff, r.cfg.MaxBackoff, sr.rng), after)
			failures++
			if wait == nil {
				wait = time.NewTimer(d)
			} else {
				wait.Reset(d)
			}
			select {
			case <-wait.C:
			case <-r.stop:
				return
			}
		}
	}
}

func (r *runner) countError(kind string) {
	r.errorsN.Add(1)
	r.sec(time.Now()).errors.Add(1)
	r.errMu.Lock()
	r.errs[kind]++
	r.errMu.Unlock()
}

func (r *runner) client(sr *sensorRun, ti int) *fasthttp.HostClient {
	if hc := sr.clients[ti]; hc != nil {
		return hc
	}
	t := r.targets[ti]
	hc := &fasthttp.HostClient{
		Addr: t.addr, IsTLS: t.tls, TLSConfig: r.cfg.TLS, Name: "netview-fleetsim",
		DialTimeout: r.dial,
		// One connection per sensor and target, kept alive between
		// heartbeats like net/http's idle connections.
		MaxConns: 2, MaxConnWaitTimeout: 5 * time.Second, MaxIdleConnDuration: 90 * time.Second,
		MaxIdemponentCallAttempts: 1,
		RetryIfErr:                func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadBufferSize:            4 << 10, WriteBufferSize: 16 << 10, MaxResponseBodySize: 64 << 10,
	}
	sr.clients[ti] = hc
	return hc
}

func (r *runner) dial(addr string, timeout time.Duration) (net.Conn, error) {
	if timeout <= 0 || timeout > 5*time.Second {
		timeout = 5 * time.Second
	}
	c, err := (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	r.dials.Add(1)
	return r.conns.add(c)
}

// attempt sends e once.
func (r *runner) attempt(sr *sensorRun, e *entry) (res outcome, after time.Duration, kind string, rows int, mismatch bool) {
	ti := sr.targets[sr.rr%len(sr.targets)]
	sr.rr++
	t := &r.targets[ti]
	req, resp := sr.req, sr.resp
	req.Reset()
	resp.Reset()
	req.SetRequestURI(t.uri)
	req.Header.SetMethod(fasthttp.MethodPost)
	req.Header.Set("Authorization", sr.auth)
	req.Header.SetContentType("application/json")
	req.Header.Set("Content-Encoding", "zstd")
	req.SetBodyRaw(*e.body)
	now := time.Now()
	if !now.Before(r.hardEnd) || r.stopped() {
		return aborted, 0, "unsent", 0, false // nothing left this sensor
	}
	deadline := now.Add(r.cfg.RequestTimeout)
	if deadline.After(r.hardEnd) {
		deadline = r.hardEnd
	}
	e.attempts++
	r.attempts.Add(1)
	r.inflight.Add(1)
	err := r.client(sr, ti).DoDeadline(req, resp, deadline)
	r.inflight.Add(-1)
	req.SetBodyRaw(nil)
	if err != nil {
		if r.stopped() || !time.Now().Before(r.hardEnd) {
			// Cut off by the run's end: in doubt only if what failed could
			// have reached ingest (a refused connection could not).
			return aborted, 0, classify(err), 0, false
		}
		return retry, 0, classify(err), 0, false
	}
	switch code := resp.StatusCode(); code {
	case fasthttp.StatusOK:
		rows, ok := parseAck(resp.Body(), e.id, e.seq)
		return acked, 0, "", rows, !ok
	case fasthttp.StatusBadRequest, fasthttp.StatusRequestEntityTooLarge, fasthttp.StatusUnsupportedMediaType, fasthttp.StatusUnprocessableEntity:
		return rejected, 0, "http_" + strconv.Itoa(code), 0, false
	case fasthttp.StatusUnauthorized, fasthttp.StatusForbidden:
		return retry, r.cfg.AuthBackoff, "http_" + strconv.Itoa(code), 0, false
	case fasthttp.StatusTooManyRequests, fasthttp.StatusServiceUnavailable:
		return retry, uplink.ParseRetryAfter(string(resp.Header.Peek("Retry-After")), time.Now()), "http_" + strconv.Itoa(code), 0, false
	default:
		return retry, 0, "http_" + strconv.Itoa(code), 0, false
	}
}

// ambiguous says whether a failed attempt may have been stored all the
// same: not when the connection was refused or ingest refused it with a
// 4xx, but after a timeout, a lost connection or a 5xx (ingest answers 503
// when storage is slow, and may still write the batch afterwards).
func ambiguous(kind string) bool {
	switch kind {
	case "unsent", "conn_refused", "no_free_conns", "http_400", "http_401", "http_403", "http_404", "http_405", "http_413", "http_415", "http_422", "http_429":
		return false
	}
	return true
}

// classify names a failed request for the report.
func classify(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "conn_refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "conn_reset"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "conn_closed"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	return "net_other"
}

// parseAck reads rows from ingest's answer and checks that it names the
// heartbeat sent: {"heartbeat_id":"...","seq":N,"rows":N}.
func parseAck(b []byte, id uuid.UUID, seq uint64) (int, bool) {
	rows, okRows := jsonUint(b, `"rows":`)
	s, okSeq := jsonUint(b, `"seq":`)
	ok := okRows && okSeq && s == seq
	const key = `"heartbeat_id":`
	if i := indexOf(b, key) + len(key); i < len(key) || len(b) < i+38 || b[i] != '"' || b[i+37] != '"' {
		ok = false
	} else if got, err := uuid.ParseBytes(b[i+1 : i+37]); err != nil || got != id {
		ok = false
	}
	return int(rows), ok
}

func indexOf(b []byte, key string) int {
	for i := 0; i+len(key) <= len(b); i++ {
		if string(b[i:i+len(key)]) == key {
			return i
		}
	}
	return -1
}

func jsonUint(b []byte, key string) (uint64, bool) {
	i := indexOf(b, key)
	if i < 0 {
		return 0, false
	}
	i += len(key)
	for i < len(b) && b[i] == ' ' {
		i++
	}
	j := i
	var v uint64
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		v = v*10 + uint64(b[j]-'0')
		j++
	}
	return v, j > i
}

func (r *runner) progress(done chan struct{}) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			r.cfg.Progress(Progress{Elapsed: time.Since(r.start), Offered: r.offered.Load(), Accepted: r.accepted.Load(), Rows: r.rows.Load(),
				Retries: r.retries.Load(), Errors: r.errorsN.Load(), Rejected: r.rejected.Load(), Queued: r.queued.Load(), InFlight: r.inflight.Load()})
		}
	}
}

// connTracker remembers open client connections so that a cancelled run
// can close them under requests in flight.
type connTracker struct {
	mu     sync.Mutex
	m      map[*trackedConn]struct{}
	closed bool // closeAll ran: connections dialled since are closed at once
}

type trackedConn struct {
	net.Conn
	t    *connTracker
	once sync.Once
}

func (t *connTracker) add(c net.Conn) (net.Conn, error) {
	tc := &trackedConn{Conn: c, t: t}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil, errStopped
	}
	if t.m == nil {
		t.m = map[*trackedConn]struct{}{}
	}
	t.m[tc] = struct{}{}
	return tc, nil
}

var errStopped = errors.New("fleetsim: run stopped")

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		delete(c.t.m, c)
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

func (t *connTracker) closeAll() {
	t.mu.Lock()
	t.closed = true
	cs := make([]*trackedConn, 0, len(t.m))
	for c := range t.m {
		cs = append(cs, c)
	}
	t.mu.Unlock()
	for _, c := range cs {
		c.Conn.Close()
	}
}

// report assembles the Report once every goroutine is done.
func (r *runner) report(runs []*sensorRun, end time.Time, cpu time.Duration) Report {
	c := &r.cfg
	rep := Report{
		Sensors: c.Sensors, Targets: c.Targets, Assign: c.Assign, Interval: c.Interval, Duration: c.Duration, Drain: c.Drain,
		Seed: c.Seed, StartSeq: c.StartSeq, Start: r.start, Elapsed: end.Sub(r.start),
		ScheduledPerSec: float64(c.Sensors) / c.Interval.Seconds(),
		Offered:         r.offered.Load(), Accepted: r.accepted.Load(), Rows: r.rows.Load(),
		Rejected: r.rejected.Load(), Dropped: r.dropped.Load(), Attempts: r.attempts.Load(), Retries: r.retries.Load(),
		RowMismatches: r.rowMismatch.Load(), AckMismatches: r.ackMismatch.Load(), Connections: r.dials.Load(),
		Latency: r.lat.summary(), RequestLatency: r.reqLat.summary(), ScheduleLag: r.lag.summary(),
		ProcessCPU: cpu, Errors: map[string]uint64{},
	}
	secs := min(c.Duration, max(end.Sub(r.start), time.Millisecond)).Seconds() // shorter when cancelled
	rep.OfferedPerSec = float64(rep.Offered) / secs
	rep.AcceptedPerSec = float64(r.acceptedWindow.Load()) / secs
	rep.RowsPerSec = float64(r.rowsWindow.Load()) / secs
	for k, v := range r.errs {
		rep.Errors[k] = v
	}
	if n := int64(rep.Offered); n > 0 {
		rep.GenPerHeartbeat = time.Duration(r.genNanos.Load() / n)
		rep.CPUPerHeartbeat = cpu / time.Duration(n)
		rep.MeanDocBytes = float64(r.docBytes.Load()) / float64(n)
		rep.MeanBodyBytes = float64(r.bodyBytes.Load()) / float64(n)
		rep.MeanRows = float64(r.genRows.Load()) / float64(n)
	}
	last := int(end.Sub(r.start)/time.Second) + 1
	for i := range min(last, len(r.timeline)) {
		s := &r.timeline[i]
		sec := Second{At: i, Offered: s.offered.Load(), Accepted: s.accepted.Load(), Rows: s.rows.Load(), Retries: s.retries.Load(), Errors: s.errors.Load(),
			MaxLatency: time.Duration(s.latMax.Load()) * time.Microsecond}
		if sec.Accepted > 0 {
			sec.MeanLatency = time.Duration(s.latSum.Load()/int64(sec.Accepted)) * time.Microsecond
		}
		rep.Timeline = append(rep.Timeline, sec)
	}
	for i, sr := range runs {
		if sr.telecom {
			rep.TelecomSensors++
		}
		ps := SensorReport{Index: i, SensorID: sr.s.id, Hostname: sr.s.hostname, Flavor: sr.s.flavor, Offered: sr.offered, Acked: sr.nAcked,
			Rejected: sr.rejected, Dropped: sr.dropped, Acks: sr.acks}
		if sr.offered > 0 {
			ps.FirstSeq, ps.LastSeq = sr.firstSeq, sr.s.seq
		}
		for k, e := range sr.q {
			if e == nil {
				continue
			}
			if k == 0 && e.maybe {
				ps.InDoubt = append(ps.InDoubt, Ack{Seq: e.seq, HeartbeatID: e.id, Attempts: e.attempts, Latency: -1})
			} else {
				ps.Unsent++
			}
		}
		rep.InDoubt += uint64(len(ps.InDoubt))
		rep.Unsent += ps.Unsent
		rep.PerSensor = append(rep.PerSensor, ps)
	}
	sort.Slice(rep.Timeline, func(a, b int) bool { return rep.Timeline[a].At < rep.Timeline[b].At })
	return rep
}
