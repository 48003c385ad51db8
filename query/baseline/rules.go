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
	Kind    string
	sources []source
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
const domainOf = "if(cutToFirstSignificantSubdomain(lower(trimRight(query_name, '.'))) = '', lower(trimRight(query_name, '.')), cutToFirstSignificantSubdomain(lower(trimRight(query_name, '.'))))"

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
	{Name: "listener", Kind: "baseline_new_listener", sources: []source{
		{origin: "tcp_listeners", table: "tcp_listeners", at: "observed_at", t: snapshotTime, where: attributed,
			key: "concat('tcp ', binary, ' ', toString(local_port))", ends: tcpListening},
		// A connected UDP socket (remote_port set) is a client, not a listener.
		{origin: "udp_listeners", table: "udp_listeners", at: "observed_at", t: snapshotTime, where: attributed + " AND remote_port = 0",
			key: "concat('udp ', binary, ' ', toString(local_port))", ends: udpListening},
	}},
	{Name: "destination", Kind: "baseline_new_destination", sources: []source{
		{origin: "network_connect", table: "events", at: "time", where: attributed + " AND kind = 'network_connect'", key: destinationKey, ends: ownEnds},
		{origin: "flows", table: "flows", at: "ended_at", where: attributed + " AND direction = 'outbound'", key: destinationKey, ends: ownEnds},
		// A connection the sensor tied to the name looked up before it: the
		// destination by name, which stays when a CDN moves the address.
		{origin: "dns_resolution", table: "events", at: "time", where: attributed + " AND kind = 'dns_resolution' AND query_name != ''",
			key: "concat(protocol, ' ', binary, ' ', lower(trimRight(query_name, '.')), ' ', toString(dst_port))", ends: ownEnds, name: "query_name", qtype: "query_type"},
	}},
	{Name: "domain", Kind: "baseline_new_domain", sources: []source{
		{origin: "dns", table: "events", at: "time", where: attributed + " AND kind IN ('dns_query', 'dns_lookup', 'dns_resolution') AND query_name != ''",
			key: "concat(binary, ' ', " + domainOf + ")", ends: ownEnds, name: "query_name", qtype: "query_type"},
	}},
	// A peer is a host, either way: whom a binary connected to or who
	// connected to it, whatever the port.
	{Name: "peer", Kind: "baseline_new_peer", sources: []source{
		{origin: "tcp_connections", table: "tcp_connections", at: "observed_at", t: snapshotTime, where: attributed,
			key: "concat(binary, ' ', toString(remote_address))", ends: tcpConnected},
		{origin: "flows", table: "flows", at: "ended_at", where: attributed,
			key: "concat(binary, ' ', toString(if(direction = 'outbound', dst_address, src_address)))", ends: ownEnds},
		{origin: "network_connect", table: "events", at: "time", where: attributed + " AND kind = 'network_connect'",
			key: "concat(binary, ' ', toString(dst_address))", ends: ownEnds},
		{origin: "network_accept", table: "events", at: "time", where: attributed + " AND kind = 'network_accept'",
			key: "concat(binary, ' ', toString(src_address))", ends: ownEnds},
	}},
}

// RuleNames returns the rules' names.
func RuleNames() []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Name)
	}
	return out
}

// causeCols are the finding's columns that come from its first row, in
// the order of the tuple the candidates carry.
var causeCols = []string{"protocol", "src_address", "src_port", "dst_address", "dst_port", "netns", "uid", "pid", "binary", "binary_path",
	"unit", "container_id", "container_runtime", "pod_uid", "container_name", "container_image", "pod", "pod_namespace", "query_name", "query_type", "state"}

// candidates is every row of the window for the rule, as (sensor_id, key,
// t, the cause columns). The time bound on each table's own time column
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
WHERE %s > {from:DateTime64(3, 'UTC')} AND %s <= {to:DateTime64(3, 'UTC')} AND %s`,
			s.key, t, s.protocol, s.src, s.srcPort, s.dst, s.dstPort, name, qtype, s.origin, s.table, s.at, s.at, s.where))
	}
	return strings.Join(parts, "\nUNION ALL\n")
}

// learnSQL folds the window's keys into baseline_seen.
func (r Rule) learnSQL() string {
	return `INSERT INTO baseline_seen (rule, sensor_id, key, first_seen, last_seen, first_window)
SELECT {rule:String}, sensor_id, key, min(t), max(t), {from:DateTime64(3, 'UTC')} FROM (` + r.candidates() + `) GROUP BY sensor_id, key`
}

// findingsSQL writes one event per key no earlier window saw, past its
// sensor's learning period and not muted. The state is read only for the
// window's keys; GLOBAL IN, because on a cluster both baseline_seen and the
// window's tables are Distributed, and a plain IN of one inside the other
// is refused (distributed_product_mode); alone it is a plain IN. Its event_id
// hashes (rule, sensor, key, time): a rerun gives the same finding the same
// id, and a key that comes back after the state forgot it (TTL) is a new
// finding, which an acknowledgement of the old one does not cover.
func (r Rule) findingsSQL() string {
	var out []string
	for i := range causeCols {
		out = append(out, fmt.Sprintf("c.f.%d", i+1))
	}
	const nilUUID = "toUUID('00000000-0000-0000-0000-000000000000')"
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
INNER JOIN (
    SELECT sensor_id, min(first_seen) AS born FROM baseline_seen WHERE rule = '_sensor' GROUP BY sensor_id
) AS b ON b.sensor_id = c.sensor_id
WHERE (s.hit = 0 OR s.fw >= {from:DateTime64(3, 'UTC')})
  AND c.ft >= b.born + toIntervalMillisecond({learn_ms:Int64})
  AND (c.sensor_id, c.key) NOT IN (SELECT sensor_id, key FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1)
  AND c.sensor_id NOT IN (SELECT sensor_id FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND key = '')
  AND c.key NOT IN (SELECT key FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND sensor_id = ` + nilUUID + `)
  AND (SELECT count() FROM baseline_mutes FINAL WHERE rule = {rule:String} AND muted = 1 AND sensor_id = ` + nilUUID + ` AND key = '') = 0`
}
