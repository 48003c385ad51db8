-- Netview schema, version 6: the systemd unit of the process behind a row.
--
-- A host process shows the service it runs in (nginx.service), read by the
-- sensor from /proc/<pid>/cgroup; rows written before this version, and
-- processes outside systemd's tree, have ''.
ALTER TABLE tcp_connections ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE tcp_listeners ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE udp_listeners ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE active_flows ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE flows ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE events ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE sctp_associations ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
ALTER TABLE sctp_endpoints ADD COLUMN IF NOT EXISTS unit LowCardinality(String) AFTER binary_path;
