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
--
-- Two steps: the most recently active sessions first (one light aggregate), then the details of those few
-- sessions only, read through the session index.
WITH recent AS (
    SELECT session_id, max(time) AS last_activity
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
)
SELECT r.session_id,
       (array_agg(e.user_id ORDER BY e.time DESC) FILTER (WHERE e.user_id IS NOT NULL))[1] AS user_id,
       (array_agg(e.tenant_id ORDER BY e.time DESC) FILTER (WHERE e.tenant_id IS NOT NULL))[1] AS tenant_id,
       min(e.time) AS started_at,
       r.last_activity,
       round(coalesce(sum(e.duration), extract(epoch FROM max(e.time) - min(e.time)))::numeric, 2)::float8 AS duration_seconds,
       count(*) AS events,
       count(*) FILTER (WHERE e.event_type IN ('page_view', 'pageview')) AS page_views,
       count(DISTINCT e.page) AS unique_pages,
       (array_agg(e.device_type ORDER BY e.time DESC) FILTER (WHERE e.device_type IS NOT NULL))[1] AS device_type,
       (array_agg(e.browser ORDER BY e.time DESC) FILTER (WHERE e.browser IS NOT NULL))[1] AS browser
FROM recent r
JOIN events e ON e.workspace_id = :workspace_id AND e.session_id = r.session_id
WHERE (:tenant_id IS NULL OR e.tenant_id = :tenant_id)
  AND (:user_id IS NULL OR e.user_id = :user_id)
  AND (:from_date IS NULL OR e.time >= :from_date)
  AND (:to_date IS NULL OR e.time <= :to_date)
  AND (:include_bots OR NOT e.is_bot)
GROUP BY r.session_id, r.last_activity
ORDER BY r.last_activity DESC, r.session_id
