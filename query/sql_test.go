package query_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
)

// POST /api/v1/sql end to end: an analyst token runs SQL on the read-only
// store, writes are refused and change nothing, a viewer token is refused.
func TestAnalystSQLEndpoint(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	g := heartbeat.NewGenerator(77, heartbeat.Shape{Conns: 12, Events: 3})
	f.ingest.Send(g.Next(time.Now()))
	post := func(token, sql, format string) (int, string) {
		t.Helper()
		return ingesttest.Send(t, "POST", f.url+"/api/v1/sql?format="+format, token, strings.NewReader(sql))
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

// The audit row of an analyst's statement records what ran: a 5,000-byte
// comment before it cannot push it out of the row (issue #14). The row
// holds the statement normalised, the body's SHA-256 and length.
func TestAnalystSQLAuditRecordsStatement(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	for _, c := range []struct {
		body, want string
		code       int
	}{
		{"/*" + strings.Repeat("A", 5000) + "*/\n  SELECT   4242 AS marker", "SELECT 4242 AS marker", 200},
		{"-- " + strings.Repeat("A", 5000) + "\nSELECT name FROM system.settings", "SELECT name FROM system.settings", 403},
		{"SELECT '" + strings.Repeat("x", 5000) + "' AS long", "SELECT 'xxxx", 200},
	} {
		if code, body := f.post("/api/v1/sql", analystToken, c.body, nil); code != c.code {
			t.Fatalf("%.40q: %d %s, want %d", c.body, code, body, c.code)
		}
		rows := auditRows(t, f.ingest.Store)
		r := rows[len(rows)-1]
		sum := sha256.Sum256([]byte(c.body))
		header := fmt.Sprintf("bytes=%d sha256=%s\n", len(c.body), hex.EncodeToString(sum[:]))
		if r.Action != "sql" || !strings.HasPrefix(r.Detail, header) || !strings.HasPrefix(r.Detail[len(header):], c.want) {
			t.Errorf("%.40q: audit detail %.300q, want %q then %q", c.body, r.Detail, header, c.want)
		}
		if strings.Contains(r.Detail, "AAAA") {
			t.Errorf("%.40q: audit detail keeps the comment: %.300q", c.body, r.Detail)
		}
		if len(c.body) > 5000 && c.want == "SELECT 'xxxx" && (!strings.HasSuffix(r.Detail, fmt.Sprintf("[cut: %d bytes in all]", len(c.body))) || len(r.Detail) > 2300) {
			t.Errorf("long statement: detail of %d bytes: %.300q … %q", len(r.Detail), r.Detail, r.Detail[max(0, len(r.Detail)-80):])
		}
	}
}
