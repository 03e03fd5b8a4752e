-- What the sessions of a window did, read from their totals (`session_totals`, 0015): the one way the pipes that sum
-- sessions over long windows read them (`tenant_activity_summary` and `assign_clusters`, which each wrote it out).
-- The window is [from_time, to_time], both ends included; a NULL end leaves that side open. Two functions, because
-- `tenant_activity_summary` reads the first twice (its rows are many and cheap to read again) and holds the second
-- (its rows cost a read of events each):
--
-- - `session_totals_inside`: the totals of the sessions wholly inside the window, as the writer keeps them.
-- - `session_totals_recounted`: the sessions across an end of the window, recounted from their events inside it
--   (found session by session through the session index; those with no event inside are left out), and the events
--   without a session, one row per tenant, user and bot flag (`session_id` NULL).
--
-- Together they hold every event of the window once, in rows shaped like `session_totals`' (a session may still
-- have several rows, one per tenant, user and bot flag). Both are single SQL statements, which the planner inlines
-- into the calling query: a caller's conditions on the columns (`tenant_id IS NOT NULL`) reach the scans, and the
-- columns it does not read are never computed. Row-level security applies as on the tables.

-- The rows both return: session_totals' columns but the workspace, with counts as bigint.
CREATE TYPE session_window_totals AS (
    session_id text, tenant_id text, user_id text, is_bot boolean, visitor_id bigint,
    events bigint, page_views bigint, clicks bigint, duration_sum double precision,
    first_time timestamptz, last_time timestamptz, country text, country_time timestamptz
);

CREATE FUNCTION session_totals_inside(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS SETOF session_window_totals
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT t.session_id, t.tenant_id, t.user_id, t.is_bot, t.visitor_id,
           t.events::bigint, t.page_views::bigint, t.clicks, t.duration_sum,
           t.first_time, t.last_time, t.country, t.country_time
    FROM session_totals t
    WHERE t.workspace_id = workspace
      AND (from_time IS NULL OR t.first_time >= from_time)
      AND (to_time IS NULL OR t.last_time <= to_time)
      AND (include_bots OR NOT t.is_bot)
$$;

CREATE FUNCTION session_totals_recounted(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
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
