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
--
-- Two steps: the newest sessions first (one light aggregate), then the details of those few sessions only.
WITH newest AS (
    SELECT session_id, min(time) AS started_at
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
)
SELECT n.session_id,
       (array_agg(e.user_id ORDER BY e.time DESC) FILTER (WHERE e.user_id IS NOT NULL))[1] AS user_id,
       n.started_at,
       max(e.time) AS ended_at,
       round(coalesce(sum(e.duration), extract(epoch FROM max(e.time) - min(e.time)))::numeric, 2)::float8 AS duration_seconds,
       count(*) AS events,
       array_agg(DISTINCT e.event_type ORDER BY e.event_type) AS event_types,
       coalesce(array_agg(DISTINCT e.feature ORDER BY e.feature) FILTER (WHERE e.feature IS NOT NULL), '{}') AS features
FROM newest n
JOIN events e ON e.workspace_id = :workspace_id AND e.session_id = n.session_id
WHERE (:user_id IS NULL OR e.user_id = :user_id)
  AND (:start_date IS NULL OR e.time >= :start_date)
  AND (:end_date IS NULL OR e.time <= :end_date)
  AND (:include_bots OR NOT e.is_bot)
GROUP BY n.session_id, n.started_at
ORDER BY n.started_at DESC, n.session_id
