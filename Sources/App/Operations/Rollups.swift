import Postgres

/// Every rollup the writer keeps beside the events, rebuilt from a workspace's events: what
/// `workspace rebuild-rollups` runs after events were written around the server (SQL or `COPY` straight into
/// `events`). Each rollup is rebuilt in a transaction of its own, one after another.
public struct Rollups: Sendable {
    /// The rows each rollup of the workspace holds once rebuilt.
    public struct Rebuilt: Sendable, Equatable {
        public var visitorHours: Int
        public var visitorDays: Int
        public var sessionTotals: Int
    }

    let pool: PostgresPool

    public init(pool: PostgresPool) { self.pool = pool }

    /// Rebuilds the workspace's visitor-hours, visitor-days with its event counts, and session totals.
    public func rebuild(workspaceID: Int) async throws -> Rebuilt {
        Rebuilt(
            visitorHours: try await VisitorHours(pool: pool).rebuild(workspaceID: workspaceID),
            visitorDays: try await VisitorDays(pool: pool).rebuild(workspaceID: workspaceID),
            sessionTotals: try await SessionTotals(pool: pool).rebuild(workspaceID: workspaceID)
        )
    }
}
