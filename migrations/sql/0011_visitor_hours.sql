-- Which visitors were active in which UTC hour, kept by the writer in the transaction that stores the events, for
-- the queries that ask who was active when over long windows: retention (`/api/analytics/retention`) and the
-- `user_retention` pipe. A month of the benchmark's traffic is a million events but about 240,000 visitor-hours,
-- and visitors are numbered: grouping bigints costs a fraction of grouping text keys. At a million events
-- (bench/queries, p50): retention over 30 days 2.1 → 0.54 s, `user_retention` 1.4 → 0.67 s; equal results in psql.
-- The writer pays for it with two more statements per transaction (bench/RESULTS.md, 2026-12-02).
--
-- `visitors` numbers each workspace's visitors (`coalesce(user_id, session_id)`, as everywhere). `visitor_hours`
-- holds one row per workspace, hour, tenant, bot flag and visitor that has at least one event; it never changes
-- once inserted (ON CONFLICT DO NOTHING), so index-only scans read it without visiting the heap.
CREATE TABLE visitors (
    workspace_id integer NOT NULL,
    visitor text NOT NULL,
    id bigint GENERATED ALWAYS AS IDENTITY,
    PRIMARY KEY (workspace_id, visitor)
);

CREATE TABLE visitor_hours (
    workspace_id integer NOT NULL,
    hour timestamptz NOT NULL,
    tenant_id text,
    is_bot boolean NOT NULL,
    visitor_id bigint NOT NULL
);

-- Existing events, visitors numbered in order of first appearance.
INSERT INTO visitors (workspace_id, visitor)
SELECT workspace_id, coalesce(user_id, session_id)
FROM events
WHERE coalesce(user_id, session_id) IS NOT NULL
GROUP BY 1, 2
ORDER BY min(time);

INSERT INTO visitor_hours (workspace_id, hour, tenant_id, is_bot, visitor_id)
SELECT DISTINCT e.workspace_id, date_trunc('hour', e.time, 'UTC'), e.tenant_id, e.is_bot, v.id
FROM events e
JOIN visitors v ON v.workspace_id = e.workspace_id AND v.visitor = coalesce(e.user_id, e.session_id);

-- The key, and the index of every read (workspace and hour range, then bots and visitors from the index alone).
CREATE UNIQUE INDEX visitor_hours_key ON visitor_hours (workspace_id, hour, tenant_id, is_bot, visitor_id) NULLS NOT DISTINCT;

-- Row-level security as on events (0005). A visitor may appear in several tenants, so `visitors` has no tenant:
-- both roles see the workspace's visitor keys, which no query returns (they only translate events' keys).
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        EXECUTE format('GRANT SELECT ON visitors, visitor_hours TO %I', role_name);
    END LOOP;
END
$$;

ALTER TABLE visitors ENABLE ROW LEVEL SECURITY;
ALTER TABLE visitor_hours ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspace_reader ON visitors FOR SELECT TO analytics_reader, analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);

CREATE POLICY workspace_reader ON visitor_hours FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_reader ON visitor_hours FOR SELECT TO analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));

-- The visitors active in [from_time, to_time) and when: one row per visitor-hour (at the hour's start) for the whole
-- hours of the window, and one row per event (at its time) for the partial hours at its two ends, read from events.
-- Exact for any window; grouping by day or week in a zone whose offset is a whole number of hours gives the same
-- buckets as the events' own times would. A single SELECT, so PostgreSQL inlines it into the calling query (and
-- plans it there), and it runs with the caller's rights (row-level security applies). The ends' events find their
-- visitor's number one by one through the key (a subquery per event): a hash join instead read every visitor of
-- the workspace, 0.1 s at a million events, for the two hours' thousand events. The key is computed in a subquery
-- kept apart (OFFSET 0): row-level security does not let an index search with `coalesce(…)`, which PostgreSQL
-- does not know to be leakproof, and the lookup then read the whole table per event (13 s).
CREATE FUNCTION visitor_activity(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS TABLE (visitor_id bigint, active_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT h.visitor_id, h.hour
    FROM visitor_hours h
    WHERE h.workspace_id = workspace
      AND h.hour > date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00')
      AND h.hour < date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00')
      AND (include_bots OR NOT h.is_bot)
    UNION ALL
    SELECT (SELECT v.id FROM visitors v WHERE v.workspace_id = workspace AND v.visitor = edge.visitor), edge.time
    FROM (
        SELECT coalesce(e.user_id, e.session_id) AS visitor, e.time
        FROM events e
        WHERE e.workspace_id = workspace
          AND e.time >= from_time AND e.time < to_time
          AND (include_bots OR NOT e.is_bot)
          AND (e.time < date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00') + interval '1 hour' OR e.time >= date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00'))
          AND coalesce(e.user_id, e.session_id) IS NOT NULL
        OFFSET 0
    ) edge
$$;
