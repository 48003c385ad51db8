package schema

// A view at a moment reads the snapshot tables' history (migration 0018)
// instead of the tables themselves. The moment is bound as
// {as_of:DateTime64(3, 'UTC')}, and how far back the history reaches as
// {as_of_days:UInt32} (--store.history-ttl-days).

// History names a snapshot table's history and the time its TTL runs on.
type History struct{ Table, History, TimeColumn string }

// HistoryTables are the tables whose history is kept.
var HistoryTables = []History{
	{"tcp_connections", "tcp_connections_history", "observed_at"},
	{"tcp_listeners", "tcp_listeners_history", "observed_at"},
	{"udp_listeners", "udp_listeners_history", "observed_at"},
	{"active_flows", "active_flows_history", "observed_at"},
	{"sensors", "sensors_history", "received_at"},
}

// inForce are the pairs (sensor_id, seq) of each sensor's heartbeat in
// force at the moment: its newest heartbeat received by then that carried
// a snapshot (one whose snapshots the spool dropped left no sensors row,
// so the one before it stays in force). A sensor first heard of after the
// moment has none. The retention bound lets the scan skip older
// partitions; rows older than it have expired from the history anyway.
// Profiled on BenchmarkQueryAt's shape (50 sensors x 12 h, 144,000 rows):
// this scan alone is about 5 ms, and a page with it swapped for a set read
// from the small sensors table still cost 2x now's, so it is not what
// makes at= dear at that size; it grows with the retention and the fleet.
const inForce = `SELECT sensor_id, max(seq) FROM sensors_history
    WHERE received_at <= {as_of:DateTime64(3, 'UTC')} AND received_at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({as_of_days:UInt32})
    GROUP BY sensor_id`

// SensorsAt is the sensors table as it stood at the moment: each sensor's
// row of its heartbeat in force, as the sensors table keeps only its
// newest. It reads the same set as InForce, which the engine builds once
// a statement.
const SensorsAt = `SELECT * FROM sensors_history
    WHERE (sensor_id, seq) IN (` + inForce + `) AND received_at <= {as_of:DateTime64(3, 'UTC')}`

// InForce replaces Latest at a moment: the rows of each sensor's heartbeat
// in force then. Every row of that heartbeat is in its history table by
// the time it is read, so no heartbeat in flight is added as Latest must.
func InForce() string { return `(sensor_id, seq) IN (` + inForce + `)` }
