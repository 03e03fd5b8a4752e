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
-- events. session_totals_inside gives those inside the window; session_totals_recounted those across an end of it,
-- recounted from their events inside it, and the events without a session (migration 0017, which assign_clusters
-- reads too). Each session's totals, then each tenant's, with hash aggregates only (count(DISTINCT …) per tenant
-- sorted every group). By default it reads all time: at a million events, in psql, 1.4–1.9 s from the events,
-- 0.53–0.60 s from the totals (0.59 → 0.25 s for ten days of the month, 1.3 → 0.46 s from the 8th on), equal rows;
-- it may run 120 s (@timeout) where the server's query timeout is shorter. The rows of the sessions inside the
-- window are read twice (for the sessions, then the tenants' visitors) rather than held: all time 360–400 →
-- 275–330 ms at a million events in psql, windows the same either way. The recounted rows are held (MATERIALIZED),
-- so that the session totals are searched for them and their events read once: a ten-day window 340–480 →
-- 300–450 ms, all time the same (in psql at a million events, equal rows).
WITH inside AS NOT MATERIALIZED (
    SELECT tenant_id, session_id, visitor_id AS visitor, events, page_views, duration_sum,
           first_time AS first_activity, last_time AS last_activity
    FROM session_totals_inside(:workspace_id, :from_date, :to_date, :include_bots)
    WHERE tenant_id IS NOT NULL
),
edges AS MATERIALIZED (
    SELECT tenant_id, session_id, visitor_id AS visitor, events, page_views, duration_sum,
           first_time AS first_activity, last_time AS last_activity
    FROM session_totals_recounted(:workspace_id, :from_date, :to_date, :include_bots)
    WHERE tenant_id IS NOT NULL
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
