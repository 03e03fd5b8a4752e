-- Behaviour features of each user computed from their events: the inputs of clustering (compare them with the
-- stored user_features rows, which clients send or assign_clusters updates).
-- @timeout 120
-- @param since        Interval = '90 day'      Events of this window, ending now
-- @param country      String?                  Only users in this country
-- @param limit        Int(1..100000) = 1000    Users to return, most sessions first
-- @param include_bots Bool = false             Count bots and crawlers too
-- @column user_id                 the user
-- @column total_sessions          distinct sessions
-- @column avg_session_duration    average session duration in seconds (sum of event durations, else first to last event)
-- @column avg_clicks_per_session  clicks (the events' clicks, else one per click event) per session
-- @column total_events            events
-- @column most_visited_page       the page with the most events (ties: alphabetical)
-- @column most_used_device        the device type with the most events (ties: alphabetical)
-- @column country                 the country of the latest event that names one (of several at that time, the least)
-- @column first_seen              earliest event
-- @column last_seen               latest event
-- Two ways to each user's sessions and totals, chosen by the window: only one runs (the other's condition is false).
--
-- - A window of less than half the time since the workspace's first event: hash aggregates over the window's
--   events. With a country filter, the latest country of every user is needed first; it is merged into the per-user
--   rows by grouping, not by a join, because the planner cannot estimate either side (a nested loop over the two
--   took minutes).
-- - A longer window (the default, 90 days, over a month of data): from the session totals (migration 0015) through
--   migration 0017's functions, as assign_clusters reads them. Each user's rows are summed as if each were a session
--   (a session is one row but where its events name several tenants or bot flags), and only sessions with several
--   rows are merged apart (`sessions_with_several_rows`, migration 0019). Over 90 days, in psql, equal rows:
--   1.48–1.69 → 0.98–1.07 s at a million events, 16.6 → 8.6 s at ten million. It reads every session's totals and
--   the whole key index whatever the window: one day at a million events took 0.17 s from the events and 0.42 s from
--   the totals, seven days (with a country) 0.49 and 0.64 s, hence the choice. The events' way is gated above its
--   LIMIT: gated lower, its grouping lost its parallel plan (seven days with a country 0.35–0.43 → 0.58–0.77 s).
--
-- The page, device and country columns, which need per-user ordering, are computed for the returned users only, from
-- their events (an index read per returned user, the user index). `base` is not materialized: held as one table it
-- spilled to disk (675,000 rows at a million events), while reading it again costs a scan for the sessions (events
-- way), none for the latest countries unless a country is asked, and the index reads. It may run 120 s (@timeout)
-- where the server's query timeout is shorter.
WITH base AS NOT MATERIALIZED (
    SELECT user_id, session_id, time, page, device_type, country, duration,
           coalesce(clicks, CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks
    FROM events
    WHERE workspace_id = :workspace_id
      AND user_id IS NOT NULL
      AND time >= now() - :since AND time <= now()
      AND (:include_bots OR NOT is_bot)
),
-- Whether the window holds at least half the time since the workspace's first event (the primary key's first entry).
long_window AS MATERIALIZED (
    SELECT coalesce(now() - :since <= min(time) + (now() - min(time)) / 2, false) AS totals
    FROM events
    WHERE workspace_id = :workspace_id
),
-- From the events: each session, then each user.
sessions AS (
    SELECT user_id, session_id, count(*) AS events, min(time) AS first_seen, max(time) AS last_seen,
           coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS duration,
           sum(clicks) AS clicks
    FROM base
    GROUP BY user_id, session_id
),
per_user AS (
    SELECT user_id,
           count(session_id) AS total_sessions,
           avg(duration) FILTER (WHERE session_id IS NOT NULL) AS avg_session_duration,
           avg(clicks) FILTER (WHERE session_id IS NOT NULL) AS avg_clicks_per_session,
           sum(events)::bigint AS total_events,
           min(first_seen) AS first_seen,
           max(last_seen) AS last_seen
    FROM sessions
    GROUP BY user_id
),
filter_country AS (
    SELECT DISTINCT ON (user_id) user_id, country
    FROM base
    WHERE :country IS NOT NULL AND country IS NOT NULL
    ORDER BY user_id, time DESC, country
),
-- The users from the events, gated above their LIMIT (not lower: see above).
from_events AS (
    SELECT *
    FROM (
        SELECT user_id, total_sessions, avg_session_duration, avg_clicks_per_session, total_events, first_seen, last_seen
        FROM (
            SELECT user_id,
                   max(total_sessions) AS total_sessions, max(avg_session_duration) AS avg_session_duration,
                   max(avg_clicks_per_session) AS avg_clicks_per_session, max(total_events) AS total_events,
                   max(first_seen) AS first_seen, max(last_seen) AS last_seen, max(country) AS country
            FROM (
                SELECT user_id, total_sessions, avg_session_duration, avg_clicks_per_session, total_events, first_seen, last_seen,
                       NULL::text AS country
                FROM per_user
                UNION ALL
                SELECT user_id, NULL, NULL, NULL, NULL, NULL, NULL, country FROM filter_country
            ) parts
            GROUP BY user_id
        ) users
        WHERE total_events IS NOT NULL AND (:country IS NULL OR country = :country)
        ORDER BY total_sessions DESC, total_events DESC, user_id
        LIMIT :limit
    ) chosen
    WHERE NOT (SELECT totals FROM long_window)
),
-- From the session totals: each user's rows (rows without a session, one per tenant, user and bot flag, count in
-- the events only), with the latest country as assign_clusters finds it when a country is asked.
groups AS NOT MATERIALIZED (
    SELECT user_id, session_id, events, clicks, duration_sum, first_time, last_time, country, country_time
    FROM session_totals_inside(:workspace_id, now() - :since, now(), :include_bots)
    WHERE user_id IS NOT NULL AND (SELECT totals FROM long_window)
    UNION ALL
    SELECT user_id, session_id, events, clicks, duration_sum, first_time, last_time, country, country_time
    FROM session_totals_recounted(:workspace_id, now() - :since, now(), :include_bots)
    WHERE user_id IS NOT NULL AND (SELECT totals FROM long_window)
),
by_user AS (
    SELECT user_id,
           count(session_id) AS sessions,
           sum(coalesce(duration_sum, extract(epoch FROM last_time - first_time))) FILTER (WHERE session_id IS NOT NULL) AS durations,
           sum(clicks) FILTER (WHERE session_id IS NOT NULL) AS clicks,
           sum(events::integer) AS events,
           min(first_time) AS first_seen, max(last_time) AS last_seen,
           CASE WHEN :country IS NOT NULL THEN
               (min(ARRAY[lpad(((253402300800 - extract(epoch FROM country_time)) * 1000000)::bigint::text, 19, '0'), country])
                   FILTER (WHERE country IS NOT NULL))[2]
           END AS country
    FROM groups
    GROUP BY user_id
),
-- The sessions with several rows (any tenant, user or bot flag: a superset; migration 0019).
shared AS MATERIALIZED (
    SELECT session_id FROM sessions_with_several_rows(:workspace_id) WHERE (SELECT totals FROM long_window)
),
merged AS (
    SELECT user_id, sum(rows - 1) AS extra_rows, sum(duration - durations) AS duration_change
    FROM (
        SELECT g.user_id, g.session_id, count(*) AS rows,
               sum(coalesce(g.duration_sum, extract(epoch FROM g.last_time - g.first_time))) AS durations,
               coalesce(sum(g.duration_sum), extract(epoch FROM max(g.last_time) - min(g.first_time))) AS duration
        FROM groups g
        JOIN shared s ON s.session_id = g.session_id
        GROUP BY g.user_id, g.session_id
    ) m
    GROUP BY user_id
),
from_totals AS (
    SELECT user_id, total_sessions, avg_session_duration, avg_clicks_per_session, total_events, first_seen, last_seen
    FROM (
        SELECT u.user_id,
               (u.sessions - coalesce(m.extra_rows, 0))::bigint AS total_sessions,
               (u.durations + coalesce(m.duration_change, 0)) / nullif(u.sessions - coalesce(m.extra_rows, 0), 0) AS avg_session_duration,
               u.clicks::numeric / nullif(u.sessions - coalesce(m.extra_rows, 0), 0) AS avg_clicks_per_session,
               u.events::bigint AS total_events, u.first_seen, u.last_seen
        FROM by_user u
        LEFT JOIN merged m ON m.user_id = u.user_id
        WHERE :country IS NULL OR u.country = :country
    ) users
    ORDER BY total_sessions DESC, total_events DESC, user_id
    LIMIT :limit
),
chosen AS (
    SELECT * FROM from_events
    UNION ALL
    SELECT * FROM from_totals
),
chosen_events AS (
    SELECT * FROM base WHERE user_id IN (SELECT user_id FROM chosen)
),
top_page AS (
    SELECT DISTINCT ON (user_id) user_id, page
    FROM (SELECT user_id, page, count(*) AS n FROM chosen_events WHERE page IS NOT NULL GROUP BY user_id, page) counted
    ORDER BY user_id, n DESC, page
),
top_device AS (
    SELECT DISTINCT ON (user_id) user_id, device_type
    FROM (SELECT user_id, device_type, count(*) AS n FROM chosen_events WHERE device_type IS NOT NULL GROUP BY user_id, device_type) counted
    ORDER BY user_id, n DESC, device_type
),
latest_country AS (
    SELECT DISTINCT ON (user_id) user_id, country
    FROM chosen_events
    WHERE country IS NOT NULL
    ORDER BY user_id, time DESC, country
)
SELECT c.user_id,
       c.total_sessions,
       round(c.avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       round(c.avg_clicks_per_session::numeric, 2)::float8 AS avg_clicks_per_session,
       c.total_events,
       p.page AS most_visited_page,
       d.device_type AS most_used_device,
       l.country,
       c.first_seen,
       c.last_seen
FROM chosen c
LEFT JOIN top_page p ON p.user_id = c.user_id
LEFT JOIN top_device d ON d.user_id = c.user_id
LEFT JOIN latest_country l ON l.user_id = c.user_id
ORDER BY c.total_sessions DESC, c.total_events DESC, c.user_id
