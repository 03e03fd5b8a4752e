-- One user's sessions in time order, newest first, with their pages in the order visited.
-- @param user_id      String                    The user (required)
-- @param from_date    DateTime?                 Events from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param to_date      DateTime?                 Events until this time, inclusive
-- @param limit        Int(1..10000) = 100       Sessions to return
-- @param include_bots Bool = false              Count bots and crawlers too
-- @column session_id        the session
-- @column started_at        its first event
-- @column ended_at          its last event
-- @column duration_seconds  sum of event durations when they carry one, else ended_at − started_at
-- @column events            events
-- @column clicks            clicks (the events' clicks, else one per click event)
-- @column pages             pages in the order visited
-- @column device_type       device of its first event
-- @column referrer          referrer of its first event
SELECT session_id,
       min(time) AS started_at,
       max(time) AS ended_at,
       round(coalesce(sum(duration), extract(epoch FROM max(time) - min(time)))::numeric, 2)::float8 AS duration_seconds,
       count(*) AS events,
       sum(coalesce(clicks, CASE WHEN event_type = 'click' THEN 1 ELSE 0 END)) AS clicks,
       coalesce(array_agg(page ORDER BY time, id) FILTER (WHERE page IS NOT NULL), '{}') AS pages,
       (array_agg(device_type ORDER BY time, id))[1] AS device_type,
       (array_agg(referrer ORDER BY time, id))[1] AS referrer
FROM events
WHERE workspace_id = :workspace_id
  AND user_id = :user_id
  AND session_id IS NOT NULL
  AND (:from_date IS NULL OR time >= :from_date)
  AND (:to_date IS NULL OR time <= :to_date)
  AND (:include_bots OR NOT is_bot)
GROUP BY session_id
ORDER BY started_at DESC, session_id
LIMIT :limit
