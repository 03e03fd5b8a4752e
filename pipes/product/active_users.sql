-- Active users per day (UTC), counting events of one type (pageview unless asked otherwise).
-- @timeout 120
-- @param start_date   DateTime?                Events from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param end_date     DateTime?                Events until this time, inclusive
-- @param event_type   String = pageview        Only events of this type
-- @param include_bots Bool = false             Count bots and crawlers too
-- @column day           the day (UTC)
-- @column active_users  distinct visitors (user_id, else session_id) with such an event that day
-- @column events        such events that day
--
-- Distinct (day, visitor) pairs first: a hash aggregate, where count(DISTINCT …) per day would sort every event.
-- By default it reads all time: 12 s at ten million events (bench/RESULTS.md), so it may run 120 s (@timeout) where
-- the server's query timeout is shorter.
WITH pairs AS (
    SELECT time_bucket('1 day', time) AS day, visitor_id AS visitor, count(*) AS events
    FROM events
    WHERE workspace_id = :workspace_id
      AND event_type = :event_type
      AND (:start_date IS NULL OR time >= :start_date)
      AND (:end_date IS NULL OR time <= :end_date)
      AND (:include_bots OR NOT is_bot)
    GROUP BY 1, 2
)
SELECT day, count(visitor) AS active_users, sum(events)::bigint AS events
FROM pairs
GROUP BY day
ORDER BY day
