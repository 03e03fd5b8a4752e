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
-- Three steps. The newest events are read first, newest to oldest, through the time index: a session whose first
-- event among them is newer than the oldest event read has all its events there, so its start is exact, and any
-- other session started earlier. When at least `limit` sessions are complete that way, those are exactly the
-- newest sessions and the rest of the events is never read; otherwise (few sessions, or sessions of very many
-- events) every matching event is grouped by session. Then the details of those few sessions are read through the
-- session index.
WITH matching AS NOT MATERIALIZED (
    -- The filters once; both readers below are planned with them, as if written out.
    SELECT session_id, time
    FROM events
    WHERE workspace_id = :workspace_id
      AND session_id IS NOT NULL
      AND (:user_id IS NULL OR user_id = :user_id)
      AND (:session_id IS NULL OR session_id = :session_id)
      AND (:start_date IS NULL OR time >= :start_date)
      AND (:end_date IS NULL OR time <= :end_date)
      AND (:include_bots OR NOT is_bot)
),
probe AS (
    SELECT session_id, time FROM matching ORDER BY time DESC LIMIT 50 * :limit
),
bound AS (
    SELECT count(*) < 50 * :limit AS everything, min(time) AS oldest FROM probe
),
probed AS (
    SELECT session_id, min(time) AS started_at
    FROM probe
    GROUP BY session_id
    HAVING (SELECT everything FROM bound) OR min(time) > (SELECT oldest FROM bound)
),
complete AS (
    SELECT (SELECT everything FROM bound) OR (SELECT count(*) FROM probed) >= :limit AS yes
),
newest AS (
    SELECT session_id, started_at FROM probed WHERE (SELECT yes FROM complete)
    UNION ALL
    SELECT session_id, min(time)
    FROM matching
    WHERE NOT (SELECT yes FROM complete)
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
