-- Netview schema, version 7: the container behind a row's process.
--
-- The sensor reads them from /proc/<pid>/cgroup for docker, containerd,
-- CRI-O and Podman: the container's id, its runtime and, under Kubernetes,
-- its pod's UID. Host processes, and rows written before this version,
-- have ''.
ALTER TABLE tcp_connections ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE tcp_listeners ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE udp_listeners ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE active_flows ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE flows ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE events ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE sctp_associations ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
ALTER TABLE sctp_endpoints ADD COLUMN IF NOT EXISTS container_id String AFTER unit, ADD COLUMN IF NOT EXISTS container_runtime LowCardinality(String) AFTER container_id, ADD COLUMN IF NOT EXISTS pod_uid String AFTER container_runtime;
