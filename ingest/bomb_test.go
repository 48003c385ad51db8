package ingest_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
)

// 200 senders post a zstd bomb each at the same moment: a 16 KiB frame of
// RLE blocks that expands to 512 MiB (4 bytes per 128 KiB block, the
// densest zstd allows). Every one is refused with 413 (the decompressed
// document is over the limit: the ratio cap stops it after ~1.7 MiB), the
// process's peak RSS grows by less than 64 MiB in all, and the node goes
// on taking heartbeats.
//
// The figure is the whole test process: the node, its embedded engine and
// the 200 clients. Decompression is bounded per request (the ratio cap) and
// in number (the node's decode slots); the waiting requests hold only their
// connections.
func TestConcurrentZstdBombs(t *testing.T) {
	const (
		senders  = 200
		expands  = 512 << 20
		limitMiB = 64
	)
	bomb := zstdBomb(t, expands)
	if len(bomb) > 16<<10+16 {
		t.Fatalf("bomb is %d bytes, want 16 KiB", len(bomb))
	}
	cfg := testConfig()
	// The production limits (netview-ingest's defaults).
	cfg.MaxBodyBytes, cfg.MaxDecodedBytes, cfg.MaxRatio = 4<<20, 32<<20, 40
	n := startNode(t, cfg, nil)

	tr := &http.Transport{MaxIdleConnsPerHost: senders, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 2 * time.Minute}
	post := func(body io.Reader, size int) (int, string, error) {
		req, err := http.NewRequest("POST", n.url+"/v1/heartbeat", body)
		if err != nil {
			return 0, "", err
		}
		req.ContentLength = int64(size)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Encoding", "zstd")
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), err
	}

	// Warm up: pools, connections' buffers and the writer, so the measure
	// sees what the bombs cost.
	g := heartbeat.NewGenerator(13, heartbeat.Shape{Conns: 10, Listeners: 2, Events: 2})
	n.send(g.Next(time.Now()))
	if code, msg, err := post(bytes.NewReader(bomb), len(bomb)); code != 413 || err != nil {
		t.Fatalf("one bomb: %d %s %v, want 413", code, msg, err)
	}

	before := memory(t, "VmRSS:")
	// Reset the peak, so VmHWM below is the high-water mark of the bombs.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("reset peak RSS: %v", err)
	}
	// Each body holds its first byte until all 200 requests are under way,
	// so they are all in flight together.
	started := make(chan struct{})
	var waiting atomic.Int32
	var wg sync.WaitGroup
	codes := make([]int, senders)
	msgs := make([]string, senders)
	for i := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := &gatedReader{r: bytes.NewReader(bomb), gate: started, arrived: func() {
				if waiting.Add(1) == senders {
					close(started)
				}
			}}
			code, msg, err := post(body, len(bomb))
			if err != nil {
				msg = err.Error()
			}
			codes[i], msgs[i] = code, msg
		}()
	}
	select {
	case <-started:
	case <-time.After(time.Minute):
		t.Fatalf("only %d of %d requests got under way", waiting.Load(), senders)
	}
	wg.Wait()
	grew := memory(t, "VmHWM:") - before

	refused := 0
	for i, code := range codes {
		if code == 413 && strings.Contains(msgs[i], "decompressed body over the limit") {
			refused++
		} else if i-refused < 5 { // the first few others
			t.Errorf("bomb %d: %d %s, want 413 (decompressed body over the limit)", i, code, msgs[i])
		}
	}
	if refused != senders {
		t.Errorf("%d of %d bombs refused with 413", refused, senders)
	}
	t.Logf("%d concurrent %d-byte zstd bombs of %d MiB each: peak RSS grew %d KiB (%.1f MiB) over VmRSS %d MiB",
		senders, len(bomb), expands>>20, grew>>10, float64(grew)/(1<<20), before>>20)
	if grew > limitMiB<<20 {
		t.Errorf("%d bombs: peak RSS grew by %d MiB, want under %d MiB", senders, grew>>20, limitMiB)
	}

	// The node counted them, and still takes a normal heartbeat.
	resp, err := http.Get(n.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := regexp.MustCompile(fmt.Sprintf(`(?m)^netview_ingest_heartbeats_rejected_total\{reason="too_large"\} %d$`, senders+1))
	if !want.Match(metrics) {
		t.Errorf("metrics do not count %d too_large rejections:\n%s", senders+1, metrics)
	}
	n.send(g.Next(time.Now()))
	if got := count(t, n.store, "SELECT count() AS n FROM heartbeats"); got != 2 {
		t.Errorf("heartbeats holds %d rows after the bombs, want 2", got)
	}
}

// gatedReader calls arrived on its first Read and then waits for gate.
type gatedReader struct {
	r       io.Reader
	gate    chan struct{}
	arrived func()
	once    sync.Once
}

func (g *gatedReader) Read(p []byte) (int, error) {
	g.once.Do(func() {
		g.arrived()
		<-g.gate
	})
	return g.r.Read(p)
}
