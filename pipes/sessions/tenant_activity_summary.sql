-- Activity per tenant: sessions, users, events and page views, busiest tenant first.
-- @timeout 120
-- @param from_date    DateTime?     Activity from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param to_date      DateTime?     Activity until this time, inclusive
-- @param limit        Int(1..10000) = 50  Tenants to return
-- @param include_bots Bool = false  Count bots and crawlers too
-- @column tenant_id             the tenant (events without one are left out)
-- @column sessions              distinct sessions
-- @column users                 distinct users (user_id, else session_id)
-- @column events                events
-- @column page_views            events of type page_view or pageview
-- @column avg_session_duration  average session duration in seconds (sum of event durations, else first to last event)
-- @column first_activity        earliest event
-- @column last_activity         latest event
--
-- Sessions come from their totals, which the writer keeps (migration 0015): a row per session instead of its
-- events. session_totals_inside gives those inside the window; session_totals_recounted those across an end of it,
-- recounted from their events inside it, and the events without a session (migration 0017, which assign_clusters
-- reads too). The recounted rows are held (MATERIALIZED), so that the session totals are searched for them and their
-- events read once. By default it reads all time, so it may run 120 s (@timeout) where the server's query timeout is
-- shorter.
--
-- A session is one row of totals but where its events name several users (a visitor who logs in) or bot flags, so
-- its rows are merged before sessions are counted. Within a window (from_date or to_date given) every row is grouped
-- by session, then by tenant, and the tenants' visitors apart, with hash aggregates only (count(DISTINCT …) per
-- tenant sorted every group). Over all time (the default), grouping every session (211,000 at a million events) took
-- most of the time: there each tenant's rows are summed as if each were a session, together with its visitors (one
-- hash aggregate by tenant and visitor), and only the sessions with several rows are merged apart
-- (`sessions_with_several_rows`: migration 0019 read them from the totals' key index, 0025 from a partial index of
-- each session's count of rows, 290–435 → 217–245 ms at a million events), and their difference added: a session
-- fewer per extra row, and the merged duration in place of the rows' own. In psql, equal rows: 0.62–0.81 → 0.38–0.53 s
-- at a million events, 8.2–9.4 → 4.0–5.3 s at ten million (before 0025). Windows keep the first way: 0019's read of
-- the whole key index made a day's window at ten million events 0.81 → 1.8 s, and counting a window's sessions by key
-- apart from the rest spilled to disk at ten million (a ten-day window 3.2 → 5.8 s). Only one of the two ways runs:
-- the other's condition is false.
WITH inside AS NOT MATERIALIZED (
    SELECT tenant_id, session_id, visitor_id AS visitor, events, page_views, duration_sum,
           first_time AS first_activity, last_time AS last_activity
    FROM session_totals_inside(:workspace_id, :from_date, :to_date, :include_bots)
    WHERE tenant_id IS NOT NULL
),
edges AS MATERIALIZED (
    SELECT tenant_id, session_id, visitor_id AS visitor, events, page_views, duration_sum,
           first_time AS first_activity, last_time AS last_activity
    FROM session_totals_recounted(:workspace_id, :from_date, :to_date, :include_bots)
    WHERE tenant_id IS NOT NULL
),
groups AS NOT MATERIALIZED (
    SELECT * FROM inside
    UNION ALL
    SELECT * FROM edges
),
-- Within a window: each session's totals (events without a session: one row per tenant, counted in the events only),
-- then each tenant's. Integer sums: a bigint sum keeps a numeric state per group.
sessions AS (
    SELECT tenant_id, session_id,
           sum(events::integer) AS events, sum(page_views::integer) AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity,
           coalesce(sum(duration_sum), extract(epoch FROM max(last_activity) - min(first_activity))) AS duration
    FROM groups
    WHERE NOT (:from_date IS NULL AND :to_date IS NULL)
    GROUP BY tenant_id, session_id
),
window_tenants AS (
    SELECT tenant_id,
           count(*) FILTER (WHERE session_id IS NOT NULL) AS sessions,
           avg(duration) FILTER (WHERE session_id IS NOT NULL) AS avg_session_duration,
           sum(events)::bigint AS events, sum(page_views)::bigint AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity
    FROM sessions
    GROUP BY tenant_id
),
window_visitors AS (
    SELECT tenant_id, count(*) AS users
    FROM (
        SELECT tenant_id, visitor
        FROM groups
        WHERE visitor IS NOT NULL AND NOT (:from_date IS NULL AND :to_date IS NULL)
        GROUP BY tenant_id, visitor
    ) v
    GROUP BY tenant_id
),
-- Over all time: each tenant's visitors, with their rows summed as if each row were a session.
by_visitor AS (
    SELECT tenant_id, visitor,
           count(session_id) AS sessions,
           sum(coalesce(duration_sum, extract(epoch FROM last_activity - first_activity))) FILTER (WHERE session_id IS NOT NULL) AS durations,
           sum(events::integer) AS events, sum(page_views::integer) AS page_views,
           min(first_activity) AS first_activity, max(last_activity) AS last_activity
    FROM groups
    WHERE :from_date IS NULL AND :to_date IS NULL
    GROUP BY tenant_id, visitor
),
-- The sessions with several rows (any tenant, user or bot flag: a superset; migrations 0019, 0025).
shared AS MATERIALIZED (
    SELECT session_id
    FROM sessions_with_several_rows(:workspace_id)
    WHERE :from_date IS NULL AND :to_date IS NULL
),
-- What merging them changes: a session fewer per extra row, and the session's duration (its events' durations, else
-- first to last event of all its rows) in place of its rows' own.
merged AS (
    SELECT tenant_id, sum(rows - 1) AS extra_rows, sum(duration - durations) AS duration_change
    FROM (
        SELECT g.tenant_id, g.session_id, count(*) AS rows,
               sum(coalesce(g.duration_sum, extract(epoch FROM g.last_activity - g.first_activity))) AS durations,
               coalesce(sum(g.duration_sum), extract(epoch FROM max(g.last_activity) - min(g.first_activity))) AS duration
        FROM groups g
        JOIN shared s ON s.session_id = g.session_id
        GROUP BY g.tenant_id, g.session_id
    ) m
    GROUP BY tenant_id
),
all_time_tenants AS (
    SELECT v.tenant_id, v.users, v.sessions - coalesce(m.extra_rows, 0) AS sessions,
           (v.durations + coalesce(m.duration_change, 0)) / nullif(v.sessions - coalesce(m.extra_rows, 0), 0) AS avg_session_duration,
           v.events, v.page_views, v.first_activity, v.last_activity
    FROM (
        SELECT tenant_id, count(visitor) AS users, sum(sessions) AS sessions, sum(durations) AS durations,
               sum(events)::bigint AS events, sum(page_views)::bigint AS page_views,
               min(first_activity) AS first_activity, max(last_activity) AS last_activity
        FROM by_visitor
        GROUP BY tenant_id
    ) v
    LEFT JOIN merged m ON m.tenant_id = v.tenant_id
),
tenants AS (
    SELECT t.tenant_id, t.sessions, coalesce(v.users, 0) AS users, t.events, t.page_views, t.avg_session_duration,
           t.first_activity, t.last_activity
    FROM window_tenants t
    LEFT JOIN window_visitors v ON v.tenant_id = t.tenant_id
    UNION ALL
    SELECT tenant_id, sessions::bigint, users, events, page_views, avg_session_duration, first_activity, last_activity
    FROM all_time_tenants
)
SELECT tenant_id,
       sessions,
       users,
       events,
       page_views,
       round(avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       first_activity,
       last_activity
FROM tenants
ORDER BY events DESC, tenant_id
LIMIT :limit
