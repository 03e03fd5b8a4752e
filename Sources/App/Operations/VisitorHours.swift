import Foundation
import Postgres

/// Recounts `visitor_hours` (migration 0011) from the events, for what the writer did not record as it stored them.
///
/// The writer keeps the table as it stores events; events written around it (SQL or `COPY` straight into `events`,
/// or stored by a replica older than migration 0011 during an upgrade) have no visitor-hours until `rebuild` runs,
/// and data retention recounts the hour whose older events it deleted. Each call is one transaction: readers see
/// the old rows until it commits; the writer's inserts of the same visitor-hours wait for it, then find them there.
public struct VisitorHours: Sendable {
    let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Rebuilds all of a workspace's visitor-hours; returns how many it has. (Every event carries its visitor's
    /// number: the writer writes it, and a trigger numbers events stored around the writer, migration 0014.)
    @discardableResult
    public func rebuild(workspaceID: Int) async throws -> Int {
        try await pool.withTransaction { connection in
            try await Self.recount(workspaceID: workspaceID, hours: nil, on: connection)
            return try await connection.query("SELECT count(*) FROM visitor_hours WHERE workspace_id = \(workspaceID)")[0].decode(Int.self, at: 0)
        }
    }

    /// Recounts a workspace's visitor-hours of the whole hours in `hours` from the events left in them (data
    /// retention, after deleting the older events of an hour). Their visitors are numbered already.
    public func recount(workspaceID: Int, hours: Range<Date>) async throws {
        try await pool.withTransaction { connection in try await Self.recount(workspaceID: workspaceID, hours: hours, on: connection) }
    }

    /// `hours` nil: all of the workspace's.
    private static func recount(workspaceID: Int, hours: Range<Date>?, on connection: PostgresConnection) async throws {
        let from = hours?.lowerBound
        let to = hours?.upperBound
        try await connection.execute(
            """
            DELETE FROM visitor_hours
            WHERE workspace_id = \(workspaceID) AND (\(from)::timestamptz IS NULL OR hour >= \(from)) AND (\(to)::timestamptz IS NULL OR hour < \(to))
            """
        )
        try await connection.execute(
            """
            INSERT INTO visitor_hours (workspace_id, hour, tenant_id, is_bot, visitor_id)
            SELECT DISTINCT e.workspace_id, date_trunc('hour', e.time, 'UTC'), e.tenant_id, e.is_bot, e.visitor_id
            FROM events e
            WHERE e.visitor_id IS NOT NULL AND e.workspace_id = \(workspaceID) AND (\(from)::timestamptz IS NULL OR e.time >= \(from)) AND (\(to)::timestamptz IS NULL OR e.time < \(to))
            ON CONFLICT DO NOTHING
            """
        )
    }
}
