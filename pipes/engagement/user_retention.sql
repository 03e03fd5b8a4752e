-- Returning users per day: of the users active on a day, how many had already been seen on an earlier day of the
-- window, and how many come back on a later one.
-- @param lookback_days Interval = '30 day'  How far back to analyse, ending now
-- @param include_bots  Bool = false         Count bots and crawlers too
-- @column day              the day (UTC)
-- @column active_users     distinct visitors (user_id, else session_id) active that day
-- @column new_users        of them, first seen that day (within the window)
-- @column returning_users  of them, seen on an earlier day of the window
-- @column returning_rate   returning_users / active_users, in %
-- @column returned_later   of them, active again on a later day of the window
WITH daily AS (
    SELECT DISTINCT coalesce(user_id, session_id) AS visitor, time_bucket('1 day', time) AS day
    FROM events
    WHERE workspace_id = :workspace_id
      AND time >= now() - :lookback_days AND time <= now()
      AND coalesce(user_id, session_id) IS NOT NULL
      AND (:include_bots OR NOT is_bot)
),
marked AS (
    SELECT visitor, day,
           day = min(day) OVER (PARTITION BY visitor) AS is_new,
           day < max(day) OVER (PARTITION BY visitor) AS comes_back
    FROM daily
)
SELECT day,
       count(*) AS active_users,
       count(*) FILTER (WHERE is_new) AS new_users,
       count(*) FILTER (WHERE NOT is_new) AS returning_users,
       round(100.0 * count(*) FILTER (WHERE NOT is_new) / count(*), 2)::float8 AS returning_rate,
       count(*) FILTER (WHERE comes_back) AS returned_later
FROM marked
GROUP BY day
ORDER BY day
