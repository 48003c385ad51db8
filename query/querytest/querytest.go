// Package querytest runs real query services for the tests of this and
// other packages (the Console's browser tests, the benchmarks).
package querytest

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"sync/atomic"
	"testing"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/query"
)

// Serve runs srv on a loopback port until the test ends and returns its
// base URL. fasthttp's own log is dropped: tests provoke the errors it logs.
func Serve(t testing.TB, srv *query.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	hs.Logger = log.New(io.Discard, "", 0)
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown() })
	return "http://" + ln.Addr().String()
}

// Outage is the real store with an injected outage: while Down is set,
// every read and statement fails with store.ErrUnavailable, as they do
// when a ClickHouse server cannot be reached.
type Outage struct {
	store.Store
	Down atomic.Bool
}

var _ store.Store = (*Outage)(nil)

func (s *Outage) err() error {
	return fmt.Errorf("%w: clickhouse:9000: connection refused (injected outage)", store.ErrUnavailable)
}

func (s *Outage) Select(ctx context.Context, q store.Query, res proto.Results, onBlock func(int) error) error {
	if s.Down.Load() {
		return s.err()
	}
	return s.Store.Select(ctx, q, res, onBlock)
}

func (s *Outage) Exec(ctx context.Context, q store.Query) error {
	if s.Down.Load() {
		return s.err()
	}
	return s.Store.Exec(ctx, q)
}
