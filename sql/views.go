package sql

// Latest is the argMax-latest filter every snapshot view starts from: the
// rows a sensor reported in its newest heartbeat. A heartbeat's sensors row
// is written after its snapshot rows, so the newest seq always has them.
const Latest = `(sensor_id, seq) IN (SELECT sensor_id, max(seq) FROM sensors GROUP BY sensor_id)`

// ActiveConnections lists the active TCP connections of the newest
// heartbeat of every sensor; a retried heartbeat's rows collapse in the
// GROUP BY even before the table merges them.
const ActiveConnections = `SELECT sensor_id, local_address, local_port, remote_address, remote_port, inode,
    any(state) AS state, any(pid) AS pid, any(binary) AS binary, any(duration_secs) AS duration_secs
FROM tcp_connections
WHERE ` + Latest + `
GROUP BY sensor_id, netns, local_address, local_port, remote_address, remote_port, inode`
