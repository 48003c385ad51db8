package ingest_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/creds"
)

// A sensor that proposes its own key may send its enrollment twice (its
// answer was lost, or nginx resent it to the other node): the second is
// the same enrollment, not a conflict, and the key it holds works. Only a
// different key for an enrolled id is refused.
func TestEnrollWithOwnKeyIsIdempotent(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	sensor := uuid.New()
	c, key, err := creds.New(creds.Sensor)
	if err != nil {
		t.Fatal(err)
	}
	enroll := func(id, sum string) (int, string) {
		body, _ := json.Marshal(ingest.EnrollRequest{SensorID: sensor.String(), Hostname: "h", KeyID: id, KeySHA256: sum})
		return ingesttest.Send(t, "POST", n.url+"/v1/enroll", token, bytes.NewReader(body))
	}
	sum := hex.EncodeToString(c.Hash[:])
	for i := range 2 {
		code, msg := enroll(c.ID, sum)
		var a ingest.EnrollAnswer
		if code != 200 || json.Unmarshal([]byte(msg), &a) != nil || a.KeyID != c.ID || a.Key != "" {
			t.Fatalf("enrollment %d with the sensor's own key: %d %s", i+1, code, msg)
		}
	}
	other, _, _ := creds.New(creds.Sensor)
	if code, msg := enroll(other.ID, hex.EncodeToString(other.Hash[:])); code != 409 || reason(t, msg) != ingest.ReasonEnrolled {
		t.Fatalf("another key for the enrolled id: %d %s, want 409 enrolled", code, msg)
	}
	// A key id that names another credential is refused as taken.
	wrong := sha256.Sum256([]byte("not the key"))
	if code, msg := enroll(c.ID, hex.EncodeToString(wrong[:])); code != 409 || reason(t, msg) != ingest.ReasonTaken && reason(t, msg) != ingest.ReasonEnrolled {
		t.Fatalf("the enrolled key id with another hash: %d %s, want 409", code, msg)
	}
	for _, bad := range [][2]string{{"xyz", sum}, {c.ID, "00"}, {c.ID, ""}} {
		if code, msg := enroll(bad[0], bad[1]); code != 400 {
			t.Errorf("proposed key %q/%q: %d %s, want 400", bad[0], bad[1], code, msg)
		}
	}

	g := heartbeat.NewGenerator(75, heartbeat.Shape{Conns: 3})
	h := g.Next(time.Now())
	h.Sensor.SensorID = sensor
	body, _ := heartbeat.Encode(h)
	if code, msg, _ := n.post(body, map[string]string{"Authorization": "Bearer " + key}); code != 200 {
		t.Fatalf("heartbeat with the enrolled own key: %d %s", code, msg)
	}
}
