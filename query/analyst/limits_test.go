package analyst_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query/analyst"
)

// cancelOnFirstRows cancels its context when the first rows are written.
type cancelOnFirstRows struct {
	cancel context.CancelFunc
	n      int
}

func (c *cancelOnFirstRows) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }
func (c *cancelOnFirstRows) Rows(n int) {
	if n > 0 {
		c.cancel()
	}
}

// A statement whose request ends is stopped in the engine: Run returns the
// context's error, and the statement is no longer in system.processes.
func TestCancelledStatementStops(t *testing.T) {
	b := storetest.Embedded(t)
	// 100,000 one-row blocks of 0.1 s each: hours if nothing stopped it
	// (an engine that returns results only whole never shows the first
	// rows). The marker finds it in system.processes; the rw store may set
	// max_block_size.
	const marker = "cancel-marker-7f3a"
	q := "SELECT number, sleepEachRow(0.1) AS s, '" + marker + "' AS m FROM numbers(100000) SETTINGS max_block_size = 1"
	cctx, cancel := context.WithCancel(ctx)
	w := &cancelOnFirstRows{cancel: cancel}
	ran := make(chan error, 1)
	go func() { ran <- analyst.Run(cctx, b.Store, q, "JSON", w) }()
	var err error
	select {
	case err = <-ran:
	case <-time.After(2 * time.Minute): // a hang guard, not a timing assertion
		t.Fatal("the statement still runs two minutes after its first rows were to cancel it")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled statement: got %v, want context.Canceled", err)
	}
	var n proto.ColUInt64
	running := uint64(1)
	err = b.Store.Select(ctx, store.Query{SQL: "SELECT count() FROM system.processes WHERE query LIKE {m:String} AND query NOT LIKE '%system.processes%'",
		Params: []store.Param{store.P("m", "%"+marker+"%")}}, proto.Results{{Name: "count()", Data: &n}}, func(int) error { running = n.Row(0); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if running != 0 {
		t.Errorf("the cancelled statement still runs in the engine (%d in system.processes)", running)
	}
	t.Logf("cancelled after %d bytes of the first rows; engine shows %d such statements", w.n, running)
}

// A statement over the memory limit fails with the engine's memory error
// (the HTTP layer turns it into a 422 without engine text), and the engine
// keeps answering.
func TestMemoryLimitLeavesEngineUp(t *testing.T) {
	b := storetest.Embedded(t)
	f := &fixture{rw: b.Store, dir: strings.TrimPrefix(b.DSN, "embedded:"), db: b.DB}
	ro := f.open(t, analyst.Limits{})
	var out bytes.Buffer
	err := analyst.Run(ctx, ro, "SELECT length(groupArray(repeat('x', 1000))) FROM numbers(5000000)", "JSON", &out)
	var ee *store.EngineError
	if !errors.As(err, &ee) || !strings.Contains(ee.Message, "MEMORY_LIMIT_EXCEEDED") {
		t.Fatalf("5 GB statement under the default %d MiB limit: got %v", analyst.DefaultLimits().MaxMemoryBytes>>20, err)
	}
	if got := run(t, ro, "SELECT 1 AS one", "CSV"); got != "one\n1\n" {
		t.Errorf("after the memory error: %q", got)
	}
}
