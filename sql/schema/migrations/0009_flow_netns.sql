-- Netview schema, version 9: the network namespace (its inode) of flows
-- and events, as the snapshot tables already have it.
--
-- The same addresses and ports can be two flows in two containers; netns
-- tells them apart and lets a query narrow flows and events to one
-- namespace. Rows written before this version, and from sensors that do
-- not report it, have 0 (unknown).
ALTER TABLE active_flows ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;
ALTER TABLE flows ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;
ALTER TABLE events ADD COLUMN IF NOT EXISTS netns UInt64 DEFAULT 0 AFTER dst_port;
