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
-- Who was active on which day comes from the visitor-hours the writer keeps (migration 0011, `visitor_activity`),
-- with numbered visitors: at a million events 1.4 s from events, 0.67 s from there (bench/queries). Hash aggregates only: the
-- visitor-days, each visitor's first and last day, then the days (window functions over visitors sorted every
-- visitor-day by visitor and took a third longer).
WITH daily AS (
    SELECT visitor_id AS visitor, time_bucket('1 day', active_at) AS day
    FROM visitor_activity(:workspace_id, now() - :lookback_days, now(), :include_bots)
    GROUP BY 1, 2
),
span AS (
    SELECT visitor, min(day) AS first_day, max(day) AS last_day FROM daily GROUP BY visitor
)
SELECT d.day,
       count(*) AS active_users,
       count(*) FILTER (WHERE d.day = s.first_day) AS new_users,
       count(*) FILTER (WHERE d.day > s.first_day) AS returning_users,
       round(100.0 * count(*) FILTER (WHERE d.day > s.first_day) / count(*), 2)::float8 AS returning_rate,
       count(*) FILTER (WHERE d.day < s.last_day) AS returned_later
FROM daily d
JOIN span s USING (visitor)
GROUP BY d.day
ORDER BY d.day
