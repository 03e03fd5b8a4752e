-- Each tenant's and each user's totals over all time, kept by triggers on the session totals (0015), so that the
-- pipes summing sessions over all time read a row per tenant or user instead of every session's totals:
-- `tenant_activity_summary` over all time (its default) grouped those by tenant and visitor, 217–245 ms at a million
-- events and 2.5–2.8 s at ten million (0025); `aggregate_user_features` summed them per user
-- (`user_session_features`, 0021) where its window holds every event (its default, 90 days, over a month of data),
-- 378–423 ms and 2.8–2.9 s.
--
-- `tenant_totals`: a row per workspace and tenant (events without a tenant are left out, as the summary leaves them
-- out), with people's and bots' numbers apart: their rows of session totals (sessions, counting a session once per
-- row, which the summary corrects for the sessions with several rows, 0019/0025), the sum of those rows' durations
-- (each row's events' durations, else its first to last event), events and page views; and the tenant's visitors:
-- those with a row of people (`people_visitors`), and those with any row (`visitors`). `tenant_visitors` holds each
-- tenant's visitors with their count of rows of each kind, from which the visitor counts change when a count leaves
-- or reaches zero.
--
-- `user_totals`: a row per workspace and user, with people's and bots' rows, durations, clicks and events apart (over
-- all the user's tenants: a tenant's reader sees none of it, and reads its users from the session totals).
-- Sessions without a user are left out.
--
-- Exact sums (numeric durations), so that adding and subtracting leaves no rounding behind.
--
-- Statement triggers apply each statement's change: rows inserted are added, rows deleted subtracted, and rows
-- updated (the writer's upserts, which add to a session's sums) subtracted as they were and added as they are. The
-- writer, `workspace rebuild-rollups` and data retention's recount (which delete and insert) and SQL run by hand are
-- alike. The first and last activity are not kept here: deleting sessions could not take them back. The pipes read
-- them from the events' tenant and user indexes, which also hold the events without a session.
--
-- Locks: a change upserts its tenants' totals first (in key order), then their visitors, then its users' totals
-- (each in key order), so two changes touching one tenant wait at its totals, before either holds a visitor or a
-- user of it. Every writer transaction touching a tenant waits for the other's commit at that row, as it already did
-- at the tenant's day in `event_counts` (0009). The writer's upsert makes two changes, one for the session rows it
-- updated and one for those it inserted (the UPDATE trigger fires first), so two batches can each hold a row that
-- the other's second change waits for: PostgreSQL ends one of them, and the writer writes that batch again.
CREATE TABLE tenant_totals (
    workspace_id integer NOT NULL,
    tenant_id text NOT NULL,
    people_rows bigint NOT NULL,
    bot_rows bigint NOT NULL,
    people_durations numeric NOT NULL,
    bot_durations numeric NOT NULL,
    people_events bigint NOT NULL,
    bot_events bigint NOT NULL,
    people_page_views bigint NOT NULL,
    bot_page_views bigint NOT NULL,
    people_visitors bigint NOT NULL DEFAULT 0,
    visitors bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (workspace_id, tenant_id)
);

CREATE TABLE user_totals (
    workspace_id integer NOT NULL,
    user_id text NOT NULL,
    people_rows bigint NOT NULL,
    bot_rows bigint NOT NULL,
    people_durations numeric NOT NULL,
    bot_durations numeric NOT NULL,
    people_clicks bigint NOT NULL,
    bot_clicks bigint NOT NULL,
    people_events bigint NOT NULL,
    bot_events bigint NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE TABLE tenant_visitors (
    workspace_id integer NOT NULL,
    tenant_id text NOT NULL,
    visitor_id bigint NOT NULL,
    people_rows integer NOT NULL,
    bot_rows integer NOT NULL,
    PRIMARY KEY (workspace_id, tenant_id, visitor_id)
);

-- What a statement changed, netted per workspace, tenant, user, visitor and bot flag: rows of totals (1 per row
-- inserted, -1 per row deleted; an update nets to 0), and the change of their sums.
CREATE TYPE session_totals_change AS (
    workspace_id integer,
    tenant_id text,
    user_id text,
    visitor_id bigint,
    is_bot boolean,
    rows integer,
    duration numeric,
    clicks bigint,
    events bigint,
    page_views bigint
);

-- A row of totals as it counts (sign 1 added, -1 taken away): its duration is its events' durations, else its first
-- to last event. A row without a tenant counts in no tenant's totals, one without a user in no user's.
CREATE FUNCTION session_totals_change_of(totals session_totals, sign integer) RETURNS session_totals_change
LANGUAGE sql IMMUTABLE
AS $$
    SELECT ROW(totals.workspace_id, totals.tenant_id, totals.user_id, totals.visitor_id, totals.is_bot, sign,
               sign * coalesce(totals.duration_sum::numeric, extract(epoch FROM totals.last_time - totals.first_time)),
               sign * totals.clicks, sign * totals.events, sign * totals.page_views)::session_totals_change
$$;

-- plpgsql, so that each session keeps its statements' plans (a SQL function plans them at every call), and the
-- visitors' and the deletions' statements run only for changes that count rows: most of the writer's are updates,
-- which net to none. A pgbench of the writer's upsert (20 updated and 2 new sessions a batch, two clients): 7.0 ms a
-- batch as a SQL function, 3.9 as plpgsql, 1.9 with the changes netted, 1.0 without the triggers.
CREATE FUNCTION session_totals_apply(changes session_totals_change[]) RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
    has_tenants boolean;
    has_users boolean;
    counts_visitors boolean;
    has_removals boolean;
BEGIN
    SELECT coalesce(bool_or(c.tenant_id IS NOT NULL), false),
           coalesce(bool_or(c.user_id IS NOT NULL), false),
           coalesce(bool_or(c.tenant_id IS NOT NULL AND c.visitor_id IS NOT NULL AND c.rows <> 0), false),
           coalesce(bool_or(c.rows < 0), false)
    INTO has_tenants, has_users, counts_visitors, has_removals
    FROM unnest(changes) c;

    IF has_tenants THEN
        INSERT INTO tenant_totals AS t (workspace_id, tenant_id, people_rows, bot_rows, people_durations, bot_durations,
                                        people_events, bot_events, people_page_views, bot_page_views)
        SELECT c.workspace_id, c.tenant_id,
               coalesce(sum(c.rows) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.rows) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.duration) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.duration) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.events) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.events) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.page_views) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.page_views) FILTER (WHERE c.is_bot), 0)
        FROM unnest(changes) c
        WHERE c.tenant_id IS NOT NULL
        GROUP BY c.workspace_id, c.tenant_id
        ORDER BY c.workspace_id, c.tenant_id
        ON CONFLICT (workspace_id, tenant_id) DO UPDATE SET
            people_rows = t.people_rows + EXCLUDED.people_rows,
            bot_rows = t.bot_rows + EXCLUDED.bot_rows,
            people_durations = t.people_durations + EXCLUDED.people_durations,
            bot_durations = t.bot_durations + EXCLUDED.bot_durations,
            people_events = t.people_events + EXCLUDED.people_events,
            bot_events = t.bot_events + EXCLUDED.bot_events,
            people_page_views = t.people_page_views + EXCLUDED.people_page_views,
            bot_page_views = t.bot_page_views + EXCLUDED.bot_page_views;
    END IF;

    -- Each visitor's counts as they are after the change, less the change: as they were before it (the upsert sees
    -- the latest committed counts, so this holds with writers running at once). A visitor is counted while it has a
    -- row.
    IF counts_visitors THEN
        WITH changed AS (
            SELECT c.workspace_id, c.tenant_id, c.visitor_id,
                   coalesce(sum(c.rows) FILTER (WHERE NOT c.is_bot), 0)::integer AS people,
                   coalesce(sum(c.rows) FILTER (WHERE c.is_bot), 0)::integer AS bots
            FROM unnest(changes) c
            WHERE c.tenant_id IS NOT NULL AND c.visitor_id IS NOT NULL AND c.rows <> 0
            GROUP BY c.workspace_id, c.tenant_id, c.visitor_id
        ),
        counted AS (
            INSERT INTO tenant_visitors AS v (workspace_id, tenant_id, visitor_id, people_rows, bot_rows)
            SELECT workspace_id, tenant_id, visitor_id, people, bots
            FROM changed
            ORDER BY workspace_id, tenant_id, visitor_id
            ON CONFLICT (workspace_id, tenant_id, visitor_id) DO UPDATE SET
                people_rows = v.people_rows + EXCLUDED.people_rows,
                bot_rows = v.bot_rows + EXCLUDED.bot_rows
            RETURNING v.workspace_id, v.tenant_id, v.visitor_id, v.people_rows, v.bot_rows
        ),
        moved AS (
            SELECT n.workspace_id, n.tenant_id,
                   sum((n.people_rows > 0)::integer - (n.people_rows - c.people > 0)::integer) AS people_visitors,
                   sum((n.people_rows + n.bot_rows > 0)::integer - (n.people_rows + n.bot_rows - c.people - c.bots > 0)::integer) AS visitors
            FROM counted n
            JOIN changed c USING (workspace_id, tenant_id, visitor_id)
            GROUP BY n.workspace_id, n.tenant_id
        )
        UPDATE tenant_totals t
        SET people_visitors = t.people_visitors + m.people_visitors, visitors = t.visitors + m.visitors
        FROM moved m
        WHERE t.workspace_id = m.workspace_id AND t.tenant_id = m.tenant_id
          AND (m.people_visitors <> 0 OR m.visitors <> 0);
    END IF;

    IF has_removals THEN
        DELETE FROM tenant_visitors v
        USING (
            SELECT DISTINCT c.workspace_id, c.tenant_id, c.visitor_id FROM unnest(changes) c
            WHERE c.rows < 0 AND c.tenant_id IS NOT NULL AND c.visitor_id IS NOT NULL
        ) d
        WHERE v.workspace_id = d.workspace_id AND v.tenant_id = d.tenant_id AND v.visitor_id = d.visitor_id
          AND v.people_rows <= 0 AND v.bot_rows <= 0;

        DELETE FROM tenant_totals t
        USING (SELECT DISTINCT c.workspace_id, c.tenant_id FROM unnest(changes) c WHERE c.rows < 0 AND c.tenant_id IS NOT NULL) d
        WHERE t.workspace_id = d.workspace_id AND t.tenant_id = d.tenant_id AND t.people_rows <= 0 AND t.bot_rows <= 0;
    END IF;

    IF has_users THEN
        INSERT INTO user_totals AS u (workspace_id, user_id, people_rows, bot_rows, people_durations, bot_durations, people_clicks,
                                      bot_clicks, people_events, bot_events)
        SELECT c.workspace_id, c.user_id,
               coalesce(sum(c.rows) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.rows) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.duration) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.duration) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.clicks) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.clicks) FILTER (WHERE c.is_bot), 0),
               coalesce(sum(c.events) FILTER (WHERE NOT c.is_bot), 0), coalesce(sum(c.events) FILTER (WHERE c.is_bot), 0)
        FROM unnest(changes) c
        WHERE c.user_id IS NOT NULL
        GROUP BY c.workspace_id, c.user_id
        ORDER BY c.workspace_id, c.user_id
        ON CONFLICT (workspace_id, user_id) DO UPDATE SET
            people_rows = u.people_rows + EXCLUDED.people_rows,
            bot_rows = u.bot_rows + EXCLUDED.bot_rows,
            people_durations = u.people_durations + EXCLUDED.people_durations,
            bot_durations = u.bot_durations + EXCLUDED.bot_durations,
            people_clicks = u.people_clicks + EXCLUDED.people_clicks,
            bot_clicks = u.bot_clicks + EXCLUDED.bot_clicks,
            people_events = u.people_events + EXCLUDED.people_events,
            bot_events = u.bot_events + EXCLUDED.bot_events;

        IF has_removals THEN
            DELETE FROM user_totals u
            USING (SELECT DISTINCT c.workspace_id, c.user_id FROM unnest(changes) c WHERE c.rows < 0 AND c.user_id IS NOT NULL) d
            WHERE u.workspace_id = d.workspace_id AND u.user_id = d.user_id AND u.people_rows <= 0 AND u.bot_rows <= 0;
        END IF;
    END IF;
END
$$;

CREATE FUNCTION session_totals_added_to_rollups() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM session_totals_apply(ARRAY(SELECT session_totals_change_of(a, 1) FROM added a));
    RETURN NULL;
END
$$;

CREATE FUNCTION session_totals_removed_to_rollups() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM session_totals_apply(ARRAY(SELECT session_totals_change_of(d, -1) FROM removed d));
    RETURN NULL;
END
$$;

-- Rows as they were taken away and as they are added, netted: the writer's updates of a session's sums change no
-- count of rows.
CREATE FUNCTION session_totals_updated_to_rollups() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM session_totals_apply(ARRAY(
        SELECT ROW(c.workspace_id, c.tenant_id, c.user_id, c.visitor_id, c.is_bot, sum(c.rows), sum(c.duration), sum(c.clicks),
                   sum(c.events), sum(c.page_views))::session_totals_change
        FROM (
            SELECT (session_totals_change_of(d, -1)).* FROM removed d
            UNION ALL
            SELECT (session_totals_change_of(a, 1)).* FROM added a
        ) c
        GROUP BY c.workspace_id, c.tenant_id, c.user_id, c.visitor_id, c.is_bot
    ));
    RETURN NULL;
END
$$;

CREATE FUNCTION session_totals_truncated_to_rollups() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE tenant_totals, tenant_visitors, user_totals;
    RETURN NULL;
END
$$;

CREATE TRIGGER session_totals_added_to_rollups AFTER INSERT ON session_totals
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION session_totals_added_to_rollups();
CREATE TRIGGER session_totals_removed_to_rollups AFTER DELETE ON session_totals
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION session_totals_removed_to_rollups();
CREATE TRIGGER session_totals_updated_to_rollups AFTER UPDATE ON session_totals
    REFERENCING OLD TABLE AS removed NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION session_totals_updated_to_rollups();
CREATE TRIGGER session_totals_truncated_to_rollups AFTER TRUNCATE ON session_totals
    FOR EACH STATEMENT EXECUTE FUNCTION session_totals_truncated_to_rollups();

-- The totals stored so far (creating the triggers locked the totals against writes until the migration commits, as
-- in 0025), grouped as the triggers add them up.
INSERT INTO tenant_visitors (workspace_id, tenant_id, visitor_id, people_rows, bot_rows)
SELECT workspace_id, tenant_id, visitor_id, count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot)
FROM session_totals
WHERE tenant_id IS NOT NULL AND visitor_id IS NOT NULL
GROUP BY workspace_id, tenant_id, visitor_id;

INSERT INTO tenant_totals (workspace_id, tenant_id, people_rows, bot_rows, people_durations, bot_durations, people_events,
                           bot_events, people_page_views, bot_page_views, people_visitors, visitors)
SELECT s.workspace_id, s.tenant_id,
       count(*) FILTER (WHERE NOT s.is_bot), count(*) FILTER (WHERE s.is_bot),
       coalesce(sum((c).duration) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum((c).duration) FILTER (WHERE s.is_bot), 0),
       coalesce(sum(s.events) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum(s.events) FILTER (WHERE s.is_bot), 0),
       coalesce(sum(s.page_views) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum(s.page_views) FILTER (WHERE s.is_bot), 0),
       coalesce(min(v.people_visitors), 0), coalesce(min(v.visitors), 0)
FROM (SELECT s.*, session_totals_change_of(s, 1) AS c FROM session_totals s WHERE s.tenant_id IS NOT NULL) s
LEFT JOIN (
    SELECT workspace_id, tenant_id, count(*) FILTER (WHERE people_rows > 0) AS people_visitors, count(*) AS visitors
    FROM tenant_visitors
    GROUP BY workspace_id, tenant_id
) v ON v.workspace_id = s.workspace_id AND v.tenant_id = s.tenant_id
GROUP BY s.workspace_id, s.tenant_id;

INSERT INTO user_totals (workspace_id, user_id, people_rows, bot_rows, people_durations, bot_durations, people_clicks, bot_clicks,
                         people_events, bot_events)
SELECT s.workspace_id, s.user_id,
       count(*) FILTER (WHERE NOT s.is_bot), count(*) FILTER (WHERE s.is_bot),
       coalesce(sum((c).duration) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum((c).duration) FILTER (WHERE s.is_bot), 0),
       coalesce(sum(s.clicks) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum(s.clicks) FILTER (WHERE s.is_bot), 0),
       coalesce(sum(s.events) FILTER (WHERE NOT s.is_bot), 0), coalesce(sum(s.events) FILTER (WHERE s.is_bot), 0)
FROM (SELECT s.*, session_totals_change_of(s, 1) AS c FROM session_totals s WHERE s.user_id IS NOT NULL) s
GROUP BY s.workspace_id, s.user_id;

-- What merging the sessions with several rows of totals (`sessions_with_several_rows`, 0019/0025) changes in sums
-- that count each row as a session, per tenant (`per_user` false) or per user (true): a session fewer per extra row
-- of the tenant or user, and the session's duration (its events' durations, else first to last event of those rows)
-- in place of the rows' own. The sessions' rows are looked up by key. A single SELECT that the planner inlines, with
-- the caller's rights (row-level security applies as on the tables); the pipes reading the totals above add it.
CREATE FUNCTION sessions_merged_apart(workspace bigint, include_bots boolean, per_user boolean)
RETURNS TABLE (key text, extra_rows bigint, duration_change double precision)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT m.key, sum(m.rows - 1)::bigint, sum(m.duration - m.durations)
    FROM (
        SELECT CASE WHEN per_user THEN t.user_id ELSE t.tenant_id END AS key, t.session_id, count(*) AS rows,
               sum(coalesce(t.duration_sum, extract(epoch FROM t.last_time - t.first_time))) AS durations,
               coalesce(sum(t.duration_sum), extract(epoch FROM max(t.last_time) - min(t.first_time))) AS duration
        FROM sessions_with_several_rows(workspace) s
        JOIN session_totals t ON t.workspace_id = workspace AND t.session_id = s.session_id
        WHERE CASE WHEN per_user THEN t.user_id ELSE t.tenant_id END IS NOT NULL AND (include_bots OR NOT t.is_bot)
        GROUP BY 1, 2
    ) m
    GROUP BY m.key
$$;

-- Row-level security as on the session totals (0015) on the tenants' tables (the summary looks the visitors of events
-- without a session up in `tenant_visitors`). A user's totals span tenants: a tenant's reader sees none.
DO $$
DECLARE
    role_name text;
    table_name text;
BEGIN
    FOREACH table_name IN ARRAY ARRAY['tenant_totals', 'tenant_visitors', 'user_totals'] LOOP
        FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
            EXECUTE format('GRANT SELECT ON %I TO %I', table_name, role_name);
        END LOOP;
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', table_name);
        EXECUTE format(
            'CREATE POLICY workspace_reader ON %I FOR SELECT TO analytics_reader '
            'USING (workspace_id = current_setting(''app.workspace_id'')::bigint)',
            table_name
        );
    END LOOP;
    FOREACH table_name IN ARRAY ARRAY['tenant_totals', 'tenant_visitors'] LOOP
        EXECUTE format(
            'CREATE POLICY tenant_reader ON %I FOR SELECT TO analytics_tenant_reader '
            'USING (workspace_id = current_setting(''app.workspace_id'')::bigint AND tenant_id = current_setting(''app.tenant_id''))',
            table_name
        );
    END LOOP;
    CREATE POLICY tenant_reader ON user_totals FOR SELECT TO analytics_tenant_reader USING (false);
END
$$;
