-- Netview schema, version 16: export of baseline findings (query/baseline,
-- notify.go) to a webhook and to syslog.
--
-- One row per finding a sink's receiver acknowledged (a webhook's 2xx, a
-- syslog write that returned), written only after it did: the store is
-- the outbox, so a restarted service sends what has no row here. A sink's
-- watermark is its newest received_at, the finding's insertion time in
-- events; each look reads findings written after it, less an overlap for
-- inserts that became visible late, and this table drops those already
-- sent. A row with the nil event_id marks where a sink's first look
-- started. Kept 30 days after delivery, as events are by default.
CREATE TABLE IF NOT EXISTS finding_delivery
(
    sink          LowCardinality(String),
    event_id      UUID,
    -- the finding's received_at and time in events
    received_at   DateTime64(3, 'UTC'),
    time          DateTime64(3, 'UTC'),
    delivered_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(delivered_at)
ORDER BY (sink, event_id)
TTL toDateTime(delivered_at) + INTERVAL 30 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
