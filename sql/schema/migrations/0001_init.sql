-- Netview schema, version 1.
--
-- Snapshot tables hold what a sensor saw at one heartbeat. They are
-- ReplacingMergeTree(seq): for each socket the row of the newest heartbeat
-- wins, and the active view is "rows whose seq is the sensor's latest seq"
-- (argMax-latest). Event tables are partitioned by day, expire by TTL and are
-- ReplacingMergeTree on a key that ends in the event's own id, so a heartbeat
-- retried after a lost acknowledgement collapses into one row; reads
-- deduplicate too, so nothing shows twice before a merge.
--
-- Parts are fsynced before an insert returns (fsync_after_insert), so an
-- acknowledged heartbeat survives a power loss, not only a crash.
--
-- Every time is DateTime64(3, 'UTC'). Addresses are IPv6 (IPv4 stored
-- v4-mapped). pid 0 means "not attributed".

-- One row per heartbeat: the sensor's identity and state as last reported.
CREATE TABLE IF NOT EXISTS sensors
(
    sensor_id       UUID,
    hostname        String,
    flavor          LowCardinality(String),
    sensor_version  LowCardinality(String),
    boot_id         UUID,
    seq             UInt64,
    heartbeat_id    UUID,
    sent_at         DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    started_at      DateTime64(3, 'UTC'),
    interval_secs   UInt32,
    kernel          String,
    netns           UInt64
)
ENGINE = ReplacingMergeTree(seq)
ORDER BY sensor_id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- One row per heartbeat, kept for history: counts per section, for the
-- fleet summary's baseline and for auditing what was acknowledged.
CREATE TABLE IF NOT EXISTS heartbeats
(
    sensor_id        UUID,
    seq              UInt64,
    heartbeat_id     UUID,
    boot_id          UUID,
    sent_at          DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    tcp_connections  UInt32,
    tcp_listeners    UInt32,
    udp_listeners    UInt32,
    active_flows     UInt32,
    completed_flows  UInt32,
    events           UInt32
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(sent_at)
ORDER BY (sensor_id, seq)
TTL toDateTime(sent_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Active TCP connections (every state but LISTEN), per heartbeat.
CREATE TABLE IF NOT EXISTS tcp_connections
(
    sensor_id       UUID,
    seq             UInt64,
    observed_at     DateTime64(3, 'UTC'),
    netns           UInt64,
    family          LowCardinality(String),
    local_address   IPv6,
    local_port      UInt16,
    remote_address  IPv6,
    remote_port     UInt16,
    state           LowCardinality(String),
    inode           UInt64,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    first_seen      DateTime64(3, 'UTC'),
    duration_secs   Nullable(UInt32)
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- TCP sockets in LISTEN state, per heartbeat.
CREATE TABLE IF NOT EXISTS tcp_listeners
(
    sensor_id       UUID,
    seq             UInt64,
    observed_at     DateTime64(3, 'UTC'),
    netns           UInt64,
    family          LowCardinality(String),
    local_address   IPv6,
    local_port      UInt16,
    inode           UInt64,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    first_seen      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- UDP sockets from /proc/net/udp{,6}, per heartbeat. service names telecom
-- ports (gtp-u, pfcp, radius, radius-acct) and well-known ones.
CREATE TABLE IF NOT EXISTS udp_listeners
(
    sensor_id       UUID,
    seq             UInt64,
    observed_at     DateTime64(3, 'UTC'),
    netns           UInt64,
    family          LowCardinality(String),
    local_address   IPv6,
    local_port      UInt16,
    remote_address  IPv6,
    remote_port     UInt16,
    inode           UInt64,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    service         LowCardinality(String),
    first_seen      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Flows open at heartbeat time, per heartbeat. state is the TCP state now.
CREATE TABLE IF NOT EXISTS active_flows
(
    sensor_id       UUID,
    seq             UInt64,
    observed_at     DateTime64(3, 'UTC'),
    flow_id         UUID,
    protocol        LowCardinality(String),
    direction       LowCardinality(String),
    src_address     IPv6,
    src_port        UInt16,
    dst_address     IPv6,
    dst_port        UInt16,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    started_at      DateTime64(3, 'UTC'),
    bytes_sent      UInt64,
    bytes_received  UInt64,
    state           LowCardinality(String),
    source          LowCardinality(String)
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, flow_id)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Completed flows (connect or accept until close). state is the final state:
-- established, refused, half-closed or stale.
CREATE TABLE IF NOT EXISTS flows
(
    sensor_id       UUID,
    flow_id         UUID,
    protocol        LowCardinality(String),
    direction       LowCardinality(String),
    src_address     IPv6,
    src_port        UInt16,
    dst_address     IPv6,
    dst_port        UInt16,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    started_at      DateTime64(3, 'UTC'),
    ended_at        DateTime64(3, 'UTC'),
    duration_ms     UInt64,
    bytes_sent      UInt64,
    bytes_received  UInt64,
    state           LowCardinality(String),
    source          LowCardinality(String),
    received_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(ended_at)
ORDER BY (sensor_id, ended_at, flow_id)
TTL toDateTime(ended_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Network events of every kind: network_connect, network_accept,
-- network_listen, network_flow (one per completed flow, event_id =
-- flow_id), dns_query, dns_lookup, dns_resolution, lsm_net_connect.
CREATE TABLE IF NOT EXISTS events
(
    event_id        UUID,
    sensor_id       UUID,
    kind            LowCardinality(String),
    time            DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    protocol        LowCardinality(String),
    src_address     IPv6,
    src_port        UInt16,
    dst_address     IPv6,
    dst_port        UInt16,
    uid             UInt32,
    pid             UInt32,
    binary          LowCardinality(String),
    binary_path     LowCardinality(String),
    query_name      String,
    query_type      LowCardinality(String),
    answers         Array(IPv6),
    duration_ms     UInt64,
    bytes_sent      UInt64,
    bytes_received  UInt64,
    state           LowCardinality(String),
    source          LowCardinality(String)
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(time)
ORDER BY (kind, sensor_id, time, event_id)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
