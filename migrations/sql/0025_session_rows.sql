-- How many rows of totals each session has (`session_totals`, 0015), kept by triggers on those totals, so that the
-- sessions with several rows (whose events name several tenants, users or bot flags) are found without reading every
-- session. `sessions_with_several_rows` (0019) read the totals' key index whole to find them, in the three pipes that
-- merge them apart (`tenant_activity_summary`, `aggregate_user_features`, and `assign_clusters` through
-- `user_session_features`, 0021): 70–75 ms of each at a million events, 0.8–1.5 s at ten million, for the few
-- sessions that have several rows (none in the benchmark's traffic). It now reads them from a partial index of this
-- table. In psql, the same rows: `tenant_activity_summary` 290–435 → 217–245 ms and `aggregate_user_features`
-- 453–467 → 378–423 ms at a million events; 3.4–3.9 → 2.5–2.8 s and 3.7–4.4 → 2.8–2.9 s at ten million. Over HTTP
-- (release server, the function's two bodies alternated in one database, a noisy hour): 3.6–5.0 → 3.0–3.5 s and
-- 4.7–5.5 → 3.3–4.0 s at ten million; at a million, 455–460 → 318–345 ms and 693–750 → 552–662 ms in two rounds of
-- three, equal in the first. Ingest (`demo-data`, a million events, alternating) moved within its noise: 40.2 and
-- 40.6 s before, 35.0 and 39.5 s after.
--
-- A row per session of a workspace with its count of rows of totals. Statement triggers add each statement's new rows
-- of totals and subtract its deleted ones: the writer's upserts (only the rows they insert: an update leaves the
-- count), `workspace rebuild-rollups` and data retention's recount (which delete and insert), and SQL run by hand
-- alike. A session's row goes when its count reaches zero. The key is the whole lock: two writers' transactions
-- adding the first rows of one session's tenants or users both upsert the session's row, and the second waits for
-- the first to commit and adds to its count, so no second row is missed (a check of the totals for another row of
-- the session would not see the other transaction's row). Counts are upserted in key order, as the writer's other
-- rollups are, so that concurrent statements lock rows in the same order. The totals' key columns are never updated
-- (the writer updates only their sums; a rebuild deletes and inserts), so updates have no trigger.
CREATE TABLE session_rows (
    workspace_id integer NOT NULL,
    session_id text NOT NULL,
    rows integer NOT NULL,
    PRIMARY KEY (workspace_id, session_id)
);

-- The sessions with several rows, which is what is read.
CREATE INDEX session_rows_several ON session_rows (workspace_id, session_id) WHERE rows > 1;

CREATE FUNCTION session_rows_added() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO session_rows AS r (workspace_id, session_id, rows)
    SELECT a.workspace_id, a.session_id, count(*)
    FROM added a
    GROUP BY a.workspace_id, a.session_id
    ORDER BY a.workspace_id, a.session_id
    ON CONFLICT (workspace_id, session_id) DO UPDATE SET rows = r.rows + EXCLUDED.rows;
    RETURN NULL;
END
$$;

-- The deleted rows are subtracted in the same key order as rows are added, then the sessions left without a row go.
CREATE FUNCTION session_rows_removed() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    INSERT INTO session_rows AS r (workspace_id, session_id, rows)
    SELECT d.workspace_id, d.session_id, -count(*)
    FROM removed d
    GROUP BY d.workspace_id, d.session_id
    ORDER BY d.workspace_id, d.session_id
    ON CONFLICT (workspace_id, session_id) DO UPDATE SET rows = r.rows + EXCLUDED.rows;
    DELETE FROM session_rows r
    USING (SELECT DISTINCT d.workspace_id, d.session_id FROM removed d) d
    WHERE r.workspace_id = d.workspace_id AND r.session_id = d.session_id AND r.rows <= 0;
    RETURN NULL;
END
$$;

CREATE FUNCTION session_rows_truncated() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
    TRUNCATE session_rows;
    RETURN NULL;
END
$$;

CREATE TRIGGER session_rows_added AFTER INSERT ON session_totals
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION session_rows_added();
CREATE TRIGGER session_rows_removed AFTER DELETE ON session_totals
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION session_rows_removed();
CREATE TRIGGER session_rows_truncated AFTER TRUNCATE ON session_totals
    FOR EACH STATEMENT EXECUTE FUNCTION session_rows_truncated();

-- The totals stored so far. The migration is one transaction, and creating the triggers above locked the totals
-- against writes until it commits: a writer still running the previous version waits, and its rows then fire them.
INSERT INTO session_rows (workspace_id, session_id, rows)
SELECT workspace_id, session_id, count(*) FROM session_totals GROUP BY workspace_id, session_id;

-- Row-level security as on the totals (0015): a tenant's reader sees the sessions that have a row of its tenant (the
-- count is of every tenant's rows: the sessions returned are then a superset of those with several rows of its
-- tenant, which merging leaves unchanged, see 0019).
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        EXECUTE format('GRANT SELECT ON session_rows TO %I', role_name);
    END LOOP;
END
$$;

ALTER TABLE session_rows ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspace_reader ON session_rows FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_reader ON session_rows FOR SELECT TO analytics_tenant_reader
    USING (
        workspace_id = current_setting('app.workspace_id')::bigint
        AND EXISTS (
            SELECT 1 FROM session_totals t
            WHERE t.workspace_id = session_rows.workspace_id AND t.session_id = session_rows.session_id
        )
    );

-- As before (0019), a single SELECT that the planner inlines into the calling query, with the caller's rights.
CREATE OR REPLACE FUNCTION sessions_with_several_rows(workspace bigint)
RETURNS TABLE (session_id text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT r.session_id FROM session_rows r WHERE r.workspace_id = workspace AND r.rows > 1
$$;
