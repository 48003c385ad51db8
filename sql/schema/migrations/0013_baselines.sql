-- Netview schema, version 13: baselines, "what is new" (query/baseline).
--
-- A periodic job reads only the rows newer than its watermark, learns what
-- each sensor has shown (listeners, outbound destinations, DNS domains,
-- peer hosts), and writes a finding as an event of a baseline_* kind into
-- events when something shows up for the first time. The state below is
-- one row per (rule, sensor, key), never the history itself, so a run
-- costs what its window holds.

-- What each sensor has shown, per rule and key, with when it was first and
-- last seen and the start of the first window that saw it. Rows of one key
-- from several runs fold into one (min and max); a run that is retried, or
-- two replicas running at once, insert the same values again and change
-- nothing. first_window tells a rerun of a key's first window (which
-- writes its finding again, to the same row) from a later window. rule '_sensor' with key '' records a
-- sensor's first heartbeat, from which its learning period runs. A key not
-- seen for 90 days is forgotten, and is new again when it comes back.
CREATE TABLE IF NOT EXISTS baseline_seen
(
    rule        LowCardinality(String),
    sensor_id   UUID,
    key         String,
    first_seen  SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen   SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    first_window SimpleAggregateFunction(min, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (rule, sensor_id, key)
TTL toDateTime(last_seen) + INTERVAL 90 DAY
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- How far the job has read: every row whose own time is at or before
-- processed_to has been learned. The highest value wins, so replicas that
-- raced each leave theirs and the furthest is read.
CREATE TABLE IF NOT EXISTS baseline_watermark
(
    job           LowCardinality(String),
    processed_to  DateTime64(3, 'UTC'),
    updated_at    DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(processed_to)
ORDER BY job
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Mutes: a muted (rule, sensor, key) is still learned but makes no
-- finding. sensor_id 00000000-0000-0000-0000-000000000000 means every
-- sensor, key '' every key of the rule. The newest row of a triple wins:
-- unmute by inserting muted = 0.
CREATE TABLE IF NOT EXISTS baseline_mutes
(
    rule        LowCardinality(String),
    sensor_id   UUID,
    key         String,
    muted       UInt8,
    muted_at    DateTime64(3, 'UTC'),
    muted_by    String,
    reason      String
)
ENGINE = ReplacingMergeTree(muted_at)
ORDER BY (rule, sensor_id, key)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- Acknowledgements of findings, by the finding's event_id. The newest row
-- wins; acked = 0 takes an acknowledgement back. An INSERT of sensor_id,
-- event_id and acked_by alone acknowledges, now.
CREATE TABLE IF NOT EXISTS baseline_acks
(
    sensor_id   UUID,
    -- the finding's id in events
    event_id    UUID,
    acked       UInt8 DEFAULT 1,
    acked_at    DateTime64(3, 'UTC') DEFAULT now64(3, 'UTC'),
    -- who, and why: free text for the audit of findings
    acked_by    String,
    note        String
)
ENGINE = ReplacingMergeTree(acked_at)
ORDER BY (sensor_id, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
