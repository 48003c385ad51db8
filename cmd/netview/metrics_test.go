package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// checkPartsMetrics checks that ingest's /metrics in the all-in-one serves
// every part's metrics, each family once, after real work (TestSecretRoles
// signed in once with the admin token; this host's sensor delivers every
// second), and that the query listener's serves the query service's.
func checkPartsMetrics(t *testing.T, console, ingestURL string) {
	t.Helper()
	get := func(url string) (int, string) {
		t.Helper()
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	var m string
	wants := []string{
		`netview_query_requests_total{route="/api/v1/network/summary",status="2xx"} 1` + "\n",
		"# TYPE netview_sensor_heartbeats_sent_total counter\n",
		"# TYPE netview_ingest_heartbeats_accepted_total counter\n",
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var code int
		code, m = get(ingestURL + "/metrics")
		if code != 200 {
			t.Fatalf("ingest /metrics: %d\n%s", code, m)
		}
		// The sensor's heartbeats count twice: sent by it, accepted by ingest.
		if moved(m, "netview_sensor_heartbeats_sent_total") && moved(m, "netview_ingest_heartbeats_accepted_total") && containsAll(m, wants) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest /metrics never showed the sensor's deliveries, ingest's acceptances and the query's answer:\n%s", m)
		}
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			if seen[line] {
				t.Errorf("%q twice", line)
			}
			seen[line] = true
		}
	}
	if !seen["# TYPE go_goroutines gauge"] {
		t.Error("no Go runtime metrics")
	}

	code, q := get(console + "/metrics")
	if code != 200 || !strings.Contains(q, "netview_query_requests_total") || strings.Contains(q, "netview_ingest_") {
		t.Errorf("the query listener's /metrics: %d, want the query service's alone:\n%s", code, q)
	}
}

// moved says whether m has series name with a value above 0.
func moved(m, name string) bool {
	for _, line := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v != "0"
		}
	}
	return false
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
