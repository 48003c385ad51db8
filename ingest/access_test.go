package ingest_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/creds"
	"github.com/netview/netview/internal/ratelimit"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/tlsconf"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
)

// keyedConfig is a test node where only sensor keys post heartbeats: the
// static token is an enrollment secret and nothing more.
func keyedConfig() ingest.Config {
	cfg := testConfig()
	cfg.SharedTokens = false
	return cfg
}

// beatFor returns a zstd heartbeat of sensor id.
func beatFor(t *testing.T, g *heartbeat.Generator, id uuid.UUID) []byte {
	t.Helper()
	h := g.Next(time.Now())
	h.Sensor.SensorID = id
	b, err := heartbeat.Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bearer(secret string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + secret}
}

// reason is the "reason" member of an error answer.
func reason(t *testing.T, body string) string {
	t.Helper()
	var a ingest.ErrorAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Error == "" {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return a.Reason
}

// rowsOf counts what storage holds for one sensor, in every table written
// per sensor.
func rowsOf(t *testing.T, st store.Store, id uuid.UUID) uint64 {
	t.Helper()
	var n uint64
	for _, table := range []string{"heartbeats", "tcp_connections", "tcp_listeners", "udp_listeners", "active_flows", "flows", "events", "sensors"} {
		n += count(t, st, "SELECT count() AS n FROM "+table+" WHERE sensor_id = {s:UUID}", store.P("s", id.String()))
	}
	return n
}

// A sensor enrolls once with an enrollment secret (static or issued), posts
// its own heartbeats with its key and no other sensor's; static tokens post
// nothing while shared tokens are off; revocation, re-enrollment, blocking
// and rotation answer what the sensor needs to act on.
func TestEnrollAndSensorKeys(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	g := heartbeat.NewGenerator(71, heartbeat.Shape{Conns: 5, Listeners: 2, UDP: 1, ActiveFlows: 1, CompletedFlows: 1, Events: 2})
	ctx := context.Background()
	cs := creds.NewStore(n.store, time.Minute)

	a, b := uuid.New(), uuid.New()
	code, keyA, msg := n.Enroll(token, a, "host-a")
	if code != 200 || !strings.HasPrefix(keyA, "nvs_") {
		t.Fatalf("enroll with the static secret: %d %s", code, msg)
	}
	if code, _, msg := n.Enroll(token, a, "host-a"); code != 409 || reason(t, msg) != ingest.ReasonEnrolled {
		t.Fatalf("second enrollment of one sensor id: %d %s, want 409", code, msg)
	}
	// An enrollment secret from the credentials table; who enrolled is kept.
	ec, enrollSecret, _ := creds.New(creds.Enroll)
	if err := cs.Put(ctx, ec); err != nil {
		t.Fatal(err)
	}
	code, keyB, msg := n.Enroll(enrollSecret, b, "host-b")
	if code != 200 {
		t.Fatalf("enroll with an issued secret: %d %s", code, msg)
	}
	for id, by := range map[uuid.UUID]string{a: "enroll:static", b: "enroll:" + ec.ID} {
		keys, err := cs.SensorKeys(ctx, id)
		if err != nil || len(keys) != 1 || keys[0].CreatedBy != by {
			t.Fatalf("keys of %s = %+v, %v; want one created by %s", id, keys, err, by)
		}
	}

	// Each key posts for its own sensor.
	for _, k := range []struct {
		id  uuid.UUID
		key string
	}{{a, keyA}, {b, keyB}} {
		if code, msg, _ := n.post(beatFor(t, g, k.id), bearer(k.key)); code != 200 {
			t.Fatalf("own heartbeat: %d %s", code, msg)
		}
	}
	before := rowsOf(t, n.store, b)
	// A's key writing as B: refused, nothing written.
	code, msg, _ = n.post(beatFor(t, g, b), bearer(keyA))
	if code != 403 || reason(t, msg) != ingest.ReasonSensorMismatch {
		t.Fatalf("heartbeat for another sensor: %d %s, want 403 sensor_mismatch", code, msg)
	}
	// A heartbeat repeating sensor_id, the key's first and another's last.
	h := g.Next(time.Now())
	h.Sensor.SensorID = a
	doc, _ := json.Marshal(h)
	twice := strings.Replace(string(doc), `"sensor_id":"`+a.String()+`"`, `"sensor_id":"`+a.String()+`","sensor_id":"`+b.String()+`"`, 1)
	if code, msg, _ := n.post(heartbeat.Compress([]byte(twice)), bearer(keyA)); code != 403 {
		t.Fatalf("repeated sensor_id ending on another sensor: %d %s, want 403", code, msg)
	}
	if got := rowsOf(t, n.store, b); got != before {
		t.Fatalf("refused heartbeats wrote rows for %s: %d, had %d", b, got, before)
	}

	// The static secret and an enrollment secret post no heartbeats.
	for _, s := range []string{token, enrollSecret} {
		if code, msg, _ := n.post(beatFor(t, g, a), bearer(s)); code != 403 || reason(t, msg) != ingest.ReasonWrongCredential {
			t.Fatalf("heartbeat with an enrollment secret: %d %s, want 403", code, msg)
		}
	}
	// A sensor key does not enroll.
	if code, _, msg := n.Enroll(keyA, uuid.New(), "x"); code != 403 {
		t.Fatalf("enroll with a sensor key: %d %s, want 403", code, msg)
	}

	// Revoked with leave to re-enroll: 401 revoked, then a new key works.
	_, idA, _ := creds.Parse(keyA)
	if _, err := cs.Revoke(ctx, idA, "test", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond) // the node's copy is at most 100 ms old
	code, msg, _ = n.post(beatFor(t, g, a), bearer(keyA))
	if code != 401 || reason(t, msg) != ingest.ReasonRevoked {
		t.Fatalf("revoked key: %d %s, want 401 revoked", code, msg)
	}
	code, keyA2, msg := n.Enroll(token, a, "host-a")
	if code != 200 {
		t.Fatalf("re-enroll after revocation: %d %s", code, msg)
	}
	if code, msg, _ := n.post(beatFor(t, g, a), bearer(keyA2)); code != 200 {
		t.Fatalf("heartbeat with the new key: %d %s", code, msg)
	}

	// Revoked without leave: blocked.
	_, idB, _ := creds.Parse(keyB)
	if _, err := cs.Revoke(ctx, idB, "test", false); err != nil {
		t.Fatal(err)
	}
	if code, _, msg := n.Enroll(token, b, "host-b"); code != 403 || reason(t, msg) != ingest.ReasonBlocked {
		t.Fatalf("enroll of a blocked sensor: %d %s, want 403 blocked", code, msg)
	}

	// Rotation: the sensor proposes a key; the old one is revoked; a retry
	// of the same rotation succeeds again; another proposal with the old
	// key does not.
	next, nextSecret, _ := creds.New(creds.Sensor)
	for try := range 2 {
		if code, msg := rotate(t, n.url, keyA2, next); code != 200 {
			t.Fatalf("rotate (try %d): %d %s", try, code, msg)
		}
	}
	time.Sleep(150 * time.Millisecond)
	if code, msg, _ := n.post(beatFor(t, g, a), bearer(keyA2)); code != 401 || reason(t, msg) != ingest.ReasonRevoked {
		t.Fatalf("rotated-out key: %d %s, want 401 revoked", code, msg)
	}
	if code, msg, _ := n.post(beatFor(t, g, a), bearer(nextSecret)); code != 200 {
		t.Fatalf("rotated-in key: %d %s", code, msg)
	}
	other, _, _ := creds.New(creds.Sensor)
	if code, msg := rotate(t, n.url, keyA2, other); code != 401 {
		t.Fatalf("second rotation with a rotated-out key: %d %s, want 401", code, msg)
	}
	// A proposal naming another credential's id is refused.
	taken := creds.Credential{ID: ec.ID, Hash: other.Hash}
	if code, msg := rotate(t, n.url, nextSecret, taken); code != 409 {
		t.Fatalf("rotation onto an enrollment secret's id: %d %s, want 409", code, msg)
	}
}

func rotate(t *testing.T, url, key string, next creds.Credential) (int, string) {
	t.Helper()
	body, _ := json.Marshal(ingest.RotateRequest{KeyID: next.ID, KeySHA256: hex.EncodeToString(next.Hash[:])})
	a := call(t, "POST", url+"/v1/rotate", body, bearer(key))
	return a.status, a.body
}

// Enrollment bodies are small, strict JSON; each fault gets a 400 naming it.
func TestEnrollRefusesBadBodies(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	id := uuid.New().String()
	f := func(name, body string, status int, want string) {
		t.Helper()
		a := call(t, "POST", n.url+"/v1/enroll", []byte(body), bearer(token))
		if a.status != status || !strings.Contains(a.body, want) {
			t.Errorf("%s: %d %s, want %d containing %q", name, a.status, a.body, status, want)
		}
	}
	f("not JSON", "sensor", 400, "body:")
	f("unknown member", `{"sensor_id":"`+id+`","hostname":"h","role":"admin"}`, 400, `unknown field \"role\"`)
	f("no sensor_id", `{"hostname":"h"}`, 400, "sensor_id: required")
	f("no hostname", `{"sensor_id":"`+id+`"}`, 400, "hostname: required")
	f("braced UUID", `{"sensor_id":"{`+id+`}","hostname":"h"}`, 400, "is not a UUID")
	f("nil UUID", `{"sensor_id":"00000000-0000-0000-0000-000000000000","hostname":"h"}`, 400, "nil UUID")
	f("long hostname", `{"sensor_id":"`+id+`","hostname":"`+strings.Repeat("h", 256)+`"}`, 400, "longer than 255")
	f("control character", `{"sensor_id":"`+id+`","hostname":"a\u0007b"}`, 400, "control character")
	f("two values", `{"sensor_id":"`+id+`","hostname":"h"} {}`, 400, "more than one")
	f("wrong type", `{"sensor_id":7,"hostname":"h"}`, 400, "body:")
	f("over 4 KiB", `{"sensor_id":"`+id+`","hostname":"h","x":"`+strings.Repeat("x", 5000)+`"}`, 413, "over the limit")
	if got := count(t, n.store, "SELECT count() AS n FROM credentials"); got != 0 {
		t.Fatalf("refused enrollments left %d credentials", got)
	}
}

// countingListener counts the bytes the server reads from its connections.
type countingListener struct {
	net.Listener
	read atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, n: &l.read}, nil
}

type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	k, err := c.Conn.Read(p)
	c.n.Add(int64(k))
	return k, err
}

// A request that may not post heartbeats costs no body read: a 16 MiB body
// with a wrong token, an enrollment secret or a revoked key is refused on
// its headers. The server's socket reads stop at what its first read took
// into its 16 KiB read buffer (headers and the start of the body the client
// had already pushed); the handler reads none of it.
func TestRefusedBodyIsNotRead(t *testing.T) {
	cfg := keyedConfig()
	cfg.MaxBodyBytes = 32 << 20 // the size limit must not be what refuses it
	srv, st := newServer(t, cfg)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &countingListener{Listener: inner}
	n := ingesttest.Serve(t, srv, ln, st, "http://")
	sensor := uuid.New()
	_, key, _ := n.Enroll(token, sensor, "h")
	_, id, _ := creds.Parse(key)
	if _, err := creds.NewStore(st, time.Minute).Revoke(context.Background(), id, "test", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)

	const size = 16 << 20
	for _, c := range []struct{ name, secret string }{{"wrong token", "nope"}, {"enrollment secret", token}, {"revoked key", key},
		{"made-up key", "nvs_0123456789abcdef_" + strings.Repeat("A", 43)}} {
		before := ln.read.Load()
		code, msg := hugePost(t, inner.Addr().String(), c.secret, size)
		got := ln.read.Load() - before
		t.Logf("%s: %d MiB body refused with %d (%s); the server read %d bytes", c.name, size>>20, code, msg, got)
		if code != 401 && code != 403 {
			t.Errorf("%s: %d %s, want 401 or 403", c.name, code, msg)
		}
		if got > 20<<10 {
			t.Errorf("%s: the server read %d bytes of a refused request, want at most its 16 KiB read buffer and a little", c.name, got)
		}
	}
}

// hugePost sends headers announcing size bytes and as much body as the
// server takes, and returns the answer.
func hugePost(t *testing.T, addr, secret string, size int) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Encoding: zstd\r\nContent-Length: %d\r\n\r\n", secret, size)
	go func() {
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < size; sent += len(chunk) {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// newServer builds a node's server over a fresh migrated engine, for tests
// that serve it on a listener of their own.
func newServer(t *testing.T, cfg ingest.Config) (*ingest.Server, store.Store) {
	t.Helper()
	n := startNode(t, cfg, nil) // migrates a fresh engine
	n.stop()
	srv, err := ingest.New(cfg, n.store, discard())
	if err != nil {
		t.Fatal(err)
	}
	return srv, n.store
}

// Rate limits answer 429 with Retry-After: per sensor key, per client
// address, and failed authentications per address (which then holds back
// even good requests from that address until it slows down).
func TestRateLimits(t *testing.T) {
	g := heartbeat.NewGenerator(72, heartbeat.Shape{Conns: 1, Events: 1})
	// burst sends reqs requests spread evenly over span, each on its own
	// goroutine, and counts the answers.
	// took is from the first request to the last answer: the most time the
	// buckets had to refill, however slow the machine.
	burst := func(n *node, reqs int, span time.Duration, secret string, body func() []byte) (ok, limited int, retry string, took time.Duration) {
		t.Helper()
		bodies := make([][]byte, reqs)
		for i := range bodies {
			bodies[i] = body()
		}
		codes := make(chan [2]string, reqs)
		start := time.Now()
		for i := range reqs {
			time.Sleep(time.Until(start.Add(span * time.Duration(i) / time.Duration(reqs))))
			go func() {
				code, msg, ra := n.post(bodies[i], bearer(secret))
				codes <- [2]string{fmt.Sprint(code, " ", msg), ra}
			}()
		}
		for range reqs {
			c := <-codes
			switch {
			case strings.HasPrefix(c[0], "200 "), strings.HasPrefix(c[0], "401 "):
				ok++
			case strings.HasPrefix(c[0], "429 "):
				limited++
				retry = c[1]
			default:
				t.Fatal(c[0])
			}
		}
		took = time.Since(start)
		t.Logf("%d requests over %v from one address (%.0f/s): %d answered, %d refused with 429 (%.0f%%), Retry-After %s; last answer after %v",
			reqs, span, float64(reqs)/span.Seconds(), ok, limited, 100*float64(limited)/float64(reqs), retry, took.Round(time.Millisecond))
		return ok, limited, retry, took
	}
	// A bucket of rate r holds max(1, 2r): at least that many pass, and at
	// most that plus what refills while the requests are answered.
	within := func(ok int, rate float64, took time.Duration) bool {
		full := max(1, 2*rate)
		return float64(ok) >= full && float64(ok) <= full+rate*took.Seconds()+1
	}

	t.Run("per sensor", func(t *testing.T) {
		cfg := keyedConfig()
		cfg.SensorRate = 5
		n := startNode(t, cfg, nil)
		a, b := uuid.New(), uuid.New()
		_, keyA, _ := n.Enroll(token, a, "a")
		_, keyB, _ := n.Enroll(token, b, "b")
		span := time.Second
		ok, limited, retry, took := burst(n, 50, span, keyA, func() []byte { return beatFor(t, g, a) })
		if !within(ok, 5, took) || limited == 0 || retry == "" {
			t.Fatalf("sensor at 5/s sending 50/s: %d taken, %d limited, Retry-After %q", ok, limited, retry)
		}
		// Another sensor is not held back by the first.
		if code, msg, _ := n.post(beatFor(t, g, b), bearer(keyB)); code != 200 {
			t.Fatalf("other sensor: %d %s", code, msg)
		}
	})
	t.Run("per address", func(t *testing.T) {
		cfg := testConfig()
		cfg.IPRate = 20
		n := startNode(t, cfg, nil)
		id := uuid.New()
		span := 2 * time.Second
		ok, limited, retry, took := burst(n, 200, span, token, func() []byte { return beatFor(t, g, id) })
		if !within(ok, 20, took) || limited == 0 || retry != "1" {
			t.Fatalf("address at 20/s sending 100/s: %d taken, %d limited, Retry-After %q", ok, limited, retry)
		}
	})
	t.Run("failed authentications", func(t *testing.T) {
		cfg := testConfig()
		cfg.AuthFailRate = 0.5 // a bucket of one, refilled every 2 s: the checks below do not race the clock
		n := startNode(t, cfg, nil)
		fails, limited, _, took := burst(n, 20, 100*time.Millisecond, "wrong", func() []byte { return nil })
		if !within(fails, 0.5, took) || fails+limited != 20 {
			t.Fatalf("20 wrong tokens at 0.5/s over %v: %d answered 401, %d 429", took, fails, limited)
		}
		good := beatFor(t, g, uuid.New())
		if code, _, _ := n.post(good, bearer(token)); code != 429 {
			t.Fatalf("good request from an address over its failures: %d, want 429", code)
		}
		time.Sleep(2100 * time.Millisecond) // one failure's worth
		if code, msg, _ := n.post(good, bearer(token)); code != 200 {
			t.Fatalf("good request after slowing down: %d %s", code, msg)
		}
	})
}

// X-Forwarded-For names the client only when a trusted proxy sent it.
func TestTrustedProxies(t *testing.T) {
	g := heartbeat.NewGenerator(73, heartbeat.Shape{Conns: 1})
	for _, c := range []struct {
		proxies string
		// 200s of 6 requests forwarded for two clients by 10.1.1.1, with a
		// bucket of one request per address that refills once in 1,000 s,
		// so how long the requests take does not matter: one per address
		// the node tells apart.
		want int
	}{{"", 1}, {"127.0.0.1", 1}, {"10.0.0.0/8,127.0.0.0/8", 2}} {
		cfg := testConfig()
		cfg.IPRate, cfg.TrustedProxies = 0.001, c.proxies
		n := startNode(t, cfg, nil)
		got := 0
		for i := range 6 {
			h := bearer(token)
			h["X-Forwarded-For"] = fmt.Sprintf("192.0.2.%d, 10.1.1.1", 1+i%2)
			if code, _, _ := n.post(beatFor(t, g, uuid.New()), h); code == 200 {
				got++
			}
		}
		if got != c.want {
			t.Errorf("trusted proxies %q: %d of 6 taken, want %d", c.proxies, got, c.want)
		}
	}
}

// A client that trickles its headers or its body is cut off at
// --ingest.read-timeout, and while it trickles it holds no decode slot:
// a good heartbeat goes through at once.
func TestSlowClientsAreCutOff(t *testing.T) {
	cfg := testConfig()
	cfg.ReadTimeout = 3 * time.Second // long enough that a heartbeat beside them is answered well before it, however loaded the machine
	n := startNode(t, cfg, nil)
	addr := strings.TrimPrefix(n.url, "http://")
	g := heartbeat.NewGenerator(74, heartbeat.Shape{Conns: 3})

	trickle := func(head string, step time.Duration) chan time.Duration {
		done := make(chan time.Duration, 1)
		go func() {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				done <- -1
				return
			}
			defer c.Close()
			start := time.Now()
			c.Write([]byte(head))
			go io.Copy(io.Discard, c)
			for {
				c.SetWriteDeadline(time.Now().Add(time.Second))
				if _, err := c.Write([]byte("x")); err != nil {
					done <- time.Since(start)
					return
				}
				if time.Since(start) > 10*time.Second {
					done <- time.Since(start)
					return
				}
				time.Sleep(step)
			}
		}()
		return done
	}
	slow := 2*n.Srv.Slots() + 2
	var waits []chan time.Duration
	for i := range slow {
		if i%2 == 0 {
			waits = append(waits, trickle("POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nX-Slow: ", 50*time.Millisecond))
		} else {
			waits = append(waits, trickle("POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+token+
				"\r\nContent-Encoding: identity\r\nContent-Length: 100000\r\n\r\n", 50*time.Millisecond))
		}
	}
	time.Sleep(300 * time.Millisecond)
	start := time.Now()
	if code, msg, _ := n.post(beatFor(t, g, uuid.New()), nil); code != 200 {
		t.Fatalf("heartbeat beside %d slow clients: %d %s", slow, code, msg)
	}
	took := time.Since(start)
	if busy := n.Srv.Busy(); busy != 0 {
		t.Errorf("%d decode slots held while slow clients trickle", busy)
	}
	if took > 2500*time.Millisecond { // blocked by the slow clients, it would wait for their cut-off
		t.Errorf("heartbeat beside slow clients took %v", took)
	}
	var longest time.Duration
	for i, w := range waits {
		d := <-w
		if d < 0 || d > 8*time.Second {
			t.Errorf("slow client %d held on for %v, want cut off about the 3 s read timeout", i, d)
		}
		longest = max(longest, d)
	}
	t.Logf("%d clients trickling headers or body a byte per 50 ms: cut off within %v (read timeout 3 s); a heartbeat beside them took %v",
		slow, longest.Round(time.Millisecond), took.Round(time.Millisecond))
}

// The row limit (--ingest.max-rows) refuses with 413, so a sensor sends the
// heartbeat again without its snapshots; a plain (identity) body is held to
// --ingest.max-body whether or not it announces its length.
func TestRowAndPlainBodyLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxRows, cfg.MaxBodyBytes = 50, 64<<10
	n := startNode(t, cfg, nil)
	g := heartbeat.NewGenerator(75, heartbeat.Shape{Conns: 60, Events: 1})
	big := g.Next(time.Now())
	body, _ := heartbeat.Encode(big)
	code, msg, _ := n.post(body, nil)
	if code != 413 || !strings.Contains(msg, "more than 50") {
		t.Fatalf("60 rows over a limit of 50: %d %s", code, msg)
	}
	big.TCPConnections = big.TCPConnections[:40]
	body, _ = heartbeat.Encode(big)
	if code, msg, _ := n.post(body, nil); code != 200 {
		t.Fatalf("41 rows: %d %s", code, msg)
	}
	plain := []byte(`{"format":1,"pad":"` + strings.Repeat("x", 70<<10) + `"}`)
	head := "POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + token + "\r\nContent-Encoding: identity\r\n"
	if code, msg := rawPost(t, n.url, fmt.Sprintf("%sContent-Length: %d\r\n\r\n", head, len(plain)), plain, false); code != 413 {
		t.Fatalf("plain body over max-body: %d %s", code, msg)
	}
	// Chunked: no Content-Length to judge by, so the read stops it.
	if code, msg := rawPost(t, n.url, head+"Transfer-Encoding: chunked\r\n\r\n", plain, true); code != 413 {
		t.Fatalf("chunked plain body over max-body: %d %s", code, msg)
	}
}

// rawPost sends head and body on a connection of its own and reads the
// answer. The node answers a body over its limit and closes while the body
// is still coming, so the body is written on its own and its write may
// fail: net/http's client reports that broken pipe instead of the answer
// (seen in CI).
func rawPost(t *testing.T, base, head string, body []byte, chunked bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go func() {
		if _, err := io.WriteString(c, head); err != nil || !chunked {
			c.Write(body)
			return
		}
		for chunk := range slices.Chunk(body, 4<<10) {
			if _, err := fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk); err != nil {
				return
			}
		}
		io.WriteString(c, "0\r\n\r\n")
	}()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The auth check on the heartbeat path allocates nothing for a known key.
func TestKeyCheckAllocatesNothing(t *testing.T) {
	n := startNode(t, keyedConfig(), nil)
	_, key, _ := n.Enroll(token, uuid.New(), "h")
	if allocs := ingest.AllocsOfIdentify(n.Srv, []byte("Bearer "+key)); allocs != 0 {
		t.Fatalf("checking a sensor key allocates %.1f times", allocs)
	}
}

// Ingest serves TLS from --ingest.tls-cert/--ingest.tls-key: a client that
// pins the server's key (or trusts its CA) posts; a wrong pin is refused in
// the handshake, before any secret is sent.
func TestTLS(t *testing.T) {
	ca := tlsconftest.CA(t, "netview-test-ca")
	pair := tlsconftest.Server(t, ca, "ingest")
	cfg := testConfig()
	cfg.TLS = tlsconf.Server{CertFile: pair.CertFile, KeyFile: pair.KeyFile}
	n := startNode(t, cfg, nil)
	if !strings.HasPrefix(n.url, "https://") {
		t.Fatalf("node URL %s", n.url)
	}
	body := beatFor(t, heartbeat.NewGenerator(76, heartbeat.Shape{Conns: 2}), uuid.New())
	post := func(c tlsconf.Client) (int, error) {
		cfg, err := c.Config()
		if err != nil {
			t.Fatal(err)
		}
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 10 * time.Second}
		code, _, err := ingesttest.PostTo(context.Background(), hc, n.url+"/v1/heartbeat", token, body)
		return code, err
	}
	for _, c := range []struct {
		name string
		c    tlsconf.Client
	}{{"pinned key", tlsconf.Client{Pin: tlsconf.PinOf(pair.Cert)}}, {"CA file", tlsconf.Client{CAFile: ca.CertFile}},
		{"CA file and pin", tlsconf.Client{CAFile: ca.CertFile, Pin: tlsconf.PinOf(pair.Cert)}}} {
		if code, err := post(c.c); err != nil || code != 200 {
			t.Errorf("%s: %d %v", c.name, code, err)
		}
	}
	if _, err := post(tlsconf.Client{Pin: tlsconf.PinOf(ca.Cert)}); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Errorf("wrong pin: %v, want the handshake refused", err)
	}
	if _, err := post(tlsconf.Client{}); err == nil {
		t.Error("a client trusting only the system's CAs took the test certificate")
	}
	// Plain HTTP to the TLS port gets no heartbeat in.
	if code, _, err := ingesttest.PostTo(context.Background(), http.DefaultClient, "http"+strings.TrimPrefix(n.url, "https")+"/v1/heartbeat", token, body); err == nil && code == 200 {
		t.Error("plain HTTP accepted on the TLS port")
	}
}

// A sensor's rows are metered, not only its requests: past its share of
// --ingest.sensor-rows it is answered 429 before its body is decoded, with
// a Retry-After for when the rows it sent are paid for; other sensors are
// not held back, and the refused heartbeat is taken once it is sent again.
func TestSensorRowShare(t *testing.T) {
	cfg := keyedConfig()
	cfg.SensorRows, cfg.MaxRows = 2000, 4000 // bursts of one maximal heartbeat
	n := startNode(t, cfg, nil)
	g := heartbeat.NewGenerator(79, heartbeat.Shape{Conns: 3400})
	a, b := uuid.New(), uuid.New()
	_, keyA, _ := n.Enroll(token, a, "a")
	_, keyB, _ := n.Enroll(token, b, "b")

	var rows struct{ Rows int }
	start := time.Now() // the share refills from here on, at 2,000 rows a second
	for i := range 2 {  // 4,000 − 2 × ~3,400: the second runs the share into debt
		code, msg, _ := n.post(beatFor(t, g, a), bearer(keyA))
		if code != 200 {
			t.Fatalf("heartbeat %d within the share: %d %s", i, code, msg)
		}
		if err := json.Unmarshal([]byte(msg), &rows); err != nil || rows.Rows < 3400 {
			t.Fatalf("answer %q: %v", msg, err)
		}
	}
	stored := rowsOf(t, n.store, a)
	over := beatFor(t, g, a)
	code, msg, retry := n.post(over, bearer(keyA))
	if code != 429 || reason(t, msg) != ingest.ReasonRateLimited || !strings.Contains(msg, "--ingest.sensor-rows") {
		t.Fatalf("heartbeat past the share: %d %s, want 429 rate_limited naming the flag", code, msg)
	}
	// In debt by 2 × rows − 4,000, paid at 2,000 a second, less what the
	// time the three posts took has paid already (a loaded machine took a
	// second of it in CI).
	debt := time.Duration(float64(2*rows.Rows-4000+1) / 2000 * float64(time.Second))
	lo, _ := strconv.Atoi(ratelimit.RetryAfter(debt - time.Since(start)))
	hi, _ := strconv.Atoi(ratelimit.RetryAfter(debt))
	if got, err := strconv.Atoi(retry); err != nil || got < lo || got > hi {
		t.Errorf("Retry-After %q, want %d to %d", retry, lo, hi)
	}
	if got := rowsOf(t, n.store, a); got != stored {
		t.Errorf("the refused heartbeat wrote rows: %d, then %d", stored, got)
	}
	if code, msg, _ := n.post(beatFor(t, g, b), bearer(keyB)); code != 200 {
		t.Fatalf("another sensor beside the one past its share: %d %s", code, msg)
	}
	wait, _ := strconv.Atoi(retry)
	time.Sleep(time.Duration(wait) * time.Second)
	if code, msg, _ := n.post(over, bearer(keyA)); code != 200 {
		t.Fatalf("the refused heartbeat sent again after Retry-After: %d %s", code, msg)
	}
	if got := rowsOf(t, n.store, a); got <= stored {
		t.Errorf("the heartbeat sent again was not stored: %d rows, then %d", stored, got)
	}
}
