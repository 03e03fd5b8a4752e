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
-- One pass over the events groups them by tenant, session and visitor; the tenants are summed from those groups,
-- with hash aggregates only (count(DISTINCT …) per tenant sorted every group). By default it reads all time: 1.4 s at
-- a million events, 20 s at ten million (bench/RESULTS.md), so it may run 120 s (@timeout) where the server's query
-- timeout is shorter.
WITH groups AS (
    SELECT tenant_id, session_id, visitor_id AS visitor,
           count(*) AS events,
           count(*) FILTER (WHERE event_type IN ('page_view', 'pageview')) AS page_views,
           sum(duration) AS duration_sum,
           min(time) AS first_activity,
           max(time) AS last_activity
    FROM events
    WHERE workspace_id = :workspace_id
      AND tenant_id IS NOT NULL
      AND (:from_date IS NULL OR time >= :from_date)
      AND (:to_date IS NULL OR time <= :to_date)
      AND (:include_bots OR NOT is_bot)
    GROUP BY tenant_id, session_id, visitor_id
),
sessions AS (
    SELECT tenant_id,
           coalesce(sum(duration_sum), extract(epoch FROM max(last_activity) - min(first_activity))) AS duration
    FROM groups WHERE session_id IS NOT NULL
    GROUP BY tenant_id, session_id
),
per_session AS (
    SELECT tenant_id, count(*) AS sessions, avg(duration) AS avg_session_duration FROM sessions GROUP BY tenant_id
),
per_visitor AS (
    SELECT tenant_id, count(*) AS users
    FROM (SELECT tenant_id, visitor FROM groups WHERE visitor IS NOT NULL GROUP BY tenant_id, visitor) v
    GROUP BY tenant_id
),
totals AS (
    SELECT tenant_id, sum(events)::bigint AS events, sum(page_views)::bigint AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity
    FROM groups GROUP BY tenant_id
)
SELECT t.tenant_id,
       coalesce(s.sessions, 0) AS sessions,
       coalesce(v.users, 0) AS users,
       t.events,
       t.page_views,
       round(s.avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       t.first_activity,
       t.last_activity
FROM totals t
LEFT JOIN per_session s ON s.tenant_id = t.tenant_id
LEFT JOIN per_visitor v ON v.tenant_id = t.tenant_id
ORDER BY t.events DESC, t.tenant_id
LIMIT :limit
