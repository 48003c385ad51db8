-- Netview schema, version 2: SCTP sockets of telecom sensors, and what each
-- sensor can observe.
--
-- The SCTP tables are snapshot tables like tcp_listeners and udp_listeners:
-- ReplacingMergeTree(seq), the newest heartbeat's row of each socket wins.
-- SCTP is multi-homed, so an association or endpoint has arrays of
-- addresses (kernel order) instead of one; IPv4 is stored v4-mapped.

-- What the sensor can observe on its host, so an empty section reads as
-- "nothing there" only when it is: flow_source (inet_diag, proc, ebpf),
-- sctp (available, unavailable, not_telecom), lsm (available, unavailable).
-- Free-form strings; rows written before this version have an empty map.
ALTER TABLE sensors ADD COLUMN IF NOT EXISTS capabilities Map(LowCardinality(String), String);

-- SCTP associations (/proc/net/sctp/assocs), per heartbeat. primary_address
-- is the remote path the kernel marks primary (:: when not reported).
CREATE TABLE IF NOT EXISTS sctp_associations
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    netns             UInt64,
    assoc_id          UInt32,
    state             LowCardinality(String),
    local_port        UInt16,
    remote_port       UInt16,
    local_addresses   Array(IPv6),
    remote_addresses  Array(IPv6),
    primary_address   IPv6,
    inode             UInt64,
    tx_queue          UInt32,
    rx_queue          UInt32,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    first_seen        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, assoc_id, local_port, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Bound SCTP sockets (/proc/net/sctp/eps), per heartbeat.
CREATE TABLE IF NOT EXISTS sctp_endpoints
(
    sensor_id         UUID,
    seq               UInt64,
    observed_at       DateTime64(3, 'UTC'),
    netns             UInt64,
    local_port        UInt16,
    local_addresses   Array(IPv6),
    inode             UInt64,
    uid               UInt32,
    pid               UInt32,
    binary            LowCardinality(String),
    binary_path       LowCardinality(String),
    first_seen        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
