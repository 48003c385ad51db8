package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
)

// slowFirstBlock builds its only block at the end: 60 one-row blocks of
// 0.5 s each go into one sum, so the engine has nothing to hand over for
// 30 s. The marker finds it in system.processes.
func slowFirstBlock(marker string) string {
	return "SELECT sum(sleepEachRow(0.5)) AS s, '" + marker + "' AS m FROM numbers(60) SETTINGS max_block_size = 1"
}

// A context that ends while the engine is still building the first block
// stops the statement in the engine: Select returns the context's error
// promptly, the statement leaves system.processes, and the store's
// connections keep working.
func TestCancelBeforeFirstBlock(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"cancel", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			return ctx, cancel
		}, context.Canceled},
		{"deadline", func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}, context.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One connection: the query after the cancelled one must run on
			// the very connection that was interrupted.
			b := storetest.Embedded(t)
			s, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: b.DSN[len("embedded:"):], Database: b.DB, Conns: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			marker := "cancel-first-block-" + tc.name + "-" + time.Now().Format("150405.000000")
			ctx, cancel := tc.ctx()
			defer cancel()
			var sum proto.ColUInt64
			var m proto.ColStr
			start := time.Now()
			ran := make(chan error, 1)
			go func() {
				ran <- s.Select(ctx, store.Query{SQL: slowFirstBlock(marker)}, proto.Results{{Name: "s", Data: &sum}, {Name: "m", Data: &m}}, nil)
			}()
			select {
			case err = <-ran:
			case <-time.After(2 * time.Minute): // a hang guard
				t.Fatal("Select still runs 2 minutes after its context ended")
			}
			took := time.Since(start)
			t.Logf("Select returned after %v: %v", took.Round(time.Millisecond), err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			var ee *store.EngineError
			if errors.As(err, &ee) {
				t.Errorf("err = %v: the context's end, not an engine error, is the cause", err)
			}
			// Not a speed bound: whether the statement was stopped or ran
			// its 30 s to the end (it took 10 s with a 20-row statement
			// before kill; about 0.6 s with it).
			if took > 15*time.Second {
				t.Errorf("Select took %v to return after its context ended at 200 ms: the statement ran to its end instead of being stopped", took.Round(time.Millisecond))
			}

			var ok proto.ColUInt8
			if err := s.Select(context.Background(), store.Query{SQL: "SELECT toUInt8(1) AS ok"}, proto.Results{{Name: "ok", Data: &ok}}, nil); err != nil {
				t.Fatalf("the connection after the cancelled statement: %v", err)
			}

			running := func() uint64 {
				var n proto.ColUInt64
				var got uint64
				err := b.Store.Select(context.Background(), store.Query{
					SQL:    "SELECT count() AS n FROM system.processes WHERE query LIKE {m:String} AND query NOT LIKE '%system.processes%'",
					Params: []store.Param{store.P("m", "%"+marker+"%")},
				}, proto.Results{{Name: "n", Data: &n}}, func(int) error { got = n.Row(0); return nil })
				if err != nil {
					t.Fatal(err)
				}
				return got
			}
			deadline := time.Now().Add(2 * time.Second)
			for running() != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("the cancelled statement still runs in the engine %v after Select returned", time.Since(start)-took)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
