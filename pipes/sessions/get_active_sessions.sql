-- Sessions with activity in a time range, most recently active first, by tenant and user.
-- @param tenant_id    String?        Only this tenant (a tenant's token sees only its own whatever this says)
-- @param user_id      String?        Only this user
-- @param from_date    DateTime?      Activity from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param to_date      DateTime?      Activity until this time, inclusive
-- @param limit        Int(1..10000) = 100  Sessions to return
-- @param include_bots Bool = false   Count bots and crawlers too
-- @column session_id        the session
-- @column user_id           its user
-- @column tenant_id         its tenant
-- @column started_at        first event in the range
-- @column last_activity     last event in the range
-- @column duration_seconds  sum of event durations when they carry one, else last_activity − started_at
-- @column events            events
-- @column page_views        events of type page_view or pageview
-- @column unique_pages      distinct pages
-- @column device_type       device of its latest event
-- @column browser           browser of its latest event
SELECT session_id,
       (array_agg(user_id ORDER BY time DESC) FILTER (WHERE user_id IS NOT NULL))[1] AS user_id,
       (array_agg(tenant_id ORDER BY time DESC) FILTER (WHERE tenant_id IS NOT NULL))[1] AS tenant_id,
       min(time) AS started_at,
       max(time) AS last_activity,
       round(coalesce(sum(duration), extract(epoch FROM max(time) - min(time)))::numeric, 2)::float8 AS duration_seconds,
       count(*) AS events,
       count(*) FILTER (WHERE event_type IN ('page_view', 'pageview')) AS page_views,
       count(DISTINCT page) AS unique_pages,
       (array_agg(device_type ORDER BY time DESC) FILTER (WHERE device_type IS NOT NULL))[1] AS device_type,
       (array_agg(browser ORDER BY time DESC) FILTER (WHERE browser IS NOT NULL))[1] AS browser
FROM events
WHERE workspace_id = :workspace_id
  AND session_id IS NOT NULL
  AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:from_date IS NULL OR time >= :from_date)
  AND (:to_date IS NULL OR time <= :to_date)
  AND (:include_bots OR NOT is_bot)
GROUP BY session_id
ORDER BY last_activity DESC, session_id
LIMIT :limit
