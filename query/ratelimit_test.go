package query_test

import (
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/querytest"
	"github.com/netview/netview/sql/schema"
)

// signIns is a query service whose failed sign-in limit is set by edit.
type signIns struct {
	t   *testing.T
	url string
}

func startSignIns(t *testing.T, st store.Store, edit func(*query.Config)) *signIns {
	t.Helper()
	var cfg query.Config
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	cfg.RegisterFlags(fs) // the flags' defaults, then what the test changes
	cfg.Tokens = auth.TokenFlags{List: viewerToken}
	edit(&cfg)
	srv, err := query.New(cfg, st, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &signIns{t: t, url: querytest.Serve(t, srv)}
}

func migrated(t *testing.T) store.Store {
	t.Helper()
	st := storetest.Embedded(t).Store
	if _, err := schema.Migrate(context.Background(), st, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	return st
}

// try asks for the summary with token ("": no Authorization) as forwarded
// for xff ("": none), and returns the status and Retry-After.
func (s *signIns) try(token, xff string) (int, string) {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.url+"/api/v1/network/summary", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == 429 {
		var e struct{ Error string }
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			s.t.Fatalf("429 without a JSON error: %s", b)
		}
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// With the flags' defaults (1 a second, bursts of 20), 3,000 wrong tokens
// from one address get 401 for the burst and what refilled while they were
// sent, and 429 with Retry-After for the rest.
func TestFailedSignInsAreLimited(t *testing.T) {
	s := startSignIns(t, migrated(t), func(*query.Config) {})
	start := time.Now()
	wrong, limited := 0, 0
	for i := range 3000 {
		code, retry := s.try("wrong-token-"+strconv.Itoa(i), "")
		switch {
		case code == 401:
			wrong++
		case code == 429 && retry != "":
			if n, err := strconv.Atoi(retry); err != nil || n < 1 {
				t.Fatalf("Retry-After %q, want whole seconds", retry)
			}
			limited++
		default:
			t.Fatalf("wrong token %d: %d, Retry-After %q", i, code, retry)
		}
	}
	// At most one token refilled per second the requests took, and one
	// more for a bucket that was nearly full when the clock was read.
	slack := int(math.Ceil(time.Since(start).Seconds())) + 1
	if wrong < 20 || wrong > 20+slack || wrong+limited != 3000 {
		t.Fatalf("3,000 wrong tokens over %v: %d answered 401 (want 20 to %d), %d 429", time.Since(start), wrong, 20+slack, limited)
	}
}

// A limit that never refills while the test runs (one a 1,000 s), so every
// count is exact: a right token waits too, right tokens spend nothing, and
// clients are told apart by the address a trusted proxy forwarded, without
// its zone, and by their IPv6 /64.
func TestSignInLimitPerClient(t *testing.T) {
	st := migrated(t)
	slow := func(proxies string) func(*query.Config) {
		return func(c *query.Config) { c.AuthFailRate, c.AuthFailBurst, c.TrustedProxies = 0.001, 3, proxies }
	}
	// lockOut spends the bucket of the client as forwarded for xff.
	lockOut := func(s *signIns, xff string) {
		t.Helper()
		for i := range 3 {
			if code, _ := s.try("wrong-token", xff); code != 401 {
				t.Fatalf("wrong token %d for %q: %d, want 401 within the burst", i, xff, code)
			}
		}
	}
	want := func(s *signIns, token, xff string, code int) {
		t.Helper()
		if got, _ := s.try(token, xff); got != code {
			t.Errorf("token %q forwarded for %q: %d, want %d", token, xff, got, code)
		}
	}

	t.Run("untrusted peer", func(t *testing.T) {
		s := startSignIns(t, st, slow("10.0.0.0/8")) // the loopback peer is no proxy
		lockOut(s, "192.0.2.1")
		want(s, "wrong-token", "192.0.2.2", 429) // a forged X-Forwarded-For is no way out
		want(s, viewerToken, "", 429)            // nor is the right token
	})

	s := startSignIns(t, st, slow("127.0.0.1"))
	t.Run("right tokens spend nothing", func(t *testing.T) {
		for range 30 {
			want(s, viewerToken, "198.51.100.1", 200)
		}
		for range 10 {
			want(s, "", "198.51.100.1", 401) // no Authorization: no guess
		}
		lockOut(s, "198.51.100.1")
		want(s, viewerToken, "198.51.100.1", 429)
		want(s, viewerToken, "198.51.100.2", 200) // another client, by the trusted proxy's word
	})
	t.Run("zone dropped", func(t *testing.T) {
		lockOut(s, "fe80::1%eth0")
		want(s, "wrong-token", "fe80::1", 429)
		want(s, "wrong-token", "fe80::1%eth1", 429)
	})
	t.Run("IPv6 per /64", func(t *testing.T) {
		lockOut(s, "2001:db8:0:1::1")
		want(s, "wrong-token", "2001:db8:0:1:ffff::2", 429)
		want(s, "wrong-token", "2001:db8:0:2::1", 401)
	})
}
