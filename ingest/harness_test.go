package ingest_test

import (
	"testing"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
)

const token = ingesttest.Token

// node adapts ingesttest.Node to the short names these tests use.
type node struct {
	*ingesttest.Node
	url   string
	store store.Store
	stop  func()
}

func testConfig() ingest.Config { return ingesttest.Config() }

func startNode(t *testing.T, cfg ingest.Config, st store.Store) *node {
	t.Helper()
	n := ingesttest.Start(t, cfg, st)
	return &node{Node: n, url: n.URL, store: n.Store, stop: n.Stop}
}

func (n *node) post(body []byte, headers map[string]string) (int, string, string) {
	return n.Post(body, headers)
}

func (n *node) send(h *heartbeat.Heartbeat) { n.Send(h) }

func count(t *testing.T, st store.Store, q string, params ...store.Param) uint64 {
	t.Helper()
	return ingesttest.Count(t, st, q, params...)
}
