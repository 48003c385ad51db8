package scaleout

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
)

// progressBox holds the simulator's latest progress.
type progressBox struct {
	mu sync.Mutex
	p  fleetsim.Progress
	at time.Time
}

func (b *progressBox) set(p fleetsim.Progress) {
	b.mu.Lock()
	b.p, b.at = p, time.Now()
	b.mu.Unlock()
}

func (b *progressBox) get() fleetsim.Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.p
}

// sample is the fleet's backlog at one moment.
type sample struct {
	at     time.Time
	queued int64
}

// backlog records the simulator's progress over time.
type backlog struct {
	mu      sync.Mutex
	samples []sample
}

func (b *backlog) add(p fleetsim.Progress) {
	b.mu.Lock()
	b.samples = append(b.samples, sample{at: time.Now(), queued: p.Queued})
	b.mu.Unlock()
}

// drained is when, after from, the backlog first fell to at most level;
// zero if it did not.
func (b *backlog) drained(from time.Time, level int64) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.samples {
		if s.at.After(from) && s.queued <= level {
			return s.at
		}
	}
	return time.Time{}
}

// peak is the largest backlog in [from, to).
func (b *backlog) peak(from, to time.Time) int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var m int64
	for _, s := range b.samples {
		if !s.at.Before(from) && s.at.Before(to) {
			m = max(m, s.queued)
		}
	}
	return m
}

// probe posts heartbeats of a sensor of its own straight to each ingest
// node, open loop: one every period whatever happened to the ones before,
// each recorded with its answer and how long it took. How fast a node
// answers, whatever its answer, is what it measures.
type probe struct {
	mu      sync.Mutex
	results []probeResult
	acked   map[string]uint64 // heartbeat_id -> seq
}

type probeResult struct {
	node   string
	at     time.Time
	status int // 0: no answer
	took   time.Duration
	err    string
}

func startProbes(ctx context.Context, t *testing.T, nodes []*node, every time.Duration) (*probe, func()) {
	p := &probe{acked: map[string]uint64{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 45 * time.Second}
	for i, n := range nodes {
		gen := newProbeSensor(uint64(9000 + i))
		var genMu sync.Mutex
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				genMu.Lock()
				id, seq, body := gen.next()
				genMu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					t0 := time.Now()
					status, _, err := ingesttest.PostTo(ctx, client, n.url()+"/v1/heartbeat", ingestToken, body)
					r := probeResult{node: n.Name, at: t0, status: status, took: time.Since(t0)}
					if err != nil {
						r.err = err.Error()
					}
					p.mu.Lock()
					p.results = append(p.results, r)
					if status == 200 {
						p.acked[id] = seq
					}
					p.mu.Unlock()
				}()
			}
		}()
	}
	return p, func() { cancel(); wg.Wait(); client.CloseIdleConnections() }
}

// between returns the results of probes sent in [from, to).
func (p *probe) between(from, to time.Time) []probeResult {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []probeResult
	for _, r := range p.results {
		if !r.at.Before(from) && r.at.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

func statusCounts(rs []probeResult) string {
	m := map[string]int{}
	for _, r := range rs {
		k := fmt.Sprint(r.status)
		if r.status == 0 {
			k = "no answer"
		}
		m[k]++
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// probeSensor makes the probes' heartbeats (small ones: the probe measures
// answers, not throughput).
type probeSensor struct{ gen *heartbeat.Generator }

func newProbeSensor(seed uint64) *probeSensor {
	return &probeSensor{gen: heartbeat.NewGenerator(seed, heartbeat.Shape{Conns: 10, Listeners: 4, UDP: 2, ActiveFlows: 2, CompletedFlows: 1, Events: 2})}
}

func (s *probeSensor) next() (id string, seq uint64, body []byte) {
	h := s.gen.Next(time.Now())
	body, err := heartbeat.Encode(h)
	if err != nil {
		panic(err)
	}
	return h.HeartbeatID.String(), h.Seq, body
}

// probeStored counts the probes' acknowledged heartbeats that are stored.
func probeStored(t *testing.T, c *cluster, p *probe) int {
	t.Helper()
	p.mu.Lock()
	ids := make([]string, 0, len(p.acked))
	for id := range p.acked {
		ids = append(ids, id)
	}
	p.mu.Unlock()
	if len(ids) == 0 {
		return 0
	}
	return int(ingesttest.Count(t, c.store(), "SELECT uniqExact(heartbeat_id) AS n FROM heartbeats WHERE heartbeat_id IN {ids:Array(UUID)}",
		store.P("ids", "['"+strings.Join(ids, "','")+"']")))
}
