-- The sessions of a workspace that have several rows of totals (`session_totals`, 0015): those whose events name
-- several tenants, users (a visitor who logs in) or bot flags. `tenant_activity_summary`, `assign_clusters` and
-- `aggregate_user_features` sum each tenant's or user's rows as if every row were a session, then merge only these
-- apart: grouping every session first took most of their time (211,000 sessions at a million events).
--
-- Read in key order from the key index alone (an index-only scan: the columns are the key's) and grouped as they
-- come: asked without the ORDER BY in the sub-select, the planner hashes every session instead (0.6 s against
-- 0.1–0.15 s at a million events, and it spilled to disk at ten million). Whatever window a caller sums, it reads
-- every session of the workspace: a superset for any window, which merging leaves unchanged (a session among them
-- with one row in the window merges into itself). A single SELECT: the planner inlines it into the calling query,
-- which runs with the caller's rights (row-level security applies), so a caller's condition that is false for the
-- whole query (`WHERE :from_date IS NULL`) skips the read.
CREATE FUNCTION sessions_with_several_rows(workspace bigint)
RETURNS TABLE (session_id text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT k.session_id
    FROM (
        SELECT t.session_id FROM session_totals t WHERE t.workspace_id = workspace ORDER BY t.session_id
    ) k
    GROUP BY k.session_id
    HAVING count(*) > 1
$$;
