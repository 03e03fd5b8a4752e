-- Activity per tenant: sessions, users, events and page views, busiest tenant first.
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
WITH sessions AS (
    SELECT tenant_id, session_id,
           coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS duration
    FROM events
    WHERE workspace_id = :workspace_id
      AND tenant_id IS NOT NULL AND session_id IS NOT NULL
      AND (:from_date IS NULL OR time >= :from_date)
      AND (:to_date IS NULL OR time <= :to_date)
      AND (:include_bots OR NOT is_bot)
    GROUP BY tenant_id, session_id
),
totals AS (
    SELECT tenant_id,
           count(DISTINCT session_id) AS sessions,
           count(DISTINCT coalesce(user_id, session_id)) AS users,
           count(*) AS events,
           count(*) FILTER (WHERE event_type IN ('page_view', 'pageview')) AS page_views,
           min(time) AS first_activity,
           max(time) AS last_activity
    FROM events
    WHERE workspace_id = :workspace_id
      AND tenant_id IS NOT NULL
      AND (:from_date IS NULL OR time >= :from_date)
      AND (:to_date IS NULL OR time <= :to_date)
      AND (:include_bots OR NOT is_bot)
    GROUP BY tenant_id
)
SELECT t.tenant_id, t.sessions, t.users, t.events, t.page_views,
       round(avg(s.duration)::numeric, 2)::float8 AS avg_session_duration,
       t.first_activity, t.last_activity
FROM totals t
LEFT JOIN sessions s ON s.tenant_id = t.tenant_id
GROUP BY t.tenant_id, t.sessions, t.users, t.events, t.page_views, t.first_activity, t.last_activity
ORDER BY t.events DESC, t.tenant_id
LIMIT :limit
