package ingest_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store/storetest"
)

// While a write hangs, every sender still gets its answer within the ack
// timeout (503, retry), however many batches fill up behind the hung one;
// after storage answers again, the retried heartbeats are each stored once.
// The writer once waited for the flusher under its lock, so senders behind
// a hung write waited for it too, past their ack timeout.
func TestHungWriteKeepsAckTimeout(t *testing.T) {
	fs := &faultyStore{Store: storetest.Embedded(t).Store}
	cfg := testConfig()
	cfg.BatchRows, cfg.AckTimeout = 100, time.Second // every heartbeat (152 rows) fills a batch
	n := startNode(t, cfg, fs)
	fs.hold(t)

	const senders = 8 // one batch being written, one waiting, the rest behind
	bodies := make([][]byte, senders)
	for i := range bodies {
		g := heartbeat.NewGenerator(uint64(60+i), heartbeat.Shape{Conns: 150})
		bodies[i], _ = heartbeat.Encode(g.Next(time.Now()))
	}
	type answer struct {
		code int
		msg  string
	}
	answers := make(chan answer, senders)
	var wg sync.WaitGroup
	for _, body := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, msg, _ := n.post(body, nil)
			answers <- answer{c, msg}
		}()
	}
	// The storage stays hung while they are answered: the bound is the ack
	// timeout plus slack for a loaded machine, far below the store's own.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.AckTimeout + 20*time.Second):
		t.Fatal("senders still waiting with storage hung, past their ack timeout")
	}
	close(answers)
	for a := range answers {
		if a.code != 503 || !strings.Contains(a.msg, "retry") {
			t.Errorf("answer while storage hangs: %d %q, want 503 retry", a.code, a.msg)
		}
	}

	fs.release()
	// The sensors retry the same bytes; each heartbeat is stored once.
	for i, body := range bodies {
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, msg, _ := n.post(body, nil)
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("heartbeat %d after release: %d %q", i, code, msg)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats FINAL"); got != senders {
		t.Fatalf("heartbeats stored = %d, want %d", got, senders)
	}
}
