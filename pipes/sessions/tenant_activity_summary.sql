-- Activity per tenant: sessions, users, events and page views, busiest tenant first.
-- @timeout 120
-- @param from_date    DateTime?     Activity from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param to_date      DateTime?     Activity until this time, inclusive
-- @param limit        Int(1..10000) = 50  Tenants to return
-- @param include_bots Bool = false  Count bots and crawlers too
-- @column tenant_id             the tenant (events without one are left out)
-- @column sessions              distinct sessions
-- @column users                 distinct users (user_id, else session_id)
-- @column events                events
-- @column page_views            events of type page_view or pageview
-- @column avg_session_duration  average session duration in seconds (sum of event durations, else first to last event)
-- @column first_activity        earliest event
-- @column last_activity         latest event
--
-- Sessions come from their totals, which the writer keeps (migration 0015): a row per session instead of its
-- events. Those across an end of the window are recounted from their events inside it (the session index, session
-- by session), and events without a session are read from the events. Each session's totals, then each tenant's,
-- with hash aggregates only (count(DISTINCT …) per tenant sorted every group). By default it reads all time: at a
-- million events, in psql, 1.4–1.9 s from the events, 0.53–0.60 s from the totals (0.59 → 0.25 s for ten days of
-- the month, 1.3 → 0.46 s from the 8th on), equal rows; it may run 120 s (@timeout) where the server's query
-- timeout is shorter. The rows of the sessions inside the window are read twice (for the sessions, then the
-- tenants' visitors) rather than held: all time 360–400 → 275–330 ms at a million events in psql, windows the same
-- either way; only the rows recounted at the window's ends are held, so that their events are read once.
WITH spans AS NOT MATERIALIZED (
    SELECT session_id, tenant_id, user_id, is_bot, visitor_id, events, page_views, duration_sum, first_time, last_time
    FROM session_totals
    WHERE workspace_id = :workspace_id
      AND tenant_id IS NOT NULL
      AND (:from_date IS NULL OR last_time >= :from_date)
      AND (:to_date IS NULL OR first_time <= :to_date)
      AND (:include_bots OR NOT is_bot)
),
inside AS NOT MATERIALIZED (
    -- Sessions inside the window: their totals.
    SELECT tenant_id, session_id, visitor_id AS visitor, events, page_views, duration_sum,
           first_time AS first_activity, last_time AS last_activity
    FROM spans
    WHERE (:from_date IS NULL OR first_time >= :from_date) AND (:to_date IS NULL OR last_time <= :to_date)
),
edges AS (
    -- Sessions across an end of the window: their events inside it, found by the session index, session by session.
    SELECT s.tenant_id, s.session_id, t.visitor_id, t.events, t.page_views, t.duration_sum, t.first_activity, t.last_activity
    FROM spans s
    CROSS JOIN LATERAL (
        SELECT e.visitor_id, count(*) AS events, count(*) FILTER (WHERE e.event_type IN ('page_view', 'pageview')) AS page_views,
               sum(e.duration) AS duration_sum, min(e.time) AS first_activity, max(e.time) AS last_activity
        FROM events e
        WHERE e.workspace_id = :workspace_id AND e.session_id = s.session_id AND e.tenant_id = s.tenant_id
          AND e.user_id IS NOT DISTINCT FROM s.user_id AND e.is_bot = s.is_bot
          AND (:from_date IS NULL OR e.time >= :from_date)
          AND (:to_date IS NULL OR e.time <= :to_date)
        GROUP BY e.visitor_id
    ) t
    WHERE s.first_time < :from_date OR s.last_time > :to_date
    UNION ALL
    -- Events without a session.
    SELECT tenant_id, NULL, visitor_id, count(*), count(*) FILTER (WHERE event_type IN ('page_view', 'pageview')),
           sum(duration), min(time), max(time)
    FROM events
    WHERE workspace_id = :workspace_id
      AND session_id IS NULL
      AND tenant_id IS NOT NULL
      AND (:from_date IS NULL OR time >= :from_date)
      AND (:to_date IS NULL OR time <= :to_date)
      AND (:include_bots OR NOT is_bot)
    GROUP BY tenant_id, visitor_id
),
groups AS NOT MATERIALIZED (
    SELECT * FROM inside
    UNION ALL
    SELECT * FROM edges
),
-- Each session's totals (events without a session: one row per tenant, counted in the events only).
sessions AS (
    SELECT tenant_id, session_id,
           sum(events) AS events, sum(page_views) AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity,
           coalesce(sum(duration_sum), extract(epoch FROM max(last_activity) - min(first_activity))) AS duration
    FROM groups
    GROUP BY tenant_id, session_id
),
per_tenant AS (
    SELECT tenant_id,
           count(*) FILTER (WHERE session_id IS NOT NULL) AS sessions,
           avg(duration) FILTER (WHERE session_id IS NOT NULL) AS avg_session_duration,
           sum(events)::bigint AS events, sum(page_views)::bigint AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity
    FROM sessions
    GROUP BY tenant_id
),
per_visitor AS (
    SELECT tenant_id, count(*) AS users
    FROM (SELECT tenant_id, visitor FROM groups WHERE visitor IS NOT NULL GROUP BY tenant_id, visitor) v
    GROUP BY tenant_id
)
SELECT t.tenant_id,
       t.sessions,
       coalesce(v.users, 0) AS users,
       t.events,
       t.page_views,
       round(t.avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       t.first_activity,
       t.last_activity
FROM per_tenant t
LEFT JOIN per_visitor v ON v.tenant_id = t.tenant_id
ORDER BY t.events DESC, t.tenant_id
LIMIT :limit
