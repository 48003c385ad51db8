package query_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/heartbeat"
)

// POST /api/v1/sql end to end: an analyst token runs SQL on the read-only
// store, writes are refused and change nothing, a viewer token is refused.
func TestAnalystSQLEndpoint(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	g := heartbeat.NewGenerator(77, heartbeat.Shape{Conns: 12, Events: 3})
	f.ingest.Send(g.Next(time.Now()))
	post := func(token, sql, format string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", f.url+"/api/v1/sql?format="+format, strings.NewReader(sql))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := post(analystToken, "SELECT count() AS n FROM tcp_connections", "JSON")
	var out struct {
		Rows [][]any `json:"rows"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil || len(out.Rows) != 1 || out.Rows[0][0] != "12" { // 64-bit integers are quoted, as ClickHouse does
		t.Fatalf("count via SQL: %d %s, want 12", code, body)
	}
	if code, body := post(analystToken, "SELECT sensor_id FROM sensors", "CSV"); code != 200 || !strings.Contains(body, g.Sensor.SensorID.String()) {
		t.Fatalf("CSV: %d %s", code, body)
	}
	for _, bad := range []string{"DROP TABLE tcp_connections", "INSERT INTO sensors (hostname) VALUES ('x')", "SET readonly = 0",
		"SELECT 1 SETTINGS max_execution_time = 0", "SELECT * FROM file('/etc/passwd')", "SELECT * FROM url('http://127.0.0.1:1/', CSV, 'a String')",
		"SELECT * FROM remote('127.0.0.1', system.one)"} {
		if code, body := post(analystToken, bad, "JSON"); code != 400 || !strings.Contains(body, "error") {
			t.Errorf("%q: %d %s, want 400 with a reason", bad, code, body)
		}
	}
	if got := ingesttest.Count(t, f.ingest.Store, "SELECT count() AS n FROM tcp_connections"); got != 12 {
		t.Fatalf("tcp_connections holds %d rows after the refused statements, want 12", got)
	}
	if code, _ := post(viewerToken, "SELECT 1", "JSON"); code != 403 {
		t.Fatalf("viewer token on SQL: %d, want 403", code)
	}
}
