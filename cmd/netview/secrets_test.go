package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
)

var ingestLine = regexp.MustCompile(`Ingest\s+(http://\S+)/v1/heartbeat\n`)

// The two secrets of the all-in-one, on the running parts: the enrollment
// secret enrolls (and the key it gives posts heartbeats) but cannot sign
// in, run SQL or post heartbeats itself; the admin token cannot enroll.
func TestSecretRoles(t *testing.T) {
	if os.Getenv("NETVIEW_LIBCHDB") == "" {
		t.Skip("NETVIEW_LIBCHDB is unset: this test runs the parts on the real embedded engine (make deps; export NETVIEW_LIBCHDB=$PWD/.cache/chdb/package/libchdb.so)")
	}
	data := filepath.Join(t.TempDir(), "data")
	cfg := appConfig{Data: data, HTTP: "127.0.0.1:0", Ingest: "127.0.0.1:0", Interval: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	out := new(syncBuffer)
	done := make(chan error, 1)
	go func() { done <- run(ctx, cfg, out, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(2 * time.Minute):
			t.Error("run did not stop within 2 minutes")
		}
	}()
	var console, ingestURL string
	deadline := time.Now().Add(2 * time.Minute)
	for console == "" {
		select {
		case err := <-done:
			t.Fatalf("run ended before it was up: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("not up within 2 minutes:\n%s", out.String())
		}
		if m := consoleLine.FindStringSubmatch(out.String()); m != nil {
			console, ingestURL = m[1], ingestLine.FindStringSubmatch(out.String())[1]
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	admin, enroll := read(tokenName), read(enrollSecretName)
	banner := out.String()
	for _, want := range []string{admin, enroll, "sign in to the Console / API", "give this to other hosts' sensors: --sensor.enroll-secret-file",
		"NETVIEW_SENSOR_ENROLL_SECRET", "--sensor.enroll-secret-file FILE"} {
		if !strings.Contains(banner, want) {
			t.Errorf("the banner does not say %q:\n%s", want, banner)
		}
	}

	do := func(method, url, secret, body string, hdr ...string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	refused := func(code int) bool { return code == 401 || code == 403 }

	// The Console signs in with GET /api/v1/network/summary.
	if code, b := do("GET", console+"/api/v1/network/summary", admin, ""); code != 200 {
		t.Errorf("the admin token signing in: %d %s", code, b)
	}
	if code, b := do("GET", console+"/api/v1/network/summary", enroll, ""); !refused(code) {
		t.Errorf("the enrollment secret signing in to the Console: %d %s, want 401 or 403", code, b)
	}
	if code, b := do("POST", console+"/api/v1/sql", enroll, "SELECT 1"); !refused(code) {
		t.Errorf("the enrollment secret running SQL: %d %s, want 401 or 403", code, b)
	}
	if code, b := do("GET", console+"/api/v1/admin/tokens", enroll, ""); !refused(code) {
		t.Errorf("the enrollment secret on the admin API: %d %s, want 401 or 403", code, b)
	}

	sensor := uuid.New()
	h := heartbeat.NewGenerator(7, heartbeat.Shape{Conns: 2}).Next(time.Now())
	h.Sensor.SensorID = sensor
	hb, err := heartbeat.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	post := func(secret string) (int, string) {
		t.Helper()
		return do("POST", ingestURL+"/v1/heartbeat", secret, string(hb), "Content-Encoding", "zstd", "Content-Type", "application/json")
	}
	if code, b := post(enroll); !refused(code) {
		t.Errorf("a heartbeat with the enrollment secret: %d %s, want 401 or 403", code, b)
	}
	if code, b := post(admin); !refused(code) {
		t.Errorf("a heartbeat with the admin token: %d %s, want 401 or 403", code, b)
	}

	body, _ := json.Marshal(ingest.EnrollRequest{SensorID: sensor.String(), Hostname: "other-host"})
	if code, b := do("POST", ingestURL+"/v1/enroll", admin, string(body), "Content-Type", "application/json"); !refused(code) {
		t.Errorf("enrolling with the admin token: %d %s, want 401 or 403", code, b)
	}
	code, b := do("POST", ingestURL+"/v1/enroll", enroll, string(body), "Content-Type", "application/json")
	var a ingest.EnrollAnswer
	if code != 200 || json.Unmarshal([]byte(b), &a) != nil || a.Key == "" {
		t.Fatalf("enrolling with the enrollment secret: %d %s", code, b)
	}
	if code, b := post(a.Key); code != 200 {
		t.Errorf("a heartbeat with the key enrolled for: %d %s", code, b)
	}
	if code, b := do("GET", console+"/api/v1/network/summary", a.Key, ""); !refused(code) {
		t.Errorf("the sensor key signing in: %d %s, want 401 or 403", code, b)
	}

	// The engine runs once a process, so the parts' metrics are checked on
	// these parts, after this work.
	checkPartsMetrics(t, console, ingestURL)
}
