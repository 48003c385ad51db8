package query

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/ch-go/proto"
	"github.com/valyala/fasthttp"

	"github.com/netview/netview/heartbeat"
	"github.com/netview/netview/internal/store"
	"github.com/netview/netview/sql/schema"
)

// The network graph (GET /api/v1/network/graph, /api/v2/network/graph):
// who talked to whom over a time window, as nodes (hosts, and inside them
// containers, processes and the services they listen on; external peers;
// ambiguous addresses) and edges from a client process to a server
// process.
//
// Everything is computed on the engine in one statement:
//
//  1. Sightings: one row per sensor's view of one connection, oriented
//     client → server (src → dst): the window's completed flows, and the
//     newest snapshot's active flows and TCP connections that lie in the
//     window. A flow's direction says which end the sensor is; a TCP
//     connection's local end is the server when its sensor listens on its
//     local address and port (the newest listeners). An active flow that
//     has completed in the window, and a socket that a flow of its sensor
//     already covers, are left out: each connection is seen once per
//     sensor.
//  2. Connections: the sightings grouped by site and the 4-tuple, so the
//     client's and the server's sensors' views of one connection are one
//     row. Both sides see the same connections, so the count is the
//     larger side's, and so is each end state's; bytes are the client's
//     view when it has at least as many sightings, else the server's.
//  3. Ends: a side nobody reported is resolved from its address within
//     the site (schema.AddressOwners over the window): one owner, and the
//     server end is that owner's listener (bound to the address, to ::, or
//     for IPv4 to 0.0.0.0, as schema.ListenersOf), or the owner's host if
//     it listens on no such port; two or more owners make the end
//     ambiguous, with each owner (its listener's process, else its host)
//     as a candidate and none picked; no owner makes it external, named
//     by the DNS name the client's sensor resolved to it (dns_resolution,
//     the lineage) or by the address.
//  4. Edges: the connections grouped by (source node, target node,
//     protocol, server port), with a stable id (a hash of those), in id
//     order, which is what a v2 cursor walks.
//
// The hunting filters choose connections: a connection is in the graph
// when any of its sightings matches (binary=curl keeps curl's connections
// with the server's view of them), so an edge is never half of itself.

// graphProc are the process columns every sighting carries, as Strings
// where the tables have LowCardinality.
var graphProc = []struct{ name, typ string }{{"uid", ""}, {"pid", ""}, {"binary", "String"}, {"binary_path", "String"},
	{"unit", "String"}, {"container_id", "String"}, {"container_runtime", "String"}, {"pod_uid", "String"},
	{"container_name", "String"}, {"container_image", "String"}, {"pod", "String"}, {"pod_namespace", "String"}}

// procCols lists the process columns as named by name(col), each as its
// own name.
func procCols(name func(col string) string) string {
	out := make([]string, len(graphProc))
	for i, c := range graphProc {
		e := name(c.name)
		if c.typ != "" {
			e = "CAST(" + e + " AS " + c.typ + ")"
		}
		out[i] = e + " AS " + c.name
	}
	return strings.Join(out, ", ")
}

// procLatest is the newest value of each process column of a snapshot
// table's group, as a_<col>.
func procLatest() string {
	out := make([]string, len(graphProc))
	for i, c := range graphProc {
		out[i] = "argMax(" + c.name + ", seq) AS a_" + c.name
	}
	return strings.Join(out, ", ")
}

// addrText is an address as the API writes it: IPv4 without ::ffff:.
func addrText(e string) string {
	return `replaceRegexpOne(IPv6NumToString(` + e + `), '^::ffff:([0-9]+[.][0-9]+[.][0-9]+[.][0-9]+)$', '\\1')`
}

const isV4 = ` BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255')`

// The window's bounds are bound as {since} and {until}.
const inWindowFlows = `ended_at >= {since:DateTime64(3, 'UTC')} AND ended_at < {until:DateTime64(3, 'UTC')}`

// newestListen are the listeners of the snapshot shown.
func newestListen(m moment) string {
	return `SELECT sensor_id, netns, local_port, local_address FROM ` + m.from("tcp_listeners") + ` WHERE ` + m.latest()
}

// graphSightings is step 1: every sensor's view of every connection in
// the window, with its sensor's site and hostname. The active part is the
// snapshot at the moment (now, or at=).
func graphSightings(m moment) string {
	flowCols := func(p, first, last, active string) string {
		return `sensor_id, ` + p + `netns AS netns, if(` + p + `direction = 'inbound', 'server', 'client') AS side,
            CAST(` + p + `protocol AS String) AS protocol, CAST(` + p + `direction AS String) AS direction,
            ` + p + `src_address AS src_address, ` + p + `src_port AS src_port, ` + p + `dst_address AS dst_address, ` + p + `dst_port AS dst_port,
            CAST(` + p + `state AS String) AS state, toUInt8(` + active + `) AS active,
            if(` + p + `direction = 'inbound', ` + p + `bytes_received, ` + p + `bytes_sent) AS bytes_c2s,
            if(` + p + `direction = 'inbound', ` + p + `bytes_sent, ` + p + `bytes_received) AS bytes_s2c,
            ` + first + ` AS first_seen, ` + last + ` AS last_seen, ` + procCols(func(c string) string { return p + c })
	}
	completed := `SELECT ` + flowCols("f.", "f.started_at", "f.ended_at", "0") + `
        FROM flows AS f FINAL WHERE ` + inWindowFlows
	activeFlows := `SELECT ` + flowCols("a_", "a_started_at", "a_observed", "1") + `
        FROM (
            SELECT sensor_id, flow_id, argMax(netns, seq) AS a_netns, argMax(protocol, seq) AS a_protocol, argMax(direction, seq) AS a_direction,
                argMax(src_address, seq) AS a_src_address, argMax(src_port, seq) AS a_src_port,
                argMax(dst_address, seq) AS a_dst_address, argMax(dst_port, seq) AS a_dst_port, argMax(state, seq) AS a_state,
                argMax(bytes_sent, seq) AS a_bytes_sent, argMax(bytes_received, seq) AS a_bytes_received,
                min(started_at) AS a_started_at, max(observed_at) AS a_observed, ` + procLatest() + `
            FROM ` + m.from("active_flows") + ` WHERE ` + m.latest() + `
            GROUP BY sensor_id, flow_id
        )
        WHERE a_observed >= {since:DateTime64(3, 'UTC')} AND a_observed < {until:DateTime64(3, 'UTC')}
          AND (sensor_id, flow_id) NOT IN (SELECT sensor_id, flow_id FROM flows WHERE ` + inWindowFlows + `)`
	// A socket is a flow its sensor tracks already when the flow has its
	// 4-tuple in either order (a flow is oriented, a socket is local/remote).
	tracked := `SELECT sensor_id, src_address, src_port, dst_address, dst_port FROM flows WHERE ` + inWindowFlows + `
        UNION ALL SELECT sensor_id, src_address, src_port, dst_address, dst_port FROM ` + m.from("active_flows") + ` WHERE ` + m.latest()
	listen := newestListen(m)
	sockets := `SELECT sensor_id, netns, if(srv, 'server', 'client') AS side, 'tcp' AS protocol, if(srv, 'inbound', 'outbound') AS direction,
            if(srv, remote_address, local_address) AS src_address, if(srv, remote_port, local_port) AS src_port,
            if(srv, local_address, remote_address) AS dst_address, if(srv, local_port, remote_port) AS dst_port,
            CAST(a_state AS String) AS state, toUInt8(1) AS active, toUInt64(0) AS bytes_c2s, toUInt64(0) AS bytes_s2c,
            a_first_seen AS first_seen, a_observed AS last_seen, ` + procCols(func(c string) string { return "a_" + c }) + `
        FROM (
            SELECT sensor_id, netns, local_address, local_port, remote_address, remote_port, inode,
                argMax(state, seq) AS a_state, min(first_seen) AS a_first_seen, max(observed_at) AS a_observed, ` + procLatest() + `,
                (sensor_id, netns, local_port, local_address) IN (` + listen + `)
                  OR (sensor_id, netns, local_port, toIPv6('::')) IN (` + listen + `)
                  OR (local_address` + isV4 + ` AND (sensor_id, netns, local_port, toIPv6('::ffff:0.0.0.0')) IN (` + listen + `)) AS srv
            FROM ` + m.from("tcp_connections") + ` WHERE ` + m.latest() + `
            GROUP BY sensor_id, netns, local_address, local_port, remote_address, remote_port, inode
        )
        WHERE a_observed >= {since:DateTime64(3, 'UTC')} AND a_observed < {until:DateTime64(3, 'UTC')}
          AND (sensor_id, local_address, local_port, remote_address, remote_port) NOT IN (` + tracked + `)
          AND (sensor_id, remote_address, remote_port, local_address, local_port) NOT IN (` + tracked + `)`
	return `SELECT * FROM (` + completed + `
        UNION ALL ` + activeFlows + `
        UNION ALL ` + sockets + `) AS g
    LEFT JOIN (SELECT sensor_id, CAST(argMax(site, seq) AS String) AS site, argMax(hostname, seq) AS hostname FROM ` + m.sensors() + ` GROUP BY sensor_id) AS i
    USING (sensor_id)`
}

// connKey names one connection across sensors: within a site, by its
// protocol and 4-tuple.
const connKey = `site, protocol, src_address, src_port, dst_address, dst_port`

// stateCol is the column of a final state's count.
func stateCol(side, state string) string { return side + "st_" + strings.ReplaceAll(state, "-", "_") }

// graphConnections is step 2 over the sightings (sql).
func graphConnections(sightings string) string {
	var b strings.Builder
	b.WriteString(`SELECT ` + connKey + `,
        countIf(side = 'client') AS n_client, countIf(side = 'server') AS n_server,
        sumIf(active, side = 'client') AS a_client, sumIf(active, side = 'server') AS a_server,
        sumIf(bytes_c2s, side = 'client') AS c_c2s, sumIf(bytes_s2c, side = 'client') AS c_s2c,
        sumIf(bytes_c2s, side = 'server') AS s_c2s, sumIf(bytes_s2c, side = 'server') AS s_s2c,
        min(first_seen) AS c_first, max(last_seen) AS c_last`)
	for _, st := range heartbeat.FinalStates {
		for _, side := range []string{"client", "server"} {
			b.WriteString(", countIf(side = '" + side + "' AND state = '" + st + "') AS " + stateCol(side[:1]+"_", st))
		}
	}
	// The process of each side: one socket, so any of its sightings'; the
	// newest, every column from the same one (the key breaks ties).
	for _, side := range []string{"client", "server"} {
		for _, c := range append([]string{"sensor_id", "netns", "hostname"}, procNames()...) {
			b.WriteString(", argMaxIf(" + c + ", (last_seen, sensor_id, netns, pid, binary), side = '" + side + "') AS " + side[:1] + "_" + c)
		}
	}
	b.WriteString(" FROM (" + sightings + ") GROUP BY " + connKey)
	return b.String()
}

func procNames() []string {
	out := make([]string, len(graphProc))
	for i, c := range graphProc {
		out[i] = c.name
	}
	return out
}

// nodeSQL is how an end's nodes are written: the ids and JSON objects of
// its host, container (if any), process and service (if any), as
// parallel arrays, with an empty id and object for those it has not.
type nodeSQL struct{ ids, jsons []string }

func (n *nodeSQL) add(id, json string) {
	n.ids = append(n.ids, id)
	n.jsons = append(n.jsons, json)
}

func (n *nodeSQL) arrays() (ids, jsons string) {
	return "[" + strings.Join(n.ids, ", ") + "]", "[" + strings.Join(n.jsons, ", ") + "]"
}

func jsonObj(kv ...string) string {
	parts := make([]string, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		parts = append(parts, `'"`+kv[i]+`":', `+kv[i+1])
	}
	return "concat('{', " + strings.Join(parts, ", ',', ") + ", '}')"
}

func js(e string) string { return "toJSONString(" + e + ")" }

// hostID, procID and serviceID make the nodes' ids: stable, from what
// names them (a process is its sensor, namespace, pid and binary).
func hostID(sensor string) string { return "concat('host:', toString(" + sensor + "))" }

func hostNode(n *nodeSQL, sensor, hostname, site string) {
	id := hostID(sensor)
	n.add(id, jsonObj("id", js(id), "kind", `'"host"'`, "sensor_id", js("toString("+sensor+")"), "hostname", js(hostname), "site", js(site)))
}

// procNodes adds the host, container and process nodes of the process
// whose columns col names, and returns the process's id.
func procNodes(n *nodeSQL, col func(string) string, site string) string {
	sensor := col("sensor_id")
	hostNode(n, sensor, col("hostname"), site)
	host := hostID(sensor)
	ctr := "if(" + col("container_id") + " = '', '', concat('container:', toString(" + sensor + "), '/', " + col("container_id") + "))"
	n.add(ctr, "if("+col("container_id")+" = '', '', "+jsonObj("id", js(ctr), "kind", `'"container"'`, "parent", js(host),
		"sensor_id", js("toString("+sensor+")"), "container_id", js(col("container_id")), "container_runtime", js(col("container_runtime")),
		"name", js(col("container_name")), "image", js(col("container_image")), "pod", js(col("pod")),
		"pod_namespace", js(col("pod_namespace")), "pod_uid", js(col("pod_uid")))+")")
	proc := "concat('process:', toString(" + sensor + "), '/', toString(" + col("netns") + "), '/', toString(" + col("pid") + "), '/', " + col("binary") + ")"
	n.add(proc, jsonObj("id", js(proc), "kind", `'"process"'`, "parent", js("if("+ctr+" = '', "+host+", "+ctr+")"),
		"sensor_id", js("toString("+sensor+")"), "netns", js(col("netns")), "pid", "if("+col("pid")+" = 0, 'null', toString("+col("pid")+"))",
		"binary", js(col("binary")), "binary_path", js(col("binary_path")), "uid", js(col("uid")), "unit", js(col("unit")),
		"container_id", js(col("container_id"))))
	return proc
}

// serviceNode adds the node of the port proc listens on, and returns its id.
func serviceNode(n *nodeSQL, proc, sensor, netns, protocol, port string) string {
	id := "concat('service:', toString(" + sensor + "), '/', toString(" + netns + "), '/', " + protocol + ", '/', toString(" + port + "))"
	n.add(id, jsonObj("id", js(id), "kind", `'"service"'`, "parent", js(proc), "sensor_id", js("toString("+sensor+")"),
		"netns", js(netns), "protocol", js(protocol), "port", js(port)))
	return id
}

// ownerRows are the owners of every address of every site over the
// window, one row per owner (sensor and namespace) with its hostname as
// known at the moment.
func ownerRows(m moment) string {
	return `SELECT x_site, x_address, x_owners, sensor_id, x_netns, h_hostname FROM (
        SELECT CAST(site AS String) AS x_site, address AS x_address, owners AS x_owners, c.1 AS sensor_id, c.2 AS x_netns
        FROM (` + schema.AddressOwners + `) ARRAY JOIN candidates AS c
    ) AS x LEFT JOIN (SELECT sensor_id, argMax(hostname, seq) AS h_hostname FROM ` + m.sensors() + ` GROUP BY sensor_id) AS h USING (sensor_id)`
}

// graphOwners is one row per (site, address): how many own it and who,
// as (sensor, netns, hostname) sorted; pre prefixes its columns.
func graphOwners(m moment, pre string) string {
	return `SELECT x_site AS ` + pre + `site, x_address AS ` + pre + `address, any(x_owners) AS ` + pre + `owners,
        arraySort(groupArray((toString(sensor_id), x_netns, h_hostname))) AS ` + pre + `cands
    FROM (` + ownerRows(m) + `) GROUP BY x_site, x_address`
}

// graphListeners is, for each owned (site, address) and port, the
// owners' listeners that take connections to it: (sensor, netns, 0 for a
// listener bound to the address itself and 1 for a wildcard, so the
// kernel's choice sorts first, process id, service id, node ids, node
// JSON), from the listeners of the snapshot at the moment.
func graphListeners(m moment) string {
	var n nodeSQL
	col := func(c string) string {
		switch c {
		case "sensor_id":
			return "sensor_id"
		case "hostname":
			return "h_hostname"
		case "netns":
			return "x_netns"
		}
		return "a_" + c
	}
	proc := procNodes(&n, col, "x_site")
	svc := serviceNode(&n, proc, "sensor_id", "x_netns", "'tcp'", "local_port")
	ids, jsons := n.arrays()
	return `SELECT x_site AS l_site, x_address AS l_address, local_port AS l_port,
        arraySort(groupArray((toString(sensor_id), x_netns, toUInt8(local_address != x_address), ` + proc + `, ` + svc + `, ` + ids + `, ` + jsons + `))) AS l_entries
    FROM (` + ownerRows(m) + `) AS o
    INNER JOIN (
        SELECT sensor_id, netns AS x_netns, local_address, local_port, ` + procLatest() + `
        FROM ` + m.from("tcp_listeners") + ` WHERE ` + m.latest() + `
        GROUP BY sensor_id, netns, local_address, local_port, inode
    ) AS li USING (sensor_id, x_netns)
    WHERE local_address = x_address OR local_address = toIPv6('::') OR (local_address = toIPv6('::ffff:0.0.0.0') AND x_address` + isV4 + `)
    GROUP BY x_site, x_address, local_port`
}

// graphDNS names the addresses each sensor's processes connected to by
// the names they resolved (dns_resolution: a lookup followed by the
// connect it was for), the newest name of each, from the window and the
// day before it (a long connection was resolved before it started).
const graphDNS = `SELECT sensor_id AS n_sensor, dst_address AS n_address, argMax(lower(query_name), time) AS n_name
    FROM events FINAL
    WHERE kind = 'dns_resolution' AND query_name != '' AND time >= {since:DateTime64(3, 'UTC')} - INTERVAL 1 DAY AND time < {until:DateTime64(3, 'UTC')}
    GROUP BY sensor_id, dst_address`

// graphEdgeCols are the edge query's columns, in the order graphSQL
// selects them.
var graphEdgeCols = func() []string {
	c := []string{"edge_id", "protocol", "port", "source", "target", "service", "resolution", "candidates", "peer_addresses",
		"connections", "active", "bytes_client_to_server", "bytes_server_to_client", "first_seen", "last_seen"}
	for _, st := range heartbeat.FinalStates {
		c = append(c, stateCol("", st))
	}
	return append(c, "node_ids", "node_json")
}()

// graphEnds is step 3: one row per connection with its source and target
// nodes, over the connections (sql), with the owners and listeners of the
// moment's snapshot.
func graphEnds(m moment, conns string) string {
	// The client's process and the server's, as their sightings say.
	var cli, srv nodeSQL
	cliProc := procNodes(&cli, func(c string) string { return "c_" + c }, "site")
	srvProc := procNodes(&srv, func(c string) string { return "s_" + c }, "site")
	srvSvc := serviceNode(&srv, srvProc, "s_sensor_id", "s_netns", "protocol", "dst_port")
	cliIDs, cliJSON := cli.arrays()
	srvIDs, srvJSON := srv.arrays()

	dst := addrText("dst_address")
	src := addrText("src_address")
	// An owner's host node, from a (sensor, netns, hostname) of cands.
	ownerHost := func(c string) (string, string) {
		var n nodeSQL
		hostNode(&n, "toUUID("+c+".1)", c+".3", "site")
		return n.ids[0], n.jsons[0]
	}
	ohID, ohJSON := ownerHost("x")
	// A candidate is the owner's listener's process if it has one there,
	// else its host.
	match := "e -> e.1 = x.1 AND e.2 = x.2"
	cands := "arrayMap(x -> if(arrayExists(" + match + ", l_entries), arrayFirst(" + match + ", l_entries).4, " + ohID + "), d_cands)"
	candNodes := func(pre string, withListeners bool) (string, string) {
		ids := "arrayMap(x -> " + ohID + ", " + pre + "cands)"
		jsons := "arrayMap(x -> " + ohJSON + ", " + pre + "cands)"
		if withListeners {
			ids = "arrayConcat(" + ids + ", arrayFlatten(arrayMap(e -> e.6, l_entries)))"
			jsons = "arrayConcat(" + jsons + ", arrayFlatten(arrayMap(e -> e.7, l_entries)))"
		}
		return ids, jsons
	}
	ambID := func(a string) string { return "concat('ambiguous:', site, '/', " + a + ")" }
	ambJSON := func(a, cands string) string {
		return jsonObj("id", js(ambID(a)), "kind", `'"ambiguous"'`, "site", js("site"), "address", js(a), "candidates", js(cands))
	}
	extID := "if(n_name != '', concat('external:', n_name), concat('external:', " + dst + "))"
	extJSON := jsonObj("id", js(extID), "kind", `'"external"'`, "name", "if(n_name = '', 'null', "+js("n_name")+")",
		"address", "if(n_name = '', "+js(dst)+", 'null')")
	srcExtID := "concat('external:', " + src + ")"
	srcExtJSON := jsonObj("id", js(srcExtID), "kind", `'"external"'`, "name", "'null'", "address", js(src))
	dCandIDs, dCandJSON := candNodes("d_", true)
	oCandIDs, oCandJSON := candNodes("o_", false)
	srcCands := "arrayMap(x -> " + ohID + ", o_cands)"
	// The single owner's listener, or its host.
	one := "l_entries[1]"
	resolvedTarget := "if(length(l_entries) > 0, " + one + ".4, " + hostID("toUUID(d_cands[1].1)") + ")"
	resolvedIDs := "if(length(l_entries) > 0, " + one + ".6, arrayMap(x -> " + ohID + ", d_cands))"
	resolvedJSON := "if(length(l_entries) > 0, " + one + ".7, arrayMap(x -> " + ohJSON + ", d_cands))"

	var b strings.Builder
	b.WriteString(`SELECT site, protocol, dst_port, ` + dst + ` AS peer,
        greatest(n_client, n_server) AS connections, greatest(a_client, a_server) AS active,
        if(n_client >= n_server, c_c2s, s_c2s) AS c2s, if(n_client >= n_server, c_s2c, s_s2c) AS s2c,
        c_first AS first_seen, c_last AS last_seen`)
	for _, st := range heartbeat.FinalStates {
		b.WriteString(", greatest(" + stateCol("c_", st) + ", " + stateCol("s_", st) + ") AS " + stateCol("", st))
	}
	// pick orders an edge's connections, so the candidates and nodes it
	// takes from one of them are the same from one answer to the next (an
	// edge's connections name the same nodes, but a server's own view
	// and a resolved listener may list them differently).
	b.WriteString(`, (resolution, peer, first_seen, src_port) AS pick,
        multiIf(n_server > 0, 'observed', d_owners = 1, 'resolved', d_owners > 1, 'ambiguous', 'external') AS resolution,
        multiIf(n_client > 0, ` + cliProc + `, o_owners = 1, ` + hostID("toUUID(o_cands[1].1)") + `, o_owners > 1, ` + ambID(src) + `, ` + srcExtID + `) AS source,
        multiIf(resolution = 'observed', ` + srvProc + `, resolution = 'resolved', ` + resolvedTarget + `,
            resolution = 'ambiguous', ` + ambID(dst) + `, ` + extID + `) AS target,
        multiIf(resolution = 'observed', ` + srvSvc + `, resolution = 'resolved' AND length(l_entries) > 0, ` + one + `.5, '') AS service,
        if(resolution = 'ambiguous', ` + cands + `, []) AS candidates,
        arrayConcat(
            multiIf(n_client > 0, ` + cliIDs + `, o_owners = 1, ` + oCandIDs + `, o_owners > 1, arrayConcat([` + ambID(src) + `], ` + oCandIDs + `), [` + srcExtID + `]),
            multiIf(resolution = 'observed', ` + srvIDs + `, resolution = 'resolved', ` + resolvedIDs + `,
                resolution = 'ambiguous', arrayConcat([` + ambID(dst) + `], ` + dCandIDs + `), [` + extID + `])) AS node_ids,
        arrayConcat(
            multiIf(n_client > 0, ` + cliJSON + `, o_owners = 1, ` + oCandJSON + `, o_owners > 1, arrayConcat([` + ambJSON(src, srcCands) + `], ` + oCandJSON + `), [` + srcExtJSON + `]),
            multiIf(resolution = 'observed', ` + srvJSON + `, resolution = 'resolved', ` + resolvedJSON + `,
                resolution = 'ambiguous', arrayConcat([` + ambJSON(dst, cands) + `], ` + dCandJSON + `), [` + extJSON + `])) AS node_json
    FROM (` + conns + `) AS c
    LEFT JOIN (` + graphOwners(m, "d_") + `) AS d ON d.d_site = c.site AND d.d_address = c.dst_address
    LEFT JOIN (` + graphOwners(m, "o_") + `) AS o ON o.o_site = c.site AND o.o_address = c.src_address
    LEFT JOIN (` + graphListeners(m) + `) AS l ON l.l_site = c.site AND l.l_address = c.dst_address AND l.l_port = c.dst_port
    LEFT JOIN (` + graphDNS + `) AS n ON n.n_sensor = c.c_sensor_id AND n.n_address = c.dst_address`)
	return b.String()
}

// graphQuery asks for one page of edges: of one sensor's connections or
// all, in the scope, after an edge id, at most limit (0: all).
type graphQuery struct {
	sensor       string
	scope        scope
	since, until time.Time
	at           moment // the active part's snapshot (at.go)
	after        string
	limit        int
	// cut is how many edges the answer holds when limit asks for one
	// more, to learn whether there are more (v1); 0: all limit.
	cut int
}

// sql returns the edges query (step 4).
func (g *graphQuery) sql() (string, []store.Param) {
	span := g.until.Sub(g.since)
	// Owners over the whole window: at its middle, give or take half of
	// it and two heartbeat intervals (a holding is reported once an
	// interval; see schema.AddressOwners).
	at := g.since.Add(span / 2)
	params := []store.Param{store.P("since", g.since.Format("2006-01-02 15:04:05.000")), store.P("until", g.until.Format("2006-01-02 15:04:05.000")),
		store.P("at", at.Format("2006-01-02 15:04:05.000")), store.P("slack_secs", strconv.FormatInt(int64(span/time.Second/2)+30, 10))}
	g.at.bind(&params)
	sightings := graphSightings(g.at)
	if g.sensor != "" || !g.scope.empty() {
		w := "1"
		if g.sensor != "" {
			w += " AND graph.sensor_id = {sensor:UUID}"
			params = append(params, store.P("sensor", g.sensor))
		}
		w += g.scope.where("graph", &params)
		sightings = `SELECT * FROM (` + sightings + `) WHERE (` + connKey + `) IN (
            SELECT ` + connKey + ` FROM (` + sightings + `) AS graph WHERE ` + w + `)`
	}
	// An edge's resolution is the best of its connections': observed
	// (the server reported one) sorts before resolved.
	var b strings.Builder
	b.WriteString(`SELECT lower(hex(sipHash128(source, target, protocol, dst_port))) AS edge_id, protocol, dst_port AS port, source, target,
        max(service) AS service, min(resolution) AS resolution, argMin(candidates, pick) AS candidates, arraySort(groupUniqArray(peer)) AS peer_addresses,
        sum(connections) AS connections, sum(active) AS active, sum(c2s) AS bytes_client_to_server, sum(s2c) AS bytes_server_to_client,
        min(first_seen) AS first_seen, max(last_seen) AS last_seen`)
	for _, st := range heartbeat.FinalStates {
		b.WriteString(", sum(" + stateCol("", st) + ") AS " + stateCol("", st))
	}
	b.WriteString(`, argMin(node_ids, pick) AS node_ids, argMin(node_json, pick) AS node_json
    FROM (` + graphEnds(g.at, graphConnections(sightings)) + `)
    GROUP BY source, target, protocol, dst_port`)
	if g.after != "" {
		b.WriteString(" HAVING edge_id > {after:String}")
		params = append(params, store.P("after", g.after))
	}
	b.WriteString(" ORDER BY edge_id")
	if g.limit > 0 {
		b.WriteString(" LIMIT {limit:UInt64}")
		params = append(params, store.P("limit", strconv.Itoa(g.limit)))
	}
	return b.String(), params
}

// graphPage is one answer: the edges' JSON objects and the nodes they
// name, each node once, in the order the edges first name them.
type graphPage struct {
	edges, nodes []byte
	n            int
	last         string
	more         bool // there were edges beyond the cut
}

func (g *graphQuery) run(ctx context.Context, st store.Store) (*graphPage, error) {
	q, params := g.sql()
	var (
		str                     = map[string]*proto.ColStr{}
		port                    proto.ColUInt16
		u64                     = map[string]*proto.ColUInt64{}
		first, last             = new(proto.ColDateTime64), new(proto.ColDateTime64)
		cands, peers, ids, json = new(proto.ColStr).Array(), new(proto.ColStr).Array(), new(proto.ColStr).Array(), new(proto.ColStr).Array()
	)
	res := make(proto.Results, 0, len(graphEdgeCols))
	for _, c := range graphEdgeCols {
		var col proto.ColResult
		switch c {
		case "edge_id", "protocol", "source", "target", "service", "resolution":
			str[c] = new(proto.ColStr)
			col = str[c]
		case "port":
			col = &port
		case "first_seen":
			col = first
		case "last_seen":
			col = last
		case "candidates":
			col = cands
		case "peer_addresses":
			col = peers
		case "node_ids":
			col = ids
		case "node_json":
			col = json
		default:
			u64[c] = new(proto.ColUInt64)
			col = u64[c]
		}
		res = append(res, proto.ResultColumn{Name: c, Data: col})
	}
	p := &graphPage{}
	seen := map[string]bool{}
	err := st.Select(ctx, store.Query{SQL: q, Params: params}, res, func(rows int) error {
		for i := range rows {
			if g.cut > 0 && p.n == g.cut {
				p.more = true // an edge beyond the cut: its nodes are not this answer's either
				return nil
			}
			if p.n > 0 {
				p.edges = append(p.edges, ',')
			}
			b := append(p.edges, `{"id":`...)
			b = appendString(b, str["edge_id"].Row(i))
			for _, c := range []string{"source", "target"} {
				b = appendString(append(b, `,"`+c+`":`...), str[c].Row(i))
			}
			b = append(b, `,"service":`...)
			if s := str["service"].Row(i); s != "" {
				b = appendString(b, s)
			} else {
				b = append(b, "null"...)
			}
			b = appendString(append(b, `,"protocol":`...), str["protocol"].Row(i))
			b = strconv.AppendUint(append(b, `,"port":`...), uint64(port.Row(i)), 10)
			b = appendString(append(b, `,"resolution":`...), str["resolution"].Row(i))
			b = appendValue(append(b, `,"candidates":`...), cands, i)
			b = appendValue(append(b, `,"peer_addresses":`...), peers, i)
			for _, c := range []string{"connections", "active", "bytes_client_to_server", "bytes_server_to_client"} {
				b = strconv.AppendUint(append(append(b, ','), `"`+c+`":`...), u64[c].Row(i), 10)
			}
			b = appendTime(append(b, `,"first_seen":`...), first.Row(i))
			b = appendTime(append(b, `,"last_seen":`...), last.Row(i))
			b = append(b, `,"end_states":{`...)
			for j, st := range heartbeat.FinalStates {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendUint(append(appendString(b, st), ':'), u64[stateCol("", st)].Row(i), 10)
			}
			p.edges = append(b, "}}"...)
			nodeJSON := json.Row(i)
			for j, id := range ids.Row(i) {
				if id == "" || seen[id] {
					continue
				}
				seen[id] = true
				if len(p.nodes) > 0 {
					p.nodes = append(p.nodes, ',')
				}
				p.nodes = append(p.nodes, nodeJSON[j]...)
			}
			p.last = str["edge_id"].Row(i)
			p.n++
		}
		return nil
	})
	return p, err
}

// maxGraphWindow bounds since..until: the graph reads every flow of the
// window, so a year of them is refused rather than attempted.
const maxGraphWindow = 7 * 24 * time.Hour

// graph answers GET /api/v1/network/graph (every edge up to the list cap,
// truncated says when cut) and with v2 /api/v2/network/graph (a page of
// edges by cursor, with the nodes the page names).
func (s *Server) graph(v2 bool) handler {
	return func(ctx context.Context, r *fasthttp.RequestCtx, _ *principal) ([]byte, error) {
		known := []string{"sensor_id", "since", "until", "at"}
		if v2 {
			known = append(known, "limit", "cursor")
		}
		q := query(r, append(known, scopeParams...)...)
		g := &graphQuery{sensor: q.sensor(), scope: q.scope(targets["graph"])}
		limit := q.int("limit", 100, 1, 1000)
		g.at = q.at(s.historyDays())
		now := time.Now().UTC()
		if !g.at.now() {
			now = g.at.t // the window ends at the moment unless told
		}
		g.until = q.time("until", now)
		g.since = q.time("since", g.until.Add(-time.Hour))
		if q.err != nil {
			return nil, q.err
		}
		if !g.at.now() && g.until.After(g.at.t) {
			return nil, badParam("until", "%s is after at (%s): the graph at a moment is of a window that ends by then",
				g.until.Format(time.RFC3339Nano), g.at.t.Format(time.RFC3339Nano))
		}
		g.since, g.until = g.since.Truncate(time.Millisecond), g.until.Truncate(time.Millisecond)
		if !g.since.Before(g.until) || g.until.Sub(g.since) > maxGraphWindow {
			return nil, badParam("since", "the window since..until must be positive and at most 7 days (got %s .. %s)",
				g.since.Format(time.RFC3339), g.until.Format(time.RFC3339))
		}
		base := "sensor=" + g.sensor + g.scope.key() + g.at.key()
		if v2 {
			g.limit = limit
			if c := q.str("cursor"); c != "" {
				var given [2]int64 // the window sent again with the cursor, if it was
				if q.has("since") {
					given[0] = g.since.UnixMilli()
				}
				if q.has("until") {
					given[1] = g.until.UnixMilli()
				}
				since, until, key, ok := s.cursors.openWindow(c, "graph", 1, base, given)
				if !ok {
					return nil, badParam("cursor", "not a cursor of this graph (sensor, filters, at and window must not change); start again without one")
				}
				g.since, g.until, g.after = time.UnixMilli(since).UTC(), time.UnixMilli(until).UTC(), key[0]
			}
		} else {
			g.limit, g.cut = s.cfg.MaxListRows+1, s.cfg.MaxListRows // one more says it was cut
		}
		p, err := g.run(ctx, s.store)
		if err != nil {
			return nil, err
		}
		truncated := p.more
		b := make([]byte, 0, len(p.nodes)+len(p.edges)+256)
		b = append(append(append(b, `{"nodes":[`...), p.nodes...), `],"edges":[`...)
		b = append(append(b, p.edges...), ']')
		if v2 {
			next := ""
			if p.n == g.limit {
				next = s.cursors.seal("graph", base+cursorWindow(g.since.UnixMilli(), g.until.UnixMilli()), []string{p.last})
			}
			b = appendCursor(b, next)
			b = strconv.AppendInt(field(b, "limit"), int64(g.limit), 10)
		} else {
			b = strconv.AppendBool(field(b, "truncated"), truncated)
		}
		b = appendTime(field(b, "since"), g.since)
		b = appendTime(field(b, "until"), g.until)
		return append(g.at.appendAt(b), '}'), nil
	}
}
