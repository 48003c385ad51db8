package baseline

import (
	"fmt"
	"strings"
)

// Rule is one kind of "new": what its key is made of, from which rows.
type Rule struct {
	// Name is the rule's name in baseline_seen, baseline_mutes and
	// --baseline.mute.
	Name string
	// Kind is the event kind of its findings.
	Kind string
	// PerGroup rules judge a key against the sensor's role group too: it
	// is a finding only when no sensor of the group showed it before (see
	// roleSQL).
	PerGroup bool
	sources  []source
	// skip, when set, gives a condition over a candidate c (its cause
	// columns c.f.N, in causeCols' order) that keeps it from being a
	// finding, though it is still learned.
	skip func(r Rule) string
}

// source is one table's rows for a rule: each SQL field is an expression
// over that table's columns.
type source struct {
	origin string // the finding's state: where its first row came from
	table  string
	at     string // the row's own time, which the window bounds
	// t is the time learned and the finding's time; at when empty. A
	// snapshot row's is its socket's first_seen: the rows of one socket
	// collapse in a merge to the newest heartbeat's, and a rerun of the
	// window after that merge must still give the finding the same time.
	t     string
	where string
	key   string
	// The finding's columns, from the first row of its key; name and
	// qtype are empty strings when not set.
	ends
	name, qtype string
}

// Snapshot and event rows without a binary are left out of every rule: a
// socket the sensor could not attribute would make a key of its own, and
// come back "new" the day it is attributed.
const attributed = "binary != ''"

// snapshotTime is when the sensor first saw a snapshot row's socket, never
// after the row itself.
const snapshotTime = "least(first_seen, observed_at)"

// domainOf is the DNS domain of a name: ClickHouse's first significant
// subdomain (example.com of www.example.com, example.co.uk of
// a.example.co.uk: com, net, org, co, gov, edu and the like are not
// significant) and the whole name when it has none (localhost).
var domainOf = domainOfName("query_name")

func domainOfName(col string) string {
	return strings.ReplaceAll("if(cutToFirstSignificantSubdomain(lower(trimRight(N, '.'))) = '', lower(trimRight(N, '.')), cutToFirstSignificantSubdomain(lower(trimRight(N, '.'))))", "N", col)
}

// dnsKinds are the events of a lookup.
const dnsKinds = "kind IN ('dns_query', 'dns_lookup', 'dns_resolution') AND query_name != ''"

// resolverEcho is the domain rule's skip: a lookup by a local resolver
// (--baseline.resolvers; c.f.9 is the binary, c.f.19 the name) of a domain
// that a client on the same sensor looked up in the rows read. That is
// the resolver forwarding the client's question, not a question of its
// own: the client's finding says it. A resolver's lookup no client made
// (its own, or for a client the sensor does not see, as in a container
// it does not watch) is still a finding.
var resolverEcho = `has({resolvers:Array(String)}, toString(c.f.9)) AND (c.sensor_id, ` + domainOfName("c.f.19") + `) GLOBAL IN (
    SELECT sensor_id, ` + domainOf + ` FROM events
    WHERE time > {read_from:DateTime64(3, 'UTC')} AND time <= {to:DateTime64(3, 'UTC')} AND ` + dnsKinds + ` AND ` + attributed + ` AND NOT has({resolvers:Array(String)}, toString(binary)))`

// ends are a source's expressions for the finding's protocol and two ends.
type ends struct{ protocol, src, srcPort, dst, dstPort string }

var (
	// ownEnds are those of events and flows, which have these columns.
	ownEnds = ends{"protocol", "src_address", "src_port", "dst_address", "dst_port"}
	// A listener has one end: its own.
	tcpListening = ends{"'tcp'", "local_address", "local_port", "toIPv6('::')", "toUInt16(0)"}
	udpListening = ends{"'udp'", "local_address", "local_port", "toIPv6('::')", "toUInt16(0)"}
	tcpConnected = ends{"'tcp'", "local_address", "local_port", "remote_address", "remote_port"}
)

// destinationKey is protocol, binary, remote address and port; a
// destination by name (dns_resolution) puts the name for the address.
const destinationKey = "concat(protocol, ' ', binary, ' ', toString(dst_address), ' ', toString(dst_port))"

var rules = []Rule{
	// listener, destination and domain are what a role does: the services
	// it offers, the dependencies it calls, the names it looks up. Every
	// member of a role shares them, so they are judged per group.
	{Name: "listener", Kind: "baseline_new_listener", PerGroup: true, sources: []source{
		{origin: "tcp_listeners", table: "tcp_listeners", at: "observed_at", t: snapshotTime, where: attributed,
			key: "concat('tcp ', binary, ' ', toString(local_port))", ends: tcpListening},
		// A connected UDP socket (remote_port set) is a client, not a listener.
		{origin: "udp_listeners", table: "udp_listeners", at: "observed_at", t: snapshotTime, where: attributed + " AND remote_port = 0",
			key: "concat('udp ', binary, ' ', toString(local_port))", ends: udpListening},
	}},
	{Name: "destination", Kind: "baseline_new_destination", PerGroup: true, sources: []source{
		{origin: "network_connect", table: "events", at: "time", where: attributed + " AND kind = 'network_connect'", key: destinationKey, ends: ownEnds},
		{origin: "flows", table: "flows", at: "ended_at", where: attributed + " AND direction = 'outbound'", key: destinationKey, ends: ownEnds},
		// A connection the sensor tied to the name looked up before it: the
		// destination by name, which stays when a CDN moves the address.
		{origin: "dns_resolution", table: "events", at: "time", where: attributed + " AND kind = 'dns_resolution' AND query_name != ''",
			key: "concat(protocol, ' ', binary, ' ', lower(trimRight(query_name, '.')), ' ', toString(dst_port))", ends: ownEnds, name: "query_name", qtype: "query_type"},
	}},
	{Name: "domain", Kind: "baseline_new_domain", PerGroup: true, skip: func(Rule) string { return resolverEcho }, sources: []source{
		{origin: "dns", table: "events", at: "time", where: attributed + " AND " + dnsKinds,
			key: "concat(binary, ' ', " + domainOf + ")", ends: ownEnds, name: "query_name", qtype: "query_type"},
	}},
	// A peer is a host, either way: whom a binary connected to or who
	// connected to it, whatever the port. Judged per sensor only: which
	// host talks to which is the lateral-movement signal, and a host that
	// starts talking to a host only its siblings talked to is exactly the
	// pivot to see. Outbound peers are keyed by address: a connection
	// *from* this host to a host it never reached is what lateral movement
	// from a compromised host looks like, and each one matters. Inbound
	// peers are keyed by the client's network (inboundPeer): a server's
	// clients come and go by address (a web server meets new ones all
	// day), and one finding per client would bury the rest; a client from
	// a network that never connected is still news.
	{Name: "peer", Kind: "baseline_new_peer", skip: inboundOverCap, sources: []source{
		// A connection is inbound when its local port is one the sensor
		// listened on in the window (same namespace).
		{origin: "tcp_connections", table: "tcp_connections", at: "observed_at", t: snapshotTime, where: attributed,
			key: "if((sensor_id, netns, local_port) GLOBAL IN (SELECT sensor_id, netns, local_port FROM tcp_listeners WHERE observed_at > {read_from:DateTime64(3, 'UTC')} AND " + snapshotTime + " <= {to:DateTime64(3, 'UTC')}), " +
				inboundPeer("remote_address") + ", " + outboundPeer("remote_address") + ")", ends: tcpConnected},
		{origin: "flows", table: "flows", at: "ended_at", where: attributed,
			key: "if(direction = 'outbound', " + outboundPeer("dst_address") + ", " + inboundPeer("src_address") + ")", ends: ownEnds},
		{origin: "network_connect", table: "events", at: "time", where: attributed + " AND kind = 'network_connect'",
			key: outboundPeer("dst_address"), ends: ownEnds},
		{origin: "network_accept", table: "events", at: "time", where: attributed + " AND kind = 'network_accept'",
			key: inboundPeer("src_address"), ends: ownEnds},
	}},
}

// inboundOverCap is the peer rule's skip: the new inbound keys of a
// sensor's binary past the first --baseline.peer.inbound-per-hour of an
// hour (by their first row's time, then key), counting those an earlier
// window learned in that hour. A server that meets many new client
// networks (a public one) makes that many findings an hour and the rest
// are learned quietly: the first ones say it is happening. Outbound peers
// have no cap: each is a host this one reached.
func inboundOverCap(r Rule) string {
	const bin = "substring(key, 1, position(key, ' from ') - 1)"
	return `(c.sensor_id, c.key) GLOBAL IN (
    SELECT n.sensor_id, n.key FROM (
        SELECT sensor_id, key, bin, h, row_number() OVER (PARTITION BY sensor_id, bin, h ORDER BY ft, key) AS rank
        FROM (
            SELECT sensor_id, key, ` + bin + ` AS bin, min(t) AS ft, toStartOfHour(ft) AS h FROM (` + r.candidates() + `)
            WHERE position(key, ' from ') > 0 GROUP BY sensor_id, key
        )
        WHERE (sensor_id, key) GLOBAL NOT IN (
            SELECT sensor_id, key FROM baseline_seen WHERE rule = {rule:String} AND position(key, ' from ') > 0
            GROUP BY sensor_id, key HAVING min(first_window) < {from:DateTime64(3, 'UTC')})
    ) AS n
    LEFT JOIN (
        SELECT sensor_id, bin, h, count() AS earlier FROM (
            SELECT sensor_id, key, ` + bin + ` AS bin, toStartOfHour(min(first_seen)) AS h FROM baseline_seen
            WHERE rule = {rule:String} AND position(key, ' from ') > 0
            GROUP BY sensor_id, key HAVING min(first_window) < {from:DateTime64(3, 'UTC')}
        ) GROUP BY sensor_id, bin, h
    ) AS e ON e.sensor_id = n.sensor_id AND e.bin = n.bin AND e.h = n.h
    WHERE n.rank + e.earlier > {inbound_cap:UInt32})`
}

// outboundPeer is the peer rule's key of a host this binary connected
// to: "curl ::ffff:1.1.1.1".
func outboundPeer(addr string) string { return "concat(binary, ' ', toString(" + addr + "))" }

// inboundPeer is the peer rule's key of a client that connected to this
// binary: its network, the /24 of an IPv4 address and the /64 of an IPv6
// one, "sshd from ::ffff:10.0.0.0/24", "nginx from 2001:db8:1:2::/64".
func inboundPeer(addr string) string {
	return "concat(binary, ' from ', cutIPv6(" + addr + ", 8, 1), if(startsWith(cutIPv6(" + addr + ", 8, 1), '::ffff:'), '/24', '/64'))"
}

// RuleNames returns the rules' names, the connection count's last.
func RuleNames() []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return append(out, countRule)
}

// causeCols are the finding's columns that come from its first row, in
// the order of the tuple the candidates carry.
var causeCols = []string{"protocol", "src_address", "src_port", "dst_address", "dst_port", "netns", "uid", "pid", "binary", "binary_path",
	"unit", "container_id", "container_runtime", "pod_uid", "container_name", "container_image", "pod", "pod_namespace", "query_name", "query_type", "state"}

// candidates is every row of the window for the rule, as (sensor_id, key,
// t, the cause columns). A row is the window's when its own time is after
// the read's start and its t is at or before the window's end. For an
// event the two are one time. A snapshot row is its socket alive in the
// window: seen after the start, first seen by the end. Its own time is
// not bounded by the end: a merge folds a socket's rows into the newest
// heartbeat's, which a listener open for longer than the lag has after
// the window's end, so bounding observed_at there lost every long-lived
// socket whose older rows were merged before the job read them (the
// all-in-one's helper listener, seen in CI). The time bound on each table's own time column
// prunes parts by their min-max of it (the tables are partitioned by it),
// so a run reads the window's parts, not the history.
func (r Rule) candidates() string {
	var parts []string
	for _, s := range r.sources {
		t, name, qtype := s.t, s.name, s.qtype
		if t == "" {
			t = s.at
		}
		if name == "" {
			name, qtype = "''", "''"
		}
		parts = append(parts, fmt.Sprintf(`SELECT sensor_id, %s AS key, %s AS t, %s AS protocol, %s AS src_address, %s AS src_port, %s AS dst_address, %s AS dst_port,
    netns, uid, pid, binary, binary_path, unit, container_id, container_runtime, pod_uid, container_name, container_image, pod, pod_namespace,
    %s AS query_name, %s AS query_type, '%s' AS state
FROM %s
WHERE %s > {read_from:DateTime64(3, 'UTC')} AND %s <= {to:DateTime64(3, 'UTC')} AND %s`,
			s.key, t, s.protocol, s.src, s.srcPort, s.dst, s.dstPort, name, qtype, s.origin, s.table, s.at, t, s.where))
	}
	return strings.Join(parts, "\nUNION ALL\n")
}

// learnSQL folds the window's keys into baseline_seen.
func (r Rule) learnSQL() string {
	return `INSERT INTO baseline_seen (rule, sensor_id, key, first_seen, last_seen, first_window)
SELECT {rule:String}, sensor_id, key, min(t), max(t), {from:DateTime64(3, 'UTC')} FROM (` + r.candidates() + `) GROUP BY sensor_id, key`
}

// findingsSQL writes one event per key no earlier window saw, past its
// sensor's learning period and not muted; for a rule judged per group,
// also a key no sensor of the sensor's role group showed in an earlier
// window, and the learning period is over when the group's oldest
// member's is (a new member of an established role is judged from its
// first heartbeat). The state is read only for the window's keys; GLOBAL
// IN, because on a cluster both baseline_seen and the window's tables are
// Distributed, and a plain IN of one inside the other is refused
// (distributed_product_mode); alone it is a plain IN. Its event_id hashes
// (rule, sensor, key, time): a rerun gives the same finding the same id,
// and a key that comes back after the state forgot it (TTL) is a new
// finding, which an acknowledgement of the old one does not cover.
func (r Rule) findingsSQL() string {
	var out []string
	for i := range causeCols {
		out = append(out, fmt.Sprintf("c.f.%d", i+1))
	}
	learned := "c.ft >= b.born + toIntervalMillisecond({learn_ms:Int64})"
	var group string
	if r.PerGroup {
		// g: the candidate's role and when its group's oldest member was
		// born; k: the window's keys some member showed in an earlier
		// window. A sensor without a role (no listener yet) matches no
		// group: the join's default role '' is no role's key.
		group = `
LEFT JOIN (
    SELECT r.sensor_id AS sensor_id, r.role AS role, gb.born AS born
    FROM (` + rolesSQL + `) AS r
    INNER JOIN (
        SELECT r.role AS role, min(b.born) AS born
        FROM (` + rolesSQL + `) AS r INNER JOIN (` + birthsSQL + `) AS b ON b.sensor_id = r.sensor_id
        GROUP BY role
    ) AS gb ON gb.role = r.role
) AS g ON g.sensor_id = c.sensor_id
LEFT JOIN (
    SELECT r.role AS role, m.key AS key, 1 AS hit
    FROM (
        SELECT sensor_id, key FROM baseline_seen
        WHERE rule = {rule:String} AND key GLOBAL IN (SELECT key FROM (` + r.candidates() + `))
        GROUP BY sensor_id, key HAVING min(first_window) < {from:DateTime64(3, 'UTC')}
    ) AS m
    INNER JOIN (` + rolesSQL + `) AS r ON r.sensor_id = m.sensor_id
    GROUP BY role, key
) AS k ON k.role = g.role AND k.key = c.key`
		learned = "(" + learned + " OR (g.role != '' AND c.ft >= g.born + toIntervalMillisecond({learn_ms:Int64})))"
		group += "\nWHERE k.hit = 0 AND "
	} else {
		group = "\nWHERE "
	}
	var skip string
	if r.skip != nil {
		skip = "\n  AND NOT (" + r.skip(r) + ")"
	}
	return `INSERT INTO events (event_id, sensor_id, kind, time, received_at, ` + strings.Join(causeCols, ", ") + `, source)
SELECT reinterpretAsUUID(MD5(concat({rule:String}, '|', toString(c.sensor_id), '|', c.key, '|', toString(toUnixTimestamp64Milli(c.ft))))), c.sensor_id, {kind:String}, c.ft, now64(3, 'UTC'),
    ` + strings.Join(out, ", ") + `, 'baseline'
FROM (
    SELECT sensor_id, key, min(t) AS ft, argMin(tuple(` + strings.Join(causeCols, ", ") + `), t) AS f
    FROM (` + r.candidates() + `)
    GROUP BY sensor_id, key
) AS c
LEFT JOIN (
    SELECT sensor_id, key, min(first_window) AS fw, 1 AS hit
    FROM baseline_seen
    WHERE rule = {rule:String} AND (sensor_id, key) GLOBAL IN (SELECT sensor_id, key FROM (` + r.candidates() + `))
    GROUP BY sensor_id, key
) AS s ON s.sensor_id = c.sensor_id AND s.key = c.key
INNER JOIN (` + birthsSQL + `) AS b ON b.sensor_id = c.sensor_id` + group + `(s.hit = 0 OR s.fw >= {from:DateTime64(3, 'UTC')})
  AND ` + learned + skip + `
  AND ` + notMuted("c.sensor_id", "c.key")
}

// birthsSQL is each sensor's first heartbeat, as the job saw it.
const birthsSQL = "SELECT sensor_id, min(first_seen) AS born FROM baseline_seen WHERE rule = '_sensor' GROUP BY sensor_id"

// Role groups: sensors whose listeners look alike. A sensor's role is the
// sorted set of (protocol, binary) it listens with, e.g. "tcp nginx,tcp
// sshd,udp chronyd", from the listeners of its latest window that had any
// (rule '_role' in baseline_seen, key the role, last_seen that window's
// newest row). Ports are left out: a role's new port is then a finding
// of the role rather than a new role, and a server on a random port does
// not split it. A sensor that never listened on anything has no role and
// is judged alone. The role is read from the window alone, not its
// overlap (Config.Overlap): the overlap holds the heartbeats before, and a
// role of two heartbeats' listeners would tie with the one of the last.
const roleSQL = `INSERT INTO baseline_seen (rule, sensor_id, key, first_seen, last_seen, first_window)
SELECT '_role', sensor_id, arrayStringConcat(arraySort(groupUniqArray(concat(proto, ' ', binary))), ','), min(observed_at), max(observed_at), {from:DateTime64(3, 'UTC')}
FROM (
    SELECT sensor_id, 'tcp' AS proto, CAST(binary AS String) AS binary, observed_at FROM tcp_listeners
    WHERE observed_at > {from:DateTime64(3, 'UTC')} AND ` + snapshotTime + ` <= {to:DateTime64(3, 'UTC')} AND ` + attributed + `
    UNION ALL
    SELECT sensor_id, 'udp' AS proto, CAST(binary AS String) AS binary, observed_at FROM udp_listeners
    WHERE observed_at > {from:DateTime64(3, 'UTC')} AND ` + snapshotTime + ` <= {to:DateTime64(3, 'UTC')} AND ` + attributed + ` AND remote_port = 0
)
GROUP BY sensor_id`

// rolesSQL is every sensor's current role: that of its newest window.
const rolesSQL = `SELECT sensor_id, argMax(key, seen) AS role FROM (
        SELECT sensor_id, key, max(last_seen) AS seen FROM baseline_seen WHERE rule = '_role' GROUP BY sensor_id, key
    ) GROUP BY sensor_id`

// notMuted is the condition that no row of baseline_mutes silences the
// rule's finding of key on sensor: that key there, the rule there, that
// key everywhere, or the rule everywhere.
func notMuted(sensor, key string) string {
	const nilUUID = "toUUID('00000000-0000-0000-0000-000000000000')"
	return `(` + sensor + `, ` + key + `) NOT IN (SELECT sensor_id, key FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1)
  AND ` + sensor + ` NOT IN (SELECT sensor_id FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND key = '')
  AND ` + key + ` NOT IN (SELECT key FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND sensor_id = ` + nilUUID + `)
  AND (SELECT count() FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND sensor_id = ` + nilUUID + ` AND key = '') = 0`
}

// countRule is the rule of baseline_connection_count: a sensor's active
// connection count (heartbeats.tcp_connections) far off its own pattern
// for the same hour of day (UTC) over the past week. Judged per sensor:
// members of a role differ in load.
const (
	countRule = "connection_count"
	countKind = "baseline_connection_count"
)

// observed leaves out the heartbeats that reported no socket and no flow
// at all: their snapshots were dropped by the sensor's spool, so their
// counts of zero are no observation (the summary does the same).
const observed = "tcp_connections + tcp_listeners + udp_listeners + active_flows > 0"

// hourHeartbeats are the observed heartbeats of every hour the window and
// the overlap before it touch, from the start of the first: one row per
// (sensor, seq), as retried heartbeats are not yet merged. With the
// overlap, a heartbeat written after its window was processed is still
// counted in its hour and judged, as the other rules read theirs.
const hourHeartbeats = `SELECT sensor_id, seq, min(sent_at) AS sent, toStartOfHour(min(sent_at)) AS h, toFloat64(any(tcp_connections)) AS c
    FROM heartbeats
    WHERE sent_at >= toStartOfHour({read_from:DateTime64(3, 'UTC')}) AND sent_at <= {to:DateTime64(3, 'UTC')} AND ` + observed + `
    GROUP BY sensor_id, seq`

// hourlySQL recomputes, for each sensor, the hours the window touches in
// baseline_hourly (migration 0017) from their start. A rerun, a replica on
// an overlapping window, or a later window of the same hour writes the
// same hour again, with as many heartbeats or more: the row of the
// furthest window wins, so nothing is counted twice. What it reads is the
// window and at most the hour before it, never the history.
const hourlySQL = `INSERT INTO baseline_hourly (sensor_id, hour, heartbeats, connections, squares, upto)
SELECT sensor_id, h, count(), sum(c), sum(c * c), {to:DateTime64(3, 'UTC')}
FROM (` + hourHeartbeats + `)
GROUP BY sensor_id, h`

// countSQL writes a finding for the first heartbeat of an hour whose
// connection count lies --baseline.connection-deviations or more from the
// mean of the same hour of day over up to 7 days before, in deviations
// (population, floored at 1 as the summary's), once that hour has
// --baseline.connection-min-days days of history. One finding per sensor,
// hour and direction (above, below: the key its mutes name) while it
// persists: its event_id hashes them, and its time is the hour's first
// heartbeat off the pattern, read from the hour's start, so every window of
// the hour picks the same one. The windows whose overlap holds it would
// write it again; a finding of the hour and direction written already
// keeps them from it, so a heartbeat that arrives late, earlier than the
// hour's finding, does not make a second one at its own time. The hours of day read are those of
// the window and its overlap ({hours}), the prefix of baseline_hourly's
// key.
var countSQL = `INSERT INTO events (event_id, sensor_id, kind, time, received_at, protocol, state, query_name, source)
SELECT reinterpretAsUUID(MD5(concat({rule:String}, '|', toString(sensor_id), '|', dir, '|', toString(toUnixTimestamp(h))))), sensor_id, {kind:String}, ft, now64(3, 'UTC'),
    'tcp', dir, detail, 'baseline'
FROM (
    SELECT sensor_id, h, dir, min(sent) AS ft, argMin(detail, sent) AS detail
    FROM (
        SELECT x.sensor_id AS sensor_id, x.h AS h, x.sent AS sent, if(x.c > p.mean, 'above', 'below') AS dir,
            format('{} connections; usual at {}:00 UTC over {} days: {} ± {}; {} deviations', toString(x.c), leftPad(toString(toHour(x.h)), 2, '0'),
                toString(p.days), toString(round(p.mean, 1)), toString(round(p.dev, 1)), toString(round((x.c - p.mean) / greatest(p.dev, 1), 1))) AS detail
        FROM (` + hourHeartbeats + `) AS x
        INNER JOIN (
            SELECT t.sensor_id AS sensor_id, t.h AS h, sum(b.heartbeats) AS n, sum(b.connections) / n AS mean,
                sqrt(greatest(sum(b.squares) / n - mean * mean, 0)) AS dev, uniqExact(toDate(b.hour)) AS days
            FROM (
                SELECT DISTINCT sensor_id, toStartOfHour(sent_at) AS h FROM heartbeats
                WHERE sent_at >= toStartOfHour({read_from:DateTime64(3, 'UTC')}) AND sent_at <= {to:DateTime64(3, 'UTC')}
            ) AS t
            INNER JOIN (
                SELECT sensor_id, hour, heartbeats, connections, squares FROM baseline_hourly FINAL
                WHERE toHour(hour) IN {hours:Array(UInt8)} AND hour >= toStartOfHour({read_from:DateTime64(3, 'UTC')}) - INTERVAL 7 DAY AND hour < {to:DateTime64(3, 'UTC')}
            ) AS b ON b.sensor_id = t.sensor_id
            WHERE toHour(b.hour) = toHour(t.h) AND b.hour < t.h AND b.hour >= t.h - INTERVAL 7 DAY
            GROUP BY t.sensor_id, t.h
        ) AS p ON p.sensor_id = x.sensor_id AND p.h = x.h
        WHERE p.days >= {min_days:UInt32} AND abs(x.c - p.mean) / greatest(p.dev, 1) >= {deviations:Float64}
    )
    GROUP BY sensor_id, h, dir
)
WHERE ft > {read_from:DateTime64(3, 'UTC')} AND ` + notMuted("sensor_id", "dir") + `
  AND (sensor_id, h, dir) NOT IN (
    SELECT sensor_id, toStartOfHour(time), CAST(state, 'String') FROM events
    WHERE kind = {kind:String} AND time >= toStartOfHour({read_from:DateTime64(3, 'UTC')}) AND time <= {to:DateTime64(3, 'UTC')})`
