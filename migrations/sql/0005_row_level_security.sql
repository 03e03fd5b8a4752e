-- Workspace and tenant isolation enforced by PostgreSQL rather than by each query.
--
-- Every read made for an API request runs in a read-only transaction that sets `app.workspace_id` and
-- `app.tenant_id` ('' when the caller is not bound to a tenant) and switches to the role `analytics_reader`
-- (see ReadAccess.swift). That role cannot bypass row-level security, so a query that forgets its
-- `WHERE workspace_id = …` or `tenant_id = …` still sees only the caller's rows. When the settings are
-- missing, `current_setting` raises an error: a read path that skips them fails instead of reading everything.
--
-- The tables' owner (the server's own login, which writes events and runs migrations) is not subject to the
-- policies. Roles are shared by every database of a server, so the role may already exist.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'analytics_reader') THEN
        BEGIN
            CREATE ROLE analytics_reader NOLOGIN NOINHERIT NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            -- Created at the same moment by the migration of another database on this server.
            NULL;
        END;
    END IF;
    IF NOT pg_has_role(current_user, 'analytics_reader', 'MEMBER') THEN
        EXECUTE format('GRANT analytics_reader TO %I', current_user);
    END IF;
END
$$;

DO $$
BEGIN
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO analytics_reader', current_schema());
END
$$;
GRANT SELECT ON events, user_features, quarantine TO analytics_reader;

ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ALTER TABLE user_features ENABLE ROW LEVEL SECURITY;
ALTER TABLE quarantine ENABLE ROW LEVEL SECURITY;

CREATE POLICY reader_isolation ON events FOR SELECT TO analytics_reader
    USING (
        workspace_id = current_setting('app.workspace_id')::bigint
        AND (current_setting('app.tenant_id') = '' OR tenant_id = current_setting('app.tenant_id'))
    );

CREATE POLICY reader_isolation ON user_features FOR SELECT TO analytics_reader
    USING (
        workspace_id = current_setting('app.workspace_id')::bigint
        AND (current_setting('app.tenant_id') = '' OR tenant_id = current_setting('app.tenant_id'))
    );

-- Quarantined rows have no tenant of their own (they did not parse): a tenant-bound caller sees none.
CREATE POLICY reader_isolation ON quarantine FOR SELECT TO analytics_reader
    USING (
        workspace_id = current_setting('app.workspace_id')::bigint
        AND current_setting('app.tenant_id') = ''
    );
