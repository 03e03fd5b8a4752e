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
--
-- One pass over the events groups them by tenant, session and visitor; the tenants are summed from those groups.
WITH groups AS (
    SELECT tenant_id, session_id, coalesce(user_id, session_id) AS visitor,
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
    GROUP BY tenant_id, session_id, coalesce(user_id, session_id)
),
sessions AS (
    SELECT tenant_id, session_id,
           coalesce(sum(duration_sum), extract(epoch FROM max(last_activity) - min(first_activity))) AS duration
    FROM groups WHERE session_id IS NOT NULL
    GROUP BY tenant_id, session_id
),
durations AS (
    SELECT tenant_id, avg(duration) AS avg_session_duration FROM sessions GROUP BY tenant_id
)
SELECT g.tenant_id,
       count(DISTINCT g.session_id) AS sessions,
       count(DISTINCT g.visitor) AS users,
       sum(g.events)::bigint AS events,
       sum(g.page_views)::bigint AS page_views,
       round(max(d.avg_session_duration)::numeric, 2)::float8 AS avg_session_duration,
       min(g.first_activity) AS first_activity,
       max(g.last_activity) AS last_activity
FROM groups g
LEFT JOIN durations d ON d.tenant_id = g.tenant_id
GROUP BY g.tenant_id
ORDER BY events DESC, g.tenant_id
LIMIT :limit
