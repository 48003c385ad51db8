package creds_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/sql/schema"
)

func TestParse(t *testing.T) {
	_, secret, err := creds.New(creds.Sensor)
	if err != nil {
		t.Fatal(err)
	}
	kind, id, ok := creds.Parse(secret)
	if !ok || kind != creds.Sensor || len(id) != 16 || !strings.HasPrefix(secret, "nvs_"+id+"_") {
		t.Fatalf("Parse(%q) = %q %q %v", secret, kind, id, ok)
	}
	for _, bad := range []string{"", "nv", "nvx_0123456789abcdef_x", "nvs_0123456789abcde_x", "nvs_0123456789abcdeg_x",
		"nvs_0123456789abcdef_", "nvs-0123456789abcdef_x", "Bearer nvs_0123456789abcdef_x", "token"} {
		if _, _, ok := creds.Parse(bad); ok {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestAllows(t *testing.T) {
	cases := []struct {
		role, need string
		want       bool
	}{
		{creds.Viewer, creds.Viewer, true}, {creds.Viewer, creds.Analyst, false}, {creds.Analyst, creds.Viewer, true},
		{creds.Analyst, creds.Admin, false}, {creds.Admin, creds.Analyst, true}, {"root", creds.Viewer, false}, {"", creds.Viewer, false},
	}
	for _, c := range cases {
		if got := creds.Allows(c.role, c.need); got != c.want {
			t.Errorf("Allows(%q, %q) = %v", c.role, c.need, got)
		}
	}
}

// TestLifecycle issues, checks, enrolls and revokes on the real engine, in
// process and over the native protocol, with two stores standing for two
// nodes: what one node does, the other sees.
func TestLifecycle(t *testing.T) {
	for _, b := range storetest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			if _, err := schema.Migrate(ctx, b.Store, schema.Options{}); err != nil {
				t.Fatal(err)
			}
			a, other := creds.NewStore(b.Store, time.Minute), creds.NewStore(b.Store, 50*time.Millisecond)

			tok, secret, err := creds.New(creds.Token)
			if err != nil {
				t.Fatal(err)
			}
			tok.Role, tok.Name, tok.CreatedBy = creds.Analyst, "alice's laptop", "bootstrap"
			if err := a.Put(ctx, tok); err != nil {
				t.Fatal(err)
			}
			// The other node has never seen it: a miss reloads.
			got, err := other.Check(ctx, secret, creds.Token)
			if err != nil || got.Role != creds.Analyst || got.Name != "alice's laptop" || got.ID != tok.ID {
				t.Fatalf("check on the other node = %+v, %v", got, err)
			}
			if _, err := other.Check(ctx, secret, creds.Sensor); !errors.Is(err, creds.ErrUnknown) {
				t.Fatalf("token accepted as a sensor key: %v", err)
			}
			forged := secret[:len(secret)-2] + "AA"
			if _, err := other.Check(ctx, forged, creds.Token); !errors.Is(err, creds.ErrUnknown) {
				t.Fatalf("forged secret: %v", err)
			}

			// Enrollment binds a key to one sensor, once.
			sensor := uuid.New()
			key, keySecret, err := a.Enroll(ctx, sensor, "host-1", "enroll:e1")
			if err != nil {
				t.Fatal(err)
			}
			if c, err := other.Check(ctx, keySecret, creds.Sensor); err != nil || c.SensorID != sensor {
				t.Fatalf("sensor key check = %+v, %v", c, err)
			}
			if _, _, err := other.Enroll(ctx, sensor, "impostor", "enroll:e1"); !errors.Is(err, creds.ErrEnrolled) {
				t.Fatalf("second enrollment of %s: %v", sensor, err)
			}

			// Revoked with leave to re-enroll (a rotation): the old key is
			// refused on the other node within its copy's age, and the sensor
			// may enroll again.
			if _, err := a.Revoke(ctx, key.ID, "token:"+tok.ID, true); err != nil {
				t.Fatal(err)
			}
			time.Sleep(60 * time.Millisecond)
			if _, err := other.Check(ctx, keySecret, creds.Sensor); !errors.Is(err, creds.ErrRevoked) {
				t.Fatalf("revoked key on the other node: %v", err)
			}
			key2, key2Secret, err := other.Enroll(ctx, sensor, "host-1", "enroll:e1")
			if err != nil {
				t.Fatalf("re-enroll after rotation: %v", err)
			}
			if _, err := a.Check(ctx, key2Secret, creds.Sensor); err != nil {
				t.Fatalf("new key on the first node: %v", err)
			}

			// Revoked without leave: the sensor is shut out.
			if _, err := a.Revoke(ctx, key2.ID, "token:"+tok.ID, false); err != nil {
				t.Fatal(err)
			}
			if _, _, err := other.Enroll(ctx, sensor, "host-1", "enroll:e1"); !errors.Is(err, creds.ErrBlocked) {
				t.Fatalf("enroll after a block: %v", err)
			}

			// A fresh node reads the same state from storage.
			fresh := creds.NewStore(b.Store, time.Minute)
			keys, err := fresh.SensorKeys(ctx, sensor)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != 2 || keys[0].ID != key.ID || !keys[0].Reenroll || keys[1].ID != key2.ID || keys[1].Reenroll || keys[1].RevokedBy != "token:"+tok.ID {
				t.Fatalf("keys from storage = %+v", keys)
			}
			list, err := fresh.List(ctx, creds.Token)
			if err != nil || len(list) != 1 || list[0].Hash != tok.Hash || !list[0].CreatedAt.Equal(tok.CreatedAt) {
				t.Fatalf("tokens from storage = %+v, %v", list, err)
			}
		})
	}
}

// TestExpiry: an expired credential is refused like a revoked one.
func TestExpiry(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	s := creds.NewStore(b.Store, time.Minute)
	c, secret, _ := creds.New(creds.Enroll)
	c.ExpiresAt = time.Now().Add(-time.Second).UTC().Truncate(time.Millisecond)
	if err := s.Put(ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := creds.NewStore(b.Store, time.Minute).Check(ctx, secret, creds.Enroll); !errors.Is(err, creds.ErrRevoked) {
		t.Fatalf("expired enrollment secret: %v", err)
	}
}

// TestRotate: a sensor replaces its key with one it made; a retry of the
// same rotation (its answer lost) succeeds again, and a proposed id that
// names another credential is refused.
func TestRotate(t *testing.T) {
	b := storetest.Embedded(t)
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	s := creds.NewStore(b.Store, time.Minute)
	sensor := uuid.New()
	old, oldSecret, err := s.Enroll(ctx, sensor, "host-1", "enroll:static")
	if err != nil {
		t.Fatal(err)
	}
	next, nextSecret, _ := creds.New(creds.Sensor)
	for try := range 2 {
		got, err := s.Rotate(ctx, old, next.ID, next.Hash)
		if err != nil || got.SensorID != sensor || got.CreatedBy != "rotate:"+old.ID {
			t.Fatalf("rotate (try %d) = %+v, %v", try, got, err)
		}
	}
	other := creds.NewStore(b.Store, time.Minute)
	if c, err := other.Check(ctx, nextSecret, creds.Sensor); err != nil || c.SensorID != sensor {
		t.Fatalf("new key = %+v, %v", c, err)
	}
	c, err := other.Check(ctx, oldSecret, creds.Sensor)
	if !errors.Is(err, creds.ErrRevoked) || !c.Reenroll || c.RevokedBy != "rotate:"+next.ID {
		t.Fatalf("old key after rotation = %+v, %v", c, err)
	}
	// Another sensor proposing the same id, or this one with another hash.
	intruder, _, err := s.Enroll(ctx, uuid.New(), "host-2", "enroll:static")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx, intruder, next.ID, next.Hash); !errors.Is(err, creds.ErrTaken) {
		t.Fatalf("rotation onto another sensor's key id: %v", err)
	}
	if _, err := s.Rotate(ctx, intruder, old.ID, [32]byte{1}); !errors.Is(err, creds.ErrTaken) {
		t.Fatalf("rotation onto a revoked key's id: %v", err)
	}
	if _, err := s.Rotate(ctx, intruder, "not-hex-at-all!!", next.Hash); err == nil {
		t.Fatal("rotation to a malformed id accepted")
	}
}
