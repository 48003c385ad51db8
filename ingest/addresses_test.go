package ingest_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

const ownNetns, podNetns = 4026531840, 4026532481

// hostInterfaces are a host's interfaces: lo, eth0 up with a v4 and a v6
// address, eth1 down without addresses, and a pod's eth0 in its own
// namespace.
func hostInterfaces(mac string, v4 string) []heartbeat.Interface {
	p := netip.MustParsePrefix
	return []heartbeat.Interface{
		{Netns: ownNetns, Name: "lo", Index: 1, Up: true, MAC: "00:00:00:00:00:00", Addresses: []netip.Prefix{p("127.0.0.1/8"), p("::1/128")}},
		{Netns: ownNetns, Name: "eth0", Index: 2, Up: true, MAC: mac, Addresses: []netip.Prefix{p(v4), p("2001:db8::5/64")}},
		{Netns: ownNetns, Name: "eth1", Index: 3, MAC: "02:00:00:00:00:03"},
		{Netns: podNetns, Name: "eth0", Index: 2, Up: true, MAC: "d2:0c:9e:41:7a:13", Addresses: []netip.Prefix{p("10.244.1.7/24")}},
	}
}

// holding is one merged row of host_addresses, as text.
func holdings(t *testing.T, st store.Store, sensor uuid.UUID, final string) []string {
	t.Helper()
	var row proto.ColStr
	var out []string
	q := `SELECT concat(site, ' ', IPv6NumToString(address), '/', toString(prefix_len), ' ', toString(netns), ' ', interface, '#', toString(ifindex), ' ',
	        mac, ' ', if(up, 'up', 'down'), ' ', toString(min(first_seen)), ' ', toString(max(last_seen)), ' ', toString(count())) AS row
	      FROM host_addresses ` + final + ` WHERE sensor_id = {s:UUID}
	      GROUP BY site, address, sensor_id, netns, interface, ifindex, prefix_len, mac, up ORDER BY row`
	err := st.Select(context.Background(), store.Query{SQL: q, Params: []store.Param{store.P("s", sensor.String())}},
		proto.Results{{Name: "row", Data: &row}}, func(n int) error {
			for i := range n {
				out = append(out, row.Row(i))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every address of every interface is a row, with the sensor's site, its
// namespace, interface, prefix length (24 for an IPv4 /24, though stored
// v4-mapped), MAC and state; repeated heartbeats merge into one row per
// holding that spans the first report to the last; the site lands in
// sensors too.
func TestHostAddressesStored(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	g := heartbeat.NewGenerator(71, heartbeat.Shape{Conns: 2})
	g.Sensor.Site = "fra1.core"
	t0 := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 3 {
		h := g.Next(t0.Add(time.Duration(i) * 15 * time.Second))
		h.Interfaces = hostInterfaces("02:42:ac:11:00:02", "10.0.0.5/24")
		n.send(h)
	}
	ts := func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000") }
	span := ts(t0) + " " + ts(t0.Add(30*time.Second))
	want := []string{
		"fra1.core ::1/128 4026531840 lo#1 00:00:00:00:00:00 up " + span,
		"fra1.core ::ffff:10.0.0.5/24 4026531840 eth0#2 02:42:ac:11:00:02 up " + span,
		"fra1.core ::ffff:10.244.1.7/24 4026532481 eth0#2 d2:0c:9e:41:7a:13 up " + span,
		"fra1.core ::ffff:127.0.0.1/8 4026531840 lo#1 00:00:00:00:00:00 up " + span,
		"fra1.core 2001:db8::5/64 4026531840 eth0#2 02:42:ac:11:00:02 up " + span,
	}
	slices.Sort(want)
	rows := holdings(t, n.store, g.Sensor.SensorID, "")
	for i := range rows {
		rows[i] = rows[i][:strings.LastIndexByte(rows[i], ' ')] // before a merge: 3 rows a holding
	}
	if !slices.Equal(rows, want) {
		t.Errorf("host_addresses:\n got %q\nwant %q", rows, want)
	}
	if got := count(t, n.store, "SELECT count() AS n FROM host_addresses WHERE sensor_id = {s:UUID}", store.P("s", g.Sensor.SensorID.String())); got != 15 {
		t.Errorf("%d rows before the merge, want 3 heartbeats x 5 addresses", got)
	}
	// A merge leaves one row a holding, with the whole span.
	if err := n.store.Exec(context.Background(), store.Query{SQL: "OPTIMIZE TABLE host_addresses FINAL"}); err != nil {
		t.Fatal(err)
	}
	for i, r := range holdings(t, n.store, g.Sensor.SensorID, "") {
		if i >= len(want) || r != want[i]+" 1" {
			t.Errorf("after the merge, holding %d is %q, want %q and one row", i, r, want[min(i, len(want)-1)]+" 1")
		}
	}
	if got := count(t, n.store, "SELECT count() AS n FROM sensors FINAL WHERE sensor_id = {s:UUID} AND site = 'fra1.core'", store.P("s", g.Sensor.SensorID.String())); got != 1 {
		t.Errorf("sensors rows with the site: %d, want 1", got)
	}
	// The heartbeats without a site leave it '' (the default site).
	g2 := heartbeat.NewGenerator(72, heartbeat.Shape{})
	h := g2.Next(time.Now())
	h.Interfaces = hostInterfaces("02:42:ac:11:00:09", "10.0.0.9/24")[1:2]
	n.send(h)
	if got := holdings(t, n.store, g2.Sensor.SensorID, "FINAL"); len(got) != 2 || !strings.HasPrefix(got[0], " ") {
		t.Errorf("a sensor without a site: %q, want 2 rows of site ''", got)
	}
}

// resolve runs schema.ResolveAddress and returns its resolution and its
// candidates as "sensor/netns/interfaces/up" words.
func resolve(t *testing.T, st store.Store, site, addr string, at time.Time, slack int) (string, string) {
	t.Helper()
	var res, who proto.ColStr
	var gotRes, gotWho string
	q := `SELECT resolution, arrayStringConcat(arrayMap(c -> concat(toString(c.1), '/', toString(c.2), '/', arrayStringConcat(c.3, ','), '/', if(c.4, 'up', 'down')), candidates), ' ') AS who
	      FROM (` + schema.ResolveAddress + `)`
	err := st.Select(context.Background(), store.Query{SQL: q, Params: []store.Param{
		store.P("site", site), store.P("address", netip.MustParseAddr(addr).String()),
		store.P("at", at.UTC().Format("2006-01-02 15:04:05.000")), store.P("slack_secs", fmt.Sprint(slack)),
	}}, proto.Results{{Name: "resolution", Data: &res}, {Name: "who", Data: &who}}, func(n int) error {
		if n != 1 {
			return fmt.Errorf("%d rows, want 1", n)
		}
		gotRes, gotWho = res.Row(0), who.Row(0)
		return nil
	})
	if err != nil {
		t.Fatalf("resolve %s %s: %v", site, addr, err)
	}
	return gotRes, gotWho
}

// Two sensors of one site holding 10.0.0.5 at once make it ambiguous, with
// both as candidates; a sensor of another site holding it too is resolved
// there alone; before the second sensor held it, the first one alone
// resolves it; an address no one held is unknown. The answers are the same
// before and after the table merges.
func TestAddressResolution(t *testing.T) {
	n := startNode(t, testConfig(), nil)
	t0 := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Millisecond)
	sensor := func(seed uint64, site string) *heartbeat.Generator {
		g := heartbeat.NewGenerator(seed, heartbeat.Shape{})
		g.Sensor.Site = site
		return g
	}
	a, b, c, d := sensor(81, "s1"), sensor(82, "s1"), sensor(83, "s2"), sensor(84, "s1")
	report := func(g *heartbeat.Generator, from, to int, ifs []heartbeat.Interface) {
		for i := from; i <= to; i++ {
			h := g.Next(t0.Add(time.Duration(i) * 15 * time.Second))
			h.Interfaces = ifs
			n.send(h)
		}
	}
	// a holds 10.0.0.5 throughout (heartbeats 0..5), b from heartbeat 3 in
	// a pod's namespace, c in site s2 throughout; d holds 10.0.0.9.
	report(a, 0, 5, hostInterfaces("02:00:00:00:00:0a", "10.0.0.5/24"))
	report(b, 3, 5, []heartbeat.Interface{{Netns: podNetns, Name: "eth0", Index: 7, Up: true, MAC: "02:00:00:00:00:0b",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/16")}}})
	report(c, 0, 5, hostInterfaces("02:00:00:00:00:0c", "10.0.0.5/24"))
	report(d, 0, 5, []heartbeat.Interface{{Netns: ownNetns, Name: "bond0", Index: 4, MAC: "02:00:00:00:00:0d",
		Addresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.9/24")}}})

	owner := func(g *heartbeat.Generator, netns uint64, iface, up string) string {
		return fmt.Sprintf("%s/%d/%s/%s", g.Sensor.SensorID, netns, iface, up)
	}
	ab := []string{owner(a, ownNetns, "eth0", "up"), owner(b, podNetns, "eth0", "up")}
	slices.Sort(ab)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * 15 * time.Second) }
	cases := []struct {
		name, site, addr string
		at               time.Time
		res, who         string
	}{
		{"shared in one site", "s1", "10.0.0.5", at(4), "ambiguous", strings.Join(ab, " ")},
		{"the same address, another site", "s2", "10.0.0.5", at(4), "resolved", owner(c, ownNetns, "eth0", "up")},
		{"before the second holder", "s1", "10.0.0.5", at(1), "resolved", owner(a, ownNetns, "eth0", "up")},
		{"v4-mapped asks the same", "s1", "::ffff:10.0.0.5", at(1), "resolved", owner(a, ownNetns, "eth0", "up")},
		{"an interface that is down", "s1", "10.0.0.9", at(4), "resolved", owner(d, ownNetns, "bond0", "down")},
		{"a pod's address", "s2", "10.244.1.7", at(2), "resolved", owner(c, podNetns, "eth0", "up")},
		{"no one holds it", "s1", "10.0.0.6", at(4), "unknown", ""},
		{"a site no sensor is in", "s3", "10.0.0.5", at(4), "unknown", ""},
		{"after every report", "s1", "10.0.0.5", at(5).Add(time.Hour), "unknown", ""},
		{"before every report", "s2", "10.0.0.5", at(0).Add(-time.Hour), "unknown", ""},
	}
	check := func(when string) {
		for _, c := range cases {
			res, who := resolve(t, n.store, c.site, c.addr, c.at, 20)
			if res != c.res || who != c.who {
				t.Errorf("%s, %s: %s %s at %s: %s [%s], want %s [%s]", when, c.name, c.site, c.addr, c.at.Format(time.TimeOnly), res, who, c.res, c.who)
			}
		}
	}
	check("before the merge")
	if err := n.store.Exec(context.Background(), store.Query{SQL: "OPTIMIZE TABLE host_addresses FINAL"}); err != nil {
		t.Fatal(err)
	}
	check("after the merge")

	// AddressOwners answers for every address at once, as a join needs.
	var site, res proto.ColStr
	var addr proto.ColIPv6
	var owners proto.ColUInt64
	var got []string
	err := n.store.Select(context.Background(), store.Query{
		SQL:    "SELECT CAST(site, 'String') AS site_name, address, owners, resolution FROM (" + schema.AddressOwners + ") WHERE address IN (toIPv6('10.0.0.5'), toIPv6('10.0.0.9')) ORDER BY site, address",
		Params: []store.Param{store.P("at", at(4).Format("2006-01-02 15:04:05.000")), store.P("slack_secs", "20")},
	}, proto.Results{{Name: "site_name", Data: &site}, {Name: "address", Data: &addr}, {Name: "owners", Data: &owners}, {Name: "resolution", Data: &res}},
		func(n int) error {
			for i := range n {
				a := netip.AddrFrom16(addr.Row(i)).Unmap()
				got = append(got, fmt.Sprintf("%s %s %d %s", site.Row(i), a, owners.Row(i), res.Row(i)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"s1 10.0.0.5 2 ambiguous", "s1 10.0.0.9 1 resolved", "s2 10.0.0.5 1 resolved"}; !slices.Equal(got, want) {
		t.Errorf("AddressOwners: %q, want %q", got, want)
	}
}
