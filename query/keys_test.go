package query_test

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// The unique keys the views are documented to be ordered by; the same
// keys the cursors carry. "id" parts are UUIDs (ordered the engine's
// way), "ip" parts addresses (ordered as 16-byte IPv6), the rest numbers.
var viewKeys = map[string][]string{
	"connections": {"sensor_id:id", "netns", "local_address:ip", "local_port", "remote_address:ip", "remote_port", "inode"},
	"listening":   {"sensor_id:id", "netns", "local_address:ip", "local_port", "inode"},
	"udp":         {"sensor_id:id", "netns", "local_address:ip", "local_port", "remote_address:ip", "remote_port", "inode"},
	"flows":       {"sensor_id:id", "flow_id:id"},
}

// keyOf is a row's unique key as text.
func keyOf(view string, r row) string {
	var parts []string
	for _, k := range viewKeys[view] {
		name, _, _ := strings.Cut(k, ":")
		parts = append(parts, fmt.Sprint(r[name]))
	}
	return strings.Join(parts, "|")
}

// keyOrder returns a comparison of rows by the view's key; rank orders
// UUIDs (see fixture.uuidRank).
func keyOrder(t *testing.T, view string, rank map[string]int) func(a, b row) int {
	return func(a, b row) int {
		for _, k := range viewKeys[view] {
			name, kind, _ := strings.Cut(k, ":")
			var c int
			switch kind {
			case "id":
				ra, oka := rank[str(a, name)]
				rb, okb := rank[str(b, name)]
				if !oka || !okb {
					t.Fatalf("no rank for %s %q / %q", name, str(a, name), str(b, name))
				}
				c = cmp.Compare(ra, rb)
			case "ip":
				x, y := netip.MustParseAddr(str(a, name)).As16(), netip.MustParseAddr(str(b, name)).As16()
				c = bytes.Compare(x[:], y[:])
			default:
				c = cmp.Compare(num(a, name), num(b, name))
			}
			if c != 0 {
				return c
			}
		}
		return 0
	}
}

// ids collects the UUID key parts of rows, to rank them.
func ids(view string, rows ...[]row) []string {
	var out []string
	for _, rs := range rows {
		for _, r := range rs {
			for _, k := range viewKeys[view] {
				if name, kind, _ := strings.Cut(k, ":"); kind == "id" {
					out = append(out, str(r, name))
				}
			}
		}
	}
	return out
}

// checkKeyOrder fails unless rows are in strictly increasing key order
// (which also means no row twice).
func (f *fixture) checkKeyOrder(view string, rows []row, what string) {
	f.t.Helper()
	if len(rows) < 2 {
		return
	}
	less := keyOrder(f.t, view, f.uuidRank(ids(view, rows)))
	for i := 1; i < len(rows); i++ {
		if less(rows[i-1], rows[i]) >= 0 {
			f.t.Fatalf("%s: row %d is not after row %d in %s key order:\n%v\n%v", what, i, i-1, view, rows[i-1], rows[i])
		}
	}
}

func keys(view string, rows []row) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = keyOf(view, r)
	}
	return out
}
