package schema

// Latest is the argMax-latest filter every snapshot view starts from: the
// rows of each sensor's newest complete heartbeat (its sensors row is
// written after its snapshot rows), together with the rows of the one
// after it, which may be written in part already. Views then keep, per
// socket, the newest row (argMax by seq). Without the next heartbeat's rows
// a merge that replaced a socket's row with the newer one would hide the
// socket until that heartbeat became visible; with them the view never
// loses a socket, and drops a closed one as soon as the heartbeat that
// lacks it is complete. A sensor has at most one heartbeat in flight: it
// sends the next only after the last is acknowledged.
//
// The bound on observed_at changes no answer and bounds the cost of
// history: a row's observed_at is its heartbeat's sent_at, so no row kept
// is older than the oldest of the sensors' newest heartbeats. The rows of
// closed sockets, which stay until their TTL (29 for each live row after
// 12 hours in BenchmarkQuery), fail that cheap test before the key is
// looked up, and partitions of the days before it are not read at all. A
// sensor silent for days widens the bound to its last heartbeat. (Only a
// heartbeat in flight stamped earlier than every sensor's newest one, a
// clock stepped back, would have its rows wait for its sensors row.)
const Latest = `observed_at >= (SELECT min(t) FROM (SELECT argMax(sent_at, seq) AS t FROM sensors GROUP BY sensor_id))
    AND (sensor_id, seq) IN (SELECT sensor_id, arrayJoin([max(seq), max(seq) + 1]) FROM sensors GROUP BY sensor_id)`

// ActiveConnections lists the active TCP connections of every sensor's
// newest heartbeat, one row per socket even before the table merges a
// retried heartbeat's duplicates.
const ActiveConnections = `SELECT sensor_id, local_address, local_port, remote_address, remote_port, inode,
    argMax(state, seq) AS state, argMax(pid, seq) AS pid, argMax(binary, seq) AS binary,
    argMax(duration_secs, seq) AS duration_secs, max(seq) AS last_seq
FROM tcp_connections
WHERE ` + Latest + `
GROUP BY sensor_id, netns, local_address, local_port, remote_address, remote_port, inode`

// addressHoldings are the owners of addresses at {at:DateTime64(3, 'UTC')},
// give or take {slack_secs:UInt32} (a sensor reports its addresses once a
// heartbeat, so an address is held between two reports; a slack of about
// two intervals bridges them). The innermost query groups by the whole
// sorting key of host_addresses, as its merges do, so the spans it sees are
// the same before and after a merge. An owner is a sensor's network
// namespace; the interfaces holding the address there are listed. where
// narrows host_addresses before anything is grouped.
func addressHoldings(where string) string {
	return `SELECT site, address, sensor_id, netns, arraySort(groupUniqArray(interface)) AS interfaces,
        min(held_from) AS first_seen, max(held_to) AS last_seen, max(up) AS up
    FROM (
        SELECT site, address, sensor_id, netns, interface, up, min(first_seen) AS held_from, max(last_seen) AS held_to
        FROM host_addresses
        ` + where + `
        GROUP BY site, address, sensor_id, netns, interface, ifindex, prefix_len, mac, up
        HAVING held_from <= {at:DateTime64(3, 'UTC')} + toIntervalSecond({slack_secs:UInt32})
           AND held_to >= {at:DateTime64(3, 'UTC')} - toIntervalSecond({slack_secs:UInt32})
    )
    GROUP BY site, address, sensor_id, netns`
}

// resolution names what the owners of an address make of it: one owner
// resolves it; several are ambiguous (the same private address in two
// networks tagged as one site, NAT, a virtual address on every node), and
// no candidate is picked over the others; none leaves it unknown.
const resolution = `count() AS owners,
    multiIf(owners = 0, 'unknown', owners = 1, 'resolved', 'ambiguous') AS resolution,
    arraySort(groupArray((sensor_id, netns, interfaces, up, first_seen, last_seen))) AS candidates`

// ResolveAddress resolves {address:IPv6} within {site:String} at
// {at:DateTime64(3, 'UTC')}, give or take {slack_secs:UInt32}: one row of
// owners, resolution (resolved, ambiguous or unknown) and candidates, each
// (sensor_id, netns, interfaces, up, first_seen, last_seen), sorted by
// sensor. An address of an interface that was down is still held: up says
// so. A loopback address is the asking row's own host, not looked up here.
var ResolveAddress = `SELECT ` + resolution + `
FROM (` + addressHoldings(`WHERE site = {site:String} AND address = {address:IPv6}`) + `)`

// AddressOwners is ResolveAddress for every address of every site at once,
// one row per (site, address) held at the time, for joining against the
// remote addresses of many rows: an address absent from it is unknown.
var AddressOwners = `SELECT site, address, ` + resolution + `
FROM (` + addressHoldings(``) + `)
GROUP BY site, address`

// ListenersOf names the TCP listeners that take connections to
// {address:IPv6} port {port:UInt16} at the address's owners within
// {site:String} (as ResolveAddress finds them at {at:DateTime64(3, 'UTC')}
// ± {slack_secs:UInt32}), each from its sensor's newest snapshot: a
// listener in the owner's namespace bound to the address itself, to ::
// (which takes IPv4 too) or, for an IPv4 address, to 0.0.0.0. So an edge
// whose remote end is ambiguous lists every candidate's listener, and one
// whose owner listens on no such port lists none. Listeners are snapshot
// rows: this says who listens now, not at the time asked.
var ListenersOf = `SELECT sensor_id, netns, local_address, local_port, inode,
    argMax(pid, seq) AS pid, argMax(binary, seq) AS binary, max(seq) AS last_seq
FROM tcp_listeners
WHERE ` + Latest + `
  AND local_port = {port:UInt16}
  AND (local_address = {address:IPv6} OR local_address = toIPv6('::')
       OR (local_address = toIPv6('::ffff:0.0.0.0') AND {address:IPv6} BETWEEN toIPv6('::ffff:0.0.0.0') AND toIPv6('::ffff:255.255.255.255')))
  AND (sensor_id, netns) IN (SELECT sensor_id, netns FROM (` + addressHoldings(`WHERE site = {site:String} AND address = {address:IPv6}`) + `))
GROUP BY sensor_id, netns, local_address, local_port, inode`
