-- Netview schema, version 12: which sensor held which address, and when,
-- so that a remote address in one sensor's rows can be resolved to the
-- host, network namespace and interface that holds it.
--
-- Every heartbeat reports the sensor's interfaces and their addresses
-- (heartbeat.md, interfaces) and its site (--sensor.site), and ingest
-- writes one row per address with first_seen = last_seen = sent_at. The
-- table is an AggregatingMergeTree whose sorting key is the whole holding
-- (site, address, sensor, namespace, interface, ifindex, prefix length,
-- MAC, up): merges fold the rows of repeated heartbeats into one per
-- holding, keeping min(first_seen) and max(last_seen), so the table grows
-- with the distinct holdings and not with the heartbeats. A
-- ReplacingMergeTree would keep only the newest row's first_seen, which
-- stateless ingest cannot know; here it is simply the earliest report.
-- Readers group by the key as the merges would (sql/schema's
-- ResolveAddress), so what they see does not depend on whether the merge
-- has happened yet. An interface going down keeps its address under a
-- second holding (up = false) of the same owner.
--
-- site leads the key: resolution looks an address up within one site
-- (private addresses repeat across networks), and the primary index
-- serves it. Rows expire 30 days after the address was last seen, as
-- events do by default; Migrate keeps the expiry in step with the events'
-- (-store.events-ttl-days), so any stored event's addresses can still be
-- resolved at its time.
ALTER TABLE sensors ADD COLUMN IF NOT EXISTS site LowCardinality(String) DEFAULT '' AFTER netns;
CREATE TABLE IF NOT EXISTS host_addresses
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
ENGINE = AggregatingMergeTree
ORDER BY (site, address, sensor_id, netns, interface, ifindex, prefix_len, mac, up)
TTL toDateTime(last_seen) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
