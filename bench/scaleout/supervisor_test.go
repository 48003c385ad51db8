package scaleout

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/bench/scaleout/supervise"
	"github.com/netview/netview/ingest/ingesttest"
)

// supervisor does what an orchestrator would for ingest nodes that stay
// stuck: a node that refuses heartbeats because its last write failed (503
// "last write failed" to a small heartbeat the supervisor posts every
// 500 ms) for stuckAfter while storage is up is restarted, and a node that
// exited by itself is started again (supervise.Supervisor does both). A
// correct node clears that state by itself within a fraction of a second
// of storage answering, so with correct nodes the supervisor never
// restarts one; report turns any such restart into a failure. (It does not
// poll /healthz: see TestTopology's health check subtest.)
type supervisor struct {
	nodes  []*node
	w      *supervise.Supervisor
	client *http.Client
}

func startSupervisor(nodes []*node, storageUp func() bool, stuckAfter time.Duration) *supervisor {
	s := &supervisor{nodes: nodes, client: &http.Client{Timeout: 2 * time.Second}}
	gens := make([]*probeSensor, len(nodes))
	svcs := make([]*supervise.Service, len(nodes))
	for i, n := range nodes {
		gens[i] = newProbeSensor(uint64(7000 + i))
		svcs[i] = n.Service
	}
	s.w = supervise.Watch(svcs, 500*time.Millisecond, stuckAfter, func(i int) (bool, string) {
		up := storageUp()
		_, _, body := gens[i].next()
		status, answer, _ := ingesttest.PostTo(context.Background(), s.client, nodes[i].url()+"/v1/heartbeat", ingestToken, body)
		if !up || status != 503 || !bytes.Contains(answer, []byte("last write failed")) {
			return false, ""
		}
		return true, fmt.Sprintf("refused heartbeats (%q) with storage up", strings.TrimSpace(string(answer)))
	})
	return s
}

func (s *supervisor) halt() {
	s.w.Halt()
	s.client.CloseIdleConnections()
}

// restarted counts restarts of stuck nodes and of nodes that had exited.
func (s *supervisor) restarted() (stuck, exited int) { return s.w.Restarted() }

// report is a subtest: ingest recovered by itself, without restarts.
func (s *supervisor) report(t *testing.T) {
	s.halt()
	restarts, exits, errs := s.w.Record()
	// What the nodes say of themselves now that storage is up.
	symptom := ""
	for _, n := range s.nodes {
		if status, body := healthz(n); status != 200 {
			symptom = body
		}
	}
	for _, e := range errs {
		t.Error(e)
	}
	for _, r := range restarts {
		t.Log(r)
	}
	for _, r := range exits {
		t.Log(r)
	}
	t.Run("recovers without restart", func(t *testing.T) {
		if len(restarts) == 0 {
			return
		}
		t.Errorf("%d ingest nodes stayed stuck with storage up and had to be restarted (/healthz said %q): %v", len(restarts), symptom, restarts)
	})
}
