-- What each session did, kept by the writer in the transaction that stores the events, for the pipes that sum
-- sessions over long windows: `tenant_activity_summary` and `aggregate_user_features` read a row per session instead
-- of every event of every session (a month of the benchmark's traffic: a million events, 220,000 sessions).
--
-- One row per workspace, session, tenant, user and bot flag (a session is one row but where its events name
-- several tenants or users): its events, page views, clicks (the events' clicks, else one per click event), the sum
-- of its events' durations (NULL when none carries one), its first and last event, and the latest country named
-- with the time it was named. Events without a session have no row. The writer adds each batch's events to their
-- rows (ON CONFLICT … DO UPDATE, in key order); the key never changes, and a page keeps a fifth free, so most
-- updates are HOT (no new index entry): 70 % where `bench/run` sends the same 1,000 events ten times. A query over a
-- window reads the rows of the sessions inside it and recomputes from the events those that cross one of its ends. Events written around the writer have no totals
-- until `workspace rebuild-rollups` runs; data retention deletes the rows of the sessions it deleted and recounts
-- those it cut.
CREATE TABLE session_totals (
    workspace_id integer NOT NULL,
    session_id text NOT NULL,
    tenant_id text,
    user_id text,
    is_bot boolean NOT NULL,
    visitor_id bigint,
    events integer NOT NULL,
    page_views integer NOT NULL,
    clicks bigint NOT NULL,
    duration_sum double precision,
    first_time timestamptz NOT NULL,
    last_time timestamptz NOT NULL,
    country text,
    country_time timestamptz
) WITH (fillfactor = 80);

-- The one index: the key, which the writer's upserts search.
CREATE UNIQUE INDEX session_totals_key ON session_totals (workspace_id, session_id, tenant_id, user_id, is_bot) NULLS NOT DISTINCT;

-- The totals of a set of events (a session's, grouped by the key): the rebuild and data retention use it, so the
-- two compute what the writer adds up. The latest country: of the events at the latest time naming one, the least.
CREATE VIEW session_totals_of_events WITH (security_invoker = true) AS
SELECT e.workspace_id::integer AS workspace_id, e.session_id, e.tenant_id, e.user_id, e.is_bot,
       max(e.visitor_id) AS visitor_id,
       count(*)::integer AS events,
       (count(*) FILTER (WHERE e.event_type IN ('page_view', 'pageview')))::integer AS page_views,
       sum(coalesce(e.clicks, CASE WHEN e.event_type = 'click' THEN 1 ELSE 0 END))::bigint AS clicks,
       sum(e.duration) AS duration_sum,
       min(e.time) AS first_time,
       max(e.time) AS last_time,
       (array_agg(e.country ORDER BY e.time DESC, e.country) FILTER (WHERE e.country IS NOT NULL))[1] AS country,
       max(e.time) FILTER (WHERE e.country IS NOT NULL) AS country_time
FROM events e
WHERE e.session_id IS NOT NULL
GROUP BY e.workspace_id, e.session_id, e.tenant_id, e.user_id, e.is_bot;

INSERT INTO session_totals SELECT * FROM session_totals_of_events;

-- Row-level security as on visitor_hours (0011).
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        EXECUTE format('GRANT SELECT ON session_totals TO %I', role_name);
    END LOOP;
END
$$;

ALTER TABLE session_totals ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspace_reader ON session_totals FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_reader ON session_totals FOR SELECT TO analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));
