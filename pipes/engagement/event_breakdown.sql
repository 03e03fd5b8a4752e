-- Breakdown of events by type within a time range, optionally for one user or one country.
-- @param time_range   Interval = '1 hour'  Time window for analysis, ending now
-- @param user_id      String?              Filter by a specific user
-- @param country      String?              Filter by a specific country
-- @param include_bots Bool = false         Count events of bots and crawlers too
-- @column event_type       the event's type
-- @column events           events of that type in the window
-- @column unique_users     distinct visitors (user_id, else session_id)
-- @column unique_sessions  distinct sessions
-- @column avg_duration     average duration of the events that carry one, in seconds
SELECT event_type,
       count(*) AS events,
       count(DISTINCT visitor_id) AS unique_users,
       count(DISTINCT session_id) AS unique_sessions,
       round(avg(duration)::numeric, 2)::float8 AS avg_duration
FROM events
WHERE workspace_id = :workspace_id
  AND time >= now() - :time_range AND time <= now()
  AND (:user_id IS NULL OR user_id = :user_id)
  AND (:country IS NULL OR country = :country)
  AND (:include_bots OR NOT is_bot)
GROUP BY event_type
ORDER BY events DESC, event_type
