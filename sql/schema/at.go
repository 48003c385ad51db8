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

// SensorsAt is the sensors rows received by the moment, within the
// history: a sensor's row of each heartbeat that carried a snapshot. A
// sensor first heard of after the moment has none. The retention bound
// lets the scan skip older partitions; rows older than it have expired
// from the history tables anyway.
const SensorsAt = `SELECT * FROM sensors_history
    WHERE received_at <= {as_of:DateTime64(3, 'UTC')} AND received_at > {as_of:DateTime64(3, 'UTC')} - toIntervalDay({as_of_days:UInt32})`

// InForce replaces Latest at a moment: the rows of each sensor's heartbeat
// in force then, its newest heartbeat received by then that carried a
// snapshot (one whose snapshots the spool dropped left no sensors row, so
// the one before it stays in force). Every row of that heartbeat is in its
// history table by the time it is read, so no heartbeat in flight is
// added as Latest must.
func InForce() string {
	return `(sensor_id, seq) IN (SELECT sensor_id, max(seq) FROM (` + SensorsAt + `) GROUP BY sensor_id)`
}
