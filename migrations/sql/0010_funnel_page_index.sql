-- The funnel reads only the events of its step pages: each step is an index-only scan of this index, in time
-- order, with the columns a step needs (visitor, session, order, bots, and the tenant of row-level security)
-- carried in the index. The funnel used to read every event of its window (7 days by default) from the heap once:
-- 0.4-0.55 s at a million events, against 0.14 s step by step through this index (EXPLAIN ANALYZE). The index
-- costs ingest: 11-19 % in bench/run (bench/RESULTS.md, 2026-12-02). Built without CONCURRENTLY (migrations run
-- in a transaction), it holds writes to events while it is built: under 3 s at 1M events here, so some 30 s at 10M.
-- IF NOT EXISTS: an operator may build it beforehand with CONCURRENTLY (README, Production).
CREATE INDEX IF NOT EXISTS events_page_idx ON events (workspace_id, page, time) INCLUDE (id, user_id, session_id, is_bot, tenant_id)
    WHERE page IS NOT NULL;

-- Index-only scans skip the heap only for pages marked all-visible, which (auto)vacuum does. Events are only
-- appended, and by default an insert-only table is vacuumed after growing by a fifth: at 10M events, the newest
-- 2M (about a week of the benchmark's traffic) would be read from the heap. Vacuum after 1 % instead. Hypertable
-- chunks (TimescaleDB) are vacuumed per chunk, so this is set on plain PostgreSQL only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        ALTER TABLE events SET (autovacuum_vacuum_insert_scale_factor = 0.01);
    END IF;
END
$$;
