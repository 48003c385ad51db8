package query_test

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
)

// The fields each v1 list may be sorted by, as documented.
var sortable = map[string][]string{
	"connections": {"sensor_id", "hostname", "local_address", "local_port", "remote_address", "remote_port", "state",
		"pid", "binary", "uid", "duration_secs", "first_seen", "last_seen"},
	"listening": {"sensor_id", "hostname", "local_address", "local_port", "service", "pid", "binary", "uid", "first_seen", "last_seen"},
	"udp": {"sensor_id", "hostname", "local_address", "local_port", "remote_address", "remote_port", "service",
		"pid", "binary", "uid", "first_seen", "last_seen"},
	"flows": {"sensor_id", "hostname", "src_address", "src_port", "dst_address", "dst_port", "protocol", "direction",
		"pid", "binary", "uid", "duration_secs", "bytes_sent", "bytes_received", "state", "started_at", "last_seen"},
}

// textFields sort as byte strings (times are fixed-width RFC 3339, so
// their text order is their time order); addresses and sensor ids as the
// engine orders them; every other field is a number, null the smallest.
var textFields = []string{"hostname", "state", "binary", "service", "protocol", "direction", "first_seen", "last_seen", "started_at"}

// sortedOrder is the order the service documents for sort=[-]field: the
// field, a null as the smallest value, then the view's key ascending.
func (f *fixture) sortedOrder(view, field string, desc bool, rows []row) func(a, b row) int {
	rank := f.uuidRank(ids(view, rows))
	byKey := keyOrder(f.t, view, rank)
	byField := func(a, b row) int {
		switch {
		case field == "sensor_id":
			return cmp.Compare(rank[str(a, field)], rank[str(b, field)])
		case strings.HasSuffix(field, "_address"):
			x, y := netip.MustParseAddr(str(a, field)).As16(), netip.MustParseAddr(str(b, field)).As16()
			return bytes.Compare(x[:], y[:])
		case slices.Contains(textFields, field):
			return strings.Compare(str(a, field), str(b, field))
		}
		if a[field] == nil || b[field] == nil {
			return cmp.Compare(boolInt(a[field] != nil), boolInt(b[field] != nil))
		}
		return cmp.Compare(num(a, field), num(b, field))
	}
	return func(a, b row) int {
		c := byField(a, b)
		if desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return byKey(a, b)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// sortFleet fills every view with rows whose sortable fields differ and
// tie: a generated fleet (connections with and without a duration, flows
// with bytes), and hand-made sensors whose hostnames run against their ids,
// one of them listening on telecom and well-known ports.
func sortFleet(f *fixture) {
	f.fleet(3, 2, heartbeat.Shape{Conns: 12, Listeners: 3, UDP: 4, ActiveFlows: 5})
	f.fleet(1, 1, heartbeat.Shape{UDP: 5, Telecom: true})
	at := time.Now().Add(-10 * time.Second)
	for i, host := range []string{"zulu", "mike", "alpha"} {
		s := sensor(fmt.Sprintf("%c0000000-0000-4000-8000-00000000000%c", 'a'+i, 'a'+i), host)
		h := beat(s, 1, at)
		h.TCPConnections = conns(uint16(100+i), uint16(200+i))
		h.TCPConnections[0].Process = heartbeat.Process{} // unattributed: pid null
		h.TCPConnections[1].DurationSecs = u32(uint32(7 * i))
		h.TCPConnections[1].State = []string{"CLOSE_WAIT", "SYN_SENT", "TIME_WAIT"}[i]
		h.TCPConnections[1].LocalAddress = netip.MustParseAddr([]string{"10.9.0.2", "2001:db8::1", "10.8.0.1"}[i])
		for j, p := range []uint16{22, 2152, 8805, 1812, 53, 8080} {
			h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{Family: "inet", LocalAddress: netip.MustParseAddr("10.9.0.1"),
				LocalPort: p, Inode: uint64(700 + j), FirstSeen: at.Add(-time.Duration(j) * time.Hour),
				Process: heartbeat.Process{PID: uint32(900 - j), Binary: []string{"sshd", "upf", "smf"}[j%3]}})
		}
		for j, p := range []uint16{2152, 8805, 5000} {
			h.UDPListeners = append(h.UDPListeners, heartbeat.UDPSocket{Family: "inet", LocalAddress: netip.MustParseAddr("10.9.0.1"), LocalPort: p,
				RemoteAddress: netip.MustParseAddr(fmt.Sprintf("10.7.0.%d", 1+i+j)), RemotePort: uint16(30000 + 10*i + j), Inode: uint64(800 + j),
				Service: heartbeat.ServiceName(p), FirstSeen: at.Add(-time.Duration(i+j) * time.Minute),
				Process: heartbeat.Process{PID: uint32(50 + j), Binary: []string{"upf", "smf", "amf"}[j], UID: uint32(j)}})
		}
		h.ActiveFlows = []heartbeat.Flow{{FlowID: uuid.New(), Protocol: []string{"tcp", "udp", "tcp"}[i], Direction: "inbound",
			SrcAddress: netip.MustParseAddr("10.1.2.3"), SrcPort: uint16(51000 + i), DstAddress: netip.MustParseAddr("10.9.0.1"), DstPort: 8443,
			StartedAt: at.Add(-time.Duration(i) * time.Minute), BytesSent: uint64(i) << 40, State: "SYN_RECV", Source: "proc"}}
		f.ingest.Send(h)
	}
}

// v1Sorted lists a whole view sorted (connections with one big page).
func (f *fixture) v1Sorted(view, sort string) (row, []row) {
	f.t.Helper()
	p := "/api/v1/network/" + view + "?sort=" + sort
	if view == "connections" {
		p += "&page_size=500"
	}
	return f.list(p, view)
}

// Every sortable field of every v1 list, both ways, gives the whole view in
// the documented order: the field, nulls as the smallest value, ties by the
// unique key.
func TestV1SortEveryField(t *testing.T) {
	f := start(t)
	sortFleet(f)
	for _, view := range v2Views {
		all := f.v1All(view, "")
		if len(all) < 10 {
			t.Fatalf("%s: only %d rows", view, len(all))
		}
		for _, field := range sortable[view] {
			distinct := map[string]bool{}
			for _, r := range all {
				distinct[fmt.Sprint(r[field])] = true
			}
			if len(distinct) < 2 {
				t.Errorf("%s: every row has the same %s; the test data cannot tell an order", view, field)
			}
			for _, desc := range []bool{false, true} {
				sort := map[bool]string{false: "", true: "-"}[desc] + field
				want := slices.Clone(all)
				slices.SortFunc(want, f.sortedOrder(view, field, desc, all))
				rest, got := f.v1Sorted(view, sort)
				if num(rest, "total") != float64(len(all)) {
					t.Errorf("%s sort=%s: total %v, want %d", view, sort, rest["total"], len(all))
				}
				if !slices.Equal(keys(view, got), keys(view, want)) {
					t.Errorf("%s sort=%s: %d rows not in the documented order:\ngot  %v\nwant %v", view, sort, len(got),
						column(got, field), column(want, field))
				}
			}
		}
	}
}

func column(rows []row, field string) []any {
	out := make([]any, len(rows))
	for i, r := range rows {
		out[i] = r[field]
	}
	return out
}

// A connection that predates the sensor has a null duration: it sorts
// first ascending and last descending, and the values run the right way.
func TestV1SortNullDuration(t *testing.T) {
	f := start(t)
	sortFleet(f)
	for _, c := range []struct {
		sort       string
		nullsFirst bool
	}{{"duration_secs", true}, {"-duration_secs", false}} {
		_, rows := f.v1Sorted("connections", c.sort)
		nulls, values := 0, 0
		var last float64
		for i, r := range rows {
			if r["duration_secs"] == nil {
				if c.nullsFirst && values > 0 {
					t.Fatalf("sort=%s: null at %d after a value", c.sort, i)
				}
				nulls++
				continue
			}
			if !c.nullsFirst && nulls > 0 {
				t.Fatalf("sort=%s: value at %d after a null", c.sort, i)
			}
			d := num(r, "duration_secs")
			if values > 0 && ((c.nullsFirst && d < last) || (!c.nullsFirst && d > last)) {
				t.Fatalf("sort=%s: %v after %v at %d", c.sort, d, last, i)
			}
			last = d
			values++
		}
		if nulls == 0 || values == 0 {
			t.Fatalf("sort=%s: %d nulls and %d values; need both", c.sort, nulls, values)
		}
	}
}

// A sorted page takes each socket's newest row without grouping the view
// (view.newestRowSorts): a heartbeat in flight that changed a socket's
// binary, pid and state, and a retried heartbeat's second copy of every
// row, must leave the sorted pages what grouping gives, the pages joining
// up to the whole list in the documented order. Merges are stopped, so
// the older rows and the copies stay beside the newer ones.
func TestV1SortedPagesNewestRow(t *testing.T) {
	f := start(t)
	ctx := context.Background()
	if err := f.ingest.Store.Exec(ctx, store.Query{SQL: "SYSTEM STOP MERGES tcp_connections"}); err != nil {
		t.Fatal(err)
	}
	sortFleet(f)
	exec := func(q string) {
		t.Helper()
		if err := f.ingest.Store.Exec(ctx, store.Query{SQL: q}); err != nil {
			t.Fatal(err)
		}
	}
	// sensorA's next heartbeat (seq 2; its sensors row not yet written)
	// moves one socket to the front and one to the back.
	exec(`INSERT INTO tcp_connections SELECT * REPLACE (seq + 1 AS seq,
        if(remote_port = 100, '~last', '!first') AS binary, pid + 1000 AS pid, 'LAST_ACK' AS state)
        FROM tcp_connections WHERE sensor_id = '` + sensorA + `'`)
	// sensorB's heartbeat retried: every row twice.
	exec(`INSERT INTO tcp_connections SELECT * FROM tcp_connections WHERE sensor_id = '` + sensorB + `'`)

	all := f.v1All("connections", "")
	moved := 0
	for _, r := range all {
		if str(r, "sensor_id") == sensorA && strings.HasPrefix(str(r, "binary"), "~") {
			moved++
		}
	}
	if moved != 1 {
		t.Fatalf("the in-flight heartbeat's binaries are not the view's: %d moved", moved)
	}
	// A filter the in-flight rows fail leaves sensorA's sockets as its
	// complete heartbeat has them: the in-flight rows must not hide them.
	for _, filter := range []string{"", "&state=!LAST_ACK"} {
		all := f.v1All("connections", strings.TrimPrefix(filter, "&"))
		if filter != "" {
			var olds []string
			for _, r := range all {
				if str(r, "sensor_id") == sensorA {
					olds = append(olds, str(r, "binary"))
				}
			}
			if len(olds) != 2 || strings.ContainsAny(strings.Join(olds, ""), "~!") {
				t.Fatalf("%s: sensorA's sockets %v, want both as its complete heartbeat has them", filter, olds)
			}
		}
		for _, sort := range []string{"binary", "-binary", "pid", "-state", "-duration_secs", "remote_port"} {
			field, desc := strings.TrimPrefix(sort, "-"), strings.HasPrefix(sort, "-")
			want := slices.Clone(all)
			slices.SortFunc(want, f.sortedOrder("connections", field, desc, all))
			var joined []row
			for n := 1; (n-1)*5 < len(all); n++ {
				_, rows := f.list(fmt.Sprintf("/api/v1/network/connections?page_size=5&page=%d&sort=%s%s", n, sort, filter), "connections")
				joined = append(joined, rows...)
			}
			if !slices.Equal(keys("connections", joined), keys("connections", want)) {
				t.Errorf("sort=%s%s: pages of 5 are not the whole list in order:\ngot  %v\nwant %v", sort, filter, column(joined, field), column(want, field))
			}
		}
	}
}

// Sorted pages by number continue one another: page 2 starts where page 1
// ended, no row twice, none skipped, and together they are the whole
// sorted view; a page past the last is empty with the totals. Without
// sort the pages of every list are in key order.
func TestV1SortedPages(t *testing.T) {
	f := start(t)
	sortFleet(f)
	for _, c := range []struct{ view, sort string }{
		{"connections", "-duration_secs"}, {"connections", "binary"}, {"connections", "hostname"}, {"connections", ""},
		{"listening", "service"}, {"listening", "-pid"}, {"listening", ""},
		{"udp", "-service"}, {"udp", ""},
		{"flows", "-bytes_sent"}, {"flows", "started_at"}, {"flows", ""},
	} {
		_, whole := f.v1Sorted(c.view, c.sort)
		const size = 7
		pages := (len(whole) + size - 1) / size
		var joined []row
		seen := map[string]bool{}
		for n := 1; n <= pages+1; n++ {
			p := fmt.Sprintf("/api/v1/network/%s?page_size=%d&page=%d", c.view, size, n)
			if c.sort != "" {
				p += "&sort=" + c.sort
			}
			rest, rows := f.list(p, c.view)
			want := min(size, max(0, len(whole)-(n-1)*size))
			if len(rows) != want || num(rest, "total") != float64(len(whole)) || num(rest, "page_count") != float64(pages) ||
				num(rest, "current_page") != float64(n) || num(rest, "page_size") != size || rest["truncated"] != nil {
				t.Errorf("%s: %d rows, %v; want %d rows of %d in %d pages", p, len(rows), rest, want, len(whole), pages)
			}
			if _, ok := rest["flows"]; c.view != "flows" && ok != (c.view == "connections") {
				t.Errorf("%s: flows member present %v", p, ok)
			}
			for _, k := range keys(c.view, rows) {
				if seen[k] {
					t.Errorf("%s: row %s was on an earlier page", p, k)
				}
				seen[k] = true
			}
			joined = append(joined, rows...)
		}
		if !slices.Equal(keys(c.view, joined), keys(c.view, whole)) {
			t.Errorf("%s sort=%q: pages of %d do not join up to the whole sorted list", c.view, c.sort, size)
		}
		all := keys(c.view, f.v1All(c.view, ""))
		got := keys(c.view, joined)
		slices.Sort(all)
		slices.Sort(got)
		if !slices.Equal(got, all) {
			t.Errorf("%s sort=%q: the pages are not the rows of the view", c.view, c.sort)
		}
		if c.sort == "" {
			f.checkKeyOrder(c.view, joined, c.view+" pages without sort")
		}
	}

	// One sensor's rows, sorted and paged.
	_, mine := f.list("/api/v1/network/connections?sensor_id="+sensorB+"&sort=-remote_port", "connections")
	if len(mine) != 2 || num(mine[0], "remote_port") != 201 || num(mine[1], "remote_port") != 101 {
		t.Errorf("one sensor sorted by -remote_port: %v", column(mine, "remote_port"))
	}
	// page alone or page_size alone makes a page; sort alone does not.
	rest, rows := f.list("/api/v1/network/listening?page=2", "listening")
	if num(rest, "page_size") != 100 || num(rest, "current_page") != 2 || len(rows) != 0 || rest["truncated"] != nil {
		t.Errorf("listening?page=2: %d rows, %v", len(rows), rest)
	}
	rest, rows = f.list("/api/v1/network/flows?page_size=3", "flows")
	if num(rest, "page_size") != 3 || num(rest, "current_page") != 1 || len(rows) != 3 {
		t.Errorf("flows?page_size=3: %d rows, %v", len(rows), rest)
	}
	rest, rows = f.list("/api/v1/network/udp?sort=-local_port&page=", "udp")
	if rest["truncated"] != false || rest["page_size"] != nil || num(rest, "total") != float64(len(rows)) {
		t.Errorf("udp?sort=-local_port: %d rows, %v", len(rows), rest)
	}
}

// The whole-list form of listening, udp and flows keeps its cap when
// sorted: the first rows of the sorted view, with truncated.
func TestV1SortedListCapped(t *testing.T) {
	f := startWith(t, options{maxListRows: 4})
	sortFleet(f)
	f2 := startWith(t, options{}) // the same data uncapped, for reference
	sortFleet(f2)
	for _, c := range []struct{ view, sort string }{{"listening", "-service"}, {"flows", "-bytes_sent"}} {
		rest, rows := f.list("/api/v1/network/"+c.view+"?sort="+c.sort, c.view)
		_, all := f2.list("/api/v1/network/"+c.view+"?sort="+c.sort, c.view)
		if len(rows) != 4 || rest["truncated"] != true || num(rest, "total") != float64(len(all)) ||
			!slices.Equal(column(rows, c.sort[1:]), column(all[:4], c.sort[1:])) {
			t.Errorf("%s sort=%s capped at 4: %v %v; the uncapped list starts %v", c.view, c.sort, column(rows, c.sort[1:]), rest, column(all[:4], c.sort[1:]))
		}
	}
}

// Bad sort and page parameters are a 400 naming them; an unknown sort
// field's message lists the fields that are sortable. The v2 lists do not
// sort.
func TestV1SortBadRequest(t *testing.T) {
	f := start(t)
	f.fleet(1, 1, heartbeat.Shape{Conns: 2, Listeners: 2, UDP: 2, ActiveFlows: 2})
	for _, view := range v2Views {
		for _, bad := range []string{"bogus", "-", "--pid", "+pid", "binary_path", "-inode", "pid,binary", "PID", "%20pid", "sensor_stale", "protocol%00"} {
			var out map[string]string
			p := "/api/v1/network/" + view + "?sort=" + bad
			code := f.get(p, &out)
			if code != 400 || out["parameter"] != "sort" {
				t.Errorf("GET %s: %d %v; want 400 naming sort", p, code, out)
				continue
			}
			_, list, ok := strings.Cut(out["error"], "sortable: ")
			list, _, _ = strings.Cut(list, " (")
			if !ok || list != strings.Join(sortable[view], ", ") {
				t.Errorf("GET %s: the message does not list the sortable fields %v: %q", p, sortable[view], out["error"])
			}
		}
		for _, bad := range []struct{ q, param string }{
			{"page_size=0", "page_size"}, {"page_size=501", "page_size"}, {"page=0", "page"}, {"page=x", "page"},
			{"sort=pid&sort=-pid", "sort"}, {"sort=pid&page=-1", "page"},
		} {
			f.badRequest("/api/v1/network/"+view+"?"+bad.q, bad.param)
		}
		f.badRequest("/api/v2/network/"+view+"?sort=pid", "sort")
	}
	// A field of another view is not a field of this one.
	f.badRequest("/api/v1/network/flows?sort=local_port", "sort")
	f.badRequest("/api/v1/network/connections?sort=bytes_sent", "sort")
	f.badRequest("/api/v1/network/listening?sort=remote_port", "sort")
}

// TCP listening sockets are named by heartbeat.ServicePorts, the list the
// sensor names UDP sockets by: every port in it, and none outside it.
func TestListeningService(t *testing.T) {
	f := start(t)
	h := beat(sensor(sensorA, "upf-1"), 1, time.Now().Add(-5*time.Second))
	ports := []uint16{22, 8080, 65535}
	for _, s := range heartbeat.ServicePorts {
		ports = append(ports, s.Port)
	}
	for i, p := range ports {
		h.TCPListeners = append(h.TCPListeners, heartbeat.Listener{Family: "inet", LocalAddress: netip.MustParseAddr("10.9.0.1"), LocalPort: p, Inode: uint64(i + 1)})
	}
	f.ingest.Send(h)
	_, v1 := f.list("/api/v1/network/listening", "listening")
	v2 := f.walk("/api/v2/network/listening?limit=4", "listening", nil)
	for name, rows := range map[string][]row{"v1": v1, "v2": v2} {
		if len(rows) != len(ports) {
			t.Fatalf("%s: %d listeners, want %d", name, len(rows), len(ports))
		}
		got := map[uint16]string{}
		for _, r := range rows {
			s, ok := r["service"].(string)
			if !ok {
				t.Fatalf("%s: listener without a service string: %v", name, r)
			}
			got[uint16(num(r, "local_port"))] = s
		}
		for _, p := range ports {
			if got[p] != heartbeat.ServiceName(p) {
				t.Errorf("%s: port %d service %q, want %q", name, p, got[p], heartbeat.ServiceName(p))
			}
		}
		if got[2152] != "gtp-u" || got[8805] != "pfcp" || got[1812] != "radius" || got[1813] != "radius-acct" || got[22] != "" {
			t.Errorf("%s: services %v", name, got)
		}
	}
}
