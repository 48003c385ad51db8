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
const Latest = `(sensor_id, seq) IN (SELECT sensor_id, arrayJoin([max(seq), max(seq) + 1]) FROM sensors GROUP BY sensor_id)`

// ActiveConnections lists the active TCP connections of every sensor's
// newest heartbeat, one row per socket even before the table merges a
// retried heartbeat's duplicates.
const ActiveConnections = `SELECT sensor_id, local_address, local_port, remote_address, remote_port, inode,
    argMax(state, seq) AS state, argMax(pid, seq) AS pid, argMax(binary, seq) AS binary,
    argMax(duration_secs, seq) AS duration_secs, max(seq) AS last_seq
FROM tcp_connections
WHERE ` + Latest + `
GROUP BY sensor_id, netns, local_address, local_port, remote_address, remote_port, inode`
