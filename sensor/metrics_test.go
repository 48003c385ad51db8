package sensor_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netview/netview/sensor"
	"github.com/netview/netview/sensor/uplink"
)

// Over real HTTP, --sensor.metrics-listen counts what delivery did: the
// heartbeat ingest took is sent, the ones it refused (400) are refused and
// set aside, and each was spooled first.
func TestMetricsCountDelivery(t *testing.T) {
	var posts atomic.Int32
	ing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		if posts.Add(1) == 1 {
			w.Write([]byte(`{"heartbeat_id":"00000000-0000-0000-0000-000000000000","seq":1,"rows":0}`))
			return
		}
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"error":"invalid heartbeat","reason":"invalid"}`))
	}))
	defer ing.Close()
	cfg := sensor.Config{ProcRoot: "/proc", StateDir: t.TempDir(), Link: uplink.Link{URL: ing.URL + "/v1/heartbeat", Token: "x"},
		Flavor: "standard", Interval: time.Second, PollInterval: 100 * time.Millisecond, SpoolBytes: 64 << 20, MaxBackoff: time.Second,
		StopTimeout: time.Second, EBPF: "off", MetricsListen: "127.0.0.1:0"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s, err := sensor.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()

	url := "http://" + s.MetricsAddr().String() + "/metrics"
	var m map[string]float64
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m = scrape(t, url)
		// spooled is counted just after the spool took the heartbeat, so
		// the sender may report it first: a scrape in between (seen on a
		// loaded CI machine) is waited out, a count that never catches up
		// fails.
		sent, refused := m["netview_sensor_heartbeats_sent_total"], m["netview_sensor_heartbeats_refused_total"]
		if sent == 1 && refused >= 1 && m["netview_sensor_heartbeats_spooled_total"] >= sent+refused {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sent 1, refused 1 and spooled at least as many never showed (%d posts): %v", posts.Load(), m)
		}
	}
	if m["netview_sensor_last_delivery_timestamp_seconds"] < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("last delivery at %v, want within the last minute", m["netview_sensor_last_delivery_timestamp_seconds"])
	}
	for _, name := range []string{"netview_sensor_heartbeats_dropped_total", "netview_sensor_ebpf_probes_active", "netview_sensor_ebpf_lost_events_total"} {
		if v, ok := m[name]; !ok || v != 0 {
			t.Errorf("%s = %v (present %v), want 0 with the probes off and the spool under its cap", name, v, ok)
		}
	}
	for _, name := range []string{"netview_sensor_delivery_retries_total", "netview_sensor_spool_heartbeats", "netview_sensor_spool_bytes", "go_goroutines"} {
		if _, ok := m[name]; !ok {
			t.Errorf("metrics lack %s: %v", name, m)
		}
	}
	if r, err := http.Get("http://" + s.MetricsAddr().String() + "/v1/heartbeat"); err != nil || r.StatusCode != http.StatusNotFound {
		t.Errorf("another path than /metrics: %v %v, want 404", r, err)
	}
}

// scrape reads a /metrics into a map from series to value; # TYPE lines
// must say counter for every netview _total (the library types some of
// its process_ ones gauge).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("GET %s: %s %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
			if f := strings.Fields(name); len(f) == 2 && strings.HasPrefix(f[0], "netview_") && strings.HasSuffix(f[0], "_total") && f[1] != "counter" {
				t.Errorf("%s", line)
			}
			continue
		}
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				m[line[:i]] = v
			}
		}
	}
	return m
}
