-- Netview schema, version 17: the connection count's daily pattern
-- (query/baseline, rule connection_count).
--
-- One row per sensor and hour: how many heartbeats it sent in that hour
-- (those that reported a socket or a flow), and the sum and the sum of
-- squares of their active connection counts, from which any span of
-- hours gives a mean and a standard deviation. The baseline job rewrites
-- the hours its window touches, from their start: the row of the furthest
-- window (upto) wins, so a retried run or two replicas count nothing
-- twice. Read with FINAL.
--
-- The key starts with the hour of day (UTC): the rule and the summary's
-- anomaly score read the same hour of day over the past week, a few rows
-- per sensor, not the table.
CREATE TABLE IF NOT EXISTS baseline_hourly
(
    sensor_id    UUID,
    hour         DateTime('UTC'),
    heartbeats   UInt64,
    connections  Float64,
    squares      Float64,
    -- the end of the window that wrote the row
    upto         DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(upto)
ORDER BY (toHour(hour), sensor_id, hour)
TTL hour + INTERVAL 8 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
