-- Clusters users by behaviour with k-means and stores each user's cluster_id in user_features.
-- Each user's features are recomputed from their events of the window (bots left out) and stored in user_features;
-- users without events there keep the features stored (e.g. rows sent to the user_features datasource). The server
-- then standardises avg_session_duration, total_sessions and avg_clicks_per_session (z-scores; a missing value
-- counts as the average), runs k-means on them (k-means++ seeding from a fixed seed, then Lloyd iterations until no
-- user changes cluster), numbers the clusters 1..k by size, largest first, and stores each user's cluster_id where it
-- differs from the one stored (previous_cluster_id). The same data gives the same clusters. It is batch work over
-- every user: it may run for 5 minutes (@timeout) where the server's query timeout is shorter (17–36 s at ten million
-- events, bench/RESULTS.md).
-- @writes
-- @timeout 300
-- @kmeans avg_session_duration total_sessions avg_clicks_per_session
-- @param k              Int(1..50) = 4        Number of clusters
-- @param country        String?               Cluster only the users of this country (the others keep theirs)
-- @param since          Interval = '90 day'   Features from the events of this window, ending now
-- @param max_iterations Int(1..500) = 100     Upper bound on iterations
-- @column user_id                 the user
-- @column cluster_id              the cluster assigned (1..k, largest first)
-- @column distance                distance to the cluster's centre, in standard deviations
-- @column avg_session_duration    average session duration in seconds (sum of event durations, else first to last event)
-- @column total_sessions          distinct sessions
-- @column avg_clicks_per_session  clicks (the events' clicks, else one per click event) per session
-- @column most_visited_page       the page with the most events (ties: alphabetical)
-- @column most_used_device        the device type with the most events (ties: alphabetical)
-- @column country                 the country of the latest event that names one (of several at that time, the least)
-- @column previous_cluster_id     the cluster stored before this run (null for a user new to user_features)
--
-- The SQL returns the users to cluster, one row each, ordered by user_id (so that the seeding sees the same order
-- every time), with the features aggregate_user_features returns. Sessions come from their totals (migration 0015),
-- summed per user by `user_session_features` (migration 0021; aggregate_user_features reads them the same way): the
-- totals of the sessions inside the window, those across an end of it recounted from their events inside it, and
-- events without a session from the events. Each user's top page and device come from their events with mode().
-- At a million events, in psql, the features took 2.4–3.3 s from the events alone (each user's pages and devices
-- counted by hash aggregates, the greatest counts joined) and take 1.3–2.0 s; equal rows (all time, windows cutting
-- sessions at both ends). The top pages and devices are read from the user index alone (migration 0020; alternating
-- in psql, 1.57–1.76 → 0.65–0.86 s at a million events, 24.7–26.9 → 6.6–10.6 s at ten million). The sessions are not
-- grouped one by one: each user's rows are summed as if each were a session, and only sessions with several rows are
-- merged apart (as tenant_activity_summary does over all time); in psql, equal rows, the sessions' part took
-- 0.33–0.39 → 0.20–0.24 s at a million events and 9.3–10.1 → 5.8–7.0 s at ten million.
WITH per_user AS (
    SELECT user_id, total_sessions::int AS total_sessions, avg_session_duration, avg_clicks_per_session, country, tenant_id
    FROM user_session_features(:workspace_id, now() - :since, now(), false)
),
-- Each user's most frequent page and device (mode(): of values equally frequent, the first in order). Counting
-- each user's pages and devices with hash aggregates and joining the greatest counts took twice as long.
tops AS (
    SELECT user_id, mode() WITHIN GROUP (ORDER BY page) AS page, mode() WITHIN GROUP (ORDER BY device_type) AS device_type
    FROM events
    WHERE workspace_id = :workspace_id
      AND user_id IS NOT NULL
      AND time >= now() - :since AND time <= now()
      AND NOT is_bot
    GROUP BY user_id
),
features AS (
    SELECT p.user_id, p.tenant_id, p.avg_session_duration, p.total_sessions, p.avg_clicks_per_session,
           t.page AS most_visited_page, t.device_type AS most_used_device, p.country
    FROM per_user p
    LEFT JOIN tops t ON t.user_id = p.user_id
),
chosen AS (
    SELECT * FROM features WHERE :country IS NULL OR country = :country
),
-- A user's stored row is updated where its features changed, or inserted when there is none. Rows this caller may
-- not update (another tenant's) are neither updated nor replaced (the insert finds them and does nothing), so they
-- are not clustered. The insert is tried only for users without a row this caller sees (one hash anti-join; trying
-- every user probed the key index for each: 125–135 → 25–30 ms at a million events, in psql), and still does nothing
-- on a conflict, with a row it cannot see or one stored meanwhile.
updated AS (
    UPDATE user_features uf
    SET avg_session_duration = c.avg_session_duration,
        total_sessions = c.total_sessions,
        avg_clicks_per_session = c.avg_clicks_per_session,
        most_visited_page = c.most_visited_page,
        most_used_device = c.most_used_device,
        country = c.country,
        last_updated = now()
    FROM chosen c
    WHERE uf.workspace_id = :workspace_id AND uf.user_id = c.user_id
      AND (uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.most_visited_page, uf.most_used_device, uf.country)
          IS DISTINCT FROM (c.avg_session_duration, c.total_sessions, c.avg_clicks_per_session, c.most_visited_page, c.most_used_device, c.country)
    RETURNING uf.user_id, uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.most_visited_page,
              uf.most_used_device, uf.country, uf.cluster_id
),
unchanged AS (
    SELECT uf.user_id, uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.most_visited_page,
           uf.most_used_device, uf.country, uf.cluster_id
    FROM user_features uf
    JOIN chosen c ON uf.workspace_id = :workspace_id AND uf.user_id = c.user_id
    WHERE (uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.most_visited_page, uf.most_used_device, uf.country)
          IS NOT DISTINCT FROM (c.avg_session_duration, c.total_sessions, c.avg_clicks_per_session, c.most_visited_page, c.most_used_device, c.country)
),
-- The users stored before this statement, held: the insert's anti-join reads them, not the table it inserts into.
-- Where the table's statistics say it is empty (an ANALYZE while it was), the planner chose a nested loop that read
-- the table again for each user to insert, past every row inserted so far: at ten million events, 494,000 users,
-- over ten minutes (cancelled); 28.6 s reading this CTE.
known AS MATERIALIZED (
    SELECT user_id FROM user_features WHERE workspace_id = :workspace_id
),
inserted AS (
    INSERT INTO user_features (workspace_id, user_id, tenant_id, avg_session_duration, total_sessions, avg_clicks_per_session,
                               most_visited_page, most_used_device, country)
    SELECT :workspace_id, c.user_id, c.tenant_id, c.avg_session_duration, c.total_sessions, c.avg_clicks_per_session,
           c.most_visited_page, c.most_used_device, c.country
    FROM chosen c
    WHERE NOT EXISTS (SELECT FROM known k WHERE k.user_id = c.user_id)
    ON CONFLICT (workspace_id, user_id) DO NOTHING
    RETURNING user_id, avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device, country,
              cluster_id
),
-- Stored users without events in the window, found by grouping rather than by an anti-join: the planner cannot
-- estimate the users computed above, and a nested loop over them is quadratic.
kept AS (
    SELECT user_id, max(avg_session_duration) AS avg_session_duration, max(total_sessions) AS total_sessions,
           max(avg_clicks_per_session) AS avg_clicks_per_session, max(most_visited_page) AS most_visited_page,
           max(most_used_device) AS most_used_device, max(country) AS country, max(cluster_id) AS cluster_id
    FROM (
        SELECT uf.user_id, false AS recomputed, uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session,
               uf.most_visited_page, uf.most_used_device, uf.country, uf.cluster_id
        FROM user_features uf
        WHERE uf.workspace_id = :workspace_id
        UNION ALL
        SELECT f.user_id, true, NULL, NULL, NULL, NULL, NULL, NULL, NULL FROM features f
    ) known
    GROUP BY user_id
    HAVING NOT bool_or(recomputed) AND (:country IS NULL OR max(country) = :country)
)
SELECT user_id, avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device, country,
       cluster_id AS previous_cluster_id
FROM (SELECT * FROM updated UNION ALL SELECT * FROM unchanged UNION ALL SELECT * FROM inserted UNION ALL SELECT * FROM kept) users
ORDER BY user_id
