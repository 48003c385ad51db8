package query

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzSecret is the Config.CursorSecret of the query service that issued
// the cursors of the seed corpora (testdata/fuzz/FuzzCursor*): real v2
// pages of every view and of events, with and without a sensor filter.
const fuzzSecret = "netview-fuzz-cursor-secret"

// cursorViews are the views that issue cursors and their key lengths.
var cursorViews = []struct {
	name string
	n    int
}{{"connections", 7}, {"listening", 5}, {"udp", 7}, {"flows", 2}, {"events", 2}}

// FuzzCursorOpen gives the cursor reader arbitrary text, as a client can.
// It must never panic, refuse with ErrCursor only, open nothing under
// another secret, and open only what this secret sealed: a token that
// opens is, byte for byte, the cursor seal makes of what it opened to, so
// no edited spelling of a real cursor is taken either.
func FuzzCursorOpen(f *testing.F) {
	c, other := cursors{secret: []byte(fuzzSecret)}, cursors{secret: []byte("another replica's secret")}
	f.Add(c.seal("connections", "sensor=", []string{"00000000-0000-0000-0000-000000000001", "4026531840", "::ffff:10.0.0.1", "22", "::ffff:10.0.0.2", "51822", "2093311"}))
	f.Add("garbage")
	f.Add("...")
	f.Fuzz(func(t *testing.T, token string) {
		for _, v := range cursorViews {
			body, err := c.read(token, v.name, v.n)
			if err != nil {
				if err != ErrCursor {
					t.Fatalf("read(%q, %s): %v, want ErrCursor", token, v.name, err)
				}
				continue
			}
			if _, err := other.read(token, v.name, v.n); err == nil {
				t.Fatalf("%q opens under another secret", token)
			}
			if body.View != v.name || len(body.Key) != v.n {
				t.Fatalf("%q opened as %s to %+v", token, v.name, body)
			}
			if sealed := c.seal(body.View, body.Filter, body.Key); token != sealed {
				t.Fatalf("%q opens, but the cursor sealed for what it opened to is %q", token, sealed)
			}
			key, err := c.open(token, v.name, body.Filter, v.n)
			if err != nil || !slices.Equal(key, body.Key) {
				t.Fatalf("open(%q) = %q, %v; read gave %q", token, key, err, body.Key)
			}
			if _, err := c.open(token, v.name, body.Filter+" ", v.n); err != ErrCursor {
				t.Fatalf("%q opens under another filter: %v", token, err)
			}
		}
	})
}

// FuzzCursorRoundTrip seals arbitrary positions (key holds the parts
// joined by "|"): a sealed cursor always opens, for its view, filter and
// key length, to the same key; for any other view, filter, key length or
// secret it does not; and a cursor with any one bit flipped does not open.
//
// Keys and filters are valid UTF-8, as every cursor the service seals is
// (UUIDs, numbers, addresses and times; filters of validated parameters):
// JSON would replace invalid bytes with U+FFFD.
func FuzzCursorRoundTrip(f *testing.F) {
	f.Add("connections", "sensor=", "00000000-0000-0000-0000-000000000001|4026531840|::ffff:10.0.0.1|22|::ffff:10.0.0.2|51822|2093311", uint16(0), uint8(0))
	f.Add("events", "sensor= kinds=dns_query since=1 until=2", "2026-03-14 09:26:45.120|ee1f8d3a-f89c-43e0-9eb8-bceff5492eb2", uint16(7), uint8(3))
	c, other := cursors{secret: []byte(fuzzSecret)}, cursors{secret: []byte("another replica's secret")}
	f.Fuzz(func(t *testing.T, view, filter, key string, pos uint16, bit uint8) {
		if !utf8.ValidString(view) || !utf8.ValidString(filter) || !utf8.ValidString(key) {
			t.Skip("not UTF-8")
		}
		parts := strings.Split(key, "|")
		n := len(parts)
		tok := c.seal(view, filter, parts)
		got, err := c.open(tok, view, filter, n)
		if err != nil || !slices.Equal(got, parts) {
			t.Fatalf("seal(%q, %q, %q) = %q opens to %q, %v", view, filter, parts, tok, got, err)
		}
		for _, bad := range []struct {
			what         string
			c            cursors
			view, filter string
			n            int
		}{
			{"another view", c, view + "x", filter, n},
			{"another filter", c, view, filter + "x", n},
			{"a longer key", c, view, filter, n + 1},
			{"a shorter key", c, view, filter, n - 1},
			{"another secret", other, view, filter, n},
		} {
			if _, err := bad.c.open(tok, bad.view, bad.filter, bad.n); err != ErrCursor {
				t.Fatalf("%q opens for %s: %v", tok, bad.what, err)
			}
		}
		b := []byte(tok)
		b[int(pos)%len(b)] ^= 1 << (bit % 8)
		if _, err := c.open(string(b), view, filter, n); !errors.Is(err, ErrCursor) {
			t.Fatalf("%q, %q with one bit flipped, opens", tok, b)
		}
	})
}
