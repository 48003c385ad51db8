package query_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/analyst"
)

func (f *fixture) sqlPost(stmt string) (*http.Response, error) {
	req, _ := http.NewRequest("POST", f.url+"/api/v1/sql?format=JSON", strings.NewReader(stmt))
	req.Header.Set("Authorization", "Bearer "+analystToken)
	return http.DefaultClient.Do(req)
}

// heartbeatAcks posts heartbeats of one sensor to ingest, one every 50 ms
// or as soon as the last is answered, until stop is closed (or n are sent,
// if n > 0), and returns how long each took to be acknowledged; a
// heartbeat not answered 200 is an error.
func (f *fixture) heartbeatAcks(t *testing.T, g *heartbeat.Generator, n int, stop <-chan struct{}) []time.Duration {
	var took []time.Duration
	for n <= 0 || len(took) < n {
		select {
		case <-stop:
			return took
		default:
		}
		body, err := heartbeat.Encode(g.Next(time.Now()))
		if err != nil {
			t.Error(err)
			return took
		}
		req, _ := http.NewRequest("POST", f.ingest.URL+"/v1/heartbeat", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+ingesttest.Token)
		req.Header.Set("Content-Encoding", "zstd")
		t0 := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			return took
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("heartbeat %d: %d", len(took), resp.StatusCode)
		}
		took = append(took, time.Since(t0))
		time.Sleep(50*time.Millisecond - time.Since(t0))
	}
	return took
}

func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// Eight concurrent statements at the result limit, each rendered as 6 bytes
// of JSON per byte of result, raise RSS by less than 512 MiB: results are
// streamed, not held (before, four of them took the process to 9.4 GB).
// Afterwards RSS comes back to within 20% of where it was, and ingest, in
// the same process, acknowledges every heartbeat meanwhile.
func TestAnalystResultsInBoundedMemory(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	rows := analyst.DefaultLimits().MaxResultBytes / 1_000_100
	stmt := "SELECT repeat('\\x01', 1000000) AS s FROM numbers(" + strconv.FormatUint(rows, 10) + ")"
	if code, b, _ := f.raw("POST", "/api/v1/sql", analystToken, []byte("SELECT 1")); code != 200 {
		t.Fatalf("warm-up: %d %s", code, b)
	}
	g := heartbeat.NewGenerator(77, heartbeat.Shape{Conns: 50, Listeners: 10, CompletedFlows: 10, Events: 20})
	alone := f.heartbeatAcks(t, g, 10, nil)
	stopAcks, acksDone := make(chan struct{}), make(chan []time.Duration)
	debug.FreeOSMemory()
	before := storetest.VmRSS(t)
	var peak int64
	var mu sync.Mutex
	sample := func() {
		mu.Lock()
		peak = max(peak, storetest.VmRSS(t))
		mu.Unlock()
	}
	go func() { acksDone <- f.heartbeatAcks(t, g, 0, stopAcks) }()
	var wg sync.WaitGroup
	codes := make([]int, 8)
	sizes := make([]int64, 8)
	for i := range 8 {
		wg.Go(func() {
			resp, err := f.sqlPost(stmt)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			buf := make([]byte, 256<<10)
			for {
				n, err := resp.Body.Read(buf)
				sizes[i] += int64(n)
				sample()
				if err != nil {
					if err != io.EOF {
						t.Errorf("statement %d: body: %v", i, err)
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(stopAcks)
	beside := <-acksDone
	sample()
	// Once the last statement ends, the engine's allocator gives back
	// what it kept (store.MemoryReleaser), in the background. Left to
	// itself it takes about 10 s (jemalloc's decay), so 2 s tells them
	// apart.
	debug.FreeOSMemory()
	after := storetest.VmRSS(t)
	for deadline := time.Now().Add(2 * time.Second); after > before*12/10 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		debug.FreeOSMemory()
		after = storetest.VmRSS(t)
	}
	ok := 0
	for i, c := range codes {
		if c == 200 {
			ok++
			if sizes[i] < int64(rows)*6_000_000 {
				t.Errorf("statement %d: %d bytes, want the whole result", i, sizes[i])
			}
		}
	}
	t.Logf("%d rows of 1,000,000 bytes each, 8 statements: %d answered 200 (%v); RSS before %d MiB, peak %d MiB (+%d MiB), after FreeOSMemory %d MiB (+%d%%)",
		rows, ok, codes, before>>20, peak>>20, (peak-before)>>20, after>>20, (after-before)*100/before)
	if ok == 0 {
		t.Fatal("no statement answered")
	}
	if peak-before >= 512<<20 {
		t.Errorf("RSS rose by %d MiB, want < 512 MiB", (peak-before)>>20)
	}
	if len(beside) == 0 {
		t.Error("no heartbeat was acknowledged while the statements ran")
	} else {
		t.Logf("ingest beside them: %d heartbeats acknowledged, p50 %v, max %v (alone: p50 %v, max %v)",
			len(beside), quantile(beside, 0.5), slices.Max(beside), quantile(alone, 0.5), slices.Max(alone))
		// A sensor's usual wait is a batch's age (200 ms) and its write;
		// 2 s leaves room for a loaded machine, not for a stalled ingest.
		if m := slices.Max(beside); m > 2*time.Second {
			t.Errorf("a heartbeat waited %v for its acknowledgement beside the statements", m)
		}
	}
	if after > before*12/10 {
		t.Errorf("RSS %d MiB after the statements, want within 20%% of the %d MiB before", after>>20, before>>20)
	}
}

// A statement over the engine's memory limit gets 422 with what to do, no
// engine text, and the service answers the next one.
func TestAnalystMemoryLimitAnswer(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	code, b, _ := f.raw("POST", "/api/v1/sql", analystToken, []byte("SELECT length(groupArray(repeat('x', 1000))) FROM numbers(5000000)"))
	if code != 422 || !strings.Contains(string(b), "more memory") || strings.Contains(string(b), "DB::Exception") || strings.Contains(string(b), "Code:") {
		t.Errorf("over the memory limit: %d %s", code, b)
	}
	if code, b, _ := f.raw("POST", "/api/v1/sql", analystToken, []byte("SELECT 1")); code != 200 {
		t.Errorf("after the memory error: %d %s", code, b)
	}
}

// With one turn, a second statement while the first streams gets 429 with
// Retry-After; once the first client goes away its turn comes back.
func TestAnalystConcurrencyCap(t *testing.T) {
	be := storetest.Embedded(t)
	ro, err := store.OpenEmbedded(context.Background(), store.EmbeddedConfig{Dir: strings.TrimPrefix(be.DSN, "embedded:"), Database: be.DB,
		Conns: 2, Settings: analyst.Settings(analyst.DefaultLimits())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	f := startWith(t, options{sql: query.AnalystSQL(ro, query.SQLConfig{Concurrent: 1, Wait: 50 * time.Millisecond})})
	// 20 MB of result: more than the socket buffers hold, so the statement
	// waits for a reader that does not read, and keeps its turn.
	first, err := f.sqlPost("SELECT repeat('a', 1000) FROM numbers(20000)")
	if err != nil || first.StatusCode != 200 {
		t.Fatalf("first statement: %v %v", err, first)
	}
	code, b, h := f.raw("POST", "/api/v1/sql", analystToken, []byte("SELECT 1"))
	if code != 429 || h.Get("Retry-After") == "" {
		t.Errorf("second statement: %d %q %s", code, h.Get("Retry-After"), b)
	}
	first.Body.Close()
	for range 200 {
		if code, _, _ = f.raw("POST", "/api/v1/sql", analystToken, []byte("SELECT 1")); code != 429 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code != 200 {
		t.Errorf("after the first client left: %d", code)
	}
}
