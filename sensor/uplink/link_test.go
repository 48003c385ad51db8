package uplink

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
	"github.com/netview/netview/sensor/spool"
)

// keyedNode is a real ingest node on which only sensor keys post
// heartbeats; ingesttest.Token is its enrollment secret.
func keyedNode(t *testing.T, tls *tlsconf.Server) *ingesttest.Node {
	t.Helper()
	cfg := ingesttest.Config()
	cfg.SharedTokens = false
	if tls != nil {
		cfg.TLS = *tls
	}
	return ingesttest.Start(t, cfg, nil)
}

// sensorRig is one sensor's spool and client, delivering to a node.
type sensorRig struct {
	id     uuid.UUID
	dir    string
	spool  *spool.Spool
	client *Client
	gen    *heartbeat.Generator
	seq    uint64
}

func newRig(t *testing.T, n *ingesttest.Node, tc tlsconf.Client) *sensorRig {
	t.Helper()
	dir := t.TempDir()
	l := Link{URL: n.URL + "/v1/heartbeat", EnrollSecret: ingesttest.Token, StateDir: dir, TLS: tc}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	r := &sensorRig{id: uuid.New(), dir: dir, gen: heartbeat.NewGenerator(uint64(time.Now().UnixNano()), small)}
	c, err := l.Client(r.id, "host-"+r.id.String()[:8], time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MinBackoff, c.AuthBackoff = 20*time.Millisecond, 200*time.Millisecond
	r.client = c
	if r.spool, err = spool.Open(filepath.Join(dir, "spool"), 64<<20); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.spool.Close() })
	return r
}

// delivered starts a keyed node without TLS and a rig that has spooled k
// heartbeats and delivered them to it.
func delivered(t *testing.T, k int) (*ingesttest.Node, *sensorRig) {
	t.Helper()
	n := keyedNode(t, nil)
	r := newRig(t, n, tlsconf.Client{})
	r.put(t, k)
	r.deliver(t, 20*time.Second)
	return n, r
}

// put spools k heartbeats.
func (r *sensorRig) put(t *testing.T, k int) {
	t.Helper()
	for range k {
		h := r.gen.Next(time.Now())
		r.seq++
		h.Seq, h.Sensor.SensorID = r.seq, r.id
		if err := r.spool.Put(h); err != nil {
			t.Fatal(err)
		}
	}
}

// deliver runs a Sender until the spool is empty or d passes.
func (r *sensorRig) deliver(t *testing.T, d time.Duration) *Sender {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s := &Sender{Spool: r.spool, Client: r.client}
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	for r.spool.Len() > 0 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	return s
}

// revoke revokes the key the rig holds now, by who, letting it
// enroll again when reenroll is set, and waits until the node has seen it.
// It returns the key's id.
func (r *sensorRig) revoke(t *testing.T, n *ingesttest.Node, by string, reenroll bool) string {
	t.Helper()
	key, err := r.client.Keys.Key(context.Background(), r.client.client())
	if err != nil {
		t.Fatal(err)
	}
	_, id, _ := creds.Parse(key)
	if _, err := creds.NewStore(n.Store, time.Minute).Revoke(context.Background(), id, by, reenroll); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the node's copy is at most 100 ms old
	return id
}

// stored counts the sensor's heartbeats in storage, each seq once.
func inStorage(t *testing.T, st store.Store, id uuid.UUID) (rows, distinct uint64) {
	t.Helper()
	p := store.P("s", id.String())
	return ingesttest.Count(t, st, "SELECT count() AS n FROM heartbeats FINAL WHERE sensor_id = {s:UUID}", p),
		ingesttest.Count(t, st, "SELECT uniqExact(seq) AS n FROM heartbeats WHERE sensor_id = {s:UUID}", p)
}

// A sensor with an enrollment secret enrolls once, keeps its key in its
// state folder (0600), and a restart reuses it.
func TestEnrollOnceAndKeepTheKey(t *testing.T) {
	n, r := delivered(t, 3)
	if rows, _ := inStorage(t, n.Store, r.id); rows != 3 || r.spool.Len() != 0 {
		t.Fatalf("stored %d heartbeats, %d left in the spool; want 3 and 0", rows, r.spool.Len())
	}
	file := filepath.Join(r.dir, KeyFile)
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %s: %v %v, want mode 0600", file, fi.Mode(), err)
	}
	var k storedKey
	b, _ := os.ReadFile(file)
	if err := json.Unmarshal(b, &k); err != nil || k.SensorID != r.id || !strings.HasPrefix(k.Key, "nvs_"+k.KeyID+"_") {
		t.Fatalf("key file %s: %v", b, err)
	}
	// A new client (a restart) uses the saved key: enrolling again would get 409.
	l := Link{URL: n.URL + "/v1/heartbeat", EnrollSecret: ingesttest.Token, StateDir: r.dir}
	c, _ := l.Client(r.id, "h", time.Second, nil)
	r.client = c
	r.put(t, 1)
	if err := func() error { _, body, _, _ := r.spool.Oldest(); return c.Send(context.Background(), body) }(); err != nil {
		t.Fatalf("send after a restart: %v", err)
	}
}

// A revoked key (leave to re-enroll) gets 401 revoked; the sensor enrolls
// again and delivers its whole spool, nothing lost or doubled.
func TestRevokedKeyReenrollsAndDeliversTheSpool(t *testing.T) {
	n, r := delivered(t, 5)
	id := r.revoke(t, n, "test", true)
	r.put(t, 20)
	s := r.deliver(t, 30*time.Second)
	rows, distinct := inStorage(t, n.Store, r.id)
	t.Logf("revoked after 5 heartbeats, 20 more spooled: %d stored (%d distinct seqs), %d left in the spool, %d retries, key %s -> %s",
		rows, distinct, r.spool.Len(), s.Stats().Retries, id, r.client.Keys.cur.KeyID)
	if rows != 25 || distinct != 25 || r.spool.Len() != 0 || s.Stats().Rejected != 0 {
		t.Fatalf("stored %d (%d distinct), spool %d, rejected %d; want 25, 25, 0, 0", rows, distinct, r.spool.Len(), s.Stats().Rejected)
	}
	if r.client.Keys.cur.KeyID == id {
		t.Fatal("still the revoked key")
	}
}

// A sensor shut out (revoked without leave) keeps its spool: every
// heartbeat stays, none is rejected, and the error says it is blocked.
func TestBlockedSensorKeepsItsSpool(t *testing.T) {
	n, r := delivered(t, 1)
	id := r.revoke(t, n, "admin", false)
	r.put(t, 10)
	s := r.deliver(t, 2*time.Second)
	st := s.Stats()
	t.Logf("blocked sensor: %d heartbeats kept in the spool after %d attempts, %d rejected; last error: %s", r.spool.Len(), st.Retries, st.Rejected, st.LastError)
	if r.spool.Len() != 10 || st.Rejected != 0 || !strings.Contains(st.LastError, "may not enroll") {
		t.Fatalf("spool %d, rejected %d, last error %q; want 10 kept, none rejected, a blocked error", r.spool.Len(), st.Rejected, st.LastError)
	}
	if rows, _ := inStorage(t, n.Store, r.id); rows != 1 {
		t.Fatalf("stored %d heartbeats, want only the one before the block", rows)
	}
	// On disk: at most the key proposed for the next enrollment, never the
	// revoked one.
	if b, err := os.ReadFile(filepath.Join(r.dir, KeyFile)); err == nil {
		var sk storedKey
		if err := json.Unmarshal(b, &sk); err != nil || sk.Key != "" || sk.Next == "" || strings.Contains(string(b), id) {
			t.Fatalf("key file after the block: %s (%v); want only a proposed key", b, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
}

// Heartbeats spooled before a key rotation are delivered after it, with the
// new key; the old key is refused from then on.
func TestRotationKeepsTheSpool(t *testing.T) {
	n, r := delivered(t, 1)
	old, _ := r.client.Keys.Key(context.Background(), r.client.client())
	r.put(t, 4)
	if err := r.client.Keys.Rotate(context.Background(), r.client.client()); err != nil {
		t.Fatal(err)
	}
	r.deliver(t, 20*time.Second)
	if rows, distinct := inStorage(t, n.Store, r.id); rows != 5 || distinct != 5 || r.spool.Len() != 0 {
		t.Fatalf("stored %d (%d distinct), spool %d; want 5, 5, 0", rows, distinct, r.spool.Len())
	}
	now, _ := r.client.Keys.Key(context.Background(), r.client.client())
	if now == old {
		t.Fatal("key unchanged by rotation")
	}
	time.Sleep(150 * time.Millisecond)
	h := r.gen.Next(time.Now())
	h.Sensor.SensorID = r.id
	body, _ := heartbeat.Encode(h)
	if code, _, _ := n.Post(body, map[string]string{"Authorization": "Bearer " + old}); code != 401 {
		t.Fatalf("old key after rotation: %d, want 401", code)
	}
}

// Enrolling an id that already has a key the sensor does not hold answers
// 409: the sensor keeps its spool and tries again later.
func TestEnrollConflictRetriesLater(t *testing.T) {
	n := keyedNode(t, nil)
	r := newRig(t, n, tlsconf.Client{})
	if code, _, msg := n.Enroll(ingesttest.Token, r.id, "elsewhere"); code != 200 {
		t.Fatal(code, msg)
	}
	r.put(t, 1)
	_, body, _, _ := r.spool.Oldest()
	err := r.client.Send(context.Background(), body)
	var re *RetryError
	var se *StatusError
	if !errors.As(err, &re) || !errors.As(err, &se) || se.Status != http.StatusConflict || re.After != r.client.AuthBackoff || !errors.Is(err, ErrNoKey) {
		t.Fatalf("send with the id enrolled elsewhere: %v", err)
	}
}

// Over TLS, a sensor pinning the server's key enrolls and delivers; with a
// wrong pin nothing is sent (the enrollment secret included) and the spool
// keeps the heartbeat.
func TestTLSWithPinnedKey(t *testing.T) {
	ca := tlsconftest.CA(t, "netview-test-ca")
	pair := tlsconftest.Server(t, ca, "ingest")
	n := keyedNode(t, &tlsconf.Server{CertFile: pair.CertFile, KeyFile: pair.KeyFile})
	r := newRig(t, n, tlsconf.Client{Pin: tlsconf.PinOf(pair.Cert)})
	r.put(t, 2)
	r.deliver(t, 20*time.Second)
	if rows, _ := inStorage(t, n.Store, r.id); rows != 2 {
		t.Fatalf("stored %d over TLS, want 2", rows)
	}
	bad := newRig(t, n, tlsconf.Client{Pin: tlsconf.PinOf(ca.Cert)})
	bad.put(t, 1)
	_, body, _, _ := bad.spool.Oldest()
	err := bad.client.Send(context.Background(), body)
	var re *RetryError
	if !errors.As(err, &re) || !strings.Contains(err.Error(), "does not match the pinned") || bad.spool.Len() != 1 {
		t.Fatalf("wrong pin: %v", err)
	}
	if got := ingesttest.Count(t, n.Store, "SELECT count() AS n FROM credentials WHERE sensor_id = {s:UUID}", store.P("s", bad.id.String())); got != 0 {
		t.Fatalf("a sensor with a wrong pin enrolled: %d keys", got)
	}
}

// The link flags resolve secrets from flags, the environment and files,
// and refuse what cannot work.
func TestLinkFlags(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "enroll")
	os.WriteFile(file, []byte("# the fleet's secret\nnve_from_file\n"), 0o600)
	f := func(args []string, env map[string]string, want string, check func(l Link) bool) {
		t.Helper()
		for _, k := range []string{"NETVIEW_SENSOR_TOKEN", "NETVIEW_SENSOR_ENROLL_SECRET"} {
			t.Setenv(k, env[k])
		}
		var l Link
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		l.RegisterFlags(fs)
		if err := fs.Parse(args); err != nil {
			t.Fatal(err)
		}
		err := l.Validate()
		switch {
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%v: %v, want an error containing %q", args, err, want)
		case want == "" && err != nil:
			t.Errorf("%v: %v", args, err)
		case want == "" && check != nil && !check(l):
			t.Errorf("%v: %+v", args, l)
		}
	}
	f(nil, nil, "no secret", nil)
	f([]string{"--sensor.enroll-secret-file=" + file}, nil, "", func(l Link) bool { return l.EnrollSecret == "nve_from_file" })
	f(nil, map[string]string{"NETVIEW_SENSOR_ENROLL_SECRET": "nve_env"}, "", func(l Link) bool { return l.EnrollSecret == "nve_env" })
	f([]string{"--sensor.token=tok"}, nil, "", func(l Link) bool { return l.Token == "tok" && l.EnrollSecret == "" })
	f([]string{"--sensor.token=tok", "--sensor.pin-sha256=" + strings.Repeat("ab", 32)}, nil, "need an https://", nil)
	f([]string{"--sensor.token=tok", "--sensor.ingest=https://x:1/v1/heartbeat", "--sensor.pin-sha256=zz"}, nil, "tls pin", nil)
	f([]string{"--sensor.token=tok", "--sensor.ingest=ftp://x/"}, nil, "want http(s)", nil)
	f([]string{"--sensor.enroll-secret-file=" + filepath.Join(dir, "missing")}, nil, "enrollment secret file", nil)
}
