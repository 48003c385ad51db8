-- Netview schema, version 18: the history of the snapshot tables, for
-- time travel (at= on every snapshot view).
--
-- The snapshot tables are ReplacingMergeTree(seq) by socket: a merge keeps
-- each socket's newest row, so what a sensor saw at an older heartbeat is
-- lost. Each gets a <table>_history table of the same columns, filled by a
-- materialized view on every insert into it: ingest is unchanged and a
-- heartbeat stays one insert per table (the engine writes both parts).
-- sensors_history keeps every sensors row, the heartbeats that carried a
-- snapshot (ingest writes none for one whose snapshots were dropped): the
-- heartbeat in force at a moment is a sensor's newest one received by then
-- (schema.InForce).
--
-- A history table's key starts with (sensor_id, seq), so a view at a moment
-- reads the in-force heartbeats' rows by key, and ends in the snapshot
-- table's key, so a retried heartbeat's copy folds into one row. Retention:
-- --store.history-ttl-days (default 7, as the snapshot tables' own TTL).
-- index_granularity 2048 (not the default 8192): a view at a moment reads
-- one heartbeat of each sensor, some tens of rows, and the granule it sits
-- in is read whole; a quarter of the rows read for four times the marks
-- (docs/performance.md, BenchmarkQueryAt).
--
-- A column added to a snapshot table later must be added to its history
-- table in the same migration: the materialized view writes columns by name.

CREATE TABLE IF NOT EXISTS tcp_connections_history
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    netns             UInt64,
    family            LowCardinality(String),
    local_address     IPv6,
    local_port        UInt16,
    remote_address    IPv6,
    remote_port       UInt16,
    state             LowCardinality(String),
    inode             UInt64,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    unit              LowCardinality(String),
    container_id      String,
    container_runtime LowCardinality(String),
    pod_uid           String,
    container_name    String,
    container_image   LowCardinality(String),
    pod               String,
    pod_namespace     LowCardinality(String),
    first_seen        DateTime64(3, 'UTC'),
    duration_secs     Nullable(UInt32)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_connections_history_mv TO tcp_connections_history AS SELECT * FROM tcp_connections;

CREATE TABLE IF NOT EXISTS tcp_listeners_history
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    netns             UInt64,
    family            LowCardinality(String),
    local_address     IPv6,
    local_port        UInt16,
    inode             UInt64,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    unit              LowCardinality(String),
    container_id      String,
    container_runtime LowCardinality(String),
    pod_uid           String,
    container_name    String,
    container_image   LowCardinality(String),
    pod               String,
    pod_namespace     LowCardinality(String),
    first_seen        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_listeners_history_mv TO tcp_listeners_history AS SELECT * FROM tcp_listeners;

CREATE TABLE IF NOT EXISTS udp_listeners_history
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    netns             UInt64,
    family            LowCardinality(String),
    local_address     IPv6,
    local_port        UInt16,
    remote_address    IPv6,
    remote_port       UInt16,
    inode             UInt64,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    unit              LowCardinality(String),
    container_id      String,
    container_runtime LowCardinality(String),
    pod_uid           String,
    container_name    String,
    container_image   LowCardinality(String),
    pod               String,
    pod_namespace     LowCardinality(String),
    service           LowCardinality(String),
    first_seen        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS udp_listeners_history_mv TO udp_listeners_history AS SELECT * FROM udp_listeners;

CREATE TABLE IF NOT EXISTS active_flows_history
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    flow_id           UUID,
    protocol          LowCardinality(String),
    direction         LowCardinality(String),
    src_address       IPv6,
    src_port          UInt16,
    dst_address       IPv6,
    dst_port          UInt16,
    netns             UInt64,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    unit              LowCardinality(String),
    container_id      String,
    container_runtime LowCardinality(String),
    pod_uid           String,
    container_name    String,
    container_image   LowCardinality(String),
    pod               String,
    pod_namespace     LowCardinality(String),
    started_at        DateTime64(3, 'UTC'),
    bytes_sent        UInt64,
    bytes_received    UInt64,
    state             LowCardinality(String),
    source            LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, flow_id)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS active_flows_history_mv TO active_flows_history AS SELECT * FROM active_flows;

CREATE TABLE IF NOT EXISTS sensors_history
(
    sensor_id         UUID,
    hostname          String,
    flavor            LowCardinality(String),
    sensor_version    LowCardinality(String),
    boot_id           UUID,
    seq               UInt64,
    heartbeat_id      UUID,
    sent_at           DateTime64(3, 'UTC'),
    received_at       DateTime64(3, 'UTC'),
    started_at        DateTime64(3, 'UTC'),
    interval_secs     UInt32,
    kernel            String,
    netns             UInt64,
    site              LowCardinality(String),
    capabilities      Map(LowCardinality(String), String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(received_at)
ORDER BY (sensor_id, seq)
TTL toDateTime(received_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE MATERIALIZED VIEW IF NOT EXISTS sensors_history_mv TO sensors_history AS SELECT * FROM sensors;

