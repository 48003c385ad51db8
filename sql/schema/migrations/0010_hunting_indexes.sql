-- Netview schema, version 10: data-skipping indexes for hunting queries.
--
-- A hunt asks "where did this address, name, answer, binary or port show
-- up?" across days of events and flows. None of those columns leads a
-- sorting key, so without these indexes every granule is read. Each index
-- keeps a small summary per granule (GRANULARITY 1: one per 8192 rows) and
-- the engine skips the granules whose summary rules the value out.
--
-- An address or port on either end is indexed as one array expression,
-- [src, dst], and matched by has([src_address, dst_address], x): a filter
-- "src = x OR dst = x" over two separate indexes cannot skip, since each
-- index only speaks for its own half of the OR.
--
-- binary is LowCardinality(String); bloom_filter accepts it as it is.
-- query_name gets ngrambf_v1 (4-grams) rather than tokenbf_v1: a suffix
-- hunt (LIKE '%.evil.example', endsWith) is matched by the n-grams of the
-- whole pattern, including a partial first label ('%vil.example'), which a
-- token filter cannot use.
--
-- Old parts are not rewritten (no MATERIALIZE INDEX: on a large table it
-- is a mutation that rereads and rewrites every part). Parts written
-- before this version have no index and are read in full, as before,
-- until a merge rewrites them or the TTL drops them; new parts have it.
ALTER TABLE events ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_query_name query_name TYPE ngrambf_v1(4, 4096, 3, 0) GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_answers answers TYPE bloom_filter GRANULARITY 1;
ALTER TABLE flows ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;
ALTER TABLE active_flows ADD INDEX IF NOT EXISTS hunt_addresses [src_address, dst_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [src_port, dst_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;
ALTER TABLE tcp_connections ADD INDEX IF NOT EXISTS hunt_addresses [local_address, remote_address] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_ports [local_port, remote_port] TYPE bloom_filter GRANULARITY 1, ADD INDEX IF NOT EXISTS hunt_binary binary TYPE bloom_filter GRANULARITY 1;
