package baseline_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/google/uuid"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/ingest/ingesttest"
	"github.com/netview/netview/internal/auth"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/internal/store/storetest"
	"github.com/netview/netview/internal/tlsconf/tlsconftest"
	"github.com/netview/netview/query"
	"github.com/netview/netview/query/baseline"
	"github.com/netview/netview/query/querytest"
	"github.com/netview/netview/sql/schema"
)

// fixture is a migrated store on the real engine and a job on it whose
// clock the test moves.
type fixture struct {
	t   *testing.T
	st  store.Store
	job *baseline.Job
	now time.Time
}

// t0 is a recent hour, so no row is past a table's TTL.
var t0 = time.Now().UTC().Add(-12 * time.Hour).Truncate(time.Hour)

func newFixture(t *testing.T, cfg baseline.Config) *fixture {
	t.Helper()
	b := storetest.Embedded(t)
	if _, err := schema.Migrate(context.Background(), b.Store, schema.Options{}); err != nil {
		t.Fatal(err)
	}
	job, err := baseline.New(cfg, b.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, st: b.Store, job: job, now: t0}
	job.Now = func() time.Time { return f.now }
	return f
}

// testConfig learns for an hour; the first run reaches back past t0 and
// nothing is held back by lag, so a run at f.now reads everything before.
func testConfig() baseline.Config {
	c := baseline.Defaults()
	c.Learning = time.Hour
	c.Lag = 0
	c.MaxWindow = 72 * time.Hour
	c.Backfill = 24 * time.Hour
	return c
}

func (f *fixture) exec(sql string, params ...store.Param) {
	f.t.Helper()
	if err := f.st.Exec(context.Background(), store.Query{SQL: sql, Params: params}); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
}

func (f *fixture) count(sql string, params ...store.Param) uint64 {
	f.t.Helper()
	var c proto.ColUInt64
	var got uint64
	if err := f.st.Select(context.Background(), store.Query{SQL: sql, Params: params}, proto.Results{{Name: "n", Data: &c}}, func(rows int) error {
		if rows > 0 {
			got = c.Row(0)
		}
		return nil
	}); err != nil {
		f.t.Fatalf("%s: %v", sql, err)
	}
	return got
}

func at(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05.000") }

func ps(s uuid.UUID, t time.Time) []store.Param {
	return []store.Param{store.P("s", s.String()), store.P("t", at(t))}
}

func (f *fixture) heartbeat(s uuid.UUID, t time.Time) {
	// seq from the time: heartbeats collapse on (sensor_id, seq).
	f.exec("INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at) VALUES ({s:UUID}, {q:UInt64}, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')})", append(ps(s, t), store.P("q", fmt.Sprint(t.UnixMilli())))...)
}

// tcpListener is one socket per binary and port (its inode), so the
// engine never folds two tests' sockets into one row in a merge.
func (f *fixture) tcpListener(s uuid.UUID, t time.Time, binary string, port int) {
	f.tcpSocket(s, t, binary, port, inode(binary, port))
}

func (f *fixture) tcpSocket(s uuid.UUID, t time.Time, binary string, port int, ino uint64) {
	f.exec("INSERT INTO tcp_listeners (sensor_id, seq, observed_at, first_seen, local_address, local_port, inode, pid, binary) VALUES ({s:UUID}, 1, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::', {p:UInt16}, {i:UInt64}, 42, {b:String})",
		append(ps(s, t), store.P("p", fmt.Sprint(port)), store.P("b", binary), store.P("i", fmt.Sprint(ino)))...)
}

func inode(binary string, port int) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s %d", binary, port)
	return h.Sum64() >> 1
}

func (f *fixture) udpSocket(s uuid.UUID, t time.Time, binary string, port, remotePort int) {
	f.exec("INSERT INTO udp_listeners (sensor_id, seq, observed_at, first_seen, local_address, local_port, remote_address, remote_port, inode, pid, binary) VALUES ({s:UUID}, 1, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::', {p:UInt16}, '::ffff:10.0.0.1', {rp:UInt16}, 1, 43, {b:String})",
		append(ps(s, t), store.P("p", fmt.Sprint(port)), store.P("rp", fmt.Sprint(remotePort)), store.P("b", binary))...)
}

func (f *fixture) event(s uuid.UUID, t time.Time, kind, binary, src, dst string, dport int, name string) {
	f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, src_address, src_port, dst_address, dst_port, pid, binary, query_name)
VALUES (generateUUIDv4(), {s:UUID}, {k:String}, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, 'tcp', toIPv6({src:String}), 40000, toIPv6({dst:String}), {p:UInt16}, 7, {b:String}, {n:String})`,
		append(ps(s, t), store.P("k", kind), store.P("b", binary), store.P("src", src), store.P("dst", dst), store.P("p", fmt.Sprint(dport)), store.P("n", name))...)
}

func (f *fixture) flow(s uuid.UUID, t time.Time, direction, binary, src, dst string, dport int) {
	f.exec(`INSERT INTO flows (sensor_id, flow_id, protocol, direction, src_address, src_port, dst_address, dst_port, pid, binary, started_at, ended_at, received_at)
VALUES ({s:UUID}, generateUUIDv4(), 'tcp', {d:String}, toIPv6({src:String}), 40000, toIPv6({dst:String}), {p:UInt16}, 9, {b:String}, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')})`,
		append(ps(s, t), store.P("d", direction), store.P("b", binary), store.P("src", src), store.P("dst", dst), store.P("p", fmt.Sprint(dport)))...)
}

func (f *fixture) connection(s uuid.UUID, t time.Time, binary, remote string) {
	f.exec(`INSERT INTO tcp_connections (sensor_id, seq, observed_at, first_seen, local_address, local_port, remote_address, remote_port, state, inode, pid, binary)
VALUES ({s:UUID}, 1, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::ffff:10.0.0.1', 22, toIPv6({r:String}), 50000, 'ESTABLISHED', 5, 11, {b:String})`,
		append(ps(s, t), store.P("b", binary), store.P("r", remote))...)
}

// run moves the clock to now and runs the job once.
func (f *fixture) run(now time.Time) baseline.Window {
	f.t.Helper()
	f.now = now
	w, err := f.job.Once(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return w
}

// findings counts a sensor's findings of a kind as the query service
// reads events: FINAL.
func (f *fixture) findings(s uuid.UUID, kind string) uint64 {
	f.t.Helper()
	return f.count("SELECT count() AS n FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = {k:String}", store.P("s", s.String()), store.P("k", kind))
}

const (
	kListener    = "baseline_new_listener"
	kDestination = "baseline_new_destination"
	kDomain      = "baseline_new_domain"
	kPeer        = "baseline_new_peer"
	kCount       = "baseline_connection_count"
)

// usual lays down what a sensor does every day: nginx on 80, sshd on 22,
// a DNS forwarder's UDP socket, curl to one API, ssh from one admin host.
func (f *fixture) usual(s uuid.UUID, t time.Time) {
	f.heartbeat(s, t)
	f.tcpListener(s, t, "nginx", 80)
	f.tcpListener(s, t, "sshd", 22)
	f.udpSocket(s, t, "dnsmasq", 53, 0)
	f.event(s, t, "network_connect", "curl", "10.0.0.1", "1.1.1.1", 443, "")
	f.event(s, t, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "api.example.com")
	f.event(s, t, "dns_resolution", "curl", "10.0.0.1", "1.1.1.1", 443, "api.example.com")
	f.event(s, t, "network_accept", "sshd", "10.0.0.7", "10.0.0.1", 22, "")
	f.connection(s, t, "sshd", "10.0.0.7")
	f.flow(s, t, "outbound", "curl", "10.0.0.1", "1.1.1.1", 443)
	f.flow(s, t, "inbound", "sshd", "10.0.0.7", "10.0.0.1", 22)
}

func (f *fixture) want(s uuid.UUID, want map[string]uint64) {
	f.t.Helper()
	for _, k := range []string{kListener, kDestination, kDomain, kPeer} {
		if got := f.findings(s, k); got != want[k] {
			f.t.Errorf("%s findings = %d, want %d", k, got, want[k])
		}
	}
}

// Each rule fires exactly once on its change, and never on what was
// learned, nor on the same rows again in a later run.
func TestRulesFireOnceOnWhatIsNew(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.usual(s, t0)
	f.usual(s, t0.Add(30*time.Minute))
	f.run(t0.Add(40 * time.Minute))
	f.want(s, nil)

	// Past learning: the usual again, and one new thing per rule.
	t1 := t0.Add(2 * time.Hour)
	f.usual(s, t1)
	f.tcpListener(s, t1.Add(time.Second), "nginx", 8080)    // new port of a known binary
	f.tcpSocket(s, t1.Add(2*time.Second), "nginx", 8080, 7) // another socket, same key: one finding
	f.tcpListener(s, t1.Add(time.Second), "redis", 80)      // known port, new binary
	f.udpSocket(s, t1, "dnsmasq", 5353, 0)
	f.udpSocket(s, t1, "curl", 41000, 53)                                                    // connected UDP: a client, not a listener
	f.event(s, t1, "network_connect", "curl", "10.0.0.1", "1.1.1.1", 8443, "")               // destination: new port; peer known
	f.flow(s, t1, "outbound", "curl", "10.0.0.1", "2.2.2.2", 443)                            // destination and peer
	f.event(s, t1, "dns_lookup", "curl", "10.0.0.1", "10.0.0.53", 53, "www.example.com.")    // known domain
	f.event(s, t1, "dns_resolution", "curl", "10.0.0.1", "3.3.3.3", 443, "cdn.Other.co.uk")  // domain; destination by name (not by address: no connect event)
	f.event(s, t1, "dns_resolution", "curl", "10.0.0.1", "1.1.1.9", 443, "API.example.com.") // known name, new address: nothing
	f.event(s, t1, "network_accept", "sshd", "10.0.9.9", "10.0.0.1", 22, "")                 // peer: a client from a new /24
	f.connection(s, t1, "", "10.9.9.9")                                                      // unattributed: nothing
	f.run(t1.Add(10 * time.Minute))
	f.want(s, map[string]uint64{kListener: 3, kDestination: 3, kDomain: 1, kPeer: 2})

	// The finding carries its first row.
	var bin, state, src proto.ColStr
	var port proto.ColUInt16
	var pid proto.ColUInt32
	var tm proto.ColDateTime64
	var got []string
	err := f.st.Select(context.Background(), store.Query{
		SQL: `SELECT CAST(binary, 'String') AS bin, toUInt16(src_port) AS port, toUInt32(pid) AS pid, time AS tm, CAST(state, 'String') AS state, CAST(source, 'String') AS src
FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_listener' ORDER BY bin, port`,
		Params: []store.Param{store.P("s", s.String())},
	}, proto.Results{{Name: "bin", Data: &bin}, {Name: "port", Data: &port}, {Name: "pid", Data: &pid}, {Name: "tm", Data: &tm}, {Name: "state", Data: &state}, {Name: "src", Data: &src}},
		func(rows int) error {
			for i := range rows {
				got = append(got, fmt.Sprintf("%s %d %d %s %s %s", bin.Row(i), port.Row(i), pid.Row(i), tm.Row(i).UTC().Format(time.RFC3339), state.Row(i), src.Row(i)))
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	wantRows := []string{
		fmt.Sprintf("dnsmasq 5353 43 %s udp_listeners baseline", t1.Format(time.RFC3339)),
		fmt.Sprintf("nginx 8080 42 %s tcp_listeners baseline", t1.Add(time.Second).Format(time.RFC3339)),
		fmt.Sprintf("redis 80 42 %s tcp_listeners baseline", t1.Add(time.Second).Format(time.RFC3339)),
	}
	if fmt.Sprint(got) != fmt.Sprint(wantRows) {
		t.Errorf("listener findings:\n got %q\nwant %q", got, wantRows)
	}

	// The same rows again, later: all learned, nothing new.
	t2 := t1.Add(time.Hour)
	f.usual(s, t2)
	f.tcpListener(s, t2, "nginx", 8080)
	f.udpSocket(s, t2, "dnsmasq", 5353, 0)
	f.flow(s, t2, "outbound", "curl", "10.0.0.1", "2.2.2.2", 443)
	f.event(s, t2, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "img.other.co.uk")
	f.event(s, t2, "network_accept", "sshd", "10.0.9.9", "10.0.0.1", 22, "")
	f.run(t2.Add(time.Minute))
	f.want(s, map[string]uint64{kListener: 3, kDestination: 3, kDomain: 1, kPeer: 2})

	// A second sensor with the same listeners is of the first one's role:
	// what the role showed is known to it (listener, destination and
	// domain are judged per group), but its peers are its own (per
	// sensor), new there once its own learning is over.
	s2 := uuid.New()
	f.heartbeat(s2, t2.Add(2*time.Minute)) // after the last run's window
	f.usual(s2, t2.Add(90*time.Minute))
	f.run(t2.Add(100 * time.Minute))
	f.want(s2, map[string]uint64{kPeer: 2})

	// A sensor of another role (no nginx) learns on its own: the first
	// one's keys are new there, once its own learning is over.
	s3 := uuid.New()
	f.heartbeat(s3, t2.Add(102*time.Minute))
	t3 := t2.Add(3 * time.Hour)
	f.usual(s3, t3)
	f.exec("ALTER TABLE tcp_listeners DELETE WHERE sensor_id = {s:UUID} SETTINGS mutations_sync = 2", store.P("s", s3.String()))
	f.tcpListener(s3, t3, "redis", 6379)
	f.run(t3.Add(10 * time.Minute))
	// Peers: curl's 1.1.1.1, the ssh client's network (the accept), and,
	// as nothing listens on port 22 here, the connection's remote address
	// as an outbound peer.
	f.want(s3, map[string]uint64{kListener: 2, kDestination: 2, kDomain: 1, kPeer: 3})
}

// Roles: sensors whose listeners look alike (the same binaries listening)
// are a group. A key the group showed is no finding for a member, even a
// new one still in its own learning period, but a key new to the group
// is; peers stay per sensor, and another role learns on its own.
func TestRoleGroups(t *testing.T) {
	f := newFixture(t, testConfig())
	web1, web2, web3, db := uuid.New(), uuid.New(), uuid.New(), uuid.New()
	web := func(s uuid.UUID, t time.Time) {
		f.heartbeat(s, t)
		f.tcpListener(s, t, "nginx", 443)
		f.tcpListener(s, t, "sshd", 22)
		f.event(s, t, "network_connect", "curl", "10.0.0.1", "1.1.1.1", 443, "")
	}
	for _, t := range []time.Time{t0, t0.Add(30 * time.Minute)} {
		web(web1, t)
		web(web2, t)
		f.heartbeat(db, t)
		f.tcpListener(db, t, "postgres", 5432)
		f.tcpListener(db, t, "sshd", 22)
	}
	f.event(web1, t0, "network_accept", "sshd", "10.0.0.7", "10.0.0.1", 22, "")
	f.run(t0.Add(40 * time.Minute))

	// Past the learning of the first three, web-3 joins: its first
	// heartbeat, so it is learning, yet judged by its role.
	t1 := t0.Add(2 * time.Hour)
	web(web3, t1)
	f.tcpListener(web3, t1, "nginx", 8443)                                       // new to the role: loud
	f.event(web3, t1, "network_connect", "curl", "10.0.0.1", "6.6.6.6", 443, "") // new destination: loud; new peer, but per sensor: learning
	f.event(web3, t1, "network_accept", "sshd", "10.0.0.7", "10.0.0.1", 22, "")  // peer, learning: quiet
	// The database server is of another role: the web role's destination
	// is new there.
	f.heartbeat(db, t1)
	f.tcpListener(db, t1, "postgres", 5432)
	f.tcpListener(db, t1, "sshd", 22)
	f.event(db, t1, "network_connect", "curl", "10.0.0.1", "1.1.1.1", 443, "")
	f.run(t1.Add(10 * time.Minute))
	f.want(web3, map[string]uint64{kListener: 1, kDestination: 1})
	f.want(db, map[string]uint64{kDestination: 1, kPeer: 1})

	// Later web-2 shows what web-3 showed, and is sshed into from the host
	// web-1 (not web-2) was: the listener and destination are the role's,
	// the peer is web-2's own.
	t2 := t1.Add(time.Hour)
	web(web2, t2)
	f.tcpListener(web2, t2, "nginx", 8443)
	f.event(web2, t2, "network_connect", "curl", "10.0.0.1", "6.6.6.6", 443, "")
	f.event(web2, t2, "network_accept", "sshd", "10.0.0.7", "10.0.0.1", 22, "")
	f.run(t2.Add(10 * time.Minute))
	f.want(web2, map[string]uint64{kPeer: 2}) // 10.0.0.7, and 6.6.6.6 by the connect
	f.want(web1, nil)
	f.want(web3, map[string]uint64{kListener: 1, kDestination: 1})

	// A mute of the rule on one member still holds for a key new to the
	// group.
	f.exec("INSERT INTO baseline_mutes (rule, sensor_id, key, muted, muted_at, muted_by) VALUES ('listener', {s:UUID}, '', 1, now64(3, 'UTC'), 'test')", store.P("s", web1.String()))
	t3 := t2.Add(time.Hour)
	web(web1, t3)
	web(web2, t3)
	f.tcpListener(web1, t3, "nginx", 9443)
	f.tcpListener(web2, t3, "nginx", 9443)
	f.run(t3.Add(10 * time.Minute))
	f.want(web1, nil)
	f.want(web2, map[string]uint64{kListener: 1, kPeer: 2})
}

// Inbound peers are judged by the client's network: 50 new clients of a
// web server from one /24 (as accepts, inbound flows and connections to
// its listening port) and 10 from one IPv6 /64 are one finding each, a
// client from another /24 is one more, while an outbound peer is still
// one finding per new address.
func TestPeerInboundByNetwork(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	f.tcpListener(s, t0, "nginx", 443)
	f.event(s, t0, "network_accept", "nginx", "10.1.1.1", "10.0.0.1", 443, "") // a client network learned
	f.run(t0.Add(time.Hour))

	t1 := t0.Add(2 * time.Hour)
	f.heartbeat(s, t1)
	f.tcpListener(s, t1, "nginx", 443)
	clients := func(t time.Time, addr string, n int) {
		p := append(ps(s, t), store.P("a", addr), store.P("n", fmt.Sprint(n)))
		f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, src_address, src_port, dst_address, dst_port, pid, binary)
SELECT generateUUIDv4(), {s:UUID}, 'network_accept', {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, 'tcp', a, 50000, toIPv6('10.0.0.1'), 443, 42, 'nginx'
FROM (SELECT toIPv6(replaceOne({a:String}, 'N', toString(number + 1))) AS a FROM numbers({n:UInt32}))`, p...)
		f.exec(`INSERT INTO flows (sensor_id, flow_id, protocol, direction, src_address, src_port, dst_address, dst_port, pid, binary, started_at, ended_at, received_at)
SELECT {s:UUID}, generateUUIDv4(), 'tcp', 'inbound', a, 50000, toIPv6('10.0.0.1'), 443, 42, 'nginx', {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}
FROM (SELECT toIPv6(replaceOne({a:String}, 'N', toString(number + 1))) AS a FROM numbers({n:UInt32}))`, p...)
		f.exec(`INSERT INTO tcp_connections (sensor_id, seq, observed_at, first_seen, local_address, local_port, remote_address, remote_port, state, inode, pid, binary)
SELECT {s:UUID}, 1, {t:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::', 443, a, 50000, 'ESTABLISHED', cityHash64(a), 42, 'nginx'
FROM (SELECT toIPv6(replaceOne({a:String}, 'N', toString(number + 1))) AS a FROM numbers({n:UInt32}))`, p...)
	}
	clients(t1, "192.0.2.N", 50)
	clients(t1, "2001:db8:1:2::N", 10)
	clients(t1, "10.1.1.N", 20)                                               // the learned network
	f.event(s, t1, "network_connect", "curl", "10.0.0.1", "2.2.2.2", 443, "") // outbound: by address
	f.connection(s, t1, "curl", "3.3.3.3")                                    // local port 22, not a listener here: outbound
	f.run(t1.Add(10 * time.Minute))
	f.want(s, map[string]uint64{kPeer: 4, kDestination: 1})
	if n := f.count("SELECT count() AS n FROM baseline_seen WHERE rule = 'peer' AND key IN ('nginx from ::ffff:192.0.2.0/24', 'nginx from 2001:db8:1:2::/64', 'curl ::ffff:3.3.3.3')"); n != 3 {
		t.Errorf("%d of the keys nginx from ::ffff:192.0.2.0/24, nginx from 2001:db8:1:2::/64 and curl ::ffff:3.3.3.3 learned, want 3", n)
	}

	// More clients of the known networks: quiet; one of a new one: loud.
	t2 := t1.Add(time.Hour)
	f.heartbeat(s, t2)
	f.tcpListener(s, t2, "nginx", 443)
	clients(t2, "192.0.2.1N", 30)
	clients(t2, "198.51.100.N", 1)
	f.run(t2.Add(10 * time.Minute))
	f.want(s, map[string]uint64{kPeer: 5, kDestination: 1})
}

// Inbound-peer findings are capped per sensor, binary and hour
// (--baseline.peer.inbound-per-hour): a server meeting 30 new client
// networks in an hour makes the cap's findings, later windows of the same
// hour none, the next hour again up to the cap; outbound peers have none.
func TestPeerInboundCapPerHour(t *testing.T) {
	cfg := testConfig()
	cfg.InboundPerHour = 10
	f := newFixture(t, cfg)
	s := uuid.New()
	f.heartbeat(s, t0)
	f.run(t0.Add(time.Hour))
	networks := func(at time.Time, kind, binary string, first, n int) {
		addr, col := "src_address", "dst_address"
		if kind == "network_connect" {
			addr, col = col, addr
		}
		f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, `+addr+`, src_port, `+col+`, dst_port, pid, binary)
SELECT generateUUIDv4(), {s:UUID}, {k:String}, {t:DateTime64(3, 'UTC')} + toIntervalSecond(number), {t:DateTime64(3, 'UTC')}, 'tcp',
    toIPv6(concat('10.50.', toString({first:UInt32} + number), '.1')), 50000, toIPv6('10.0.0.1'), 443, 42, {b:String}
FROM numbers({n:UInt32})`, append(ps(s, at), store.P("k", kind), store.P("b", binary), store.P("first", fmt.Sprint(first)), store.P("n", fmt.Sprint(n)))...)
	}
	t1 := t0.Add(2 * time.Hour)
	networks(t1, "network_accept", "nginx", 0, 30)
	networks(t1, "network_accept", "sshd", 0, 3)     // another binary: a cap of its own
	networks(t1, "network_connect", "curl", 100, 20) // outbound: no cap
	f.run(t1.Add(10 * time.Minute))
	f.want(s, map[string]uint64{kPeer: 10 + 3 + 20, kDestination: 20})
	// The first ten of the hour are the findings.
	if n := f.count("SELECT count() AS n FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_peer' AND binary = 'nginx' AND time < {t:DateTime64(3, 'UTC')} + INTERVAL 10 SECOND", ps(s, t1)...); n != 10 {
		t.Errorf("%d of nginx's findings are its first ten clients, want 10", n)
	}
	// A rerun of the window writes the same ten.
	if err := f.job.Process(context.Background(), t0.Add(time.Hour), t1.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.want(s, map[string]uint64{kPeer: 33, kDestination: 20})
	networks(t1.Add(20*time.Minute), "network_accept", "nginx", 30, 5) // the same hour: over the cap
	f.run(t1.Add(30 * time.Minute))
	f.want(s, map[string]uint64{kPeer: 33, kDestination: 20})
	networks(t1.Add(time.Hour), "network_accept", "nginx", 40, 5) // the next hour
	f.run(t1.Add(time.Hour + 10*time.Minute))
	f.want(s, map[string]uint64{kPeer: 38, kDestination: 20})
	// One window over two hours: a cap for each.
	networks(t1.Add(2*time.Hour+50*time.Minute), "network_accept", "java", 0, 12)
	networks(t1.Add(3*time.Hour+10*time.Minute), "network_accept", "java", 20, 12)
	f.run(t1.Add(3*time.Hour + 20*time.Minute))
	f.want(s, map[string]uint64{kPeer: 58, kDestination: 20})
	// All of them were learned.
	if n := f.count("SELECT count() AS n FROM (SELECT key FROM baseline_seen WHERE rule = 'peer' AND startsWith(key, 'nginx from ') GROUP BY key)"); n != 40 {
		t.Errorf("%d of nginx's 40 client networks learned", n)
	}
}

// A local resolver's lookup of a domain a client on the sensor looked up
// too is the client's question forwarded: one domain finding, the
// client's. A resolver's lookup no client made is a finding of its own,
// and with --baseline.resolvers empty the forwarded one is too.
func TestDomainResolverDoesNotDoubleCount(t *testing.T) {
	for _, resolvers := range [][]string{nil, {}} {
		f := newFixture(t, func() baseline.Config { c := testConfig(); c.Resolvers = resolvers; return c }())
		s := uuid.New()
		f.heartbeat(s, t0)
		f.event(s, t0, "dns_query", "curl", "10.0.0.1", "127.0.0.53", 53, "api.example.com")
		f.event(s, t0, "dns_query", "systemd-resolve", "10.0.0.1", "10.0.0.53", 53, "api.example.com")
		f.run(t0.Add(time.Hour))
		t1 := t0.Add(2 * time.Hour)
		f.event(s, t1, "dns_query", "curl", "10.0.0.1", "127.0.0.53", 53, "www.new.example.org")
		f.event(s, t1.Add(time.Millisecond), "dns_query", "systemd-resolve", "10.0.0.1", "10.0.0.53", 53, "www.new.example.org.")
		f.event(s, t1.Add(time.Millisecond), "dns_query", "dnsmasq", "10.0.0.1", "10.0.0.53", 53, "cdn.new.example.org")
		f.event(s, t1, "dns_query", "systemd-resolve", "10.0.0.1", "10.0.0.53", 53, "its-own.example.net") // no client asked
		f.run(t1.Add(10 * time.Minute))
		want := uint64(2) // curl's new.example.org, the resolver's own example.net
		if resolvers != nil {
			want = 4 // and the two forwarded ones
		}
		if got := f.findings(s, kDomain); got != want {
			t.Errorf("resolvers %#v: %d domain findings, want %d", resolvers, got, want)
		}
		// Forwarded lookups are learned all the same.
		if n := f.count("SELECT count() AS n FROM baseline_seen WHERE rule = 'domain' AND key IN ('systemd-resolve example.org', 'dnsmasq example.org')"); n != 2 {
			t.Errorf("resolvers %#v: %d of the resolvers' keys learned, want 2", resolvers, n)
		}
	}
}

// Nothing is a finding during a sensor's learning period, but it is
// learned: the same key after learning is not new.
func TestLearningPeriod(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	f.tcpListener(s, t0.Add(59*time.Minute), "nginx", 80) // learning
	f.run(t0.Add(time.Hour + 30*time.Minute))
	f.tcpListener(s, t0.Add(time.Hour+31*time.Minute), "nginx", 80) // learned
	f.tcpListener(s, t0.Add(time.Hour+31*time.Minute), "nginx", 81) // new
	f.run(t0.Add(2 * time.Hour))
	f.want(s, map[string]uint64{kListener: 1})
	// A sensor whose first heartbeat the job has not seen is learning.
	s2 := uuid.New()
	f.tcpListener(s2, t0.Add(2*time.Hour+time.Minute), "nginx", 80)
	f.run(t0.Add(3 * time.Hour))
	f.want(s2, nil)
}

// A rule muted by flag, or a key or sensor muted in baseline_mutes, makes
// no finding, yet is learned.
func TestMutes(t *testing.T) {
	cfg := testConfig()
	cfg.Mute = []string{"domain"}
	f := newFixture(t, cfg)
	s, other := uuid.New(), uuid.New()
	f.heartbeat(s, t0)
	f.heartbeat(other, t0)
	mute := func(sensor uuid.UUID, rule, key string, muted int) {
		f.exec("INSERT INTO baseline_mutes (rule, sensor_id, key, muted, muted_at, muted_by) VALUES ({r:String}, {s:UUID}, {k:String}, {m:UInt8}, now64(3, 'UTC'), 'test')",
			store.P("r", rule), store.P("s", sensor.String()), store.P("k", key), store.P("m", fmt.Sprint(muted)))
	}
	mute(s, "listener", "tcp nginx 8080", 1)           // one key of one sensor
	mute(uuid.UUID{}, "listener", "tcp nginx 9090", 1) // one key everywhere
	mute(other, "peer", "", 1)                         // a rule on one sensor
	mute(s, "listener", "tcp nginx 7070", 1)           // muted, then unmuted: fires
	time.Sleep(5 * time.Millisecond)                   // a later muted_at wins
	mute(s, "listener", "tcp nginx 7070", 0)
	t1 := t0.Add(2 * time.Hour)
	for _, sensor := range []uuid.UUID{s, other} {
		f.tcpListener(sensor, t1, "nginx", 8080)
		f.tcpListener(sensor, t1, "nginx", 9090)
		f.tcpListener(sensor, t1, "nginx", 7070)
		f.event(sensor, t1, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "a.example.com")
		f.event(sensor, t1, "network_accept", "sshd", "10.0.0.9", "10.0.0.1", 22, "")
	}
	f.run(t1.Add(time.Minute))
	f.want(s, map[string]uint64{kListener: 1, kPeer: 1})
	f.want(other, map[string]uint64{kListener: 2})

	// Muted keys were learned: unmuting does not bring them up later.
	mute(s, "listener", "tcp nginx 8080", 0)
	f.tcpListener(s, t1.Add(time.Hour), "nginx", 8080)
	f.run(t1.Add(time.Hour + time.Minute))
	f.want(s, map[string]uint64{kListener: 1, kPeer: 1})

	// A whole rule muted everywhere by the table.
	mute(uuid.UUID{}, "listener", "", 1)
	f.tcpListener(s, t1.Add(2*time.Hour), "nginx", 6060)
	f.run(t1.Add(2*time.Hour + time.Minute))
	f.want(s, map[string]uint64{kListener: 1, kPeer: 1})
}

// A run retried, or replicas running at once, never show a finding twice.
func TestRetriedAndConcurrentRunsDoNotDuplicate(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	t1 := t0.Add(2 * time.Hour)
	f.tcpListener(s, t1, "nginx", 8080)
	f.flow(s, t1, "outbound", "curl", "10.0.0.1", "2.2.2.2", 443)
	f.event(s, t1, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "a.example.com")
	from, to := t0.Add(-time.Minute), t1.Add(time.Minute)

	// The same window processed twice in a row (a run whose watermark
	// write was lost), then by four replicas at once.
	for range 2 {
		if err := f.job.Process(context.Background(), from, to); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- f.job.Process(context.Background(), from, to)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]uint64{kListener: 1, kDestination: 1, kDomain: 1, kPeer: 1}
	f.want(s, want)
	// However many rows the runs wrote (merges may have folded some),
	// each finding has one id and one time.
	if n := f.count("SELECT uniqExact(kind, time, event_id) AS n FROM events WHERE sensor_id = {s:UUID} AND startsWith(kind, 'baseline_')", store.P("s", s.String())); n != 4 {
		t.Errorf("%d distinct (kind, time, event_id), want 4", n)
	}
	// A socket seen in two heartbeats, its window run, the engine merging
	// the two rows into the newer heartbeat's, the window run again: the
	// finding keeps its time (the socket's first_seen, not the surviving
	// row's observed_at), so it still shows once.
	t3 := t1.Add(time.Hour)
	for seq, obs := range []time.Time{t3, t3.Add(15 * time.Second)} {
		f.exec("INSERT INTO tcp_listeners (sensor_id, seq, observed_at, first_seen, local_address, local_port, inode, pid, binary) VALUES ({s:UUID}, {q:UInt64}, {o:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::', 9999, 99, 1, 'sshd')",
			append(ps(s, t3), store.P("q", fmt.Sprint(seq+1)), store.P("o", at(obs)))...)
	}
	if err := f.job.Process(context.Background(), t3.Add(-time.Minute), t3.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	f.exec("OPTIMIZE TABLE tcp_listeners FINAL")
	if n := f.count("SELECT count() AS n FROM tcp_listeners WHERE local_port = 9999"); n != 1 {
		t.Fatalf("%d rows of the socket after OPTIMIZE, want 1", n)
	}
	if err := f.job.Process(context.Background(), t3.Add(-time.Minute), t3.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	want[kListener]++
	f.want(s, want)

	// A later window that overlaps the first in time (two replicas with
	// different clocks) finds the same, with the same time.
	if err := f.job.Process(context.Background(), from.Add(time.Hour), to.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	f.want(s, want)
}

// A socket open longer than the lag: by the time its window runs, the
// engine has merged its rows into the newest heartbeat's, whose
// observed_at is after the window's end. It is still the window's (alive
// in it, first seen by its end), so the listener and the peer are found
// once, at the socket's first_seen, and not again by the next run.
func TestLongLivedSocketsMergedBeforeTheirWindow(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	t1 := t0.Add(2 * time.Hour)
	for seq, obs := range []time.Time{t1, t1.Add(5 * time.Minute)} {
		p := append(ps(s, t1), store.P("q", fmt.Sprint(seq+1)), store.P("o", at(obs)))
		f.exec("INSERT INTO tcp_listeners (sensor_id, seq, observed_at, first_seen, local_address, local_port, inode, pid, binary) VALUES ({s:UUID}, {q:UInt64}, {o:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::', 6379, 77, 1, 'redis')", p...)
		f.exec(`INSERT INTO tcp_connections (sensor_id, seq, observed_at, first_seen, local_address, local_port, remote_address, remote_port, state, inode, pid, binary)
VALUES ({s:UUID}, {q:UInt64}, {o:DateTime64(3, 'UTC')}, {t:DateTime64(3, 'UTC')}, '::ffff:10.0.0.1', 41000, toIPv6('10.9.9.9'), 5432, 'ESTABLISHED', 78, 2, 'app')`, p...)
	}
	for _, table := range []string{"tcp_listeners", "tcp_connections"} {
		f.exec("OPTIMIZE TABLE " + table + " FINAL")
		if n := f.count("SELECT count() AS n FROM "+table+" WHERE sensor_id = {s:UUID} AND observed_at <= {t:DateTime64(3, 'UTC')}", ps(s, t1.Add(time.Minute))...); n != 0 {
			t.Fatalf("%s: %d rows in the window after OPTIMIZE, want the merge to have left only the newest", table, n)
		}
	}
	f.run(t1.Add(time.Minute))
	want := map[string]uint64{kListener: 1, kPeer: 1}
	f.want(s, want)
	if n := f.count("SELECT count() AS n FROM events FINAL WHERE sensor_id = {s:UUID} AND kind IN ('baseline_new_listener', 'baseline_new_peer') AND time = {t:DateTime64(3, 'UTC')}", ps(s, t1)...); n != 2 {
		t.Errorf("%d of the two findings at the sockets' first_seen %v", n, t1)
	}
	if n := f.count("SELECT count() AS n FROM baseline_seen WHERE rule = '_role' AND sensor_id = {s:UUID} AND key = 'tcp redis'", ps(s, t1)...); n == 0 {
		t.Error("the merged listener made no role")
	}
	f.run(t1.Add(10 * time.Minute))
	f.want(s, want)
}

// A run reads only rows after the watermark, less the overlap: a row that
// arrives with a time the job has passed is read again when it lies within
// --baseline.overlap of the watermark, and makes its finding exactly once;
// one older than that is not read. The engine's own count of rows read by
// a run is the window's, not the history's.
func TestOnlyRowsAfterTheWatermarkAreRead(t *testing.T) {
	f := newFixture(t, testConfig()) // the default overlap: 10 minutes
	s := uuid.New()
	f.heartbeat(s, t0.Add(-23*time.Hour)) // in the first run's window
	// Two days of history, in older partitions: 50 000 listener rows.
	f.exec(`INSERT INTO tcp_listeners (sensor_id, seq, observed_at, local_address, local_port, inode, pid, binary)
SELECT {s:UUID}, number, {t:DateTime64(3, 'UTC')} - toIntervalSecond(number), '::', toUInt16(number % 1000), number, 1, 'old'
FROM numbers(50000)`, ps(s, t0.Add(-24*time.Hour))...)
	w := f.run(t0)
	if !w.To.Equal(t0) {
		t.Fatalf("window %v..%v, want it to end at %v", w.From, w.To, t0)
	}
	if wm, err := f.job.Watermark(context.Background()); err != nil || !wm.Equal(t0) {
		t.Fatalf("watermark %v (%v), want %v", wm, err, t0)
	}

	// Late: rows timed before the watermark land after it moved. The one
	// within the overlap is read by the next run; the one an hour old is
	// not, so not learned and no finding. A row after the watermark is.
	f.tcpListener(s, t0.Add(-time.Minute), "late", 1)
	f.tcpListener(s, t0.Add(-time.Hour), "older", 3)
	f.tcpListener(s, t0.Add(time.Minute), "fresh", 2)
	// The engine counts every row its reads select (SelectedRows, over
	// the whole process); this test runs alone, so the difference across
	// one run is what that run read.
	before := f.selectedRows()
	f.run(t0.Add(2 * time.Minute))
	read := f.selectedRows() - before
	f.want(s, map[string]uint64{kListener: 2})
	if n := f.count("SELECT count() AS n FROM baseline_seen WHERE rule = 'listener' AND key = 'tcp older 3'"); n != 0 {
		t.Errorf("the row older than the overlap was learned: the run read before its overlap")
	}
	if read == 0 || read >= 50000 {
		t.Errorf("the run read %d rows: want some, and fewer than the 50 000 of history before its window", read)
	}
	t.Logf("rows read by one run: %d (history before the window: 50 000 rows)", read)

	// The next runs read the late row again (it is within their overlap
	// too): no second finding, under no other id.
	f.run(t0.Add(4 * time.Minute))
	f.run(t0.Add(6 * time.Minute))
	f.want(s, map[string]uint64{kListener: 2})
	if n := f.count("SELECT uniqExact(event_id) AS n FROM events WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_listener' AND binary = 'late'", store.P("s", s.String())); n != 1 {
		t.Errorf("%d ids of the late listener's finding, want 1", n)
	}
	if n := f.count("SELECT count() AS n FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_listener' AND binary = 'late' AND time = {t:DateTime64(3, 'UTC')}", ps(s, t0.Add(-time.Minute))...); n != 1 {
		t.Errorf("the late listener's finding is not at its own time %v", t0.Add(-time.Minute))
	}
}

// Heartbeats later than the lag plus the overlap are counted
// (netview_baseline_late_heartbeats_total), once, by the run whose window
// moved back by twice the overlap holds them; one late within the overlap
// is not.
func TestLateHeartbeatsAreCounted(t *testing.T) {
	f := newFixture(t, testConfig()) // lag 0, overlap 10m
	s := uuid.New()
	f.run(t0)
	late := func(sent, received time.Time) {
		f.exec("INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at) VALUES ({s:UUID}, {q:UInt64}, {t:DateTime64(3, 'UTC')}, {r:DateTime64(3, 'UTC')})",
			append(ps(s, sent), store.P("q", fmt.Sprint(sent.UnixMilli())), store.P("r", at(received)))...)
	}
	late(t0.Add(-15*time.Minute), t0.Add(time.Minute)) // 16 minutes late: missed
	late(t0.Add(-5*time.Minute), t0.Add(time.Minute))  // 6 minutes: within the overlap
	counter := func() string {
		var b strings.Builder
		f.job.Metrics().WritePrometheus(&b)
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, "netview_baseline_late_heartbeats_total "); ok {
				return v
			}
		}
		return "(none)"
	}
	for _, now := range []time.Time{t0.Add(10 * time.Minute), t0.Add(20 * time.Minute), t0.Add(30 * time.Minute)} {
		f.run(now)
	}
	if got := counter(); got != "1" {
		t.Errorf("netview_baseline_late_heartbeats_total = %s, want 1", got)
	}
}

func (f *fixture) selectedRows() uint64 {
	return f.count("SELECT toUInt64(sum(value)) AS n FROM system.events WHERE event = 'SelectedRows'")
}

// The acknowledgement of a finding, as docs/operations.md gives it: an
// acked finding leaves the list of open ones; acked = 0 brings it back.
func TestAcknowledge(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	f.tcpListener(s, t0.Add(2*time.Hour), "nginx", 8080)
	f.tcpListener(s, t0.Add(2*time.Hour), "nginx", 8081)
	f.run(t0.Add(3 * time.Hour))
	open := func() uint64 {
		return f.count(`SELECT count() AS n FROM events FINAL
WHERE sensor_id = {s:UUID} AND startsWith(kind, 'baseline_')
  AND event_id NOT IN (SELECT event_id FROM baseline_acks FINAL WHERE sensor_id = {s:UUID} AND acked = 1)`, store.P("s", s.String()))
	}
	if n := open(); n != 2 {
		t.Fatalf("%d open findings, want 2", n)
	}
	ack := func(v int) {
		f.exec(`INSERT INTO baseline_acks (sensor_id, event_id, acked, acked_at, acked_by, note)
SELECT sensor_id, event_id, {v:UInt8}, now64(3, 'UTC'), 'alice', 'expected: new vhost'
FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_listener' AND src_port = 8080`, store.P("s", s.String()), store.P("v", fmt.Sprint(v)))
	}
	ack(1)
	if n := open(); n != 1 {
		t.Fatalf("%d open findings after one ack, want 1", n)
	}
	time.Sleep(5 * time.Millisecond)
	ack(0)
	if n := open(); n != 2 {
		t.Fatalf("%d open findings after the ack was taken back, want 2", n)
	}
	ack(1)

	// The state forgets the listener (as its TTL does after 90 days
	// unseen); when it comes back it is a finding of its own, which the
	// old acknowledgement does not cover.
	f.exec("ALTER TABLE baseline_seen DELETE WHERE rule = 'listener' AND key = 'tcp nginx 8080' SETTINGS mutations_sync = 2")
	f.tcpListener(s, t0.Add(4*time.Hour), "nginx", 8080)
	f.run(t0.Add(5 * time.Hour))
	if n := open(); n != 2 {
		t.Fatalf("%d open findings after an acknowledged key came back, want 2 (8081, and 8080 again)", n)
	}
}

func TestConfigValidate(t *testing.T) {
	c := baseline.Defaults()
	c.Mute = []string{"listener", "nope"}
	if err := c.Validate(); err == nil {
		t.Error("an unknown rule to mute was accepted")
	}
	c.Mute = []string{"listener"}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
	for flag, edit := range map[string]func(*baseline.Config){
		"--baseline.overlap -1m0s":            func(c *baseline.Config) { c.Overlap = -time.Minute },
		"--baseline.peer.inbound-per-hour -1": func(c *baseline.Config) { c.InboundPerHour = -1 },
	} {
		c := baseline.Defaults()
		edit(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), flag) {
			t.Errorf("error %v, want one naming %s", err, flag)
		}
	}
}

// Findings are events: the query service lists them, filters them by
// kind (Investigate), and lists them among all kinds by default.
func TestFindingsThroughTheEventsAPI(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.heartbeat(s, t0)
	f.tcpListener(s, t0.Add(2*time.Hour), "nginx", 8080)
	f.run(t0.Add(3 * time.Hour))

	const token = "viewer-token-baseline-0123456789"
	srv, err := query.New(query.Config{Tokens: auth.TokenFlags{List: token}, MaxListRows: 100, Timeout: 30 * time.Second},
		f.st, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	base := querytest.Serve(t, srv)
	window := "&since=" + t0.Format(time.RFC3339) + "&until=" + t0.Add(4*time.Hour).Format(time.RFC3339)
	for _, q := range []string{"kind=baseline_new_listener", "kind=network_connect,baseline_new_listener", ""} {
		req, _ := http.NewRequest("GET", base+"/api/v2/events?sensor_id="+s.String()+"&"+q+window, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Events []map[string]any `json:"events"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("%s: %d %v", q, resp.StatusCode, err)
		}
		if len(body.Events) != 1 || body.Events[0]["kind"] != kListener || body.Events[0]["binary"] != "nginx" {
			t.Errorf("%s: events %v, want the one listener finding of nginx", q, body.Events)
		}
	}
}

// Heartbeats through a real ingest node, as sensors send them: the job
// reads the rows ingest wrote, and a finding of a listener has the time
// the sensor first saw the socket.
func TestHeartbeatsThroughIngest(t *testing.T) {
	f := newFixture(t, testConfig())
	node := ingesttest.Start(t, ingesttest.Config(), f.st)
	sensor := heartbeat.Sensor{SensorID: uuid.New(), Hostname: "web-1", Flavor: "standard", Version: "0.1.0",
		BootID: uuid.New(), IntervalSecs: 15, Kernel: "6.18.0"}
	nginx := heartbeat.Process{PID: 100, UID: 33, Binary: "nginx", BinaryPath: "/usr/sbin/nginx"}
	curl := heartbeat.Process{PID: 200, UID: 1000, Binary: "curl", BinaryPath: "/usr/bin/curl"}
	listener := func(port uint16, inode uint64, first time.Time, p heartbeat.Process) heartbeat.Listener {
		return heartbeat.Listener{Family: "inet", LocalAddress: netip.MustParseAddr("0.0.0.0"), LocalPort: port, Inode: inode, Process: p, FirstSeen: first}
	}
	beat := func(seq uint64, at time.Time) *heartbeat.Heartbeat {
		return &heartbeat.Heartbeat{Format: heartbeat.Format, HeartbeatID: uuid.New(), Seq: seq, SentAt: at, Sensor: sensor}
	}
	connect := func(at time.Time, dst string) heartbeat.Event {
		return heartbeat.Event{EventID: uuid.New(), Kind: "network_connect", Time: at, Protocol: "tcp",
			SrcAddress: netip.MustParseAddr("10.0.0.1"), SrcPort: 40000, DstAddress: netip.MustParseAddr(dst), DstPort: 443, Process: curl}
	}
	h := beat(1, t0)
	h.TCPListeners = []heartbeat.Listener{listener(80, 1, t0, nginx)}
	h.Events = []heartbeat.Event{connect(t0, "1.1.1.1")}
	node.Send(h)

	t1 := t0.Add(2 * time.Hour)
	h = beat(2, t1)
	opened := t1.Add(-10 * time.Second) // between two heartbeats
	h.TCPListeners = []heartbeat.Listener{listener(80, 1, t0, nginx), listener(8443, 2, opened, nginx)}
	h.Events = []heartbeat.Event{connect(t1, "1.1.1.1"), connect(t1, "9.9.9.9")}
	node.Send(h)
	h = beat(3, t1.Add(15*time.Second))
	h.TCPListeners = []heartbeat.Listener{listener(80, 1, t0, nginx), listener(8443, 2, opened, nginx)}
	node.Send(h)

	f.run(t1.Add(time.Hour))
	f.want(sensor.SensorID, map[string]uint64{kListener: 1, kDestination: 1, kPeer: 1})
	got := f.count("SELECT count() AS n FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_new_listener' AND src_port = 8443 AND binary = 'nginx' AND pid = 100 AND time = {t:DateTime64(3, 'UTC')}",
		store.P("s", sensor.SensorID.String()), store.P("t", at(opened)))
	if got != 1 {
		t.Errorf("the listener finding is not of port 8443 at the socket's first_seen %v", opened)
	}
}

// The job's metrics count runs by result and say how far behind now the
// watermark is.
func TestMetrics(t *testing.T) {
	f := newFixture(t, testConfig())
	metric := func(name string) string {
		var b strings.Builder
		f.job.Metrics().WritePrometheus(&b)
		for _, line := range strings.Split(b.String(), "\n") {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				return v
			}
		}
		t.Fatalf("no %s in\n%s", name, b.String())
		return ""
	}
	if v := metric(`netview_baseline_runs_total{result="error"}`); v != "0" {
		t.Errorf("errors before any run = %s", v)
	}
	f.run(t0)
	f.now = t0.Add(90 * time.Second)
	if v := metric(`netview_baseline_watermark_lag_seconds`); v != "90" {
		t.Errorf("lag = %s, want 90", v)
	}
	f.exec("DROP TABLE baseline_watermark")
	if _, err := f.job.Once(context.Background()); err == nil {
		t.Fatal("a run without its watermark table succeeded")
	}
	if ok, bad := metric(`netview_baseline_runs_total{result="ok"}`), metric(`netview_baseline_runs_total{result="error"}`); ok != "1" || bad != "1" {
		t.Errorf("runs ok %s, error %s; want 1 and 1", ok, bad)
	}
}

// Run catches up in MaxWindow steps at once, rather than one window an
// interval (an hour here: the five windows of the backfill come well
// within the minute allowed), and returns when its context ends.
func TestRunCatchesUpAndStops(t *testing.T) {
	cfg := testConfig()
	cfg.Interval, cfg.Backfill, cfg.MaxWindow = time.Hour, 5*time.Hour, time.Hour
	f := newFixture(t, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.job.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for {
		wm, err := f.job.Watermark(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if wm.Equal(t0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("watermark %v after a minute, want %v: Run did not catch up in one go", wm, t0)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// BenchmarkRun times one run over a window of a fleet whose keys are
// known but for a few: 200 sensors, a quarter of an hour of heartbeats
// (60 each), 30 listeners and 50 connections a heartbeat, 20 connect and
// 10 DNS events a sensor a minute. go test -run '^$' -bench Run ./query/baseline/
//
// It runs without an overlap and with the default one (which reads the 10
// minutes before each window again), in the same process: the ratio of
// the two is the overlap's cost.
func BenchmarkRun(b *testing.B) {
	for _, overlap := range []time.Duration{0, baseline.Defaults().Overlap} {
		b.Run("overlap="+overlap.String(), func(b *testing.B) { benchmarkRun(b, overlap) })
	}
}

func benchmarkRun(b *testing.B, overlap time.Duration) {
	const sensors, beats = 200, 60
	st := storetest.Embedded(b).Store
	ctx := context.Background()
	if _, err := schema.Migrate(ctx, st, schema.Options{}); err != nil {
		b.Fatal(err)
	}
	exec := func(sql string, params ...store.Param) {
		if err := st.Exec(ctx, store.Query{SQL: sql, Params: params}); err != nil {
			b.Fatalf("%s: %v", sql, err)
		}
	}
	sid := func(n string) string {
		return "toUUID(concat('00000000-0000-4000-8000-', leftPad(toString(" + n + " % " + fmt.Sprint(sensors) + "), 12, '0')))"
	}
	base := time.Now().UTC().Add(-6 * time.Hour).Truncate(time.Minute)
	// fill writes a quarter of an hour of the fleet ending at end.
	fill := func(end time.Time, salt int) {
		p := []store.Param{store.P("end", at(end)), store.P("salt", fmt.Sprint(salt))}
		// n: sensor = n % sensors, heartbeat = n / sensors % beats, item = n / (sensors*beats).
		beat := fmt.Sprintf("{end:DateTime64(3, 'UTC')} - toIntervalSecond(15 * (intDiv(number, %d) %% %d))", sensors, beats)
		item := fmt.Sprintf("intDiv(number, %d)", sensors*beats)
		exec(fmt.Sprintf(`INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at)
SELECT %s, toUInt64(toUnixTimestamp64Milli(%s)), %s, %s FROM numbers(%d)`, sid("number"), beat, beat, beat, sensors*beats), p...)
		exec(fmt.Sprintf(`INSERT INTO tcp_listeners (sensor_id, seq, observed_at, first_seen, local_address, local_port, inode, pid, binary)
SELECT %s, toUInt64(toUnixTimestamp64Milli(%s)), %s, {end:DateTime64(3, 'UTC')} - toIntervalHour(1), '::', toUInt16(1000 + %s), %s, 10, concat('svc', toString(%s + if(%s = 0, {salt:UInt32}, 0)))
FROM numbers(%d)`, sid("number"), beat, beat, item, item, item, item, sensors*beats*30), p...)
		exec(fmt.Sprintf(`INSERT INTO tcp_connections (sensor_id, seq, observed_at, first_seen, local_address, local_port, remote_address, remote_port, state, inode, pid, binary)
SELECT %s, toUInt64(toUnixTimestamp64Milli(%s)), %s, {end:DateTime64(3, 'UTC')} - toIntervalHour(1), '::ffff:10.0.0.1', 40000, toIPv6(IPv4NumToString(toUInt32(167772160 + %s))), 443, 'ESTABLISHED', 100 + %s, 11, 'app'
FROM numbers(%d)`, sid("number"), beat, beat, item, item, sensors*beats*50), p...)
		exec(fmt.Sprintf(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, src_address, src_port, dst_address, dst_port, pid, binary, query_name)
SELECT generateUUIDv4(), %s, if(number %% 3 = 0, 'dns_query', 'network_connect'), {end:DateTime64(3, 'UTC')} - toIntervalSecond(intDiv(number, %d) %% 900), {end:DateTime64(3, 'UTC')}, 'tcp',
    '::ffff:10.0.0.1', 40000, toIPv6(IPv4NumToString(toUInt32(167772160 + number %% 40))), 443, 12, 'curl', concat('h', toString(number %% 40), '.example.com')
FROM numbers(%d)`, sid("number"), sensors, sensors*15*30), p...)
	}
	cfg := baseline.Defaults()
	cfg.Learning, cfg.Lag, cfg.MaxWindow, cfg.Backfill, cfg.Overlap = time.Hour, 0, time.Hour, 3*time.Hour, overlap
	job, err := baseline.New(cfg, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	// Learned: two hours before, as the learning period ends.
	var now time.Time
	job.Now = func() time.Time { return now }
	for i, end := range []time.Time{base.Add(-2 * time.Hour), base.Add(-time.Hour)} {
		fill(end, 0)
		now = end
		if i == 0 {
			exec("INSERT INTO baseline_watermark (job, processed_to, updated_at) VALUES ('baseline', {t:DateTime64(3, 'UTC')}, now64(3))", store.P("t", at(end.Add(-16*time.Minute))))
		}
		if _, err := job.Once(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		end := base.Add(time.Duration(i) * 15 * time.Minute)
		b.StopTimer()
		fill(end, 1000+i) // one new listener per sensor
		now = end
		b.StartTimer()
		if _, err := job.Once(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(sensors*beats*(30+50)+sensors*15*30), "window-rows")
	// Only the new listeners were findings: one per sensor and window.
	var n proto.ColUInt64
	var kinds []string
	if err := st.Select(ctx, store.Query{SQL: "SELECT count() AS n FROM events FINAL WHERE startsWith(kind, 'baseline_') GROUP BY kind ORDER BY kind"},
		proto.Results{{Name: "n", Data: &n}}, func(rows int) error {
			for i := range rows {
				kinds = append(kinds, fmt.Sprint(n.Row(i)))
			}
			return nil
		}); err != nil {
		b.Fatal(err)
	}
	if want := []string{fmt.Sprint(sensors * b.N)}; fmt.Sprint(kinds) != fmt.Sprint(want) {
		b.Errorf("findings by kind %v, want %v (the new listeners alone)", kinds, want)
	}
}

// beats writes n heartbeats of s every ten minutes from start, with the
// connection count expr gives (over t, the heartbeat's time, and number,
// its index).
func (f *fixture) beats(s uuid.UUID, start time.Time, n int, expr string) {
	f.t.Helper()
	f.exec(`INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at, tcp_connections, tcp_listeners)
SELECT {s:UUID}, toUInt64(toUnixTimestamp64Milli(t)), t, t, `+expr+`, 1
FROM (SELECT number, {t:DateTime64(3, 'UTC')} + toIntervalMinute(10 * number) AS t FROM numbers({n:UInt32}))`,
		append(ps(s, start), store.P("n", fmt.Sprint(n)))...)
}

// daily is a sensor's usual day: 100 to 108 connections for four hours
// from t0 + 2h every day, 10 to 12 the rest of the day.
func daily() string {
	return fmt.Sprintf("if((toHour(t) + 24 - %d) %% 24 BETWEEN 2 AND 5, 100 + (number %% 5) * 2, 10 + number %% 3)", t0.Hour())
}

// catchUp runs the job until its watermark reaches now.
func (f *fixture) catchUp(now time.Time) {
	f.t.Helper()
	for f.run(now).Full {
	}
}

// The connection count off the sensor's daily pattern: quiet through a
// normal day (busy hours included), one finding per hour while a spike at
// a normally quiet hour lasts, none for a sensor with too little history.
func TestConnectionCountOffTheDailyPattern(t *testing.T) {
	cfg := testConfig()
	cfg.Backfill, cfg.MaxWindow = 5*24*time.Hour, 24*time.Hour
	f := newFixture(t, cfg)
	s, young := uuid.New(), uuid.New()
	f.beats(s, t0.Add(-4*24*time.Hour), 4*24*6, daily()) // four days of history
	f.beats(young, t0.Add(-2*24*time.Hour), 2*24*6, daily())
	f.catchUp(t0)
	if n := f.findings(s, kCount); n != 0 {
		t.Fatalf("%d findings over the history", n)
	}
	if n := f.count("SELECT toUInt64(sum(heartbeats)) AS n FROM baseline_hourly FINAL WHERE sensor_id = {s:UUID}", store.P("s", s.String())); n != 4*24*6 {
		t.Fatalf("baseline_hourly holds %d heartbeats of the sensor, want %d", n, 4*24*6)
	}

	// Today: eight normal hours, through the busy ones; then 100
	// connections from t0 + 8h, a quiet hour, for 80 minutes; then normal.
	// The job runs every hour through the normal part, then every 20
	// minutes, so an hour of the spike spans several windows.
	spike := t0.Add(8 * time.Hour)
	today := fmt.Sprintf("if(t >= {spike:DateTime64(3, 'UTC')} AND t < {spike:DateTime64(3, 'UTC')} + INTERVAL 80 MINUTE, 100, %s)", daily())
	for _, sensor := range []uuid.UUID{s, young} {
		f.exec(strings.Replace(`INSERT INTO heartbeats (sensor_id, seq, sent_at, received_at, tcp_connections, tcp_listeners)
SELECT {s:UUID}, toUInt64(toUnixTimestamp64Milli(t)), t, t, EXPR, 1
FROM (SELECT number, {t:DateTime64(3, 'UTC')} + toIntervalMinute(10 * number) AS t FROM numbers(66))`, "EXPR", today, 1),
			append(ps(sensor, t0.Add(10*time.Minute)), store.P("spike", at(spike)))...)
	}
	for now := t0.Add(time.Hour); now.Before(spike); now = now.Add(time.Hour) {
		f.run(now)
		if n := f.findings(s, kCount); n != 0 {
			t.Fatalf("%d findings by %v, in a normal day", n, now.Sub(t0))
		}
	}
	for now := spike.Add(20 * time.Minute); !now.After(t0.Add(11 * time.Hour)); now = now.Add(20 * time.Minute) {
		f.run(now)
	}
	// A rerun of the spike's windows changes nothing.
	if err := f.job.Process(context.Background(), spike.Add(-20*time.Minute), spike.Add(40*time.Minute)); err != nil {
		t.Fatal(err)
	}
	var tm proto.ColDateTime64
	var state, detail proto.ColStr
	var got []string
	err := f.st.Select(context.Background(), store.Query{
		SQL:    "SELECT time AS tm, CAST(state, 'String') AS state, query_name AS detail FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_connection_count' ORDER BY tm",
		Params: []store.Param{store.P("s", s.String())},
	}, proto.Results{{Name: "tm", Data: &tm}, {Name: "state", Data: &state}, {Name: "detail", Data: &detail}}, func(rows int) error {
		for i := range rows {
			got = append(got, fmt.Sprintf("%s %s %s", tm.Row(i).UTC().Format(time.RFC3339), state.Row(i), detail.Row(i)))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !strings.HasPrefix(got[0], spike.Format(time.RFC3339)+" above 100 connections; usual at ") ||
		!strings.Contains(got[0], "over 4 days: 11 ± 0.8; 89 deviations") || !strings.HasPrefix(got[1], spike.Add(time.Hour).Format(time.RFC3339)+" above 100 ") {
		t.Errorf("findings:\n%s\nwant one at %v and one at the next hour, above", strings.Join(got, "\n"), spike)
	}
	if n := f.findings(young, kCount); n != 0 {
		t.Errorf("a sensor with two days of history: %d findings", n)
	}

	// Muted for the sensor: no finding, though the hours are still learned.
	f.exec("INSERT INTO baseline_mutes (rule, sensor_id, key, muted, muted_at, muted_by) VALUES ('connection_count', {s:UUID}, 'above', 1, now64(3, 'UTC'), 'test')", store.P("s", s.String()))
	late := t0.Add(11*time.Hour + 10*time.Minute)
	f.beats(s, late, 3, "500")
	f.run(late.Add(30 * time.Minute))
	if n := f.findings(s, kCount); n != 2 {
		t.Errorf("%d findings after a muted spike, want the 2 before", n)
	}
}

// The connection count re-reads --baseline.overlap as the other rules do:
// a heartbeat off the pattern that lands after its window was processed,
// within the overlap, is judged by the next run, at its own time; and a
// late heartbeat earlier than an hour's finding does not write a second
// one (one finding per sensor, hour and direction).
func TestConnectionCountReadsTheOverlap(t *testing.T) {
	cfg := testConfig() // overlap 10 minutes
	cfg.Backfill, cfg.MaxWindow = 5*24*time.Hour, 24*time.Hour
	f := newFixture(t, cfg)
	s := uuid.New()
	f.beats(s, t0.Add(-4*24*time.Hour), 4*24*6, daily()) // four days of history
	f.beats(s, t0, 12, "10")                             // two quiet hours, as usual
	f.catchUp(t0.Add(30 * time.Minute))
	if n := f.findings(s, kCount); n != 0 {
		t.Fatalf("%d findings before the spikes", n)
	}
	times := func() []string {
		var tm proto.ColDateTime64
		var got []string
		err := f.st.Select(context.Background(), store.Query{
			SQL:    "SELECT time AS tm FROM events FINAL WHERE sensor_id = {s:UUID} AND kind = 'baseline_connection_count' ORDER BY tm",
			Params: []store.Param{store.P("s", s.String())},
		}, proto.Results{{Name: "tm", Data: &tm}}, func(rows int) error {
			for i := range rows {
				got = append(got, tm.Row(i).UTC().Format(time.TimeOnly))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	at := func(d time.Duration) string { return t0.Add(d).Format(time.TimeOnly) }

	// Late: sent before the watermark, within the overlap; the first of
	// its hour off the pattern.
	f.beats(s, t0.Add(25*time.Minute), 1, "500")
	f.run(t0.Add(40 * time.Minute))
	if got := times(); !slices.Equal(got, []string{at(25 * time.Minute)}) {
		t.Errorf("after a late spike within the overlap: findings at %v, want one at %s", got, at(25*time.Minute))
	}
	// On time, in the next hour; then one later still, earlier than it.
	f.beats(s, t0.Add(96*time.Minute), 1, "500")
	f.run(t0.Add(100 * time.Minute))
	f.beats(s, t0.Add(93*time.Minute), 1, "500")
	f.run(t0.Add(110 * time.Minute))
	f.run(t0.Add(120 * time.Minute))
	if got := times(); !slices.Equal(got, []string{at(25 * time.Minute), at(96 * time.Minute)}) {
		t.Errorf("findings at %v, want %s and %s: one per hour, the second not moved by the later heartbeat", got, at(25*time.Minute), at(96*time.Minute))
	}
	if n := f.count("SELECT uniqExact(event_id) AS n FROM events WHERE sensor_id = {s:UUID} AND kind = 'baseline_connection_count'", store.P("s", s.String())); n != 2 {
		t.Errorf("%d finding ids, want 2", n)
	}
}

// The export of findings to webhooks and syslog (notify.go).

// receiver is a webhook on loopback that records every POSTed batch and
// answers with what fail says (200 when it returns 0).
type receiver struct {
	mu      sync.Mutex
	batches [][]map[string]any
	headers []http.Header
	fail    func(n int) int // n: requests so far, this one included
	block   chan struct{}   // when set, the request numbered blockAt waits on it
	blockAt int
	reqs    int
	srv     *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{fail: func(int) int { return 0 }}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.reqs++
		n, fail, block := r.reqs, r.fail(r.reqs), r.block
		r.mu.Unlock()
		if block != nil && n == r.blockAt {
			<-block // the sender gives up first: its batch is not acknowledged
		}
		if fail != 0 {
			http.Error(w, "down for now", fail)
			return
		}
		var batch []map[string]any
		if err := json.NewDecoder(req.Body).Decode(&batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.batches = append(r.batches, batch)
		r.headers = append(r.headers, req.Header.Clone())
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// ids are the event_ids received, in order, repeats included.
func (r *receiver) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, b := range r.batches {
		for _, f := range b {
			out = append(out, f["event_id"].(string))
		}
	}
	return out
}

func notifyConfig() baseline.NotifyConfig {
	c := baseline.NotifyDefaults()
	c.Interval, c.MaxBackoff, c.Timeout = 20*time.Millisecond, 200*time.Millisecond, 5*time.Second
	return c
}

func (f *fixture) notify(cfg baseline.NotifyConfig) *baseline.Notify {
	f.t.Helper()
	n, err := baseline.NewNotify(cfg, f.st, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	return n
}

// drain calls Once until the sink is up to date, and fails the test on
// any error.
func drain(t *testing.T, n *baseline.Notify, sink string) int {
	t.Helper()
	total := 0
	for range 1000 {
		sent, err := n.Once(context.Background(), sink)
		if err != nil {
			t.Fatal(err)
		}
		if sent == 0 {
			return total
		}
		total += sent
	}
	t.Fatal("never up to date")
	return 0
}

// stored is the findings' event_ids in events, in the order they were
// written.
func (f *fixture) stored() []string {
	f.t.Helper()
	var c proto.ColStr
	var out []string
	sql := "SELECT toString(event_id) AS s FROM events FINAL WHERE startsWith(kind, 'baseline_') ORDER BY received_at, event_id"
	if err := f.st.Select(context.Background(), store.Query{SQL: sql}, proto.Results{{Name: "s", Data: &c}}, func(rows int) error {
		for i := range rows {
			out = append(out, c.Row(i))
		}
		return nil
	}); err != nil {
		f.t.Fatal(err)
	}
	return out
}

// finding writes a finding as the baseline job does, with its own
// received_at (the insertion time the export orders by).
func (f *fixture) finding(s uuid.UUID, kind string, when, received time.Time, binary string, port int) string {
	f.t.Helper()
	id := uuid.New()
	f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, src_address, src_port, pid, binary, state, source)
VALUES ({id:UUID}, {s:UUID}, {k:String}, {t:DateTime64(3, 'UTC')}, {r:DateTime64(3, 'UTC')}, 'tcp', '::', {p:UInt16}, 42, {b:String}, 'tcp_listeners', 'baseline')`,
		append(ps(s, when), store.P("id", id.String()), store.P("k", kind), store.P("r", at(received)), store.P("p", fmt.Sprint(port)), store.P("b", binary))...)
	return id.String()
}

// Every finding the baseline job writes reaches the webhook once, with its
// fields, in the order it was written, and a look with nothing new sends
// nothing.
func TestExportWebhookGetsEveryFinding(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	f.exec("INSERT INTO sensors (sensor_id, hostname, seq) VALUES ({s:UUID}, 'web-1', 1)", store.P("s", s.String()))
	f.usual(s, t0)
	f.run(t0.Add(40 * time.Minute))
	t1 := t0.Add(2 * time.Hour)
	f.usual(s, t1)
	f.tcpListener(s, t1, "redis", 6379)
	f.flow(s, t1, "outbound", "curl", "10.0.0.1", "2.2.2.2", 443)
	f.event(s, t1, "dns_query", "curl", "10.0.0.1", "10.0.0.53", 53, "evil.example.net")
	f.run(t1.Add(10 * time.Minute))
	want := f.stored()
	if len(want) != 4 { // redis's listener, curl's destination and peer 2.2.2.2, its domain example.net
		t.Fatalf("the baseline job wrote %d findings, want 4", len(want))
	}

	r := newReceiver(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.WebhookTokenFile, cfg.WebhookHeaders, cfg.Batch = r.srv.URL+"/hook", tok, []string{"X-Tenant: blue"}, 2
	n := f.notify(cfg)
	if got := drain(t, n, "webhook"); got != len(want) {
		t.Errorf("sent %d findings, want %d", got, len(want))
	}
	if got := r.ids(); !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v (in the order written)", got, want)
	}
	if len(r.batches) != (len(want)+1)/2 {
		t.Errorf("%d POSTs for %d findings in batches of 2", len(r.batches), len(want))
	}
	if h := r.headers[0]; h.Get("Authorization") != "Bearer s3cret" || h.Get("X-Tenant") != "blue" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	var listener map[string]any
	for _, b := range r.batches {
		for _, x := range b {
			if x["kind"] == "baseline_new_listener" {
				listener = x
			}
		}
	}
	wantFields := map[string]any{"sensor_id": s.String(), "hostname": "web-1", "binary": "redis", "src_port": 6379.0, "protocol": "tcp",
		"state": "tcp_listeners", "source": "baseline", "time": t1.Format("2006-01-02T15:04:05.000Z"), "src_address": "::", "pid": 42.0}
	for k, v := range wantFields {
		if listener[k] != v {
			t.Errorf("listener finding %s = %v, want %v (all: %v)", k, listener[k], v, listener)
		}
	}
	// Nothing new: nothing sent; a new finding: it alone.
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a look with nothing new sent %d", got)
	}
	late := f.finding(s, kListener, t1, time.Now(), "sshd", 2222)
	drain(t, n, "webhook")
	if got := r.ids(); len(got) != len(want)+1 || got[len(got)-1] != late {
		t.Errorf("after one more finding received %v", got)
	}
}

// A receiver failing for a while gets everything once it recovers, in
// order and once each: Run retries the same batch, never skipping one.
func TestExportRetriesUntilTheReceiverRecovers(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	var want []string
	for i := range 7 {
		want = append(want, f.finding(s, kListener, t0.Add(time.Duration(i)*time.Minute), base.Add(time.Duration(i)*time.Millisecond), "app", 9000+i))
	}
	r := newReceiver(t)
	r.fail = func(n int) int {
		if n <= 5 || n == 7 { // down, then up for one batch, then down once more
			return http.StatusServiceUnavailable
		}
		return 0
	}
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Batch = r.srv.URL, 3
	n := f.notify(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); n.Run(ctx) }()
	deadline := time.Now().Add(time.Minute)
	for len(r.ids()) < len(want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // a few more looks: nothing more arrives
	cancel()
	<-done
	if got := r.ids(); !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v", got, want)
	}
	var b strings.Builder
	n.Metrics().WritePrometheus(&b)
	for _, m := range []string{`netview_baseline_notify_failures_total{sink="webhook"} 6`, `netview_baseline_notify_delivered_total{sink="webhook"} 7`} {
		if !strings.Contains(b.String(), m+"\n") {
			t.Errorf("metrics lack %s:\n%s", m, b.String())
		}
	}
}

// A stop in the middle of a send, and a new job on the same store (a
// restart), lose nothing, and repeat only the batch that was in flight.
func TestExportRestartLosesNothing(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	base := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	var want []string
	for i := range 7 {
		want = append(want, f.finding(s, kPeer, t0, base.Add(time.Duration(i)*time.Millisecond), "app", i))
	}
	r := newReceiver(t)
	r.block, r.blockAt = make(chan struct{}), 2
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Batch = r.srv.URL, 2
	first := f.notify(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); first.Run(ctx) }()
	for {
		r.mu.Lock()
		inFlight := r.reqs >= 2
		r.mu.Unlock()
		if inFlight {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel() // the service stops while the second batch is unanswered
	<-done
	close(r.block) // the receiver then takes it, though the sender never heard
	for r.reqs2() < 2 {
		time.Sleep(5 * time.Millisecond)
	}

	second := f.notify(cfg)
	drain(t, second, "webhook")
	got := r.ids()
	// The in-flight batch (want[2:4]) may arrive twice; nothing else does.
	wantSeq := append(append(slices.Clone(want[:4]), want[2:4]...), want[4:]...)
	if !slices.Equal(got, wantSeq) {
		t.Errorf("received %v\nwant     %v", got, wantSeq)
	}
}

func (r *receiver) reqs2() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.batches)
}

// A finding written late is not skipped: one about an old time written
// after newer ones goes by its insertion, and one whose insert became
// visible only after a newer one was delivered (a replica's clock behind)
// is caught by the overlap.
func TestExportFindingsWrittenLate(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := newReceiver(t)
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Overlap = r.srv.URL, time.Minute
	n := f.notify(cfg)
	a := f.finding(s, kListener, t0.Add(time.Hour), now.Add(-10*time.Second), "a", 1)
	drain(t, n, "webhook")
	// About a time long before a, written after it.
	old := f.finding(s, kListener, t0.Add(-6*time.Hour), now.Add(-5*time.Second), "old", 2)
	// Written with a clock 30 s behind: before a's insertion, but seen after.
	skewed := f.finding(s, kListener, t0, now.Add(-40*time.Second), "skewed", 3)
	drain(t, n, "webhook")
	if got, want := r.ids(), []string{a, skewed, old}; !slices.Equal(got, want) {
		t.Errorf("received %v\nwant     %v", got, want)
	}
	// One whose insertion lies before the overlap is beyond it: the limit
	// the docs state.
	f.finding(s, kListener, t0, now.Add(-5*time.Minute), "too-late", 4)
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a finding older than the overlap was sent: %d", got)
	}
	// A finding the baseline job wrote twice (a retried run: same event_id,
	// a later received_at) is not sent again.
	f.exec(`INSERT INTO events (event_id, sensor_id, kind, time, received_at, binary, source)
SELECT event_id, sensor_id, kind, time, now64(3, 'UTC'), binary, source FROM events WHERE event_id = {id:UUID}`, store.P("id", old))
	if got := drain(t, n, "webhook"); got != 0 {
		t.Errorf("a finding written again was sent again: %d", got)
	}
}

// The first look of a new sink starts Backfill back, and a restart before
// anything was delivered starts there again.
func TestExportFirstLookStartsAtBackfill(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	now := time.Now().UTC()
	f.finding(s, kListener, t0, now.Add(-3*time.Hour), "before", 1)
	in := f.finding(s, kListener, t0, now.Add(-90*time.Minute), "within", 2)
	r := newReceiver(t)
	r.fail = func(int) int { return http.StatusBadGateway }
	cfg := notifyConfig()
	cfg.WebhookURL, cfg.Backfill, cfg.Overlap = r.srv.URL, 2*time.Hour, 0
	n := f.notify(cfg)
	if _, err := n.Once(context.Background(), "webhook"); err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("a 502 gave %v", err)
	}
	// Restarted an hour later, with the receiver up.
	r.mu.Lock()
	r.fail = func(int) int { return 0 }
	r.mu.Unlock()
	later := f.notify(cfg)
	later.Now = func() time.Time { return now.Add(time.Hour) }
	drain(t, later, "webhook")
	if got := r.ids(); !slices.Equal(got, []string{in}) {
		t.Errorf("received %v, want only %s", got, in)
	}
}

// syslogReceiver accepts TCP connections on loopback and hands each
// message of its framing to msgs.
type syslogReceiver struct {
	ln    net.Listener
	msgs  chan string
	mu    sync.Mutex
	conns []net.Conn
}

func newSyslogReceiver(t *testing.T, addr string, octetCounting bool) *syslogReceiver {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // a port just freed by the receiver before
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	return serveSyslog(t, ln, octetCounting)
}

// serveSyslog receives syslog on ln.
func serveSyslog(t *testing.T, ln net.Listener, octetCounting bool) *syslogReceiver {
	r := &syslogReceiver{ln: ln, msgs: make(chan string, 100)}
	t.Cleanup(r.drop)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
			go r.read(c, octetCounting)
		}
	}()
	return r
}

func (r *syslogReceiver) read(c net.Conn, octetCounting bool) {
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		if octetCounting {
			lenText, err := br.ReadString(' ')
			if err != nil {
				return
			}
			size, err := strconv.Atoi(strings.TrimSuffix(lenText, " "))
			if err != nil || size <= 0 || strings.HasPrefix(lenText, "0") {
				r.msgs <- "BAD FRAME " + lenText
				return
			}
			b := make([]byte, size)
			if _, err := io.ReadFull(br, b); err != nil {
				return
			}
			r.msgs <- string(b)
			continue
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		r.msgs <- strings.TrimSuffix(line, "\n")
	}
}

// drop closes the listener and every connection: a receiver that stops.
func (r *syslogReceiver) drop() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func (r *syslogReceiver) next(t *testing.T) string {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no syslog message")
		return ""
	}
}

// rfc5424 is one message parsed by parse5424.
type rfc5424 struct {
	pri                                     int
	timestamp, host, app, procID, msgID, sd string
	params                                  map[string]string
	msg                                     string
}

var (
	printUSASCII = `[!-~]`
	headerRE     = regexp.MustCompile(`^<([0-9]{1,3})>1 (\S+) (` + printUSASCII + `{1,255}) (` + printUSASCII + `{1,48}) (` + printUSASCII + `{1,128}) (` + printUSASCII + `{1,32}) `)
	timeRE       = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$`)
	sdNameRE     = regexp.MustCompile(`^[!#-<>-\\^-~]{1,32}`) // PRINTUSASCII but '=', SP, ']', '"'
)

// parse5424 parses msg strictly as RFC 5424 (section 6): the header, then
// NILVALUE or SD-ELEMENTs, then an optional SP and MSG.
func parse5424(msg string) (rfc5424, error) {
	var m rfc5424
	h := headerRE.FindStringSubmatch(msg)
	if h == nil {
		return m, fmt.Errorf("header: %q", msg)
	}
	m.pri, _ = strconv.Atoi(h[1])
	if m.pri > 191 || (len(h[1]) > 1 && h[1][0] == '0') {
		return m, fmt.Errorf("PRI %s", h[1])
	}
	m.timestamp, m.host, m.app, m.procID, m.msgID = h[2], h[3], h[4], h[5], h[6]
	if m.timestamp != "-" && !timeRE.MatchString(m.timestamp) {
		return m, fmt.Errorf("TIMESTAMP %q", m.timestamp)
	}
	rest := msg[len(h[0]):]
	m.params = map[string]string{}
	if strings.HasPrefix(rest, "-") {
		rest = rest[1:]
	} else {
		if !strings.HasPrefix(rest, "[") {
			return m, fmt.Errorf("STRUCTURED-DATA: %q", rest)
		}
		for strings.HasPrefix(rest, "[") {
			rest = rest[1:]
			id := sdNameRE.FindString(rest)
			if id == "" {
				return m, fmt.Errorf("SD-ID at %q", rest)
			}
			m.sd, rest = id, rest[len(id):]
			for strings.HasPrefix(rest, " ") {
				rest = rest[1:]
				name := sdNameRE.FindString(rest)
				if name == "" || !strings.HasPrefix(rest[len(name):], `="`) {
					return m, fmt.Errorf("SD-PARAM at %q", rest)
				}
				rest = rest[len(name)+2:]
				var v strings.Builder
				for {
					if rest == "" {
						return m, errors.New("unterminated PARAM-VALUE")
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' && rest != "" && strings.ContainsRune(`"\]`, rune(rest[0])) {
						c, rest = rest[0], rest[1:]
					} else if c == ']' {
						return m, errors.New("unescaped ] in PARAM-VALUE")
					}
					v.WriteByte(c)
				}
				if _, dup := m.params[name]; dup {
					return m, fmt.Errorf("SD-PARAM %s twice", name)
				}
				m.params[name] = v.String()
			}
			if !strings.HasPrefix(rest, "]") {
				return m, fmt.Errorf("SD-ELEMENT end at %q", rest)
			}
			rest = rest[1:]
		}
	}
	if rest != "" {
		if !strings.HasPrefix(rest, " ") {
			return m, fmt.Errorf("no SP before MSG: %q", rest)
		}
		m.msg = rest[1:]
	}
	return m, nil
}

// Findings reach a TCP syslog receiver as RFC 5424 messages, octet-counted
// (RFC 6587) or one a line, with the finding as structured data and as a
// JSON MSG; a receiver that drops the connection gets the next batch on a
// new one.
func TestExportSyslogRFC5424(t *testing.T) {
	for _, framing := range []string{"octet-counting", "lf"} {
		t.Run(framing, func(t *testing.T) {
			f := newFixture(t, testConfig())
			s := uuid.New()
			f.exec("INSERT INTO sensors (sensor_id, hostname, seq) VALUES ({s:UUID}, 'db 2', 1)", store.P("s", s.String()))
			now := time.Now().UTC()
			id := f.finding(s, kListener, t0, now.Add(-time.Second), `we"ird]bin\`, 5432)
			rcv := newSyslogReceiver(t, "127.0.0.1:0", framing == "octet-counting")
			cfg := notifyConfig()
			cfg.SyslogAddr, cfg.SyslogFraming, cfg.SyslogFacility = rcv.ln.Addr().String(), framing, 4 // auth
			n := f.notify(cfg)
			drain(t, n, "syslog")
			m, err := parse5424(rcv.next(t))
			if err != nil {
				t.Fatal(err)
			}
			if m.pri != 4*8+5 || m.timestamp != t0.Format("2006-01-02T15:04:05.000Z") || m.host != "db_2" || m.app != "netview" || m.procID != "-" || m.msgID != kListener || m.sd != "netview@32473" {
				t.Errorf("header %+v", m)
			}
			for k, v := range map[string]string{"event_id": id, "sensor_id": s.String(), "binary": `we"ird]bin\`, "sport": "5432", "protocol": "tcp", "state": "tcp_listeners", "pid": "42"} {
				if m.params[k] != v {
					t.Errorf("SD %s = %q, want %q (all %v)", k, m.params[k], v, m.params)
				}
			}
			var body map[string]any
			if err := json.Unmarshal([]byte(m.msg), &body); err != nil || body["event_id"] != id || body["binary"] != `we"ird]bin\` {
				t.Errorf("MSG %q: %v", m.msg, err)
			}
			// The receiver restarts: the next batch goes out on a new
			// connection.
			rcv.drop()
			rcv2 := newSyslogReceiver(t, rcv.ln.Addr().String(), framing == "octet-counting")
			second := f.finding(s, kPeer, t0, now, "b", 1)
			drain(t, n, "syslog")
			m2, err := parse5424(rcv2.next(t))
			if err != nil || m2.params["event_id"] != second {
				t.Errorf("second message %+v: %v", m2, err)
			}
		})
	}
}

// The parser refuses what RFC 5424 refuses, so the test above can fail.
// Syslog over TLS (RFC 5425) to a loopback receiver with a certificate
// of a test CA: delivered when the CA file is that CA, and refused (no
// message, nothing recorded delivered, retried) when it is another one.
func TestExportSyslogTLS(t *testing.T) {
	f := newFixture(t, testConfig())
	s := uuid.New()
	ca := tlsconftest.CA(t, "syslog-ca")
	srv := tlsconftest.Server(t, ca, "syslog")
	cert, err := tls.LoadX509KeyPair(srv.CertFile, srv.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	rcv := serveSyslog(t, ln, true)
	id := f.finding(s, kListener, t0, time.Now().UTC().Add(-time.Second), "nginx", 8443)

	other := tlsconftest.CA(t, "other-ca")
	cfg := notifyConfig()
	cfg.SyslogAddr, cfg.SyslogTLS, cfg.SyslogTrust.CAFile = ln.Addr().String(), true, other.CertFile
	if _, err := f.notify(cfg).Once(context.Background(), "syslog"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("a receiver whose certificate the CA file does not sign: %v, want a certificate error", err)
	}
	if n := f.count("SELECT count() AS n FROM finding_delivery WHERE sink = 'syslog' AND event_id = {e:UUID}", store.P("e", id)); n != 0 {
		t.Fatalf("the refused finding was recorded delivered")
	}

	cfg.SyslogTrust.CAFile = ca.CertFile
	drain(t, f.notify(cfg), "syslog")
	m, err := parse5424(rcv.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if m.params["event_id"] != id || m.msgID != kListener {
		t.Errorf("message %+v, want the finding %s", m, id)
	}

	// Validation names the flags.
	bad := notifyConfig()
	bad.SyslogAddr, bad.SyslogTrust.CAFile = ln.Addr().String(), ca.CertFile
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--baseline.syslog.tls") {
		t.Errorf("a CA file without --baseline.syslog.tls: %v", err)
	}
	bad.SyslogTLS, bad.SyslogTrust.CAFile = true, filepath.Join(t.TempDir(), "missing.pem")
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "--baseline.syslog.ca-file") {
		t.Errorf("a missing CA file: %v", err)
	}
}

func TestParse5424IsStrict(t *testing.T) {
	good := `<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] An application event`
	if m, err := parse5424(good); err != nil || m.params["eventID"] != "1011" || m.msg != "An application event" {
		t.Errorf("RFC 5424's example: %+v %v", m, err)
	}
	for _, bad := range []string{
		`<165> 2003-10-11T22:14:15.003Z host app - ID47 - msg`,       // no version
		`<192>1 2003-10-11T22:14:15.003Z host app - ID47 - msg`,      // PRI too big
		`<165>1 2003-10-11 22:14:15 host app - ID47 - msg`,           // TIMESTAMP
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b]`,      // SD-PARAM without value
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="]"]`,  // unescaped ]
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="1"`,   // unterminated element
		`<165>1 2003-10-11T22:14:15.003Z host app - ID47 [a b="1"]x`, // no SP before MSG
		`<165>1 2003-10-11T22:14:15.003Z host app - this-msgid-is-longer-than-thirty-two - m`,
	} {
		if _, err := parse5424(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestNotifyConfigValidate(t *testing.T) {
	f := func(edit func(*baseline.NotifyConfig), want string) {
		t.Helper()
		c := baseline.NotifyDefaults()
		c.WebhookURL = "https://hooks.example.com/x"
		edit(&c)
		err := c.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("refused: %v", err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want one naming %s", err, want)
		}
	}
	f(func(*baseline.NotifyConfig) {}, "")
	f(func(c *baseline.NotifyConfig) { c.WebhookURL = "ftp://x/y" }, "--baseline.webhook.url")
	f(func(c *baseline.NotifyConfig) { c.WebhookURL = "http:///nohost" }, "--baseline.webhook.url")
	f(func(c *baseline.NotifyConfig) { c.WebhookHeaders = []string{"no colon"} }, "--baseline.webhook.header")
	f(func(c *baseline.NotifyConfig) { c.SyslogAddr = "nohost" }, "--baseline.syslog.addr")
	f(func(c *baseline.NotifyConfig) { c.SyslogFraming = "rfc3164" }, "--baseline.syslog.framing")
	f(func(c *baseline.NotifyConfig) { c.Batch = 0 }, "--baseline.notify.batch")
	f(func(c *baseline.NotifyConfig) { c.Interval = 0 }, "--baseline.notify.interval")
	f(func(c *baseline.NotifyConfig) { c.MaxBackoff = time.Millisecond }, "--baseline.notify.max-backoff")
	f(func(c *baseline.NotifyConfig) { c.TTLDays = -1 }, "--baseline.notify.ttl-days -1")
	f(func(c *baseline.NotifyConfig) { c.TTLDays = 1 }, "--baseline.notify.ttl-days 1 must outlast") // the backfill is a day
	f(func(c *baseline.NotifyConfig) { c.WebhookURL, c.Batch = "", 0 }, "")                          // nothing to send: nothing checked
}

// finding_delivery's TTL follows --baseline.notify.ttl-days, set at start
// (migration 0016 made it 30 days); 0 is the default, 30.
func TestNotifyTTLFollowsTheFlag(t *testing.T) {
	f := newFixture(t, testConfig())
	ttl := func() string {
		t.Helper()
		var e proto.ColStr
		var full string
		if err := f.st.Select(context.Background(), store.Query{SQL: "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'finding_delivery'"},
			proto.Results{{Name: "engine_full", Data: &e}}, func(rows int) error { full = e.Row(0); return nil }); err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`TTL .*?toIntervalDay\((\d+)\)`).FindStringSubmatch(full)
		if m == nil {
			t.Fatalf("no TTL in %s", full)
		}
		return m[1]
	}
	if got := ttl(); got != "30" {
		t.Fatalf("TTL after the migrations %s days, want 30", got)
	}
	for _, c := range []struct {
		days int
		want string
	}{{7, "7"}, {7, "7"}, {0, "30"}, {90, "90"}} {
		cfg := notifyConfig()
		cfg.TTLDays = c.days
		if err := f.notify(cfg).ApplyTTL(context.Background(), ""); err != nil {
			t.Fatal(err)
		}
		if got := ttl(); got != c.want {
			t.Errorf("--baseline.notify.ttl-days=%d: TTL %s days, want %s", c.days, got, c.want)
		}
	}
}
