package scaleout

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netview/netview/bench/fleetsim"
)

// TestTopology runs the production shape: two ingest and two query nodes
// behind nginx (deploy/nginx/nginx.conf), one store. A fleet of 300
// simulated sensors sends through nginx; every acknowledged heartbeat is
// stored exactly once (as the product reads it), both ingest nodes took
// part, and every query replica, asked directly or through nginx, gives
// the same answers: summary, v1 pages and sorts, v2 cursor walks whose
// pages alternate between replicas, events.
func TestTopology(t *testing.T) {
	c, rep := deployWithFleet(t, setup{ingest: 2, query: 2}, fleetsim.Config{Sensors: 300, Interval: time.Second, Duration: 15 * time.Second, Drain: 45 * time.Second, Seed: 11})

	// nginx spread the heartbeats over both nodes.
	entries := c.lb.access(t)
	perNode := map[string]int{}
	lbRetries := 0
	for _, e := range entries {
		if e.uri != "/v1/heartbeat" {
			continue
		}
		if e.retried() {
			lbRetries++
		}
		if e.status == 200 && len(e.upstreams) > 0 {
			perNode[e.upstreams[len(e.upstreams)-1]]++
		}
	}
	t.Logf("heartbeats acknowledged per ingest node through nginx: %v; nginx retried %d on the other node", perNode, lbRetries)
	for _, n := range c.ingest {
		if perNode[n.addr] < int(rep.Accepted)/10 {
			t.Errorf("%s (%s) acknowledged only %d of %d heartbeats: nginx did not spread the load", n.Name, n.addr, perNode[n.addr], rep.Accepted)
		}
	}
	ver := verifyStore(t, c, &rep, lbRetries)
	if ver.v.Stored != int(rep.Accepted) {
		t.Errorf("store holds %d of the fleet's heartbeats, %d were acknowledged", ver.v.Stored, rep.Accepted)
	}

	// Every replica, directly and through nginx, answers the same.
	model := loadStaleModel(t, c.store())
	specs := querySpecs(&rep, time.Now())
	bases := []string{c.query[0].url(), c.query[1].url(), c.lb.queryURL}
	names := []string{c.query[0].Name, c.query[1].Name, "nginx"}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	began := time.Now()
	requests, pages := 0, 0
	for _, s := range specs {
		if s.pages == 0 {
			var ref []byte
			for i, base := range bases {
				a := get(ctx, base, s.path)
				requests++
				got, err := okJSON(a, model)
				if err != nil {
					t.Errorf("%s %s: %v", names[i], s.path, err)
					continue
				}
				if s.check != nil {
					if err := s.check(got); err != nil {
						t.Errorf("%s %s: %v", names[i], s.path, err)
					}
				}
				if ref == nil {
					ref = got
				} else if !bytes.Equal(ref, got) {
					t.Errorf("%s %s differs from %s: %s", names[i], s.path, names[0], firstDiff(ref, got))
				}
			}
			continue
		}
		// Cursor walks: replica A then B then A..., B then A..., and
		// nginx; the same pages in every walk.
		orders := [][]int{{0, 1}, {1, 0}, {2}}
		var ref [][]byte
		for _, order := range orders {
			walk, err := walkPages(ctx, s, model, func(page int) string { return bases[order[page%len(order)]] })
			requests += len(walk)
			label := names[order[0]]
			if len(order) > 1 {
				label = names[order[0]] + "/" + names[order[1]] + " alternating"
			}
			if err != nil {
				t.Errorf("walk %s via %s: %v", s.path, label, err)
				continue
			}
			if ref == nil {
				ref = walk
				pages += len(walk)
				if len(walk) < 2 {
					t.Errorf("walk %s: %d pages, the test wants at least 2 to cross replicas", s.path, len(walk))
				}
				continue
			}
			if len(walk) != len(ref) {
				t.Errorf("walk %s via %s: %d pages, %d via %s", s.path, label, len(walk), len(ref), names[0])
			}
			for p := range min(len(walk), len(ref)) {
				if !bytes.Equal(walk[p], ref[p]) {
					t.Errorf("walk %s via %s: page %d differs: %s", s.path, label, p+1, firstDiff(ref[p], walk[p]))
					break
				}
			}
		}
	}
	if !t.Failed() {
		t.Logf("replicas compared: %d requests (%d distinct walk pages) in %v; all answers equal", requests, pages, time.Since(began).Round(time.Millisecond))
	}
	checkHealthz(t, append(append([]*node(nil), c.ingest...), c.query...))
	healthChecksDoNotDisturb(t, c)
}

// healthChecksDoNotDisturb is a subtest: while a load balancer or an
// orchestrator polls every node's /healthz (here two pollers a node, each
// every 5 ms, so that a rare effect shows in seconds), ingest writes every
// batch and the query replicas answer every request.
func healthChecksDoNotDisturb(t *testing.T, c *cluster) {
	t.Run("health checks do not disturb", func(t *testing.T) {
		nodes := append(append([]*node(nil), c.ingest...), c.query...)
		flushErrs := func() (n int64) {
			for _, in := range c.ingest {
				n += metric(in, "netview_ingest_flush_errors_total")
			}
			return n
		}
		before := flushErrs()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		var polls atomic.Int64
		for _, n := range append(slices.Clone(nodes), nodes...) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					healthz(n)
					polls.Add(1)
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
		// A reader on each replica directly (nginx would resend a 5xx
		// elsewhere and hide it).
		var reads, failed atomic.Int64
		var firstFail atomic.Value
		for _, q := range c.query {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					a := get(ctx, q.url(), "/api/v2/network/listening?limit=50")
					if ctx.Err() != nil {
						return
					}
					reads.Add(1)
					if a.err != nil || a.status != 200 {
						failed.Add(1)
						firstFail.CompareAndSwap(nil, fmt.Sprintf("%s: %d %v %.200s", q.Name, a.status, a.err, a.body))
					}
				}
			}()
		}
		rep := c.fleet(t, fleetsim.Config{Sensors: 100, Interval: time.Second, Duration: 8 * time.Second, Drain: 45 * time.Second, Shape: faultShape, Seed: 12})
		cancel()
		wg.Wait()
		checkDelivered(t, &rep)
		verifyStore(t, c, &rep, -1)
		writes := flushErrs() - before
		desync := 0 // log lines of heartbeats not written and reads failed on a protocol error
		for _, n := range nodes {
			for _, line := range strings.Split(n.Logs(), "\n") {
				if strings.Contains(line, "decode block") && (strings.Contains(line, "heartbeat not written") || strings.Contains(line, "query failed")) {
					desync++
				}
			}
		}
		t.Logf("FIGURE health checks: %d /healthz polls of the 4 nodes while 100 sensors sent for 8 s: %d batch writes failed; %d of %d reads straight from the replicas failed (first: %v); "+
			"%d log lines of heartbeats not written or reads failed on a protocol error (\"decode block\")",
			polls.Load(), writes, failed.Load(), reads.Load(), firstFail.Load(), desync)
		if writes == 0 && failed.Load() == 0 {
			return
		}
		t.Errorf("%d batch writes and %d of %d reads failed while /healthz was polled (first read failure: %v)", writes, failed.Load(), reads.Load(), firstFail.Load())
	})
}

// spec is one request, or a cursor walk of up to pages pages.
type spec struct {
	path  string
	pages int
	check func(canonical []byte) error
}

// querySpecs are the requests the replicas must agree on.
func querySpecs(rep *fleetsim.Report, now time.Time) []spec {
	s0 := rep.PerSensor[0].SensorID.String()
	tel := s0
	for _, s := range rep.PerSensor {
		if s.Flavor == "telecom" {
			tel = s.SensorID.String()
			break
		}
	}
	since, until := url.QueryEscape(rfc3339ms(rep.Start.Add(-time.Minute))), url.QueryEscape(rfc3339ms(now.Add(time.Minute)))
	window := "since=" + since + "&until=" + until
	sensors := rep.Sensors
	return []spec{
		{path: "/api/v1/network/summary", check: func(b []byte) error { return wantLen(b, "sensors", sensors) }},
		{path: "/api/v1/network/connections?page=1&page_size=100", check: nonEmpty("connections")},
		{path: "/api/v1/network/connections?page=2&page_size=100", check: nonEmpty("connections")},
		{path: "/api/v1/network/connections?page=40&page_size=100"},
		{path: "/api/v1/network/connections?page=1&page_size=100&sort=-duration_secs", check: nonEmpty("connections")},
		{path: "/api/v1/network/connections?page=3&page_size=100&sort=-duration_secs", check: nonEmpty("connections")},
		{path: "/api/v1/network/connections?page=1&page_size=50&sort=binary&sensor_id=" + s0, check: nonEmpty("connections")},
		{path: "/api/v1/network/listening?sensor_id=" + s0, check: nonEmpty("listening")},
		{path: "/api/v1/network/listening?page=2&page_size=200&sort=local_port", check: nonEmpty("listening")},
		{path: "/api/v1/network/udp?sensor_id=" + tel, check: nonEmpty("udp")},
		{path: "/api/v1/network/flows?page=1&page_size=100&sort=-bytes_received", check: nonEmpty("flows")},
		{path: "/api/v1/events?kind=network_flow&limit=100&" + window, check: nonEmpty("events")},
		{path: "/api/v2/network/connections?limit=1000", pages: 5},
		{path: "/api/v2/network/connections?sensor_id=" + s0 + "&limit=20", pages: 50},
		{path: "/api/v2/network/listening?limit=500", pages: 3},
		{path: "/api/v2/network/udp?limit=500", pages: 2},
		{path: "/api/v2/network/flows?limit=500", pages: 2},
		{path: "/api/v2/events?limit=500&" + window, pages: 3},
		{path: "/api/v2/events?sensor_id=" + s0 + "&kind=network_connect,dns_query&limit=20&" + window, pages: 3},
	}
}

// okJSON checks that a is a 200 with JSON and normalizes it.
func okJSON(a answer, m staleModel) ([]byte, error) {
	if a.err != nil {
		return nil, a.err
	}
	if a.status != 200 {
		return nil, fmt.Errorf("status %d: %.300s", a.status, a.body)
	}
	return normalize(a, m)
}

// walkPages follows next_cursor for up to s.pages pages, asking base(page)
// for each, and returns the normalized pages.
func walkPages(ctx context.Context, s spec, m staleModel, base func(page int) string) ([][]byte, error) {
	var out [][]byte
	cursor := ""
	for p := 0; p < s.pages; p++ {
		a := get(ctx, base(p), withCursor(s.path, cursor))
		got, err := okJSON(a, m)
		if err != nil {
			return out, fmt.Errorf("page %d from %s: %w", p+1, base(p), err)
		}
		out = append(out, got)
		if cursor, err = nextCursor(a.body); err != nil {
			return out, err
		}
		if cursor == "" {
			break
		}
	}
	return out, nil
}

func wantLen(b []byte, field string, n int) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(m[field], &list); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if len(list) != n {
		return fmt.Errorf("%d %s, want %d", len(list), field, n)
	}
	return nil
}

func nonEmpty(field string) func([]byte) error {
	return func(b []byte) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return err
		}
		if s := strings.TrimSpace(string(m[field])); s == "" || s == "[]" || s == "null" {
			return fmt.Errorf("%s is empty", field)
		}
		return nil
	}
}
