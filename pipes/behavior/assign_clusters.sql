-- Clusters users by behaviour with k-means and stores each user's cluster_id in user_features.
-- Each user's features are recomputed from their events of the window (bots left out) and stored in user_features;
-- users without events there keep the features stored (e.g. rows sent to the user_features datasource). The server
-- then standardises avg_session_duration, total_sessions and avg_clicks_per_session (z-scores; a missing value
-- counts as the average), runs k-means on them (k-means++ seeding from a fixed seed, then Lloyd iterations until no
-- user changes cluster), numbers the clusters 1..k by size, largest first, and stores each user's cluster_id where it
-- differs from the one stored (previous_cluster_id). The same data gives the same clusters. It is batch work over
-- every user: it may run for 5 minutes (@timeout) where the server's query timeout is shorter (13–36 s at ten million
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
--
-- Where the window holds every event of the workspace (its default over a month of data) and the reader is the
-- workspace's, each user's sessions, durations and clicks come from the users' totals the writer keeps (migration 0027;
-- a tenant's reader sees none), with the sessions of several rows merged apart as above; only each user's tenant and
-- latest country are still read from the session totals (and the events without a session), the part that costs
-- most (grouping every session's country by its time). In psql, equal rows: 0.91 → 0.85 s at a million events,
-- 9.9–10.3 → 9.2–9.3 s at ten million.
WITH users_way AS MATERIALIZED (
    SELECT coalesce(now() - :since <= min(time) AND max(time) <= now(), false)
           AND coalesce(current_setting('app.tenant_id', true), '') = '' AS chosen
    FROM events
    WHERE workspace_id = :workspace_id
),
-- Each user's tenant (the greatest) and latest country, of the people's session totals and events without a session.
user_attributes AS (
    SELECT r.user_id, max(r.tenant_id) AS tenant_id,
           min(ARRAY[lpad(((253402300800 - extract(epoch FROM r.country_time)) * 1000000)::bigint::text, 19, '0'), r.country])
               FILTER (WHERE r.country IS NOT NULL) AS latest_country
    FROM (
        SELECT t.user_id, t.tenant_id, t.country, t.country_time
        FROM session_totals t
        WHERE t.workspace_id = :workspace_id AND t.user_id IS NOT NULL AND NOT t.is_bot
        UNION ALL
        SELECT e.user_id, e.tenant_id, e.country, e.time
        FROM events e
        WHERE e.workspace_id = :workspace_id AND e.session_id IS NULL AND e.user_id IS NOT NULL AND NOT e.is_bot
    ) r
    WHERE (SELECT chosen FROM users_way)
    GROUP BY r.user_id
),
-- Full joins, which PostgreSQL runs as hash or merge joins whatever it estimates: every user with people's totals has
-- attributes, so none is added. Each part is empty in the other way.
from_user_totals AS (
    SELECT a.user_id, s.sessions AS total_sessions,
           ((coalesce(t.people_durations, 0) + coalesce(m.duration_change, 0)::numeric) / nullif(s.sessions, 0))::float8
               AS avg_session_duration,
           t.people_clicks::numeric / nullif(s.sessions, 0) AS avg_clicks_per_session,
           a.latest_country[2] AS country, a.tenant_id
    FROM user_attributes a
    FULL JOIN (
        SELECT * FROM user_totals WHERE workspace_id = :workspace_id AND people_rows > 0 AND (SELECT chosen FROM users_way)
    ) t ON t.user_id = a.user_id
    FULL JOIN (SELECT * FROM sessions_merged_apart(:workspace_id, false, true) WHERE (SELECT chosen FROM users_way)) m
        ON m.key = a.user_id
    CROSS JOIN LATERAL (SELECT (coalesce(t.people_rows, 0) - coalesce(m.extra_rows, 0))::int AS sessions) s
),
per_user AS (
    SELECT user_id, total_sessions::int AS total_sessions, avg_session_duration, avg_clicks_per_session, country, tenant_id
    FROM user_session_features(:workspace_id, now() - :since, now(), false)
    WHERE NOT (SELECT chosen FROM users_way)
    UNION ALL
    SELECT user_id, total_sessions, avg_session_duration, avg_clicks_per_session, country, tenant_id
    FROM from_user_totals
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
-- Each recomputed user beside its stored row (one full join, which PostgreSQL runs as a hash or merge join whatever it
-- estimates: neither side can be estimated, and a nested loop over them was quadratic). A recomputed user of the
-- chosen country is updated where its features changed, inserted where no row is stored, and answered as stored
-- where nothing changed; a stored user without events in the window is kept as stored (and answered if of the
-- country). Rows this caller may not see (another tenant's) count as not stored: the insert finds them and does
-- nothing, so they are neither replaced nor clustered. Reading the stored rows once here took the place of four
-- reads (the update's, the unchanged rows', the insert's anti-join and the kept rows' grouping): in psql, equal rows
-- and stored rows (features unchanged, changed, missing, and stored users without events), 1.06–1.16 → 0.92–0.97 s at
-- a million events, 12.6–12.8 → 10.2–11.5 s at ten million.
paired AS (
    SELECT coalesce(f.user_id, s.user_id) AS user_id,
           f.user_id IS NOT NULL AS recomputed,
           f.user_id IS NOT NULL AND (:country IS NULL OR f.country = :country) AS chosen,
           s.user_id IS NOT NULL AS stored,
           (f.avg_session_duration, f.total_sessions, f.avg_clicks_per_session, f.most_visited_page, f.most_used_device, f.country)
               IS NOT DISTINCT FROM
           (s.avg_session_duration, s.total_sessions, s.avg_clicks_per_session, s.most_visited_page, s.most_used_device, s.country) AS same,
           f.tenant_id, f.avg_session_duration, f.total_sessions, f.avg_clicks_per_session, f.most_visited_page,
           f.most_used_device, f.country,
           s.avg_session_duration AS stored_avg_session_duration, s.total_sessions AS stored_total_sessions,
           s.avg_clicks_per_session AS stored_avg_clicks_per_session, s.most_visited_page AS stored_most_visited_page,
           s.most_used_device AS stored_most_used_device, s.country AS stored_country, s.cluster_id
    FROM features f
    FULL JOIN (
        SELECT user_id, avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device,
               country, cluster_id
        FROM user_features
        WHERE workspace_id = :workspace_id
    ) s ON s.user_id = f.user_id
),
updated AS (
    UPDATE user_features uf
    SET avg_session_duration = p.avg_session_duration,
        total_sessions = p.total_sessions,
        avg_clicks_per_session = p.avg_clicks_per_session,
        most_visited_page = p.most_visited_page,
        most_used_device = p.most_used_device,
        country = p.country,
        last_updated = now()
    FROM paired p
    WHERE p.chosen AND p.stored AND NOT p.same AND uf.workspace_id = :workspace_id AND uf.user_id = p.user_id
    RETURNING uf.user_id, uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.most_visited_page,
              uf.most_used_device, uf.country, uf.cluster_id
),
inserted AS (
    INSERT INTO user_features (workspace_id, user_id, tenant_id, avg_session_duration, total_sessions, avg_clicks_per_session,
                               most_visited_page, most_used_device, country)
    SELECT :workspace_id, p.user_id, p.tenant_id, p.avg_session_duration, p.total_sessions, p.avg_clicks_per_session,
           p.most_visited_page, p.most_used_device, p.country
    FROM paired p
    WHERE p.chosen AND NOT p.stored
    ON CONFLICT (workspace_id, user_id) DO NOTHING
    RETURNING user_id, avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device, country,
              cluster_id
),
as_stored AS (
    SELECT user_id, stored_avg_session_duration, stored_total_sessions, stored_avg_clicks_per_session, stored_most_visited_page,
           stored_most_used_device, stored_country, cluster_id
    FROM paired
    WHERE (chosen AND stored AND same) OR (NOT recomputed AND (:country IS NULL OR stored_country = :country))
)
SELECT user_id, avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device, country,
       cluster_id AS previous_cluster_id
FROM (SELECT * FROM updated UNION ALL SELECT * FROM inserted UNION ALL SELECT * FROM as_stored) users
ORDER BY user_id
