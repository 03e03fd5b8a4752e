-- Workspace and tenant isolation enforced by PostgreSQL rather than by each query.
--
-- Every read made for an API request runs in a read-only transaction that sets `app.workspace_id` (and, for a
-- caller bound to a tenant, `app.tenant_id`) and switches to one of two roles (see ReadAccess.swift):
--   analytics_reader         sees the rows of one workspace;
--   analytics_tenant_reader  sees the rows of one tenant of one workspace.
-- Neither can bypass row-level security, so a query that forgets its `WHERE workspace_id = …` or
-- `tenant_id = …` still sees only the caller's rows. When a setting is missing, `current_setting` raises an
-- error: a read path that skips it fails instead of reading everything.
--
-- Two roles rather than one policy with `current_setting('app.tenant_id') = '' OR tenant_id = …`: the planner
-- cannot evaluate that OR when it plans, estimates it as highly selective and picks nested loops that turned
-- a 0.3 s funnel into minutes (EXPLAIN ANALYZE over a million events). Each role's policy is a plain equality.
--
-- The tables' owner (the server's own login, which writes events and runs migrations) is not subject to the
-- policies. Roles are shared by every database of a server, so they may already exist.

DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = role_name) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT NOBYPASSRLS', role_name);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                -- Created at the same moment by the migration of another database on this server.
                NULL;
            END;
        END IF;
        IF NOT pg_has_role(current_user, role_name, 'MEMBER') THEN
            EXECUTE format('GRANT %I TO %I', role_name, current_user);
        END IF;
        EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), role_name);
        EXECUTE format('GRANT SELECT ON events, user_features, quarantine TO %I', role_name);
    END LOOP;
END
$$;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_features ENABLE ROW LEVEL SECURITY;
ALTER TABLE quarantine ENABLE ROW LEVEL SECURITY;

CREATE POLICY workspace_reader ON events FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_reader ON events FOR SELECT TO analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));

CREATE POLICY workspace_reader ON user_features FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_reader ON user_features FOR SELECT TO analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));

-- Quarantined rows have no tenant of their own (they did not parse): a tenant's reader has no policy, so sees none.
CREATE POLICY workspace_reader ON quarantine FOR SELECT TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint);
