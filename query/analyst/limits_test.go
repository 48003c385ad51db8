package analyst_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query/analyst"
)

// vmRSS returns the process's resident set size in bytes (VmRSS).
func vmRSS(t testing.TB) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("VmRSS missing from /proc/self/status")
	return 0
}

func TestExploreRSS(t *testing.T) {
	b := storetest.Embedded(t)
	f := &fixture{rw: b.Store, dir: strings.TrimPrefix(b.DSN, "embedded:"), db: b.DB}
	ro := f.open(t, analyst.Limits{})
	q := os.Getenv("Q")
	run(t, ro, "SELECT 1", "JSON")
	debug.FreeOSMemory()
	before := vmRSS(t)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			err := analyst.Run(ctx, ro, q, "JSON", io.Discard)
			t.Log(err)
		})
	}
	var peak int64
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			after := vmRSS(t)
			debug.FreeOSMemory()
			t.Logf("before %d MiB peak %d MiB after %d MiB freed %d MiB", before>>20, peak>>20, after>>20, vmRSS(t)>>20)
			return
		default:
			if r := vmRSS(t); r > peak {
				peak = r
			}
			runtime_Gosched()
		}
	}
}

func runtime_Gosched() { <-time.After(5 * time.Millisecond) }
