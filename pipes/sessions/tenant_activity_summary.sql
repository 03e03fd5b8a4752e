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
-- events read once. A window may run 120 s (@timeout) where the server's query timeout is shorter.
--
-- A session is one row of totals but where its events name several users (a visitor who logs in) or bot flags, so
-- its rows are merged before sessions are counted. Within a window (from_date or to_date given) every row is grouped
-- by session, then by tenant, and the tenants' visitors apart, with hash aggregates only (count(DISTINCT …) per
-- tenant sorted every group). Over all time (the default), each tenant's rows are summed as if each were a session:
-- each tenant's totals, kept by the writer (migration 0027), with its visitors counted there, and the events without
-- a session (their visitors counted where the tenant's totals do not name them). Only the sessions with several rows
-- are merged apart (`sessions_with_several_rows`, 0019/0025), looked up by key, and their difference added: a session
-- fewer per extra row, and the merged duration in place of the rows' own. The first and last activity come from the
-- events' tenant index. In psql, equal rows: 260–345 → 8–9 ms at a million events, 2.6 s → 11–17 ms at ten million
-- (before, every session's totals were grouped by tenant and visitor). Windows keep the first way: 0019's read of
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
-- Over all time: each tenant's totals (migration 0027) as if each row of session totals were a session.
kept AS (
    SELECT t.tenant_id,
           t.people_rows + CASE WHEN :include_bots THEN t.bot_rows ELSE 0 END AS rows,
           t.people_durations + CASE WHEN :include_bots THEN t.bot_durations ELSE 0 END AS durations,
           t.people_events + CASE WHEN :include_bots THEN t.bot_events ELSE 0 END AS events,
           t.people_page_views + CASE WHEN :include_bots THEN t.bot_page_views ELSE 0 END AS page_views,
           CASE WHEN :include_bots THEN t.visitors ELSE t.people_visitors END AS users
    FROM tenant_totals t
    WHERE t.workspace_id = :workspace_id AND :from_date IS NULL AND :to_date IS NULL
),
-- The events without a session (all that `edges` holds over all time): their events, and their visitors that have
-- no row of totals in the tenant (of people, unless bots count).
loose AS (
    SELECT tenant_id, sum(events) AS events, sum(page_views) AS page_views,
           count(DISTINCT visitor) FILTER (WHERE NOT counted) AS users
    FROM (
        SELECT e.tenant_id, e.events, e.page_views, e.visitor,
               EXISTS (
                   SELECT 1 FROM tenant_visitors v
                   WHERE v.workspace_id = :workspace_id AND v.tenant_id = e.tenant_id AND v.visitor_id = e.visitor
                     AND (v.people_rows > 0 OR (:include_bots AND v.bot_rows > 0))
               ) AS counted
        FROM edges e
        WHERE :from_date IS NULL AND :to_date IS NULL
    ) l
    GROUP BY tenant_id
),
-- What merging the sessions with several rows changes per tenant (migration 0027).
merged AS (
    SELECT key AS tenant_id, extra_rows, duration_change
    FROM sessions_merged_apart(:workspace_id, :include_bots, false)
    WHERE :from_date IS NULL AND :to_date IS NULL
),
-- The first and last activity from the events' tenant index (which holds the events without a session too).
all_time_tenants AS (
    SELECT a.tenant_id, a.users, a.rows - coalesce(m.extra_rows, 0) AS sessions,
           (a.durations::float8 + coalesce(m.duration_change, 0)) / nullif(a.rows - coalesce(m.extra_rows, 0), 0) AS avg_session_duration,
           a.events, a.page_views, f.first_activity, l.last_activity
    FROM (
        SELECT tenant_id, sum(users)::bigint AS users, sum(rows) AS rows, sum(durations) AS durations,
               sum(events)::bigint AS events, sum(page_views)::bigint AS page_views
        FROM (
            SELECT tenant_id, users, rows, durations, events, page_views FROM kept WHERE rows > 0
            UNION ALL
            SELECT tenant_id, users, 0, 0, events, page_views FROM loose
        ) parts
        GROUP BY tenant_id
    ) a
    LEFT JOIN merged m ON m.tenant_id = a.tenant_id
    CROSS JOIN LATERAL (
        SELECT e.time AS first_activity
        FROM events e
        WHERE e.workspace_id = :workspace_id AND e.tenant_id = a.tenant_id AND (:include_bots OR NOT e.is_bot)
        ORDER BY e.time
        LIMIT 1
    ) f
    CROSS JOIN LATERAL (
        SELECT e.time AS last_activity
        FROM events e
        WHERE e.workspace_id = :workspace_id AND e.tenant_id = a.tenant_id AND (:include_bots OR NOT e.is_bot)
        ORDER BY e.time DESC
        LIMIT 1
    ) l
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
