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
-- Who was active on which day comes from the visitor-hours the writer keeps (migration 0011), with numbered
-- visitors: at a million events 1.4 s from events, 0.67 s from there (bench/queries). Windows of up to 56 days keep
-- each visitor's active days in the bits of one bigint (day n of the window is bit n; `visitor_periods`, migration
-- 0018, groups the visitor-hours in visitor order), and visitors with the same days are counted once, their first
-- and last day taken from the bits, before the days are expanded (over 30 days at a million events, in psql, equal
-- rows: 0.49 s with visitor-days, 0.32–0.39 s with a hash aggregate of the visitor-hours, 0.23–0.30 s now). Longer
-- windows group the visitor-days, then each visitor's first and last day, with hash aggregates only (window
-- functions over visitors sorted every visitor-day by visitor and took a third longer). Only one of the two
-- branches runs: the other's condition is false.
WITH activity AS NOT MATERIALIZED (
    SELECT visitor_id, active_at
    FROM visitor_activity(:workspace_id, now() - :lookback_days, now(), :include_bots)
),
first_day AS (
    SELECT ((now() - :lookback_days) AT TIME ZONE 'UTC')::date AS day
),
-- Held, so that each pattern's first and last day are computed once rather than for each of its days.
patterns AS MATERIALIZED (
    SELECT days, visitors,
           position('1' IN reverse(days::bit(64)::text)) - 1 AS first,
           64 - position('1' IN days::bit(64)::text) AS last
    FROM (
        SELECT periods AS days, count(*) AS visitors
        FROM visitor_periods(:workspace_id, now() - :lookback_days, now(), :include_bots, 'UTC', 1)
        WHERE :lookback_days <= interval '56 day'
        GROUP BY periods
    ) p
),
by_bits AS (
    SELECT ((f.day + d) AT TIME ZONE 'UTC')::timestamptz AS day,
           sum(p.visitors)::bigint AS active_users,
           coalesce(sum(p.visitors) FILTER (WHERE d = p.first), 0)::bigint AS new_users,
           coalesce(sum(p.visitors) FILTER (WHERE d > p.first), 0)::bigint AS returning_users,
           coalesce(sum(p.visitors) FILTER (WHERE d < p.last), 0)::bigint AS returned_later
    FROM patterns p, first_day f, generate_series(p.first, p.last) AS d
    WHERE p.days & (1::bigint << d) <> 0
    GROUP BY f.day + d
),
daily AS (
    SELECT visitor_id AS visitor, time_bucket('1 day', active_at) AS day
    FROM activity
    WHERE :lookback_days > interval '56 day'
    GROUP BY 1, 2
),
span AS (
    SELECT visitor, min(day) AS first_day, max(day) AS last_day FROM daily GROUP BY visitor
),
by_days AS (
    SELECT d.day,
           count(*) AS active_users,
           count(*) FILTER (WHERE d.day = s.first_day) AS new_users,
           count(*) FILTER (WHERE d.day > s.first_day) AS returning_users,
           count(*) FILTER (WHERE d.day < s.last_day) AS returned_later
    FROM daily d
    JOIN span s USING (visitor)
    GROUP BY d.day
)
SELECT day, active_users, new_users, returning_users,
       round(100.0 * returning_users / active_users, 2)::float8 AS returning_rate,
       returned_later
FROM (
    SELECT * FROM by_bits WHERE :lookback_days <= interval '56 day'
    UNION ALL
    SELECT * FROM by_days WHERE :lookback_days > interval '56 day'
) days
ORDER BY day
