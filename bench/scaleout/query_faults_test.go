package scaleout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netview/netview/bench/fleetsim"
	"github.com/netview/netview/internal/sleep"
)

// TestQueryReplicaKill9 SIGKILLs one of the two query replicas at a time,
// and starts it again, while clients read through nginx: summary, v1 pages
// and sorts, every page of v2 cursor walks, events. nginx sends a GET cut by
// a kill to the other replica (proxy_next_upstream error), so clients see
// no wrong answer: every answer equals the reference the replicas gave
// before, or is an error the client can tell (a status, a cut connection).
func TestQueryReplicaKill9(t *testing.T) {
	c, rep := deployWithFleet(t, setup{ingest: 1, query: 2}, fleetsim.Config{Sensors: 200, Interval: time.Second, Duration: 5 * time.Second, Drain: 45 * time.Second, Seed: 61})
	settle(t, c, &rep)
	model := loadStaleModel(t, c.store())

	// The reference: every request, and every page of every walk, asked
	// of replica 1 and checked against replica 2.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ref := map[string][]byte{}
	var paths []string
	add := func(path string, a answer) {
		got, err := okJSON(a, model)
		if err != nil {
			t.Fatalf("reference %s: %v", path, err)
		}
		other, err := okJSON(get(ctx, c.query[1].url(), path), model)
		if err != nil {
			t.Fatalf("reference %s from %s: %v", path, c.query[1].Name, err)
		}
		if !bytes.Equal(got, other) {
			t.Fatalf("reference %s: replicas differ: %s", path, firstDiff(got, other))
		}
		ref[path] = got
		paths = append(paths, path)
	}
	for _, s := range querySpecs(&rep, time.Now()) {
		if s.pages == 0 {
			add(s.path, get(ctx, c.query[0].url(), s.path))
			continue
		}
		cursor := ""
		for range s.pages {
			p := withCursor(s.path, cursor)
			a := get(ctx, c.query[0].url(), p)
			add(p, a)
			var err error
			if cursor, err = nextCursor(a.body); err != nil || cursor == "" {
				break
			}
		}
	}
	t.Logf("reference: %d requests, both replicas agree", len(paths))

	// Clients through nginx while a killer SIGKILLs replica 1, starts it
	// again 1 s later, and 12 s after the first kill does the same to
	// replica 2. The kills are further apart than nginx's fail_timeout
	// (10 s): a replica that failed max_fails (3) requests is left out for
	// that long even once it is back, so a second kill within it would
	// leave nginx with no replica at all ("no live upstreams", 502 to
	// every request; TestIngestKill9 shows it on the ingest side).
	const clients, run, gap = 6, 25 * time.Second, 12 * time.Second
	var (
		mu       sync.Mutex
		total    int
		wrong    []string
		statuses = map[int]int{}
		cuts     = map[string]int{}
		inFlight atomic.Int64
	)
	start := time.Now()
	stop := start.Add(run)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 77))
			for time.Now().Before(stop) {
				p := paths[rng.IntN(len(paths))]
				inFlight.Add(1)
				a := get(ctx, c.lb.queryURL, p)
				inFlight.Add(-1)
				if a.err != nil || a.status != 200 {
					time.Sleep(100 * time.Millisecond) // as a client would, before asking again
				}
				mu.Lock()
				total++
				switch {
				case a.err != nil:
					cuts[errKind(a.err)]++
				case a.status != 200:
					statuses[a.status]++
				default:
					got, err := normalize(a, model)
					switch {
					case err != nil:
						wrong = append(wrong, fmt.Sprintf("%s: 200 but %v: %.200s", p, err, a.body))
					case !bytes.Equal(got, ref[p]):
						wrong = append(wrong, fmt.Sprintf("%s: 200 but not the reference: %s", p, firstDiff(ref[p], got)))
					default:
						statuses[200]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	type kill struct {
		node     string
		at       time.Duration
		inFlight int64
		back     time.Duration
	}
	var kills []kill
	var killErr error
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k)*gap + 2*time.Second + time.Duration(rand.Int64N(int64(500*time.Millisecond))))
		if at.After(stop.Add(-3 * time.Second)) {
			break
		}
		sleep.Until(ctx, at)
		n := c.query[k%2]
		flying := inFlight.Load()
		if err := n.Kill(); err != nil {
			killErr = err
			break
		}
		rec := kill{node: n.Name, at: time.Since(start), inFlight: flying}
		sleep.Until(ctx, time.Now().Add(time.Second))
		restart := time.Now()
		if err := n.Start(ctx); err != nil {
			killErr = err
			break
		}
		rec.back = time.Since(restart)
		kills = append(kills, rec)
	}
	wg.Wait()
	if killErr != nil {
		t.Fatalf("killer: %v", killErr)
	}
	for i, k := range kills {
		t.Logf("kill %d: %s at %v with %d client requests in flight; started again 1 s later, serving %v after that", i+1, k.node, k.at.Round(time.Millisecond), k.inFlight, k.back.Round(time.Millisecond))
	}
	if len(kills) < 2 {
		t.Fatalf("only %d kills; the test wants 2", len(kills))
	}

	// What nginx did: requests it sent to a second replica.
	retried, retriedOK := 0, 0
	lbStatus := map[int]int{}
	for _, e := range c.lb.access(t) {
		if !strings.HasPrefix(e.uri, "/api/") || e.at.Before(start) {
			continue
		}
		lbStatus[e.status]++
		if e.retried() {
			retried++
			if e.status == 200 {
				retriedOK++
			}
		}
	}
	errs := total - statuses[200]
	for _, w := range wrong[:min(len(wrong), 5)] {
		t.Errorf("WRONG ANSWER: %s", w)
	}
	if len(wrong) > 0 {
		t.Errorf("%d of %d answers through nginx were wrong", len(wrong), total)
	}
	if retried == 0 {
		t.Errorf("%d kills and nginx sent no request to the other replica: the kills hit no request, the test proves nothing", len(kills))
	}
	if retriedOK != retried {
		t.Errorf("nginx resent %d requests cut by a kill to the other replica, which was up, and only %d were answered 200", retried, retriedOK)
	}
	t.Logf("FIGURE query replica kill -9: %d kills in %v, %d clients reading through nginx: %d requests, %d answered with the reference, %d wrong, %d errors seen by clients "+
		"(statuses %v, cut connections %v); nginx resent %d requests to the other replica (%d of them then answered 200); nginx statuses %v",
		len(kills), run, clients, total, statuses[200], len(wrong), errs-len(wrong), withoutOK(statuses), cuts, retried, retriedOK, lbStatus)
}

func withoutOK(m map[int]int) map[int]int {
	out := map[int]int{}
	for k, v := range m {
		if k != 200 {
			out[k] = v
		}
	}
	return out
}

// errKind names a client-side failure.
func errKind(err error) string {
	var s string
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		s = "timeout"
	default:
		s = err.Error()
		if i := strings.LastIndex(s, ": "); i >= 0 {
			s = s[i+2:]
		}
	}
	return s
}
