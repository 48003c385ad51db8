-- Generated from sql/schema/migrations by `make cluster-ddl`; do not edit.
CREATE TABLE IF NOT EXISTS schema_migrations_local ON CLUSTER 'netview'
(
    version     UInt32,
    name        String,
    applied_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/schema_migrations_local', '{replica}')
ORDER BY version
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER 'netview' AS schema_migrations_local
ENGINE = Distributed('netview', currentDatabase(), schema_migrations_local, rand());

CREATE TABLE IF NOT EXISTS sensors_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sensors_local', '{replica}', seq)
ORDER BY sensor_id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS sensors ON CLUSTER 'netview' AS sensors_local
ENGINE = Distributed('netview', currentDatabase(), sensors_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS heartbeats_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/heartbeats_local', '{replica}')
PARTITION BY toDate(sent_at)
ORDER BY (sensor_id, seq)
TTL toDateTime(sent_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS heartbeats ON CLUSTER 'netview' AS heartbeats_local
ENGINE = Distributed('netview', currentDatabase(), heartbeats_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS tcp_connections_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_connections_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS tcp_connections ON CLUSTER 'netview' AS tcp_connections_local
ENGINE = Distributed('netview', currentDatabase(), tcp_connections_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS tcp_listeners_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_listeners_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS tcp_listeners ON CLUSTER 'netview' AS tcp_listeners_local
ENGINE = Distributed('netview', currentDatabase(), tcp_listeners_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS udp_listeners_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/udp_listeners_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS udp_listeners ON CLUSTER 'netview' AS udp_listeners_local
ENGINE = Distributed('netview', currentDatabase(), udp_listeners_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS active_flows_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/active_flows_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, flow_id)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS active_flows ON CLUSTER 'netview' AS active_flows_local
ENGINE = Distributed('netview', currentDatabase(), active_flows_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS flows_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/flows_local', '{replica}')
PARTITION BY toDate(ended_at)
ORDER BY (sensor_id, ended_at, flow_id)
TTL toDateTime(ended_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS flows ON CLUSTER 'netview' AS flows_local
ENGINE = Distributed('netview', currentDatabase(), flows_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS events_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')
PARTITION BY toDate(time)
ORDER BY (kind, sensor_id, time, event_id)
TTL toDateTime(time) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS events ON CLUSTER 'netview' AS events_local
ENGINE = Distributed('netview', currentDatabase(), events_local, cityHash64(sensor_id));

ALTER TABLE sensors_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS capabilities Map(LowCardinality(String), String);

ALTER TABLE sensors ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS capabilities Map(LowCardinality(String), String);

CREATE TABLE IF NOT EXISTS sctp_associations_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sctp_associations_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, assoc_id, local_port, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS sctp_associations ON CLUSTER 'netview' AS sctp_associations_local
ENGINE = Distributed('netview', currentDatabase(), sctp_associations_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS sctp_endpoints_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sctp_endpoints_local', '{replica}', seq)
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, netns, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS sctp_endpoints ON CLUSTER 'netview' AS sctp_endpoints_local
ENGINE = Distributed('netview', currentDatabase(), sctp_endpoints_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS credentials_local ON CLUSTER 'netview'
(
    id              String,
    kind            LowCardinality(String),
    role            LowCardinality(String),
    sensor_id       UUID,
    name            String,
    hash            FixedString(32),
    created_at      DateTime64(3, 'UTC'),
    created_by      String,
    expires_at      DateTime64(3, 'UTC'),
    revoked_at      DateTime64(3, 'UTC'),
    revoked_by      String,
    reenroll        UInt8,
    version         UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/credentials_local', '{replica}', version)
ORDER BY id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS credentials ON CLUSTER 'netview' AS credentials_local
ENGINE = Distributed('netview', currentDatabase(), credentials_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS audit_log_local ON CLUSTER 'netview'
(
    time            DateTime64(3, 'UTC'),
    event_id        UUID,
    actor           String,
    role            LowCardinality(String),
    remote_addr     String,
    action          LowCardinality(String),
    target          String,
    detail          String,
    outcome         LowCardinality(String)
)
ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/audit_log_local', '{replica}')
PARTITION BY toYYYYMM(time)
ORDER BY (time, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS audit_log ON CLUSTER 'netview' AS audit_log_local
ENGINE = Distributed('netview', currentDatabase(), audit_log_local, rand());

CREATE TABLE IF NOT EXISTS sensor_blocks_local ON CLUSTER 'netview'
(
    sensor_id       UUID,
    blocked_at      DateTime64(3, 'UTC'),
    blocked_by      String,
    reason          String,
    version         UInt64
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sensor_blocks_local', '{replica}', version)
ORDER BY sensor_id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS sensor_blocks ON CLUSTER 'netview' AS sensor_blocks_local
ENGINE = Distributed('netview', currentDatabase(), sensor_blocks_local, cityHash64(sensor_id));

ALTER TABLE tcp_connections_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE tcp_connections ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE tcp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE tcp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE udp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE udp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE active_flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE active_flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE events_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE events ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE sctp_associations_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE sctp_associations ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE sctp_endpoints_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE sctp_endpoints ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;

ALTER TABLE tcp_connections_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE tcp_connections ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE tcp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE tcp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE udp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE udp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE active_flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE active_flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE events_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE events ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE sctp_associations_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE sctp_associations ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE sctp_endpoints_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE sctp_endpoints ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;

ALTER TABLE tcp_connections_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE tcp_connections ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE tcp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE tcp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE udp_listeners_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE udp_listeners ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE active_flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE active_flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE events_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE events ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE sctp_associations_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE sctp_associations ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE sctp_endpoints_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE sctp_endpoints ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS container_name String AFTER pod_uid, ADD COLUMN IF NOT EXISTS container_image LowCardinality(String) AFTER container_name, ADD COLUMN IF NOT EXISTS pod String AFTER container_image, ADD COLUMN IF NOT EXISTS pod_namespace LowCardinality(String) AFTER pod;

ALTER TABLE active_flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE active_flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE flows_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE flows ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE events_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE events ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;

ALTER TABLE events_local ON CLUSTER 'netview' ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_query_name query_name TYPE ngrambf_v1(4, 4096, 3, 0) GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_answers answers TYPE bloom_filter GRANULARITY 1;

ALTER TABLE flows_local ON CLUSTER 'netview' ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;

ALTER TABLE active_flows_local ON CLUSTER 'netview' ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;

ALTER TABLE tcp_connections_local ON CLUSTER 'netview' ADD INDEX IF NOT EXISTS hunt_addresses [local_address, remote_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [local_port, remote_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;

ALTER TABLE events_local ON CLUSTER 'netview' ADD INDEX IF NOT EXISTS hunt_query_name_lower lower(query_name) TYPE ngrambf_v1(4, 4096, 3, 0) GRANULARITY 1;

ALTER TABLE sensors_local ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS site LowCardinality(String) DEFAULT '' AFTER netns;

ALTER TABLE sensors ON CLUSTER 'netview' ADD COLUMN IF NOT EXISTS site LowCardinality(String) DEFAULT '' AFTER netns;

CREATE TABLE IF NOT EXISTS host_addresses_local ON CLUSTER 'netview'
(
    site        LowCardinality(String),
    address     IPv6,
    sensor_id   UUID,
    netns       UInt64,
    interface   LowCardinality(String),
    ifindex     UInt32,
    prefix_len  UInt8,
    mac         String,
    up          Bool,
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/host_addresses_local', '{replica}')
ORDER BY (site, address, sensor_id, netns, interface, ifindex, prefix_len, mac, up)
TTL toDateTime(last_seen) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS host_addresses ON CLUSTER 'netview' AS host_addresses_local
ENGINE = Distributed('netview', currentDatabase(), host_addresses_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS baseline_seen_local ON CLUSTER 'netview'
(
    rule        LowCardinality(String),
    sensor_id   UUID,
    key         String,
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    first_window SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/{database}/baseline_seen_local', '{replica}')
ORDER BY (rule, sensor_id, key)
TTL toDateTime(last_seen) + INTERVAL 90 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS baseline_seen ON CLUSTER 'netview' AS baseline_seen_local
ENGINE = Distributed('netview', currentDatabase(), baseline_seen_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS baseline_watermark_local ON CLUSTER 'netview'
(
    job           LowCardinality(String),
    processed_to  DateTime64(3, 'UTC'),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/baseline_watermark_local', '{replica}', processed_to)
ORDER BY job
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS baseline_watermark ON CLUSTER 'netview' AS baseline_watermark_local
ENGINE = Distributed('netview', currentDatabase(), baseline_watermark_local, rand());

CREATE TABLE IF NOT EXISTS baseline_mutes_local ON CLUSTER 'netview'
(
    rule        LowCardinality(String),
    sensor_id   UUID,
    key         String,
    muted       UInt8,
    muted_at    DateTime64(3, 'UTC'),
    muted_by    String,
    reason      String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/baseline_mutes_local', '{replica}', muted_at)
ORDER BY (rule, sensor_id, key)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS baseline_mutes ON CLUSTER 'netview' AS baseline_mutes_local
ENGINE = Distributed('netview', currentDatabase(), baseline_mutes_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS baseline_acks_local ON CLUSTER 'netview'
(
    sensor_id   UUID,
    event_id    UUID,
    acked       UInt8 DEFAULT 1,
    acked_at    DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    acked_by    String,
    note        String
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/baseline_acks_local', '{replica}', acked_at)
ORDER BY (sensor_id, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS baseline_acks ON CLUSTER 'netview' AS baseline_acks_local
ENGINE = Distributed('netview', currentDatabase(), baseline_acks_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS finding_delivery_local ON CLUSTER 'netview'
(
    sink          LowCardinality(String),
    event_id      UUID,
    received_at   DateTime64(3, 'UTC'),
    time          DateTime64(3, 'UTC'),
    delivered_at  DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/finding_delivery_local', '{replica}', delivered_at)
ORDER BY (sink, event_id)
TTL toDateTime(delivered_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS finding_delivery ON CLUSTER 'netview' AS finding_delivery_local
ENGINE = Distributed('netview', currentDatabase(), finding_delivery_local, rand());

CREATE TABLE IF NOT EXISTS baseline_hourly_local ON CLUSTER 'netview'
(
    sensor_id    UUID,
    hour         DateTime('UTC'),
    heartbeats   UInt64,
    connections  Float64,
    squares      Float64,
    upto         DateTime64(3, 'UTC')
)
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/baseline_hourly_local', '{replica}', upto)
ORDER BY (toHour(hour), sensor_id, hour)
TTL hour + INTERVAL 8 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS baseline_hourly ON CLUSTER 'netview' AS baseline_hourly_local
ENGINE = Distributed('netview', currentDatabase(), baseline_hourly_local, cityHash64(sensor_id));

CREATE TABLE IF NOT EXISTS tcp_connections_history_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_connections_history_local', '{replica}')
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS tcp_connections_history ON CLUSTER 'netview' AS tcp_connections_history_local
ENGINE = Distributed('netview', currentDatabase(), tcp_connections_history_local, cityHash64(sensor_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_connections_history_mv ON CLUSTER 'netview' TO tcp_connections_history_local AS SELECT * FROM tcp_connections_local;

CREATE TABLE IF NOT EXISTS tcp_listeners_history_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/tcp_listeners_history_local', '{replica}')
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS tcp_listeners_history ON CLUSTER 'netview' AS tcp_listeners_history_local
ENGINE = Distributed('netview', currentDatabase(), tcp_listeners_history_local, cityHash64(sensor_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS tcp_listeners_history_mv ON CLUSTER 'netview' TO tcp_listeners_history_local AS SELECT * FROM tcp_listeners_local;

CREATE TABLE IF NOT EXISTS udp_listeners_history_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/udp_listeners_history_local', '{replica}')
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, netns, local_address, local_port, remote_address, remote_port, inode)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS udp_listeners_history ON CLUSTER 'netview' AS udp_listeners_history_local
ENGINE = Distributed('netview', currentDatabase(), udp_listeners_history_local, cityHash64(sensor_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS udp_listeners_history_mv ON CLUSTER 'netview' TO udp_listeners_history_local AS SELECT * FROM udp_listeners_local;

CREATE TABLE IF NOT EXISTS active_flows_history_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/active_flows_history_local', '{replica}')
PARTITION BY toDate(observed_at)
ORDER BY (sensor_id, seq, flow_id)
TTL toDateTime(observed_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS active_flows_history ON CLUSTER 'netview' AS active_flows_history_local
ENGINE = Distributed('netview', currentDatabase(), active_flows_history_local, cityHash64(sensor_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS active_flows_history_mv ON CLUSTER 'netview' TO active_flows_history_local AS SELECT * FROM active_flows_local;

CREATE TABLE IF NOT EXISTS sensors_history_local ON CLUSTER 'netview'
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
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/sensors_history_local', '{replica}')
PARTITION BY toDate(received_at)
ORDER BY (sensor_id, seq)
TTL toDateTime(received_at) + INTERVAL 7 DAY
SETTINGS index_granularity = 2048, fsync_after_insert = 1, fsync_part_directory = 1;

CREATE TABLE IF NOT EXISTS sensors_history ON CLUSTER 'netview' AS sensors_history_local
ENGINE = Distributed('netview', currentDatabase(), sensors_history_local, cityHash64(sensor_id));

CREATE MATERIALIZED VIEW IF NOT EXISTS sensors_history_mv ON CLUSTER 'netview' TO sensors_history_local AS SELECT * FROM sensors_local;

