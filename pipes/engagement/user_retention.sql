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
-- each visitor's active days in the bits of one bigint (day n of the window is bit n, so 57 bits over 56 days;
-- `visitor_period_patterns`, migrations 0018 and 0024, groups the visitor-hours in visitor order), and visitors with
-- the same days are counted once, their first and last day taken from the bits, before the days are counted (over 30
-- days at a million events, in psql, equal rows: 0.49 s with visitor-days, 0.32–0.39 s with a hash aggregate of the
-- visitor-hours, 0.18–0.22 s in visitor order, 0.13–0.15 s with the days counted by byte as below). Longer
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
-- Visitors with the same days, counted once (migration 0024).
patterns AS (
    SELECT periods AS days, visitors
    FROM visitor_period_patterns(:workspace_id, now() - :lookback_days, now(), :include_bots, 'UTC', 1)
    WHERE :lookback_days <= interval '56 day'
),
-- What the days' counts need, in one pass over the patterns (grouping sets): the visitors active on each day, without
-- expanding every pattern into its days, summed by the value of each byte of their days (at most 256 values a byte),
-- then each value's set bits; those first seen on each day, summed by their lowest set bit (`days & -days`); those
-- last seen on each day, summed by their highest byte that is not zero and its value. Expanding each pattern from its
-- first to its last day made three times as many rows as it has days and took 65–75 ms of the pipe at a million
-- events; the bytes took 25–30 ms. Reading the patterns three times (held), with each pattern's first and last day
-- from its bits as text, took longer: in psql, equal rows, 143–163 → 130–155 ms at a million events, 1.33–1.35 →
-- 1.23–1.29 s at ten million.
sums AS (
    SELECT CASE WHEN GROUPING(lowest) = 0 THEN 'first' WHEN GROUPING(top_byte) = 0 THEN 'last' ELSE 'active' END AS kind,
           CASE GROUPING(b0, b1, b2, b3, b4, b5, b6, b7)
               WHEN 127 THEN 0 WHEN 191 THEN 1 WHEN 223 THEN 2 WHEN 239 THEN 3 WHEN 247 THEN 4 WHEN 251 THEN 5 WHEN 253 THEN 6
               WHEN 254 THEN 7
           END AS byte,
           coalesce(b0, b1, b2, b3, b4, b5, b6, b7) AS value, lowest, top_byte, top_value, sum(visitors) AS visitors
    FROM (
        SELECT visitors, days & 255 AS b0, (days >> 8) & 255 AS b1, (days >> 16) & 255 AS b2, (days >> 24) & 255 AS b3,
               (days >> 32) & 255 AS b4, (days >> 40) & 255 AS b5, (days >> 48) & 255 AS b6, (days >> 56) & 255 AS b7,
               lowest, top_byte, days >> (8 * top_byte) AS top_value
        FROM (
            SELECT visitors, days, days & -days AS lowest,
                   CASE WHEN days >> 56 <> 0 THEN 7 WHEN days >> 48 <> 0 THEN 6 WHEN days >> 40 <> 0 THEN 5
                        WHEN days >> 32 <> 0 THEN 4 WHEN days >> 24 <> 0 THEN 3 WHEN days >> 16 <> 0 THEN 2
                        WHEN days >> 8 <> 0 THEN 1 ELSE 0
                   END AS top_byte
            FROM patterns
        ) p
    ) p
    GROUP BY GROUPING SETS ((b0), (b1), (b2), (b3), (b4), (b5), (b6), (b7), (lowest), (top_byte, top_value))
),
active AS (
    SELECT 8 * s.byte + i AS d, sum(s.visitors) AS visitors
    FROM sums s, generate_series(0, 7) AS i
    WHERE s.kind = 'active' AND s.value & (1 << i) <> 0
    GROUP BY 1
),
firsts AS (
    SELECT lowest_set_bit(lowest) AS d, sum(visitors) AS visitors FROM sums WHERE kind = 'first' GROUP BY 1
),
lasts AS (
    SELECT 8 * top_byte + highest_set_bit(top_value) AS d, sum(visitors) AS visitors FROM sums WHERE kind = 'last' GROUP BY 1
),
-- Of a day's active visitors, those first seen that day are new, the rest returning; all but those last seen that
-- day came back later.
by_bits AS (
    SELECT ((f.day + a.d) AT TIME ZONE 'UTC')::timestamptz AS day,
           a.visitors::bigint AS active_users,
           coalesce(n.visitors, 0)::bigint AS new_users,
           (a.visitors - coalesce(n.visitors, 0))::bigint AS returning_users,
           (a.visitors - coalesce(l.visitors, 0))::bigint AS returned_later
    FROM active a
    CROSS JOIN first_day f
    LEFT JOIN firsts n ON n.d = a.d
    LEFT JOIN lasts l ON l.d = a.d
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
