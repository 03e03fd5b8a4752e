-- `session_totals_recounted` (0017) found the sessions across an end of the window by reading every session's
-- totals, even where no session can cross one: windows that hold all the workspace's sessions, such as the 90 days
-- of `aggregate_user_features` and `assign_clusters` over a month of data, and windows ending now. That read cost
-- 50–85 ms of `aggregate_user_features` at a million events and 0.4–0.8 s at ten million, for no row.
--
-- It now reads them only when a session can cross an end: when the earliest session begins before the window (the
-- earliest `first_time`, from the index below) or the latest event is after it (the primary key's last entry; a
-- session's `last_time` is its latest event's time, as the writer and `workspace rebuild-rollups` keep it). Both are
-- one index entry each, computed once per query (the condition names no column of the sessions, so the planner
-- tests it before the scan, and skips the scan when it is false). Under a tenant's row-level security they find the
-- tenant's earliest session and latest event instead. The rows are the same: in psql at a million events, the
-- pipes that read the function gave equal rows with and without this (all-time and 3-, 20- and 90-day windows,
-- windows cut at both ends, as the workspace and as a tenant); `aggregate_user_features` over 90 days took 600–670
-- → 555–565 ms, and 4.4 → 4.0 s at ten million events.
--
-- The index is on sessions' first event only: `first_time` changes only when an event older than the session's first
-- arrives, so updates of a session's totals stay heap-only where they were (`last_time`, which changes on nearly
-- every update, is left out for that reason). It carries `tenant_id` for the tenant's search.
-- IF NOT EXISTS: an operator may build it beforehand with CONCURRENTLY (README, Production).
CREATE INDEX IF NOT EXISTS session_totals_first_time_idx ON session_totals (workspace_id, first_time) INCLUDE (tenant_id);

CREATE OR REPLACE FUNCTION session_totals_recounted(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS SETOF session_window_totals
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT s.session_id, s.tenant_id, s.user_id, s.is_bot, s.visitor_id, r.*
    FROM session_totals s
    CROSS JOIN LATERAL (
        SELECT count(*) AS events,
               count(*) FILTER (WHERE e.event_type IN ('page_view', 'pageview')) AS page_views,
               sum(coalesce(e.clicks, CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END))::bigint AS clicks,
               sum(e.duration) AS duration_sum, min(e.time) AS first_time, max(e.time) AS last_time,
               -- The latest country named, and of several named at that time the least (as session_totals_of_events).
               (array_agg(e.country ORDER BY e.time DESC, e.country) FILTER (WHERE e.country IS NOT NULL))[1] AS country,
               max(e.time) FILTER (WHERE e.country IS NOT NULL) AS country_time
        FROM events e
        WHERE e.workspace_id = workspace AND e.session_id = s.session_id
          AND e.tenant_id IS NOT DISTINCT FROM s.tenant_id AND e.user_id IS NOT DISTINCT FROM s.user_id
          AND e.is_bot = s.is_bot
          AND (from_time IS NULL OR e.time >= from_time)
          AND (to_time IS NULL OR e.time <= to_time)
        HAVING count(*) > 0
    ) r
    WHERE s.workspace_id = workspace
      AND (from_time IS NULL OR s.last_time >= from_time)
      AND (to_time IS NULL OR s.first_time <= to_time)
      AND (s.first_time < from_time OR s.last_time > to_time)
      AND (include_bots OR NOT s.is_bot)
      AND ((SELECT min(f.first_time) FROM session_totals f WHERE f.workspace_id = workspace) < from_time
           OR (SELECT max(l.time) FROM events l WHERE l.workspace_id = workspace) > to_time)
    UNION ALL
    SELECT NULL, e.tenant_id, e.user_id, e.is_bot, max(e.visitor_id),
           count(*),
           count(*) FILTER (WHERE e.event_type IN ('page_view', 'pageview')),
           sum(coalesce(e.clicks, CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END))::bigint,
           sum(e.duration), min(e.time), max(e.time),
           (array_agg(e.country ORDER BY e.time DESC, e.country) FILTER (WHERE e.country IS NOT NULL))[1],
           max(e.time) FILTER (WHERE e.country IS NOT NULL)
    FROM events e
    WHERE e.workspace_id = workspace
      AND e.session_id IS NULL
      AND (from_time IS NULL OR e.time >= from_time)
      AND (to_time IS NULL OR e.time <= to_time)
      AND (include_bots OR NOT e.is_bot)
    GROUP BY e.tenant_id, e.user_id, e.is_bot
$$;
