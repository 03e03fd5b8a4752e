-- Sessions with their start and end, length, event count and the kinds of events in them, newest first.
-- @param user_id      String?        Only this user's sessions
-- @param session_id   String?        Only this session
-- @param start_date   DateTime?      Events from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param end_date     DateTime?      Events until this time, inclusive
-- @param limit        Int(1..10000) = 100  Sessions to return
-- @param include_bots Bool = false   Count bots and crawlers too
-- @column session_id        the session
-- @column user_id           its user (the latest one named, when it changed)
-- @column started_at        its first event
-- @column ended_at          its last event
-- @column duration_seconds  sum of event durations when they carry one, else ended_at − started_at
-- @column events            events in it
-- @column event_types       distinct event types, alphabetical
-- @column features          distinct features used, alphabetical
SELECT session_id,
       (array_agg(user_id ORDER BY time DESC) FILTER (WHERE user_id IS NOT NULL))[1] AS user_id,
       min(time) AS started_at,
       max(time) AS ended_at,
       round(coalesce(sum(duration), extract(epoch FROM max(time) - min(time)))::numeric, 2)::float8 AS duration_seconds,
       count(*) AS events,
       array_agg(DISTINCT event_type ORDER BY event_type) AS event_types,
       coalesce(array_agg(DISTINCT feature ORDER BY feature) FILTER (WHERE feature IS NOT NULL), '{}') AS features
FROM events
WHERE workspace_id = :workspace_id
  AND session_id IS NOT NULL
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:session_id IS NULL OR session_id = :session_id)
  AND (:start_date IS NULL OR time >= :start_date)
  AND (:end_date IS NULL OR time <= :end_date)
  AND (:include_bots OR NOT is_bot)
GROUP BY session_id
ORDER BY started_at DESC, session_id
LIMIT :limit
