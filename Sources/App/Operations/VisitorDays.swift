import Foundation
import Postgres

/// Recounts `visitor_days` and `event_counts` (migration 0016) from the events, for what the writer did not count as
/// it stored them.
///
/// The writer keeps both as it stores events; events written around it (SQL or `COPY` straight into `events`) count
/// only once `rebuild` runs, and data retention recounts the visitor-days of the day whose older events it deleted
/// (it takes deleted events off `event_counts` itself). Each call is one transaction: readers see the old rows until
/// it commits.
public struct VisitorDays: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Rebuilds all of a workspace's visitor-days and event counts; returns how many visitor-days it has.
    @discardableResult
    public func rebuild(workspaceID: Int) async throws -> Int {
        try await pool.withTransaction { connection in
            try await Self.recount(workspaceID: workspaceID, day: nil, on: connection)
            try await connection.execute("DELETE FROM event_counts WHERE workspace_id = \(workspaceID)")
            try await connection.execute(
                """
                INSERT INTO event_counts (workspace_id, tenant_id, day, event_type, is_bot, events)
                SELECT workspace_id, COALESCE(tenant_id, ''), (time AT TIME ZONE 'UTC')::date, event_type, is_bot, count(*)
                FROM events
                WHERE workspace_id = \(workspaceID)
                GROUP BY 1, 2, 3, 4, 5
                """
            )
            return try await connection.query("SELECT count(*) FROM visitor_days WHERE workspace_id = \(workspaceID)")[0].decode(Int.self, at: 0)
        }
    }

    /// Recounts a workspace's visitor-days of the UTC day that begins at `day` from the events left in it (data
    /// retention, after deleting the day's older events).
    public func recount(workspaceID: Int, day: Date) async throws {
        try await pool.withTransaction { connection in try await Self.recount(workspaceID: workspaceID, day: day, on: connection) }
    }

    /// `day` nil: all of the workspace's.
    private static func recount(workspaceID: Int, day: Date?, on connection: PostgresConnection) async throws {
        let end = day?.addingTimeInterval(86_400)
        try await connection.execute(
            """
            DELETE FROM visitor_days
            WHERE workspace_id = \(workspaceID) AND (\(day)::timestamptz IS NULL OR day = (\(day)::timestamptz AT TIME ZONE 'UTC')::date)
            """
        )
        try await connection.execute(
            """
            INSERT INTO visitor_days (workspace_id, event_type, day, visitor_id, tenant_id, is_bot)
            SELECT DISTINCT e.workspace_id, e.event_type, (e.time AT TIME ZONE 'UTC')::date, e.visitor_id, e.tenant_id, e.is_bot
            FROM events e
            WHERE e.visitor_id IS NOT NULL AND e.workspace_id = \(workspaceID)
              AND (\(day)::timestamptz IS NULL OR e.time >= \(day)) AND (\(end)::timestamptz IS NULL OR e.time < \(end))
            ON CONFLICT DO NOTHING
            """
        )
    }
}
