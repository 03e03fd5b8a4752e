import Foundation
import Postgres

/// Recounts `session_totals` (migration 0015) from the events, for what the writer did not add up as it stored them.
///
/// The writer adds each batch's events to their sessions' rows; events written around it (SQL or `COPY` straight
/// into `events`, or stored by a replica older than migration 0015 during an upgrade) count only once `rebuild`
/// runs, and data retention recounts the sessions whose older events it deleted. A row is recounted by the view
/// `session_totals_of_events`, which computes what the writer adds up. Each call is one transaction per batch: the
/// writer's additions to the same sessions wait for it, then add to the recounted rows.
public struct SessionTotals: Sendable {
    let pool: PostgresPool
    var batchSize = 5000

    public init(pool: PostgresPool) { self.pool = pool }

    /// Rebuilds all of a workspace's session totals; returns how many rows it has.
    @discardableResult
    public func rebuild(workspaceID: Int) async throws -> Int {
        try await pool.withTransaction { connection in
            try await connection.execute("DELETE FROM session_totals WHERE workspace_id = \(workspaceID)")
            try await connection.execute("INSERT INTO session_totals SELECT * FROM session_totals_of_events WHERE workspace_id = \(workspaceID)")
            return try await connection.query("SELECT count(*) FROM session_totals WHERE workspace_id = \(workspaceID)")[0].decode(Int.self, at: 0)
        }
    }

    /// Recounts the sessions of a workspace that began before `cutoff` from the events left (data retention, after
    /// deleting the events before `cutoff`): sessions wholly deleted lose their rows, sessions cut keep the rest.
    /// `batchSize` sessions per transaction.
    public func recount(workspaceID: Int, sessionsBefore cutoff: Date) async throws {
        // Sessions in id order, from after the last batch's: a session recounted with events still before `cutoff`
        // (written meanwhile, or a TimescaleDB chunk not dropped yet) is not taken again.
        var after = ""
        while true {
            let sessions = try await pool.withTransaction { connection -> [String] in
                let sessions = try await connection.query(
                    """
                    SELECT DISTINCT session_id FROM session_totals
                    WHERE workspace_id = \(workspaceID) AND first_time < \(cutoff) AND session_id > \(after)
                    ORDER BY session_id LIMIT \(batchSize)
                    """
                ).decode(String.self)
                guard !sessions.isEmpty else { return [] }
                try await connection.execute(
                    "DELETE FROM session_totals WHERE workspace_id = \(workspaceID) AND session_id = ANY(\(sessions))"
                )
                try await connection.execute(
                    """
                    INSERT INTO session_totals
                    SELECT * FROM session_totals_of_events WHERE workspace_id = \(workspaceID) AND session_id = ANY(\(sessions))
                    """
                )
                return sessions
            }
            guard let last = sessions.last else { return }
            after = last
        }
    }
}
