package query_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/querytest"
)

// post sends a JSON (or SQL) body with token and decodes a JSON answer.
func (f *fixture) post(path, token, body string, out any) (int, string) {
	f.t.Helper()
	code, b, _ := f.raw("POST", path, token, []byte(body))
	if out != nil && strings.HasPrefix(strings.TrimSpace(string(b)), "{") {
		json.Unmarshal(b, out)
	}
	return code, string(b)
}

type issued struct {
	ID     string `json:"id"`
	Role   string `json:"role"`
	Secret string `json:"secret"`
	State  string `json:"state"`
}

// issue creates an API token of role through the admin API.
func (f *fixture) issue(role string) issued {
	f.t.Helper()
	var out issued
	if code, body := f.post("/api/v1/admin/tokens/create", adminToken, `{"role":"`+role+`","name":"test `+role+`"}`, &out); code != 200 || out.Secret == "" {
		f.t.Fatalf("create %s token: %d %s", role, code, body)
	}
	return out
}

// roleRequests are one request of each endpoint class.
var roleRequests = []struct{ class, method, path, body string }{
	{"view", "GET", "/api/v2/network/connections", ""},
	{"view", "GET", "/api/v1/network/summary", ""},
	{"sql", "POST", "/api/v1/sql", "SELECT 1"},
	{"admin", "GET", "/api/v1/admin/tokens", ""},
	{"admin", "GET", "/api/v1/admin/audit", ""},
	{"admin", "POST", "/api/v1/admin/enrollment-secrets/create", `{"name":"matrix"}`},
}

// TestRoleMatrix: each role, static or issued, gets 200 on the endpoint
// classes its role allows and 403 (naming the role needed) on the others;
// unknown and revoked tokens get 401 everywhere.
func TestRoleMatrix(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	f.ingest.Send(heartbeat.NewGenerator(5, heartbeat.Shape{Conns: 3}).Next(time.Now()))
	revoked := f.issue(creds.Admin)
	if code, body := f.post("/api/v1/admin/tokens/revoke", adminToken, `{"id":"`+revoked.ID+`"}`, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	allowed := map[string][]string{creds.Viewer: {"view"}, creds.Analyst: {"view", "sql"}, creds.Admin: {"view", "sql", "admin"}}
	tokens := []struct{ who, role, token string }{
		{"static viewer", creds.Viewer, viewerToken}, {"static analyst", creds.Analyst, analystToken}, {"static admin", creds.Admin, adminToken},
	}
	for _, r := range creds.Roles {
		tokens = append(tokens, struct{ who, role, token string }{"issued " + r, r, f.issue(r).Secret})
	}
	tokens = append(tokens,
		struct{ who, role, token string }{"unknown issued-looking", "", "nvt_0123456789abcdef_" + strings.Repeat("A", 43)},
		struct{ who, role, token string }{"revoked issued admin", "", revoked.Secret},
		struct{ who, role, token string }{"a sensor-key-looking token", "", "nvs_0123456789abcdef_" + strings.Repeat("A", 43)},
	)
	requests := 0
	for _, tok := range tokens {
		var row []string
		for _, rq := range roleRequests {
			want := 401
			if tok.role != "" {
				want = 403
				for _, c := range allowed[tok.role] {
					if c == rq.class {
						want = 200
					}
				}
			}
			code, body, _ := f.raw(rq.method, rq.path, tok.token, []byte(rq.body))
			requests++
			if code != want {
				t.Errorf("%s: %s %s = %d %s, want %d", tok.who, rq.method, rq.path, code, body, want)
			}
			if want == 403 && !strings.Contains(string(body), "needs the "+map[string]string{"sql": "analyst", "admin": "admin"}[rq.class]+" role") {
				t.Errorf("%s: %s %s: 403 without naming the role needed: %s", tok.who, rq.method, rq.path, body)
			}
			row = append(row, fmt.Sprintf("%s=%d", rq.class, code))
		}
		t.Logf("%-26s %s", tok.who, strings.Join(row, " "))
	}
	t.Logf("role matrix: %d tokens x %d requests = %d answers checked", len(tokens), len(roleRequests), requests)
}

// TestRevocationReachesReplica: a token revoked through one replica is
// refused by another sharing the store within the credentials TTL.
func TestRevocationReachesReplica(t *testing.T) {
	const ttl = 500 * time.Millisecond
	f := startWith(t, options{credsTTL: ttl})
	other := *f
	other.url = serveOn(t, f.ingest.Store, ttl)
	tok := f.issue(creds.Viewer)
	// The other replica finds a token made elsewhere at once (a miss reads
	// the one id), without waiting for its copy to refresh.
	if code := other.do("GET", "/api/v2/network/connections", tok.Secret, nil); code != 200 {
		t.Fatalf("issued token on the other replica: %d", code)
	}
	if code, body := f.post("/api/v1/admin/tokens/revoke", adminToken, `{"id":"`+tok.ID+`"}`, nil); code != 200 {
		t.Fatalf("revoke: %d %s", code, body)
	}
	if code := f.do("GET", "/api/v2/network/connections", tok.Secret, nil); code != 401 {
		t.Fatalf("revoked token on the replica that revoked it: %d, want 401 at once", code)
	}
	start := time.Now()
	for other.do("GET", "/api/v2/network/connections", tok.Secret, nil) != 401 {
		if time.Since(start) > ttl+5*time.Second {
			t.Fatalf("the other replica still accepts the revoked token after %v (ttl %v)", time.Since(start), ttl)
		}
		time.Sleep(10 * time.Millisecond)
	}
	took := time.Since(start)
	if took > ttl+1500*time.Millisecond { // the ttl plus one reload of the copy on a loaded machine
		t.Errorf("refused after %v, more than the ttl %v", took, ttl)
	}
	t.Logf("revoked token refused by the second replica %v after the revocation (creds ttl %v)", took.Round(time.Millisecond), ttl)
}

// serveOn runs another replica over st with the test tokens.
func serveOn(t *testing.T, st store.Store, ttl time.Duration) string {
	t.Helper()
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		AdminTokens: auth.TokenFlags{List: adminToken}, MaxListRows: 1000, Timeout: 30 * time.Second, CredsTTL: ttl}
	srv, err := query.New(cfg, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return querytest.Serve(t, srv)
}

type auditRow struct {
	Time, EventID, Actor, Role, RemoteAddr, Action, Target, Detail, Outcome string
}

// auditRows reads audit_log straight from the store, oldest first.
func auditRows(t *testing.T, st store.Store) []auditRow {
	t.Helper()
	var cols [9]proto.ColStr
	names := []string{"time", "event_id", "actor", "role", "remote_addr", "action", "target", "detail", "outcome"}
	var res proto.Results
	var sel []string
	for i, n := range names {
		res = append(res, proto.ResultColumn{Name: n, Data: &cols[i]})
		sel = append(sel, "CAST(toString("+n+") AS String) AS "+n)
	}
	var out []auditRow
	err := st.Select(context.Background(), store.Query{SQL: "SELECT " + strings.Join(sel, ", ") + " FROM audit_log ORDER BY time, event_id"}, res, func(n int) error {
		for i := range n {
			out = append(out, auditRow{cols[0].Row(i), cols[1].Row(i), cols[2].Row(i), cols[3].Row(i), cols[4].Row(i), cols[5].Row(i), cols[6].Row(i), cols[7].Row(i), cols[8].Row(i)})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAuditCompleteness: N admin requests and M analyst statements, each
// allowed, refused or failing, write exactly N+M audit rows, each with its
// actor (a credential id, never a secret), role, address, action, target
// and outcome; the admin API lists them newest first, filtered and paged.
func TestAuditCompleteness(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	f.ingest.Send(heartbeat.NewGenerator(9, heartbeat.Shape{Conns: 4}).Next(time.Now()))
	admin := f.issue(creds.Admin) // audited as the static admin
	analyst := f.issue(creds.Analyst)
	staticAdmin := "static:admin#" + hexSum(adminToken)
	type want struct{ actor, role, action, outcome, target string }
	wants := []want{{staticAdmin, "admin", "token.create", "allowed", admin.ID}, {staticAdmin, "admin", "token.create", "allowed", analyst.ID}}
	admin1 := func(method, path, body, action, outcome, target string, code int) {
		t.Helper()
		c, b, _ := f.raw(method, path, admin.Secret, []byte(body))
		if c != code {
			t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, c, b, code)
		}
		wants = append(wants, want{admin.ID, "admin", action, outcome, target})
	}
	var enroll issued
	admin1("GET", "/api/v1/admin/tokens", "", "token.list", "allowed", "", 200)
	code, body := f.post("/api/v1/admin/enrollment-secrets/create", admin.Secret, `{"name":"rack 4","expires_in":"24h"}`, &enroll)
	if code != 200 {
		t.Fatalf("enrollment secret: %d %s", code, body)
	}
	wants = append(wants, want{admin.ID, "admin", "enroll.create", "allowed", enroll.ID})
	admin1("POST", "/api/v1/admin/enrollment-secrets/revoke", `{"id":"`+enroll.ID+`"}`, "enroll.revoke", "allowed", enroll.ID, 200)
	admin1("POST", "/api/v1/admin/tokens/create", `{"role":"root"}`, "token.create", "refused", "", 400)
	admin1("POST", "/api/v1/admin/tokens/revoke", `{"id":"ffffffffffffffff"}`, "token.revoke", "refused", "ffffffffffffffff", 404)
	admin1("GET", "/api/v1/admin/sensor-keys", "", "sensor_key.list", "allowed", "", 200)
	// A refusal for want of the role is audited too.
	if c, b, _ := f.raw("GET", "/api/v1/admin/tokens", analyst.Secret, nil); c != 403 {
		t.Fatalf("analyst on admin: %d %s", c, b)
	}
	wants = append(wants, want{analyst.ID, "analyst", "token.list", "refused", ""})
	sql := func(stmt string, code int, outcome, target string) {
		t.Helper()
		if c, b := f.post("/api/v1/sql", analyst.Secret, stmt, nil); c != code {
			t.Fatalf("%q: %d %s, want %d", stmt, c, b, code)
		}
		wants = append(wants, want{analyst.ID, "analyst", "sql", outcome, target})
	}
	sql("SELECT count() AS n FROM tcp_connections", 200, "allowed", "rows=1")
	sql("SELECT number FROM numbers(5)", 200, "allowed", "rows=5")
	sql("DROP TABLE events", 400, "refused", "")
	sql("SELECT * FROM credentials", 403, "refused", "")
	sql("SELECT * FROM no_such_table", 400, "refused", "")
	n, m := 0, 0
	for _, w := range wants {
		if w.action == "sql" {
			m++
		} else {
			n++
		}
	}

	rows := auditRows(t, f.ingest.Store)
	if len(rows) != n+m {
		t.Fatalf("%d admin requests + %d analyst statements wrote %d audit rows, want %d:\n%v", n, m, len(rows), n+m, rows)
	}
	for i, w := range wants {
		r := rows[i]
		if r.Actor != w.actor || r.Role != w.role || r.Action != w.action || r.Outcome != w.outcome || (w.target != "" && r.Target != w.target) ||
			!strings.HasPrefix(r.RemoteAddr, "127.0.0.1:") || r.EventID == "" {
			t.Errorf("audit row %d = %+v, want %+v", i, r, w)
		}
		for _, secret := range []string{adminToken, admin.Secret, analyst.Secret, enroll.Secret} {
			if strings.Contains(fmt.Sprint(r), secret) {
				t.Errorf("audit row %d holds a secret: %+v", i, r)
			}
		}
		if w.action == "sql" && !strings.Contains(r.Detail, "SELECT") && !strings.Contains(r.Detail, "DROP") {
			t.Errorf("audit row %d lacks the statement: %q", i, r.Detail)
		}
	}
	t.Logf("%d admin requests + %d analyst statements -> %d audit rows, fields checked", n, m, len(rows))

	// The listing: newest first, by actor and action, in pages.
	var page struct {
		Entries []struct {
			Actor, Action, Outcome string
			EventID                string `json:"event_id"`
			Time                   time.Time
		} `json:"entries"`
		NextCursor *string `json:"next_cursor"`
	}
	if code := f.do("GET", "/api/v1/admin/audit?actor="+analyst.ID+"&action=sql&limit=2", adminToken, &page); code != 200 || len(page.Entries) != 2 || page.NextCursor == nil {
		t.Fatalf("audit page: %d %+v", code, page)
	}
	seen := map[string]bool{}
	for pages := 0; ; pages++ {
		for i, e := range page.Entries {
			if e.Actor != analyst.ID || e.Action != "sql" || seen[e.EventID] {
				t.Errorf("audit listing: %+v", e)
			}
			seen[e.EventID] = true
			if i > 0 && e.Time.After(page.Entries[i-1].Time) {
				t.Errorf("audit listing not newest first")
			}
		}
		if page.NextCursor == nil || pages > 10 {
			break
		}
		c := *page.NextCursor
		page.NextCursor = nil
		page.Entries = nil
		if code := f.do("GET", "/api/v1/admin/audit?actor="+analyst.ID+"&action=sql&limit=2&cursor="+c, adminToken, &page); code != 200 {
			t.Fatalf("next audit page: %d", code)
		}
	}
	if len(seen) != m {
		t.Errorf("the pages of the listing hold %d statements, want %d", len(seen), m)
	}
}

func hexSum(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:4])
}

// auditDown fails inserts into audit_log while down is set: the rest of
// the store works.
type auditDown struct {
	store.Store
	down atomic.Bool
}

func (s *auditDown) Insert(ctx context.Context, table string, cols proto.Input) error {
	if table == "audit_log" && s.down.Load() {
		return errors.New("audit_log: disk full (injected)")
	}
	return s.Store.Insert(ctx, table, cols)
}

// TestAuditFailsClosed: when the audit row cannot be written, an admin
// change is undone and answered 503 (a new token's secret is never shown,
// a revocation is reverted), and an analyst's result is withheld.
func TestAuditFailsClosed(t *testing.T) {
	f := startWith(t, options{analystSQL: true})
	st := &auditDown{Store: f.ingest.Store}
	f.url = serveOnWithSQL(t, st, f)
	tok := f.issue(creds.Viewer)

	st.down.Store(true)
	code, body := f.post("/api/v1/admin/tokens/create", adminToken, `{"role":"admin"}`, nil)
	if code != 503 || strings.Contains(body, "nvt_") {
		t.Fatalf("create without audit: %d %s, want 503 without a secret", code, body)
	}
	if code, body := f.post("/api/v1/admin/tokens/revoke", adminToken, `{"id":"`+tok.ID+`"}`, nil); code != 503 {
		t.Fatalf("revoke without audit: %d %s, want 503", code, body)
	}
	if code := f.do("GET", "/api/v2/network/connections", tok.Secret, nil); code != 200 {
		t.Fatalf("the token whose revocation was not audited: %d, want it still working (reverted)", code)
	}
	if code, body := f.post("/api/v1/sql", analystToken, "SELECT 'a result' AS r", nil); code != 503 || strings.Contains(body, "a result") {
		t.Fatalf("SQL without audit: %d %s, want 503 and no result", code, body)
	}
	if code := f.do("GET", "/api/v1/admin/tokens", adminToken, nil); code != 503 {
		t.Fatalf("listing without audit: %d, want 503", code)
	}
	st.down.Store(false)

	var list struct{ Tokens []issued }
	if code := f.do("GET", "/api/v1/admin/tokens", adminToken, &list); code != 200 {
		t.Fatal(code)
	}
	active := 0
	for _, c := range list.Tokens {
		if c.State == "active" {
			active++
		}
	}
	if len(list.Tokens) != 2 || active != 1 {
		t.Fatalf("tokens after the unaudited attempts: %+v, want the viewer token active and the unaudited admin token revoked", list.Tokens)
	}
	if rows := auditRows(t, f.ingest.Store); len(rows) != 2 {
		t.Fatalf("audit rows: %d, want 2 (the create, and this listing)", len(rows))
	}
}

// serveOnWithSQL serves a replica over st with analyst SQL (unguarded by a
// read-only store: the test's statements only read).
func serveOnWithSQL(t *testing.T, st store.Store, f *fixture) string {
	t.Helper()
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		AdminTokens: auth.TokenFlags{List: adminToken}, MaxListRows: 1000, Timeout: 30 * time.Second}
	srv, err := query.New(cfg, st, query.AnalystSQL(f.ingest.Store), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return querytest.Serve(t, srv)
}

// TestAdminInputs: every malformed admin request is a 400 (or 404) that
// says what is wrong, and changes nothing.
func TestAdminInputs(t *testing.T) {
	f := start(t)
	key := sensorKey(t, f)
	for _, c := range []struct {
		path, body string
		code       int
		says       string
	}{
		{"/api/v1/admin/tokens/create", ``, 400, "takes a JSON object"},
		{"/api/v1/admin/tokens/create", `{"role":`, 400, "not the JSON object"},
		{"/api/v1/admin/tokens/create", `{"role":"root"}`, 400, `"root" is not a role: use viewer, analyst, admin`},
		{"/api/v1/admin/tokens/create", `{"role":""}`, 400, "is not a role"},
		{"/api/v1/admin/tokens/create", `{"role":"viewer","secret":"mine"}`, 400, `unknown field "secret"`},
		{"/api/v1/admin/tokens/create", `{"role":"viewer"} {"role":"admin"}`, 400, "more than one JSON value"},
		{"/api/v1/admin/tokens/create", `{"role":"viewer","name":"` + strings.Repeat("n", 201) + `"}`, 400, "at most 200"},
		{"/api/v1/admin/tokens/create", `{"role":"viewer","name":"a\u0007b"}`, 400, "control characters"},
		{"/api/v1/admin/tokens/create", `{"role":"viewer","name":"` + strings.Repeat("n", 17<<10) + `"}`, 400, "more than the 16384"},
		{"/api/v1/admin/tokens/revoke", `{"id":"static:admin#0123abcd"}`, 400, "is a static token"},
		{"/api/v1/admin/tokens/revoke", `{"id":"XYZ"}`, 400, "is not a credential id"},
		{"/api/v1/admin/tokens/revoke", `{"id":"0123456789ABCDEF"}`, 400, "is not a credential id"},
		{"/api/v1/admin/tokens/revoke", `{"id":"0123456789abcdef"}`, 404, "no API token has the id"},
		{"/api/v1/admin/tokens/revoke", `{"id":"` + key + `"}`, 404, "no API token has the id"},
		{"/api/v1/admin/tokens/revoke", `{"id":"0123456789abcdef","reenroll":true}`, 400, "only sensor keys take it"},
		{"/api/v1/admin/sensor-keys/revoke", `{"id":"` + key + `"}`, 400, "reenroll: required"},
		{"/api/v1/admin/enrollment-secrets/create", `{"expires_in":"-1h"}`, 400, "expires_in"},
		{"/api/v1/admin/enrollment-secrets/create", `{"expires_in":"soon"}`, 400, "expires_in"},
		{"/api/v1/admin/enrollment-secrets/create", `{"expires_at":"2001-01-01T00:00:00Z"}`, 400, "expires_at"},
		{"/api/v1/admin/enrollment-secrets/create", `{"expires_in":"1h","expires_at":"2099-01-01T00:00:00Z"}`, 400, "exclude each other"},
	} {
		var e struct{ Error string }
		code, body := f.post(c.path, adminToken, c.body, &e)
		if code != c.code || !strings.Contains(e.Error, c.says) {
			t.Errorf("POST %s %.80s: %d %s, want %d saying %q", c.path, c.body, code, body, c.code, c.says)
		}
	}
	var list struct{ Tokens []issued }
	if f.do("GET", "/api/v1/admin/tokens", adminToken, &list); len(list.Tokens) != 0 {
		t.Errorf("refused requests made tokens: %+v", list.Tokens)
	}
	// Sensor keys: rotation lets the sensor enroll again, a block does not.
	var keys struct {
		Sensors []struct {
			SensorID string `json:"sensor_id"`
			State    string
			Keys     []issued
		}
	}
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"`+key+`","reenroll":true}`, nil); code != 200 {
		t.Fatalf("rotate: %d %s", code, body)
	}
	if f.do("GET", "/api/v1/admin/sensor-keys", adminToken, &keys); len(keys.Sensors) != 1 || keys.Sensors[0].State != "may_reenroll" {
		t.Fatalf("after a rotation: %+v", keys)
	}
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"`+key+`","reenroll":false}`, nil); code != 200 {
		t.Fatalf("block: %d %s", code, body)
	}
	if f.do("GET", "/api/v1/admin/sensor-keys?sensor_id="+keys.Sensors[0].SensorID, adminToken, &keys); len(keys.Sensors) != 1 || keys.Sensors[0].State != "blocked" {
		t.Fatalf("after a block: %+v", keys)
	}
}

// sensorKey enrolls a sensor in f's credentials table, as ingest does.
func sensorKey(t *testing.T, f *fixture) string {
	t.Helper()
	c, _, err := creds.NewStore(f.ingest.Store, time.Second).Enroll(context.Background(), uuid.New(), "host-1", "test")
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// TestTLS serves the API over real TLS on loopback: a client trusting the
// CA gets answers, plain HTTP and an untrusting client get none, and a
// service configured with neither TLS nor plain HTTP refuses to start.
func TestTLS(t *testing.T) {
	f := start(t)
	ca := tlsconftest.CA(t, "netview test CA")
	pair := tlsconftest.Server(t, ca, "query")
	cfg := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, MaxListRows: 1000, Timeout: 30 * time.Second,
		TLS: tlsconf.Server{CertFile: pair.CertFile, KeyFile: pair.KeyFile}}
	srv, err := query.New(cfg, f.ingest.Store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := cfg.TLS.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := srv.HTTPServer()
	hs.Logger = stdlog.New(io.Discard, "", 0) // the refused handshakes below
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Shutdown() })
	addr := ln.Addr().String()

	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(c *http.Client, u string) (int, *tls.ConnectionState, error) {
		req, _ := http.NewRequest("GET", u, nil)
		req.Header.Set("Authorization", "Bearer "+viewerToken)
		resp, err := c.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp.TLS, nil
	}
	code, state, err := get(trusting, "https://"+addr+"/api/v2/network/connections")
	if err != nil || code != 200 || state == nil || state.Version < tls.VersionTLS12 {
		t.Fatalf("over TLS: %d %v %v", code, state, err)
	}
	t.Logf("over TLS: 200, %s", tls.VersionName(state.Version))
	if code, _, err := get(http.DefaultClient, "https://"+addr+"/api/v2/network/connections"); err == nil {
		t.Errorf("a client not trusting the CA got %d", code)
	}
	if code, _, err := get(http.DefaultClient, "http://"+addr+"/api/v2/network/connections"); err == nil && code == 200 {
		t.Errorf("plain HTTP to the TLS port answered 200")
	}

	// The flags: neither TLS nor plain HTTP is refused with what to set.
	var qc query.Config
	fs := flag.NewFlagSet("q", flag.ContinueOnError)
	qc.RegisterFlags(fs)
	fs.Parse(nil)
	if err := qc.TLS.Validate(); err == nil || !strings.Contains(err.Error(), "--query.tls-cert") || !strings.Contains(err.Error(), "--query.plain-http") {
		t.Errorf("no TLS and no plain HTTP: %v", err)
	}
	fs.Parse([]string{"--query.plain-http"})
	if err := qc.TLS.Validate(); err != nil {
		t.Errorf("--query.plain-http: %v", err)
	}
}
