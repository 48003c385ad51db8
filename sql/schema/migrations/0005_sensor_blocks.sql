-- Netview schema, version 5: sensor ids an admin shut out.
--
-- A block names a sensor id, not a key: the sensor may not enroll, rotate
-- or send heartbeats again under that id, whatever secret it holds, and
-- every key it had is revoked without leave to re-enroll. A block is
-- final and never deleted; blocking again writes a new version, but the
-- first block (the lowest version) is the one that is read.
CREATE TABLE IF NOT EXISTS sensor_blocks
(
    sensor_id       UUID,
    blocked_at      DateTime64(3, 'UTC'),
    blocked_by      String,
    reason          String,
    version         UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY sensor_id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
