package scaleout

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/internal/sleep"
)

// TestIngestKill9 SIGKILLs one of the two ingest nodes every few seconds,
// and starts it again at once, while 200 simulated sensors send through
// nginx. nginx resends a heartbeat cut by a kill to the other node
// (proxy_next_upstream ... non_idempotent), the sensors retry what still
// failed, and afterwards every acknowledged heartbeat is stored and none
// shows twice.
func TestIngestKill9(t *testing.T) {
	c := newCluster(t, setup{ingest: 2, query: 1})
	const offer, every = 24 * time.Second, 4 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	type kill struct {
		node     string
		at       time.Duration
		back     time.Duration
		inFlight int64
	}
	var kills []kill
	var killErr error
	var inFlight progressBox
	killerDone := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(killerDone)
		next := start.Add(3 * time.Second)
		for k := 0; ; k++ {
			next = next.Add(time.Duration(rand.Int64N(int64(time.Second))) - 500*time.Millisecond)
			if !sleep.Until(ctx, next) || time.Since(start) > offer-2*time.Second {
				return
			}
			n := c.ingest[k%len(c.ingest)]
			// Aim at the node's write: once it holds accepted rows, its
			// batch is written batch-age (200 ms) after its first
			// heartbeat; a kill just before the write loses accepted
			// heartbeats that must come back by retry, one during or
			// just after it leaves heartbeats stored but never
			// acknowledged, which the retries store again.
			for wait := time.Now().Add(2 * time.Second); time.Now().Before(wait) && queueRows(n) <= 0; {
				time.Sleep(5 * time.Millisecond)
			}
			sleep.Until(ctx, time.Now().Add(150*time.Millisecond+time.Duration(rand.Int64N(int64(150*time.Millisecond)))))
			flying := inFlight.get().InFlight
			at := time.Since(start)
			if err := n.Kill(); err != nil {
				killErr = fmt.Errorf("kill %d of %s: %w", k+1, n.Name, err)
				return
			}
			restart := time.Now()
			if err := n.Start(ctx); err != nil {
				killErr = fmt.Errorf("restart %d of %s: %w", k+1, n.Name, err)
				return
			}
			kills = append(kills, kill{node: n.Name, at: at, back: time.Since(restart), inFlight: flying})
			next = next.Add(every)
		}
	}()
	rep := c.fleet(t, fleetsim.Config{Sensors: 200, Interval: time.Second, Duration: offer, Drain: 60 * time.Second, Shape: faultShape, Seed: 21,
		Progress: inFlight.set, ProgressEvery: 20 * time.Millisecond})
	cancel()
	<-killerDone
	if killErr != nil {
		t.Fatal(killErr)
	}
	for i, k := range kills {
		t.Logf("kill %d: %s at %v with %d sensor requests in flight; serving again %v later", i+1, k.node, k.at.Round(time.Millisecond), k.inFlight, k.back.Round(time.Millisecond))
	}
	if len(kills) < 4 {
		t.Fatalf("only %d kills; the test wants at least 4", len(kills))
	}

	entries := c.lb.access(t)
	lbRetries, noLive, lbErrors := 0, 0, map[int]int{}
	for _, e := range entries {
		if e.uri != "/v1/heartbeat" {
			continue
		}
		if e.retried() {
			lbRetries++
		}
		if e.status != 200 {
			lbErrors[e.status]++
		}
		if e.status == 503 && slices.Contains(e.upstreams, "netview_ingest") {
			noLive++ // nginx's own 503 (error_page): no node to ask
		}
	}
	// With both nodes marked failed nginx has no one to ask: it must say so
	// with a 503 and a Retry-After, as a node does, never a bare 502.
	if n := lbErrors[502]; n > 0 {
		t.Errorf("nginx answered 502 to %d heartbeats; deploy/nginx/nginx.conf maps them to 503 with Retry-After", n)
	}
	if lbRetries == 0 && rep.Retries == 0 {
		t.Fatalf("%d kills and neither nginx nor a sensor retried anything: the kills hit no request, the test proves nothing", len(kills))
	}
	checkDelivered(t, &rep)
	ver := verifyStore(t, c, &rep, lbRetries)
	t.Logf("FIGURE ingest kill -9: %d kills in %v, %d sensors at 1/s through nginx; %d heartbeats acknowledged, %d lost, %d shown twice (heartbeats FINAL %d for %d distinct); "+
		"nginx resent %d heartbeats to the other node and answered %v to sensors (%d of them nginx's 503 for \"no live upstreams\": both nodes marked failed); "+
		"sensors retried %d times (errors %v), %d heartbeats needed more than one attempt; "+
		"at least %d heartbeats were stored twice before deduplication (%d of them acknowledged at the sensor's first attempt: nginx's resend); "+
		"in doubt at the end %d; ack latency p50 %s, p99 %s, max %s",
		len(kills), offer, rep.Sensors, rep.Accepted, len(ver.v.Missing), int(ver.final)-ver.v.Stored, ver.final, ver.v.Stored,
		lbRetries, lbErrors, noLive, rep.Retries, rep.Errors, retriedAcks(&rep),
		ver.dupRaw, ver.dupOnce, rep.InDoubt, ms(rep.Latency.P50), ms(rep.Latency.P99), ms(rep.Latency.Max))
}

// TestStorageOutage takes storage away from both ingest nodes for 12 s
// (the fault proxy between them and the store stops listening and resets
// every connection, as a stopped server does) while 200 simulated sensors
// send every 2 s through nginx. The nodes answer 503 with Retry-After at
// once, the sensors keep their heartbeats, and once storage is back
// everything drains with nothing lost. Probes post straight to each node
// to time its answers.
func TestStorageOutage(t *testing.T) {
	c := newCluster(t, setup{ingest: 2, query: 1, proxy: true})
	const before, outage, after = 6 * time.Second, 12 * time.Second, 8 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fault{begin: c.proxy.Refuse, heal: c.proxy.Accept}
	f.watch(ctx, t, c.ingest)

	var bl backlog
	start := time.Now()
	f.hold(ctx, start.Add(before), outage)
	rep := c.fleet(t, fleetsim.Config{Sensors: 200, Interval: 2 * time.Second, Duration: before + outage + after, Drain: 60 * time.Second, Shape: faultShape, Seed: 41,
		Progress: bl.add, ProgressEvery: 100 * time.Millisecond})
	fleetEnd := time.Now()
	stuck, exited := f.over(t, "outage")
	outStart, outEnd, probes := f.start, f.end, f.probes

	// How the nodes answered during the outage: at once, with 503.
	var lat []time.Duration
	during := probes.between(outStart.Add(10*time.Millisecond), outEnd)
	for _, r := range during {
		switch r.status {
		case 503:
			lat = append(lat, r.took)
		case 200:
			t.Errorf("%s acknowledged a heartbeat sent %v into the outage: nothing could have stored it", r.node, r.at.Sub(outStart).Round(time.Millisecond))
		}
	}
	t.Logf("probes straight to the nodes during the outage: %s", statusCounts(during))
	if len(lat) < 20 {
		t.Fatalf("only %d probes answered 503 during the outage; the test wants at least 20", len(lat))
	}
	p50, p99, worst := percentile(lat, 50), percentile(lat, 99), percentile(lat, 100)
	if p99 > time.Second {
		t.Errorf("503 answers during the outage took p99 %s (max %s): not fast", ms(p99), ms(worst))
	}
	// When each node took heartbeats again.
	var backAfter []string
	for _, n := range c.ingest {
		first := time.Time{}
		for _, r := range probes.between(outEnd, fleetEnd) {
			if r.node == n.Name && r.status == 200 {
				first = r.at
				break
			}
		}
		if first.IsZero() {
			t.Errorf("%s acknowledged no probe after storage came back", n.Name)
			backAfter = append(backAfter, n.Name+" never")
		} else {
			backAfter = append(backAfter, fmt.Sprintf("%s %s", n.Name, ms(first.Sub(outEnd))))
		}
	}
	// Through nginx.
	var lbLat []time.Duration
	lbStatus := map[int]int{}
	for _, e := range c.lb.access(t) {
		if e.uri == "/v1/heartbeat" && !e.at.Before(outStart.Add(time.Second)) && e.at.Before(outEnd) {
			lbStatus[e.status]++
			if e.status == 503 {
				lbLat = append(lbLat, e.took)
			}
		}
	}
	// Drain: from storage's return until the sensors' backlog is back to
	// what it was before the outage.
	level := bl.peak(start.Add(2*time.Second), outStart)
	peak := bl.peak(outStart, fleetEnd)
	drainedAt := bl.drained(outEnd, level)
	drain := "not within the run"
	if !drainedAt.IsZero() {
		drain = ms(drainedAt.Sub(outEnd))
	} else {
		t.Errorf("the sensors' backlog (%d heartbeats at its peak) never fell back to its level before the outage (%d) while they ran", peak, level)
	}
	checkDelivered(t, &rep)
	if rep.Dropped != 0 {
		t.Errorf("sensors dropped %d heartbeats: their queues should hold a %v outage", rep.Dropped, outage)
	}
	ver := verifyStore(t, c, &rep, -1)
	if n := probeStored(t, c, probes); n != len(probes.acked) {
		t.Errorf("%d of the %d heartbeats acknowledged to the probes are stored", n, len(probes.acked))
	}
	t.Logf("FIGURE storage outage: %v without storage (connections refused and reset), %d sensors every %v through nginx; "+
		"503 straight from a node: p50 %s, p99 %s, max %s over %d answers; through nginx during the outage: %v (503 p99 %s); "+
		"first acknowledgement after storage returned: %s; sensors' backlog peaked at %d heartbeats (%d before), back to that level %s after storage returned "+
		"(last sensor done %s after); %d heartbeats acknowledged, %d lost, %d shown twice, %d dropped; retries %d (errors %v); ack latency p99 %s, max %s; ingest restarts needed: %d stuck, %d exited",
		outage, rep.Sensors, rep.Interval, ms(p50), ms(p99), ms(worst), len(lat), lbStatus, ms(percentile(lbLat, 99)),
		strings.Join(backAfter, ", "), peak, level, drain, ms(fleetEnd.Sub(outEnd)),
		rep.Accepted, len(ver.v.Missing), int(ver.final)-ver.v.Stored, rep.Dropped, rep.Retries, rep.Errors, ms(rep.Latency.P99), ms(rep.Latency.Max), stuck, exited)
}

// TestSlowFlakyStorageNetwork runs the same fleet three times through
// nginx: on a clean network; with the network between the ingest nodes and
// storage slow (every chunk held 50–200 ms each way); and slow and flaky
// (also, every second, a fifth of the open connections reset). The
// guarantee holds in each; the figure is what the faults cost in
// acknowledged rate and latency against the clean run.
func TestSlowFlakyStorageNetwork(t *testing.T) {
	c := newCluster(t, setup{ingest: 2, query: 1, proxy: true})
	sup := startSupervisor(c.ingest, func() bool { return true }, 5*time.Second)
	lbRetries := func() int {
		n := 0
		for _, e := range c.lb.access(t) {
			if e.uri == "/v1/heartbeat" && e.retried() {
				n++
			}
		}
		return n
	}
	runs := []struct {
		name   string
		lo, hi time.Duration
		share  float64
	}{
		{"clean", 0, 0, 0},
		{"slow (50–200 ms each way)", 50 * time.Millisecond, 200 * time.Millisecond, 0},
		{"slow and flaky (and 20% of connections reset every second)", 50 * time.Millisecond, 200 * time.Millisecond, 0.2},
	}
	var figures []string
	for i, r := range runs {
		cfg := fleetsim.Config{Sensors: 200, Interval: time.Second, Duration: 8 * time.Second, Drain: 60 * time.Second, Shape: faultShape, Seed: uint64(51 + i)}
		// Faults while the sensors offer heartbeats; they deliver the
		// rest on a clean network again.
		c.proxy.SetNetwork(r.lo, r.hi, r.share, time.Second)
		clear := time.AfterFunc(cfg.Duration, func() { c.proxy.SetNetwork(0, 0, 0, 0) })
		resets0, lb0 := c.proxy.Resets(), lbRetries()
		began := time.Now()
		rep := c.fleet(t, cfg)
		took := time.Since(began)
		clear.Stop()
		c.proxy.SetNetwork(0, 0, 0, 0)
		resets := c.proxy.Resets() - resets0
		ver := verifyStore(t, c, &rep, lbRetries()-lb0)
		checkDelivered(t, &rep)
		if r.share > 0 && resets == 0 {
			t.Fatalf("%s: no connection was reset: the run proves nothing", r.name)
		}
		figures = append(figures, fmt.Sprintf("%s: %.1f heartbeats/s acknowledged within the window, ack p50 %s p99 %s max %s, request p99 %s, %d connections reset, retries %d (errors %v), all delivered %s after the start, lost %d, shown twice %d, stored twice before deduplication at least %d",
			r.name, rep.AcceptedPerSec, ms(rep.Latency.P50), ms(rep.Latency.P99), ms(rep.Latency.Max), ms(rep.RequestLatency.P99), resets, rep.Retries, rep.Errors, ms(took),
			len(ver.v.Missing), int(ver.final)-ver.v.Stored, ver.dupRaw))
	}
	sup.report(t)
	stuck, exited := sup.restarted()
	t.Logf("FIGURE slow and flaky storage network, 200 sensors at 1/s for 8 s through nginx in each run; ingest restarts needed: %d stuck, %d exited:\n%s",
		stuck, exited, strings.Join(figures, "\n"))
}

// TestStorageBlackHole cuts the network between both ingest nodes and
// storage without closing anything for 10 s (the fault proxy holds every
// byte both ways, on open and new connections, as in a partition), with
// --ingest.ack-timeout=5s, while 200 sensors send every 2 s through nginx.
// Storage that hangs must still get every sender its answer within the
// ack timeout (a 503 then), as the ack timeout promises; when the network
// heals, the held writes go through, and what was answered 503 but stored
// all the same shows once.
func TestStorageBlackHole(t *testing.T) {
	const ackTimeout = 5 * time.Second
	c := newCluster(t, setup{ingest: 2, query: 1, proxy: true, ingestArgs: []string{"--ingest.ack-timeout=" + ackTimeout.String()}})
	const before, hole, after = 5 * time.Second, 10 * time.Second, 5 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var dump string
	f := &fault{begin: c.proxy.BlackHole, heal: func() error {
		// Where ingest-2's goroutines wait, just before the network heals
		// (SIGQUIT: a Go program prints every goroutine and exits).
		var err error
		dump, err = goroutines(c.ingest[1])
		c.proxy.Heal()
		return err
	}, after: func() error { return c.ingest[1].Start(ctx) }}
	f.watch(ctx, t, c.ingest)

	start := time.Now()
	f.hold(ctx, start.Add(before), hole)
	rep := c.fleet(t, fleetsim.Config{Sensors: 200, Interval: 2 * time.Second, Duration: before + hole + after, Drain: 60 * time.Second, Shape: faultShape, Seed: 71})
	stuck, exited := f.over(t, "black hole")
	holeStart, holeEnd, probes := f.start, f.end, f.probes

	// Probes sent early enough in the black hole to be answered within
	// the ack timeout before it healed.
	var lat []time.Duration
	var late []probeResult
	during := probes.between(holeStart, holeEnd.Add(-ackTimeout-time.Second))
	for _, r := range during {
		lat = append(lat, r.took)
		if r.took > ackTimeout+time.Second {
			late = append(late, r)
		}
	}
	t.Logf("probes straight to the nodes in the black hole: %s; answer time p50 %s, p99 %s, max %s",
		statusCounts(during), ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)))
	if len(during) < 10 {
		t.Fatalf("only %d probes in the black hole; the test wants at least 10", len(during))
	}
	blocked := strings.Count(dump, "(*Writer).Add(")
	rotating := strings.Contains(dump, "(*Writer).rotate(")
	t.Logf("ingest-2's goroutines at the end of the black hole: %d heartbeat handlers in Writer.Add, Writer.rotate waiting: %v", blocked, rotating)

	checkDelivered(t, &rep)
	ver := verifyStore(t, c, &rep, -1)
	t.Logf("FIGURE storage black hole: %v with every byte between ingest and storage held, ack timeout %v, %d sensors every %v through nginx; "+
		"answers straight from a node to heartbeats sent in it: %s, p50 %s, p99 %s, max %s (%d later than ack timeout + 1 s); "+
		"%d heartbeats acknowledged, %d lost, %d shown twice, at least %d stored twice before deduplication, %d in doubt stored; retries %d (errors %v); ack latency p99 %s, max %s; ingest restarts needed: %d stuck, %d exited",
		hole, ackTimeout, rep.Sensors, rep.Interval, statusCounts(during), ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)), len(late),
		rep.Accepted, len(ver.v.Missing), int(ver.final)-ver.v.Stored, ver.dupRaw, ver.v.InDoubtStored, rep.Retries, rep.Errors, ms(rep.Latency.P99), ms(rep.Latency.Max), stuck, exited)

	t.Run("answers within ack timeout", func(t *testing.T) {
		if len(late) == 0 {
			return
		}
		msg := fmt.Sprintf("%d of %d heartbeats sent straight to a node during the black hole waited longer than the ack timeout (%v) + 1 s, up to %s (first: %s sent %v into it, %d after %s)",
			len(late), len(during), ackTimeout, ms(percentile(lat, 100)), late[0].node, late[0].at.Sub(holeStart).Round(time.Millisecond), late[0].status, ms(late[0].took))
		t.Error(msg)
	})
}

// fault is a fault of the storage network held for a while in the
// background while a fleet sends: begin starts it, heal ends it, and after
// (optional) does what has to wait for the heal, such as starting a node
// again; it is skipped when heal failed.
type fault struct {
	begin func()
	heal  func() error
	after func() error

	on         atomic.Bool // between begin and the return of heal
	start, end time.Time   // just before begin, just after heal; read after over
	done       chan error

	// What watches the ingest nodes through the fault (watch).
	sup        *supervisor
	probes     *probe
	stopProbes func()
}

// watch starts what the storage fault tests watch the ingest nodes with:
// a supervisor that restarts a node stuck for 5 s while the fault is off
// (or exited), and probes straight to each node every 100 ms.
func (f *fault) watch(ctx context.Context, t *testing.T, nodes []*node) {
	f.sup = startSupervisor(nodes, f.off, 5*time.Second)
	f.probes, f.stopProbes = startProbes(ctx, t, nodes, 100*time.Millisecond)
}

// off says the fault is not on: the supervisor's test of whether nodes
// should answer.
func (f *fault) off() bool { return !f.on.Load() }

// hold begins the fault at at and heals it dur later, in the background;
// it gives up with ctx's error when ctx ends first.
func (f *fault) hold(ctx context.Context, at time.Time, dur time.Duration) {
	f.done = make(chan error, 1)
	go func() {
		if !sleep.Until(ctx, at) {
			f.done <- ctx.Err()
			return
		}
		f.start = time.Now()
		f.on.Store(true)
		f.begin()
		if !sleep.Until(ctx, f.start.Add(dur)) {
			f.done <- ctx.Err()
			return
		}
		err := f.heal()
		f.end = time.Now()
		f.on.Store(false)
		if err == nil && f.after != nil {
			err = f.after()
		}
		f.done <- err
	}()
}

// over waits for the fault to end (fatal, as what, when holding it went
// wrong), stops the watch, reports the supervisor (a subtest) and returns
// the restarts the nodes needed.
func (f *fault) over(t *testing.T, what string) (stuck, exited int) {
	t.Helper()
	if err := <-f.done; err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	f.stopProbes()
	f.sup.report(t)
	return f.sup.restarted()
}

// goroutines makes n print its goroutines (SIGQUIT with GOTRACEBACK=all)
// and returns what it printed; n has exited afterwards.
func goroutines(n *node) (string, error) {
	p := n.Current()
	if p == nil || p.Exited() {
		return "", fmt.Errorf("%s is not running", n.Name)
	}
	// Held: the test starts it again. Killed if it takes longer; the log
	// holds what it printed.
	_ = n.Stop(syscall.SIGQUIT, 10*time.Second)
	return p.LogTail(4 << 20), nil
}
