package creds_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

func migrated(t *testing.T) store.Store {
	t.Helper()
	b := storetest.Embedded(t)
	if _, err := schema.Migrate(context.Background(), b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	return b.Store
}

func TestIsID(t *testing.T) {
	for _, ok := range []string{"0123456789abcdef", "901ba3d4d089fd4c"} {
		if !creds.IsID(ok) {
			t.Errorf("IsID(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "901BA3D4D089FD4C", "901ba3d4d089fD4c", "0123456789abcde", "0123456789abcdef0", "0123456789abcdeg", " 123456789abcdef"} {
		if creds.IsID(bad) {
			t.Errorf("IsID(%q) = true", bad)
		}
	}
	// A secret names its id in the one spelling, or names nothing.
	if _, _, ok := creds.Parse("nvs_901BA3D4D089FD4C_" + strings.Repeat("x", 43)); ok {
		t.Error("Parse accepted an upper-case key id")
	}
}

// A block of a key is final: a rotation made with a copy of the key from
// before the block (another node's cache) is refused, a later version that
// is not a block does not replace it, and the sensor may not enroll again.
func TestBlockWinsOverStaleRotation(t *testing.T) {
	st := migrated(t)
	ctx := context.Background()
	node, admin := creds.NewStore(st, time.Hour), creds.NewStore(st, time.Hour)
	sensor := uuid.New()
	key, _, err := node.Enroll(ctx, sensor, "h", "enroll:static")
	if err != nil {
		t.Fatal(err)
	}
	stale := key // what the node's copy holds
	if _, err := admin.Revoke(ctx, key.ID, "token:admin", false); err != nil {
		t.Fatal(err)
	}
	next, nextSecret, _ := creds.New(creds.Sensor)
	if _, err := node.Rotate(ctx, stale, next.ID, next.Hash); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("rotation of a blocked key with a stale copy: %v, want ErrBlocked", err)
	}
	fresh := creds.NewStore(st, time.Hour)
	if _, err := fresh.Check(ctx, nextSecret, creds.Sensor); err == nil {
		t.Fatal("the key of a refused rotation works")
	}
	// A write from before the block, landing after it with a higher
	// version (a rotation that raced it), does not undo it.
	raced := stale
	raced.RevokedAt, raced.RevokedBy, raced.Reenroll = time.Now().UTC().Truncate(time.Millisecond), "rotate:"+next.ID, true
	if err := node.Put(ctx, raced); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Revoke(ctx, key.ID, "token:other", true); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("revoke with reenroll of a blocked key: %v, want ErrBlocked", err)
	}
	for name, s := range map[string]*creds.Store{"fresh": creds.NewStore(st, time.Hour), "writer": node} {
		got, err := s.Get(ctx, key.ID)
		if err != nil || !got.Blocked() || got.RevokedBy != "token:admin" {
			t.Fatalf("%s store: key after later non-blocking versions = %+v, %v; want blocked by token:admin", name, got, err)
		}
	}
	other, _, _ := creds.New(creds.Sensor)
	if _, err := fresh.EnrollKey(ctx, sensor, "h", "enroll:static", other.ID, other.Hash); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("enroll after the block: %v, want ErrBlocked", err)
	}
}

// A rotation that got in before the block leaves a new key; blocking the
// old one blocks the new one too.
func TestBlockSweepsTheSensorsOtherKeys(t *testing.T) {
	st := migrated(t)
	ctx := context.Background()
	s := creds.NewStore(st, time.Hour)
	sensor := uuid.New()
	old, _, err := s.Enroll(ctx, sensor, "h", "enroll:static")
	if err != nil {
		t.Fatal(err)
	}
	next, nextSecret, _ := creds.New(creds.Sensor)
	if _, err := s.Rotate(ctx, old, next.ID, next.Hash); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.NewStore(st, time.Hour).Revoke(ctx, old.ID, "token:admin", false); err != nil {
		t.Fatal(err)
	}
	c, err := creds.NewStore(st, time.Hour).Check(ctx, nextSecret, creds.Sensor)
	if !errors.Is(err, creds.ErrRevoked) || !c.Blocked() {
		t.Fatalf("the rotated-to key after its predecessor was blocked = %+v, %v; want blocked", c, err)
	}
}

// Old versions stored key ids in upper case when a sensor proposed one:
// such a row is found by its lower-case id, and revoking it by that id
// works; its secret, naming the id in upper case, is refused.
func TestLegacyUpperCaseIDFolds(t *testing.T) {
	st := migrated(t)
	ctx := context.Background()
	sensor := uuid.New()
	secret := "nvs_901BA3D4D089FD4C_" + strings.Repeat("k", 43)
	legacy := creds.Credential{ID: "901BA3D4D089FD4C", Kind: creds.Sensor, SensorID: sensor, Name: "old", Hash: sha256.Sum256([]byte(secret)),
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), CreatedBy: "enroll:static"}
	if err := creds.NewStore(st, time.Hour).Put(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	s := creds.NewStore(st, time.Hour)
	if _, err := s.Check(ctx, secret, creds.Sensor); !errors.Is(err, creds.ErrUnknown) {
		t.Fatalf("secret naming an upper-case id: %v, want ErrUnknown", err)
	}
	got, err := s.Get(ctx, "901ba3d4d089fd4c")
	if err != nil || got.SensorID != sensor || got.ID != "901ba3d4d089fd4c" {
		t.Fatalf("legacy key by its lower-case id = %+v, %v", got, err)
	}
	if _, err := s.Revoke(ctx, "901ba3d4d089fd4c", "token:admin", false); err != nil {
		t.Fatal(err)
	}
	keys, err := creds.NewStore(st, time.Hour).SensorKeys(ctx, sensor)
	if err != nil || len(keys) != 1 || keys[0].ID != "901ba3d4d089fd4c" || !keys[0].Blocked() {
		t.Fatalf("sensor's keys after revoking the legacy key = %+v, %v; want the one key, blocked", keys, err)
	}
	if _, _, err := s.Enroll(ctx, sensor, "h", "enroll:static"); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("enroll after the legacy key was blocked: %v", err)
	}
	// Creation is strict: a new key in another spelling is refused.
	if _, err := s.EnrollKey(ctx, uuid.New(), "h", "enroll:static", "0123456789ABCDEF", legacy.Hash); err == nil {
		t.Fatal("enrolled a key with an upper-case id")
	}
}

// A blocked sensor id may not enroll or rotate, whatever it holds, and
// every key it had is blocked; the first block stands.
func TestBlockSensor(t *testing.T) {
	st := migrated(t)
	ctx := context.Background()
	s := creds.NewStore(st, time.Hour)
	sensor, bystander := uuid.New(), uuid.New()
	key, keySecret, err := s.Enroll(ctx, sensor, "h", "enroll:static")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Enroll(ctx, bystander, "h2", "enroll:static"); err != nil {
		t.Fatal(err)
	}
	b, keys, err := creds.NewStore(st, time.Hour).BlockSensor(ctx, sensor, "token:admin", "stolen host")
	if err != nil || b.BlockedBy != "token:admin" || len(keys) != 1 || !keys[0].Blocked() {
		t.Fatalf("block = %+v %+v, %v", b, keys, err)
	}
	if again, _, err := s.BlockSensor(ctx, sensor, "token:late", "again"); err != nil || again.BlockedBy != "token:admin" || again.Reason != "stolen host" {
		t.Fatalf("second block = %+v, %v; want the first to stand", again, err)
	}
	if _, err := creds.NewStore(st, time.Hour).Check(ctx, keySecret, creds.Sensor); !errors.Is(err, creds.ErrRevoked) {
		t.Fatalf("key of a blocked sensor: %v", err)
	}
	next, _, _ := creds.New(creds.Sensor)
	if _, err := s.Rotate(ctx, key, next.ID, next.Hash); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("rotate of a blocked sensor with a stale copy: %v", err)
	}
	if _, _, err := s.Enroll(ctx, sensor, "h", "enroll:e1"); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("enroll of a blocked sensor: %v", err)
	}
	never := uuid.New() // blocked before it ever enrolled
	if _, _, err := s.BlockSensor(ctx, never, "token:admin", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Enroll(ctx, never, "h", "enroll:e1"); !errors.Is(err, creds.ErrBlocked) {
		t.Fatalf("enroll of a sensor blocked before it enrolled: %v", err)
	}
	if keys, err := s.SensorKeys(ctx, bystander); err != nil || len(keys) != 1 || !keys[0].Active(time.Now()) {
		t.Fatalf("another sensor's keys = %+v, %v", keys, err)
	}
}
