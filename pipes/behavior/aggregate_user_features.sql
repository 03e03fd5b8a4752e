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
-- Three ways to each user's sessions and totals, chosen by the window: only one runs (the others' conditions are false).
--
-- - A window of less than half the time since the workspace's first event: hash aggregates over the window's
--   events. With a country filter, the latest country of every user is needed first; it is merged into the per-user
--   rows by grouping, not by a join, because the planner cannot estimate either side (a nested loop over the two
--   took minutes).
-- - A longer window (the default, 90 days, over a month of data): from the session totals (migration 0015), each
--   user's as `user_session_features` (migration 0021) sums them, as assign_clusters reads them: each user's rows
--   summed as if each were a session (a session is one row but where its events name several tenants or bot flags),
--   and only sessions with several rows merged apart (`sessions_with_several_rows`, 0019; from each session's count
--   of rows since 0025: 453–467 → 378–423 ms at a million events, 3.7–4.4 → 2.8–2.9 s at ten million). Over 90 days,
--   in psql: 1.48–1.69 → 0.98–1.07 s at a million events, 16.6 → 8.6 s at ten million. It reads every session's
--   totals whatever the window (and, before 0025, the whole key index): one day at a million events took 0.17 s from
--   the events and 0.42 s from the totals, seven days (with a country) 0.49 and 0.64 s, hence the choice. The events'
--   way is gated above its LIMIT: gated lower, its grouping lost its parallel plan (seven days with a country
--   0.35–0.43 → 0.58–0.77 s).
-- - A window that holds every event of the workspace (the default over a month of data), no country asked, and a
--   reader of the whole workspace: from each user's totals, which the writer keeps (migration 0027), a row per user
--   instead of every session's totals; the sessions with several rows merged apart as above, the events without a
--   session added, and the averages and first and last events computed for the returned users only. In psql, equal
--   rows: 350–415 → 185–280 ms at a million events, 2.6–3.2 → 0.60–0.77 s at ten million. A user's totals span
--   tenants, so a tenant's token takes the session totals' way.
--
-- The page, device and country columns, which need per-user ordering, are computed for the returned users only, from
-- their events: pages and devices from the user index alone (it carries page, device type and bot flag, migration
-- 0020), the latest country by reading each user's events backwards in that index until one names a country (a few
-- rows from the table each). Reading every event of the returned users from the table for all three took longer: in
-- psql, equal rows, 650–750 → 505–530 ms at a million events over 90 days and 101 → 81–84 ms over one day (the
-- events way), 4.9–5.5 → 3.9–4.7 s at ten million; on a cold cache that read alone took 3.3 s at a million. The top
-- page and device are both taken with mode() in one read of each user's index entries; counting each user's pages
-- and devices in two groupings of the users' events held as one table and sorting the counts took longer: in psql,
-- equal rows, 181–198 → 103–122 ms at a million events over 90 days (the users' way), 71–96 → 59–93 ms over one day
-- (the events' way), 3.8–4.2 → 2.2–2.7 s for all 49,340 users (limit 100000); 573–763 → 400–615 ms at ten million
-- over 90 days. In the users' way that read also takes each user's first and last event, which two reads of the
-- index's ends per user took before (twelve alternations in psql at a million events, medians 120 → 115 ms). `base` is
-- not materialized: held as one table it spilled to disk (675,000 rows at a million events), while reading it again
-- costs a scan for the sessions (events way), none for the latest countries unless a country is asked, and the index
-- reads. It may run 120 s (@timeout) where the server's query timeout is shorter.
WITH base AS NOT MATERIALIZED (
    SELECT user_id, session_id, time, page, device_type, country, duration,
           coalesce(clicks, CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks
    FROM events
    WHERE workspace_id = :workspace_id
      AND user_id IS NOT NULL
      AND time >= now() - :since AND time <= now()
      AND (:include_bots OR NOT is_bot)
),
-- Which way: the users' totals where the window holds every event (the primary key's first and last entries), no
-- country is asked and the reader is the workspace's; else the session totals where the window holds at least half
-- the time since the workspace's first event; else the events.
chosen_way AS MATERIALIZED (
    SELECT CASE WHEN coalesce(now() - :since <= min(time) AND max(time) <= now(), false) AND :country IS NULL
                     AND coalesce(current_setting('app.tenant_id', true), '') = '' THEN 'users'
                WHEN coalesce(now() - :since <= min(time) + (now() - min(time)) / 2, false) THEN 'totals'
                ELSE 'events' END AS way
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
    WHERE (SELECT way = 'events' FROM chosen_way)
),
-- From the session totals (migration 0021), with the latest country only when a country is asked.
from_totals AS (
    SELECT user_id, total_sessions, avg_session_duration, avg_clicks_per_session, total_events, first_seen, last_seen
    FROM user_session_features(:workspace_id, now() - :since, now(), :include_bots)
    WHERE (SELECT way = 'totals' FROM chosen_way) AND (:country IS NULL OR country = :country)
    ORDER BY total_sessions DESC, total_events DESC, user_id
    LIMIT :limit
),
-- From the users' totals (migration 0027), a row per user, and their events without a session.
user_rows AS (
    SELECT u.user_id,
           u.people_rows + CASE WHEN :include_bots THEN u.bot_rows ELSE 0 END AS rows,
           u.people_durations + CASE WHEN :include_bots THEN u.bot_durations ELSE 0 END AS durations,
           u.people_clicks + CASE WHEN :include_bots THEN u.bot_clicks ELSE 0 END AS clicks,
           u.people_events + CASE WHEN :include_bots THEN u.bot_events ELSE 0 END AS events
    FROM user_totals u
    WHERE u.workspace_id = :workspace_id AND (SELECT way = 'users' FROM chosen_way)
),
loose_users AS (
    SELECT e.user_id, count(*) AS events
    FROM events e
    WHERE e.workspace_id = :workspace_id AND e.session_id IS NULL AND e.user_id IS NOT NULL AND (:include_bots OR NOT e.is_bot)
      AND (SELECT way = 'users' FROM chosen_way)
    GROUP BY e.user_id
),
-- What merging the sessions with several rows changes per user (migration 0027), as `user_session_features` merges
-- them.
user_merged AS (
    SELECT key AS user_id, extra_rows, duration_change
    FROM sessions_merged_apart(:workspace_id, :include_bots, true)
    WHERE (SELECT way = 'users' FROM chosen_way)
),
-- The averages are computed for the returned users only; their first and last event are read with their pages and
-- devices (`top_page_device`).
from_user_totals AS (
    SELECT c.user_id, c.total_sessions,
           (c.durations::float8 + coalesce(c.duration_change, 0)) / nullif(c.total_sessions, 0) AS avg_session_duration,
           c.clicks::numeric / nullif(c.total_sessions, 0) AS avg_clicks_per_session,
           c.total_events, NULL::timestamptz AS first_seen, NULL::timestamptz AS last_seen
    FROM (
        SELECT coalesce(r.user_id, l.user_id) AS user_id,
               (coalesce(r.rows, 0) - coalesce(m.extra_rows, 0))::bigint AS total_sessions,
               (coalesce(r.events, 0) + coalesce(l.events, 0))::bigint AS total_events,
               r.durations, r.clicks, m.duration_change
        FROM (SELECT * FROM user_rows WHERE rows > 0) r
        FULL JOIN loose_users l ON l.user_id = r.user_id
        LEFT JOIN user_merged m ON m.user_id = coalesce(r.user_id, l.user_id)
        ORDER BY total_sessions DESC, total_events DESC, user_id
        LIMIT :limit
    ) c
),
chosen AS (
    SELECT * FROM from_events
    UNION ALL
    SELECT * FROM from_totals
    UNION ALL
    SELECT * FROM from_user_totals
),
-- Each returned user's most frequent page and device (mode(): nulls ignored; of values equally frequent, the first in
-- order, as assign_clusters takes them), in one read of the user's events from the user index, with the first and
-- last event the users' way leaves to it.
top_page_device AS (
    SELECT c.user_id, t.page, t.device_type, t.first_seen, t.last_seen
    FROM chosen c
    CROSS JOIN LATERAL (
        SELECT mode() WITHIN GROUP (ORDER BY b.page) AS page, mode() WITHIN GROUP (ORDER BY b.device_type) AS device_type,
               min(b.time) AS first_seen, max(b.time) AS last_seen
        FROM base b
        WHERE b.user_id = c.user_id
    ) t
),
latest_country AS (
    SELECT c.user_id, l.country
    FROM chosen c
    CROSS JOIN LATERAL (
        SELECT b.country
        FROM base b
        WHERE b.user_id = c.user_id AND b.country IS NOT NULL
        ORDER BY b.time DESC, b.country
        LIMIT 1
    ) l
)
SELECT c.user_id,
       c.total_sessions,
       round(c.avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       round(c.avg_clicks_per_session::numeric, 2)::float8 AS avg_clicks_per_session,
       c.total_events,
       t.page AS most_visited_page,
       t.device_type AS most_used_device,
       l.country,
       coalesce(c.first_seen, t.first_seen) AS first_seen,
       coalesce(c.last_seen, t.last_seen) AS last_seen
FROM chosen c
LEFT JOIN top_page_device t ON t.user_id = c.user_id
LEFT JOIN latest_country l ON l.user_id = c.user_id
ORDER BY c.total_sessions DESC, c.total_events DESC, c.user_id
