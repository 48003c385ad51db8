package ingest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/internal/creds"
)

// A block is final, whatever a node's copy of the credentials says: a
// rotation sent to a node whose copy predates the block (here an hour's
// refresh) is refused with 403, its key never works, and the block stands.
func TestCredsBlockWinsOverStaleRotation(t *testing.T) {
	cfg := keyedConfig()
	cfg.CredsRefresh = time.Hour
	n := startNode(t, cfg, nil)
	sensor := uuid.New()
	c, key, _ := creds.New(creds.Sensor)
	if a := enrollOwn(t, n, sensor.String(), c.ID, c.Hash); a.status != 200 {
		t.Fatalf("enroll: %d %s", a.status, a.body)
	}
	g := heartbeat.NewGenerator(77, heartbeat.Shape{Conns: 2})
	if code, msg, _ := n.post(beatFor(t, g, sensor), bearer(key)); code != 200 {
		t.Fatalf("heartbeat: %d %s", code, msg) // the node's copy now holds the key, active
	}
	ctx := context.Background()
	if _, err := creds.NewStore(n.store, time.Minute).Revoke(ctx, c.ID, "token:admin", false); err != nil {
		t.Fatal(err)
	}
	next, nextSecret, _ := creds.New(creds.Sensor)
	code, msg := rotate(t, n.url, key, next)
	if code != 403 || reason(t, msg) != ingest.ReasonBlocked {
		t.Fatalf("rotation of a blocked key on a node with a stale copy: %d %s, want 403 blocked", code, msg)
	}
	if code, msg, _ := n.post(beatFor(t, g, sensor), bearer(nextSecret)); code != 401 {
		t.Fatalf("heartbeat with the refused rotation's key: %d %s, want 401", code, msg)
	}
	got, err := creds.NewStore(n.store, time.Minute).Get(ctx, c.ID)
	if err != nil || got.RevokedAt.IsZero() || got.Reenroll || got.RevokedBy != "token:admin" {
		t.Fatalf("key after the refused rotation = %+v, %v; want blocked by token:admin", got, err)
	}
	other, _, _ := creds.New(creds.Sensor)
	if a := enrollOwn(t, n, sensor.String(), other.ID, other.Hash); a.status != 403 || reason(t, a.body) != ingest.ReasonBlocked {
		t.Fatalf("enroll after the block: %d %s, want 403 blocked", a.status, a.body)
	}
}
