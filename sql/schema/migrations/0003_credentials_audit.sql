-- Netview schema, version 3: credentials and the audit log.
--
-- credentials holds every secret the services accept once they are issued
-- at run time: API tokens (role viewer, analyst or admin), sensor
-- enrollment secrets, and per-sensor keys bound to one sensor_id. Only the
-- SHA-256 of a secret is stored; the secret itself is shown once, when it
-- is made. A change (revocation) is a new row with a higher version, so the
-- row with the highest version of an id is the credential's state, and
-- every node that reads the table agrees on it. Credentials are never
-- deleted: a revoked key stays to say why it is refused.
CREATE TABLE IF NOT EXISTS credentials
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
ENGINE = ReplacingMergeTree(version)
ORDER BY id
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;

-- What was done with administrative power, and every SQL statement an
-- analyst ran: who (the credential id and role), from where, what, and
-- whether it was allowed. Append-only; kept like events.
CREATE TABLE IF NOT EXISTS audit_log
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
ENGINE = MergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (time, event_id)
SETTINGS fsync_after_insert = 1, fsync_part_directory = 1;
