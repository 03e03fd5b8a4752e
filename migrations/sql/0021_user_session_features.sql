-- Each user's sessions in a window, from the session totals (0015) through 0017's functions: what
-- `aggregate_user_features` (over long windows) and `assign_clusters` compute per user, written once. The window is
-- [from_time, to_time] as in 0017. Each user's rows are summed as if each row were a session (a session is one row
-- but where its events name several tenants, users or bot flags), and only the sessions with several rows
-- (`sessions_with_several_rows`, 0019) are merged apart: a session fewer per extra row, and the session's duration
-- (its events' durations, else first to last event of all its rows) in place of its rows' own. Grouping every session
-- first took most of those pipes' time.
--
-- Per user: the sessions, their average duration (seconds) and clicks, the events, the first and last event, the
-- tenant (the greatest, should the events name several) and the latest country (of the latest event naming one; of
-- several at that time, the least). The latest country is found in the aggregates, not by a join with the users'
-- latest times, which the planner cannot estimate: the least pair of (microseconds from then to the year 10000, as 19
-- digits, which sort as numbers do) and the country. A single statement, which the planner inlines into the calling
-- query (row-level security applies as on the tables); the columns a caller does not read are never computed.
CREATE FUNCTION user_session_features(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS TABLE (
    user_id text, tenant_id text, total_sessions bigint, avg_session_duration double precision,
    avg_clicks_per_session numeric, total_events bigint, first_seen timestamptz, last_seen timestamptz, country text
)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    WITH groups AS NOT MATERIALIZED (
        SELECT i.user_id, i.session_id, i.tenant_id, i.events, i.clicks, i.duration_sum, i.first_time, i.last_time,
               i.country, i.country_time
        FROM session_totals_inside(workspace, from_time, to_time, include_bots) i
        WHERE i.user_id IS NOT NULL
        UNION ALL
        SELECT r.user_id, r.session_id, r.tenant_id, r.events, r.clicks, r.duration_sum, r.first_time, r.last_time,
               r.country, r.country_time
        FROM session_totals_recounted(workspace, from_time, to_time, include_bots) r
        WHERE r.user_id IS NOT NULL
    ),
    by_user AS (
        SELECT g.user_id,
               count(g.session_id) AS sessions,
               sum(coalesce(g.duration_sum, extract(epoch FROM g.last_time - g.first_time))) FILTER (WHERE g.session_id IS NOT NULL) AS durations,
               sum(g.clicks) FILTER (WHERE g.session_id IS NOT NULL) AS clicks,
               sum(g.events::integer) AS events,
               min(g.first_time) AS first_seen, max(g.last_time) AS last_seen,
               max(g.tenant_id) AS tenant_id,
               min(ARRAY[lpad(((253402300800 - extract(epoch FROM g.country_time)) * 1000000)::bigint::text, 19, '0'), g.country])
                   FILTER (WHERE g.country IS NOT NULL) AS latest_country
        FROM groups g
        GROUP BY g.user_id
    ),
    shared AS MATERIALIZED (
        SELECT s.session_id FROM sessions_with_several_rows(workspace) s
    ),
    merged AS (
        SELECT m.user_id, sum(m.rows - 1) AS extra_rows, sum(m.duration - m.durations) AS duration_change
        FROM (
            SELECT g.user_id, g.session_id, count(*) AS rows,
                   sum(coalesce(g.duration_sum, extract(epoch FROM g.last_time - g.first_time))) AS durations,
                   coalesce(sum(g.duration_sum), extract(epoch FROM max(g.last_time) - min(g.first_time))) AS duration
            FROM groups g
            JOIN shared s ON s.session_id = g.session_id
            GROUP BY g.user_id, g.session_id
        ) m
        GROUP BY m.user_id
    )
    SELECT u.user_id, u.tenant_id,
           (u.sessions - coalesce(m.extra_rows, 0))::bigint,
           (u.durations + coalesce(m.duration_change, 0)) / nullif(u.sessions - coalesce(m.extra_rows, 0), 0),
           u.clicks::numeric / nullif(u.sessions - coalesce(m.extra_rows, 0), 0),
           u.events::bigint, u.first_seen, u.last_seen, u.latest_country[2]
    FROM by_user u
    LEFT JOIN merged m ON m.user_id = u.user_id
$$;
