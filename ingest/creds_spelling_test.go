package ingest_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store"
)

// enrollOwn asks n to enroll sensor (spelt as given) with a key it
// proposes, spelt as given, and returns the answer.
func enrollOwn(t *testing.T, n *node, sensor, keyID string, hash [32]byte) answer {
	t.Helper()
	body, _ := json.Marshal(ingest.EnrollRequest{SensorID: sensor, Hostname: "h", KeyID: keyID, KeySHA256: hex.EncodeToString(hash[:])})
	return call(t, "POST", n.url+"/v1/enroll", body, bearer(token))
}

// Key ids and sensor ids have one spelling at enrollment and rotation:
// lower-case hex, the sensor id in its 36-character form. Any other is a
// 400 naming the field, and a secret that names its id in upper case is
// refused like one that names nothing.
func TestCredsIDSpellingsAtEnrollAndRotate(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	sensor := uuid.New()
	c, key, _ := creds.New(creds.Sensor)

	upper := strings.ToUpper(c.ID)
	if a := enrollOwn(t, n, sensor.String(), upper, c.Hash); a.status != 400 || !strings.Contains(a.body, "key_id") {
		t.Fatalf("enroll with key_id %s: %d %s, want 400 naming key_id", upper, a.status, a.body)
	}
	for _, spelt := range []string{strings.ToUpper(sensor.String()), "{" + sensor.String() + "}", "urn:uuid:" + sensor.String(), strings.ReplaceAll(sensor.String(), "-", "")} {
		if a := enrollOwn(t, n, spelt, c.ID, c.Hash); a.status != 400 || !strings.Contains(a.body, "sensor_id") {
			t.Fatalf("enroll with sensor_id %s: %d %s, want 400 naming sensor_id", spelt, a.status, a.body)
		}
	}
	if a := enrollOwn(t, n, sensor.String(), c.ID, c.Hash); a.status != 200 {
		t.Fatalf("enroll in the canonical spelling: %d %s", a.status, a.body)
	}
	next, _, _ := creds.New(creds.Sensor)
	next.ID = strings.ToUpper(next.ID)
	if code, msg := rotate(t, n.url, key, next); code != 400 || !strings.Contains(msg, "key_id") {
		t.Fatalf("rotate to key_id %s: %d %s, want 400 naming key_id", next.ID, code, msg)
	}

	g := heartbeat.NewGenerator(76, heartbeat.Shape{Conns: 2})
	respelt := "nvs_" + upper + strings.TrimPrefix(key, "nvs_"+c.ID)
	if code, msg, _ := n.post(beatFor(t, g, sensor), bearer(respelt)); code != 401 {
		t.Fatalf("heartbeat with the key's id in upper case: %d %s, want 401", code, msg)
	}
	if code, msg, _ := n.post(beatFor(t, g, sensor), bearer(key)); code != 200 {
		t.Fatalf("heartbeat with the key: %d %s", code, msg)
	}
}

// A storage failure at enrollment is a 503 that says to retry and keeps
// the engine's error (table names, hosts, queries) to the log.
func TestCredsStorageFailureHidesEngineText(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	ctx := context.Background()
	if err := n.store.Exec(ctx, store.Query{SQL: "DROP TABLE credentials"}); err != nil {
		t.Fatal(err)
	}
	err := n.store.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM credentials"}, nil, func(int) error { return nil })
	if err == nil {
		t.Fatal("the engine read a dropped table")
	}
	c, _, _ := creds.New(creds.Sensor)
	a := enrollOwn(t, n, uuid.NewString(), c.ID, c.Hash)
	if a.status != 503 || reason(t, a.body) != ingest.ReasonUnavailable || !strings.Contains(a.body, "retry") {
		t.Fatalf("enroll with the credentials table gone: %d %s, want 503 unavailable saying to retry", a.status, a.body)
	}
	for _, leak := range []string{"credentials", "DB::Exception", "Code:", "UNKNOWN_TABLE", "exist"} {
		if strings.Contains(a.body, leak) {
			t.Errorf("answer %s has the engine's text %q (engine said: %v)", a.body, leak, err)
		}
	}
}
