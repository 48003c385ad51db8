package query_test

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/querytest"
)

// keyedFixture is a query service and an ingest node over one store where
// heartbeats need a sensor's own key (no shared static token).
func keyedFixture(t *testing.T) *fixture {
	t.Helper()
	be := storetest.Embedded(t)
	cfg := ingesttest.Config()
	cfg.SharedTokens = false
	n := ingesttest.Start(t, cfg, be.Store)
	qc := query.Config{Tokens: auth.TokenFlags{List: viewerToken}, AnalystTokens: auth.TokenFlags{List: analystToken},
		AdminTokens: auth.TokenFlags{List: adminToken}, MaxListRows: 1000, Timeout: 30 * time.Second, CredsTTL: 100 * time.Millisecond}
	srv, err := query.New(qc, n.Store, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, ingest: n, url: querytest.Serve(t, srv)}
}

// beatOf is a heartbeat of sensor, zstd-encoded.
func beatOf(t *testing.T, id uuid.UUID, seq uint64) []byte {
	t.Helper()
	b, err := heartbeat.Encode(beat(sensor(id.String(), "h"), seq, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// refusedSoon waits, at most the ingest node's refresh and a few seconds,
// for a heartbeat with key to be refused, and returns the refusal.
func (f *fixture) refusedSoon(key string, sensor uuid.UUID) (int, string) {
	f.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for seq := uint64(100); ; seq++ {
		code, msg, _ := f.ingest.Post(beatOf(f.t, sensor, seq), map[string]string{"Authorization": "Bearer " + key})
		if code != 200 || time.Now().After(deadline) {
			return code, msg
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type sensorState struct {
	Sensors []struct {
		SensorID string `json:"sensor_id"`
		State    string `json:"state"`
		Keys     []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Reenroll *bool  `json:"reenroll"`
		} `json:"keys"`
	} `json:"sensors"`
}

// An admin blocks a sensor id, typed in any form uuid.Parse takes: the
// answer and the audit log name it canonically, its key is blocked (its
// heartbeats are refused), and it may not enroll again, with the static
// secret or an issued one; other sensors are untouched.
func TestBlockSensorID(t *testing.T) {
	f := keyedFixture(t)
	sensor, bystander := uuid.New(), uuid.New()
	code, key, msg := f.ingest.Enroll(ingesttest.Token, sensor, "h")
	if code != 200 {
		t.Fatalf("enroll: %d %s", code, msg)
	}
	code, otherKey, msg := f.ingest.Enroll(ingesttest.Token, bystander, "h2")
	if code != 200 {
		t.Fatalf("enroll: %d %s", code, msg)
	}
	if code, msg, _ := f.ingest.Post(beatOf(t, sensor, 1), map[string]string{"Authorization": "Bearer " + key}); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, msg)
	}

	for _, bad := range []struct{ body, want string }{
		{`{"sensor_id":"not-a-uuid"}`, "is not a UUID"},
		{`{"sensor_id":""}`, "sensor_id: required"},
		{`{"sensor_id":"00000000-0000-0000-0000-000000000000"}`, "nil UUID"},
		{`{"sensor_id":"` + sensor.String() + `","reason":"a\u0007b"}`, "reason: must be UTF-8"},
		{`{"sensor_id":"` + sensor.String() + `","keys":[]}`, `unknown field`},
	} {
		if code, body := f.post("/api/v1/admin/sensors/block", adminToken, bad.body, nil); code != 400 || !strings.Contains(body, bad.want) {
			t.Fatalf("block %s: %d %s, want 400 %q", bad.body, code, body, bad.want)
		}
	}
	if code, body := f.post("/api/v1/admin/sensors/block", viewerToken, `{"sensor_id":"`+sensor.String()+`"}`, nil); code != 403 {
		t.Fatalf("block by a viewer: %d %s", code, body)
	}

	typed := "{" + strings.ToUpper(sensor.String()) + "}"
	var out struct {
		SensorID  string `json:"sensor_id"`
		State     string `json:"state"`
		BlockedBy string `json:"blocked_by"`
		Reason    string `json:"reason"`
		Keys      []struct{ ID, State string }
	}
	code, body := f.post("/api/v1/admin/sensors/block", adminToken, `{"sensor_id":"`+typed+`","reason":"host stolen"}`, &out)
	if code != 200 || out.SensorID != sensor.String() || out.State != "blocked" || out.Reason != "host stolen" || len(out.Keys) != 1 || out.Keys[0].State != "revoked" {
		t.Fatalf("block %s: %d %s", typed, code, body)
	}
	rows := auditRows(t, f.ingest.Store)
	last := rows[len(rows)-1]
	if last.Action != "sensor.block" || last.Target != sensor.String() || last.Outcome != "allowed" || !strings.Contains(last.Detail, "host stolen") {
		t.Fatalf("audit row of the block = %+v", last)
	}

	if code, msg := f.refusedSoon(key, sensor); code != 401 && code != 403 {
		t.Fatalf("heartbeat of the blocked sensor: %d %s, want it refused", code, msg)
	}
	if code, _, msg := f.ingest.Enroll(ingesttest.Token, sensor, "h"); code != 403 || !strings.Contains(msg, `"blocked"`) {
		t.Fatalf("enroll of the blocked sensor with the static secret: %d %s, want 403 blocked", code, msg)
	}
	var secret issued
	if code, body := f.post("/api/v1/admin/enrollment-secrets/create", adminToken, `{"name":"rack"}`, &secret); code != 200 {
		t.Fatalf("create enrollment secret: %d %s", code, body)
	}
	if code, _, msg := f.ingest.Enroll(secret.Secret, sensor, "h"); code != 403 {
		t.Fatalf("enroll of the blocked sensor with an issued secret: %d %s, want 403", code, msg)
	}
	if code, msg, _ := f.ingest.Post(beatOf(t, bystander, 1), map[string]string{"Authorization": "Bearer " + otherKey}); code != 200 {
		t.Fatalf("another sensor's heartbeat: %d %s", code, msg)
	}

	// The listing's sensor_id filter takes the same forms, made canonical.
	for _, form := range []string{typed, "urn:uuid:" + sensor.String(), strings.ReplaceAll(sensor.String(), "-", ""), strings.ToUpper(sensor.String())} {
		var list sensorState
		if code := f.do("GET", "/api/v1/admin/sensor-keys?sensor_id="+strings.NewReplacer("{", "%7B", "}", "%7D").Replace(form), adminToken, &list); code != 200 ||
			len(list.Sensors) != 1 || list.Sensors[0].SensorID != sensor.String() || list.Sensors[0].State != "blocked" {
			t.Fatalf("sensor-keys?sensor_id=%s: %d %+v", form, code, list)
		}
	}
}

// The admin revokes a key by its id in the one spelling every listing
// shows; another spelling is a 400 that names it. A key an old version
// stored with an upper-case id is listed and revoked by the lower-case id,
// and a key's heartbeats are refused once it is revoked.
func TestBlockRevokeKeyIDSpellings(t *testing.T) {
	f := keyedFixture(t)
	ctx := context.Background()
	sensor := uuid.New()
	code, key, msg := f.ingest.Enroll(ingesttest.Token, sensor, "h")
	if code != 200 {
		t.Fatalf("enroll: %d %s", code, msg)
	}
	_, id, _ := creds.Parse(key)
	up := strings.ToUpper(id)
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"`+up+`","reenroll":false}`, nil); code != 400 || !strings.Contains(body, `write it in lower case, \"`+id+`\"`) {
		t.Fatalf("revoke by %s: %d %s, want 400 naming %s", up, code, body, id)
	}
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"`+id+`","reenroll":false}`, nil); code != 200 {
		t.Fatalf("revoke by %s: %d %s", id, code, body)
	}
	if code, msg := f.refusedSoon(key, sensor); code != 401 && code != 403 {
		t.Fatalf("heartbeat with the revoked key: %d %s", code, msg)
	}
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"`+id+`","reenroll":true}`, nil); code != 409 {
		t.Fatalf("un-blocking by a revocation with reenroll: %d %s, want 409", code, body)
	}

	legacySensor := uuid.New()
	legacySecret := "nvs_901BA3D4D089FD4C_" + strings.Repeat("q", 43)
	legacy := creds.Credential{ID: "901BA3D4D089FD4C", Kind: creds.Sensor, SensorID: legacySensor, Name: "old", Hash: sha256.Sum256([]byte(legacySecret)),
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), CreatedBy: "enroll:static"}
	if err := creds.NewStore(f.ingest.Store, time.Minute).Put(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	var list sensorState
	if code := f.do("GET", "/api/v1/admin/sensor-keys?sensor_id="+legacySensor.String(), adminToken, &list); code != 200 ||
		len(list.Sensors) != 1 || len(list.Sensors[0].Keys) != 1 || list.Sensors[0].Keys[0].ID != "901ba3d4d089fd4c" {
		t.Fatalf("legacy key listed as %+v (%d), want its lower-case id", list, code)
	}
	if code, body := f.post("/api/v1/admin/sensor-keys/revoke", adminToken, `{"id":"901ba3d4d089fd4c","reenroll":false}`, nil); code != 200 {
		t.Fatalf("revoke of the legacy key by its lower-case id: %d %s", code, body)
	}
	if code := f.do("GET", "/api/v1/admin/sensor-keys?sensor_id="+legacySensor.String(), adminToken, &list); code != 200 ||
		len(list.Sensors) != 1 || list.Sensors[0].State != "blocked" || len(list.Sensors[0].Keys) != 1 {
		t.Fatalf("legacy sensor after the revocation = %+v (%d), want one key, blocked", list, code)
	}
	if code, msg, _ := f.ingest.Post(beatOf(t, legacySensor, 1), map[string]string{"Authorization": "Bearer " + legacySecret}); code != 401 {
		t.Fatalf("heartbeat with the legacy key: %d %s, want 401", code, msg)
	}
}

// enrolledSensor enrolls a new sensor in f's credentials table, as ingest
// does, and returns its id (for a block that has a key to revoke).
func enrolledSensor(t *testing.T, f *fixture) string {
	t.Helper()
	id := uuid.New()
	if _, _, err := creds.NewStore(f.ingest.Store, time.Second).Enroll(context.Background(), id, "host-b", "test"); err != nil {
		t.Fatal(err)
	}
	return id.String()
}
