import Postgres

/// Rebuilds a workspace's `visitor_hours` (migration 0011) from its events, numbering visitors the table lacks.
///
/// The writer keeps the table as it stores events; events written around it (SQL or `COPY` straight into `events`,
/// or stored by a replica older than migration 0011 during an upgrade) have no visitor-hours until this runs.
/// One transaction: readers see the old rows until it commits; the writer's inserts of the same visitor-hours wait
/// for it, then find them there.
public struct VisitorHours: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Returns the number of visitor-hours the workspace has afterwards.
    @discardableResult
    public func rebuild(workspaceID: Int) async throws -> Int {
        try await pool.withTransaction { connection in
            try await connection.execute(
                """
                INSERT INTO visitors (workspace_id, visitor)
                SELECT workspace_id, coalesce(user_id, session_id)
                FROM events
                WHERE workspace_id = \(workspaceID) AND coalesce(user_id, session_id) IS NOT NULL
                GROUP BY 1, 2
                ORDER BY 2
                ON CONFLICT DO NOTHING
                """
            )
            try await connection.execute("DELETE FROM visitor_hours WHERE workspace_id = \(workspaceID)")
            try await connection.execute(
                """
                INSERT INTO visitor_hours (workspace_id, hour, tenant_id, is_bot, visitor_id)
                SELECT DISTINCT e.workspace_id, date_trunc('hour', e.time, 'UTC'), e.tenant_id, e.is_bot, v.id
                FROM events e
                JOIN visitors v ON v.workspace_id = e.workspace_id AND v.visitor = coalesce(e.user_id, e.session_id)
                WHERE e.workspace_id = \(workspaceID)
                ON CONFLICT DO NOTHING
                """
            )
            return try await connection.query("SELECT count(*) FROM visitor_hours WHERE workspace_id = \(workspaceID)")[0].decode(Int.self, at: 0)
        }
    }
}
