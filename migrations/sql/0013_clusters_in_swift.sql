-- assign_clusters (seed 002) now recomputes each user's features from their events and stores them in
-- user_features before clustering them; k-means runs in the server (Sources/App/Pipes/KMeans.swift), which stores
-- the cluster ids. The reader roles may therefore insert rows of user_features and update their features, under the
-- same row-level security as their reads: a tenant's token writes only rows of its tenant.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        EXECUTE format(
            'GRANT INSERT (workspace_id, user_id, tenant_id, avg_session_duration, total_sessions, avg_clicks_per_session, '
            'most_visited_page, most_used_device, country, last_updated) ON user_features TO %I',
            role_name
        );
        EXECUTE format(
            'GRANT UPDATE (avg_session_duration, total_sessions, avg_clicks_per_session, most_visited_page, most_used_device, '
            'country) ON user_features TO %I',
            role_name
        );
    END LOOP;
END
$$;

CREATE POLICY workspace_inserter ON user_features FOR INSERT TO analytics_reader
    WITH CHECK (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_inserter ON user_features FOR INSERT TO analytics_tenant_reader
    WITH CHECK (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));

-- The k-means of migration 0006, in SQL, is replaced by the server's.
DROP FUNCTION analytics_assign_clusters(bigint, integer, text, integer);
DROP FUNCTION analytics_kmeans_distances();
