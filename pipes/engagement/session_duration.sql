-- Average session duration per time interval. A session's duration is the sum of its events' durations when they
-- carry one, otherwise the time from its first to its last event; it counts in the interval where it started.
-- @param interval     Interval = '1 hour'  Aggregation interval
-- @param time_range   Interval = '1 day'   Analysis window, ending now
-- @param device_type  String?              Only sessions on this device type (desktop, mobile, tablet)
-- @param include_bots Bool = false         Count sessions of bots and crawlers too
-- @column interval_start        start of the interval (UTC)
-- @column sessions              sessions that started in it
-- @column avg_session_duration  their average duration, in seconds
-- @column max_session_duration  the longest, in seconds
-- @column avg_events            average events per session
WITH sessions AS (
    SELECT session_id,
           min(time) AS started_at,
           coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS duration,
           count(*) AS events
    FROM events
    WHERE workspace_id = :workspace_id
      AND time >= now() - :time_range AND time <= now()
      AND session_id IS NOT NULL
      AND (:device_type IS NULL OR device_type = :device_type)
      AND (:include_bots OR NOT is_bot)
    GROUP BY session_id
)
SELECT time_bucket(:interval, started_at) AS interval_start,
       count(*) AS sessions,
       round(avg(duration)::numeric, 2)::float8 AS avg_session_duration,
       round(max(duration)::numeric, 2)::float8 AS max_session_duration,
       round(avg(events), 2)::float8 AS avg_events
FROM sessions
GROUP BY 1
ORDER BY 1
