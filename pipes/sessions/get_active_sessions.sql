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
-- Three steps. The newest events are read first, newest to oldest, through the time index: when they hold at least
-- `limit` sessions whose latest event is newer than the oldest event read, those are exactly the most recently
-- active sessions (any other session's latest event is older), so the rest of the events is never read. Otherwise
-- (few sessions, or sessions of very many events) every matching event is grouped by session. Then the details of
-- those few sessions are read through the session index.
WITH matching AS NOT MATERIALIZED (
    -- The filters once; both readers below are planned with them, as if written out.
    SELECT session_id, time
    FROM events
    WHERE workspace_id = :workspace_id
      AND session_id IS NOT NULL
      AND (:tenant_id IS NULL OR tenant_id = :tenant_id)
      AND (:user_id IS NULL OR user_id = :user_id)
      AND (:from_date IS NULL OR time >= :from_date)
      AND (:to_date IS NULL OR time <= :to_date)
      AND (:include_bots OR NOT is_bot)
),
newest AS (
    SELECT session_id, time FROM matching ORDER BY time DESC LIMIT 50 * :limit
),
candidates AS (
    SELECT session_id, max(time) AS last_activity FROM newest GROUP BY session_id
),
complete AS (
    SELECT (SELECT count(*) FROM newest) < 50 * :limit
        OR (SELECT count(*) FROM candidates WHERE last_activity > (SELECT min(time) FROM newest)) >= :limit AS yes
),
recent AS (
    SELECT session_id, last_activity FROM candidates WHERE (SELECT yes FROM complete)
    UNION ALL
    SELECT session_id, max(time)
    FROM matching
    WHERE NOT (SELECT yes FROM complete)
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
