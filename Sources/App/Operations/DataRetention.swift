import Foundation
import Logging
import Postgres
import ServiceLifecycle

/// Drops data older than its retention window (SPEC section 7): events after `RETENTION_DAYS` (with their counts,
/// their visitor-hours, their sessions' totals and the de-duplication ids first seen that long ago), quarantined
/// rows after `QUARANTINE_RETENTION_DAYS`.
///
/// Where `events` is a TimescaleDB hypertable, TimescaleDB's own retention policy drops whole chunks. On plain
/// PostgreSQL this service deletes in batches of a few thousand rows, each in its own short transaction, so no
/// lock is held for long and ingest goes on meanwhile. It runs at start-up and then every `interval`.
public struct DataRetention: Service {
    let pool: PostgresPool
    /// Days events are kept; `nil` keeps them for ever.
    let eventDays: Int?
    /// Days quarantined rows are kept; `nil` keeps them for ever.
    let quarantineDays: Int?
    var interval: Duration = .seconds(3600)
    var batchSize = 5000
    let logger: Logger

    public init(pool: PostgresPool, eventDays: Int?, quarantineDays: Int?, logger: Logger) {
        self.pool = pool
        self.eventDays = eventDays
        self.quarantineDays = quarantineDays
        self.logger = logger
    }

    /// What one pass deleted.
    public struct Report: Sendable, Equatable {
        public var events = 0
        public var eventIDs = 0
        public var quarantined = 0
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            // TimescaleDB's policy is set once; its own background job then drops old chunks.
            var hypertable: Bool?
            while !Task.isCancelled {
                do {
                    if hypertable == nil {
                        let isHypertable = try await self.hypertable()
                        if isHypertable { try await applyTimescalePolicy() }
                        hypertable = isHypertable
                    }
                    let report = try await deleteExpired(eventsToo: hypertable == false)
                    if report != Report() {
                        logger.info(
                            "data retention",
                            metadata: ["events": "\(report.events)", "event_ids": "\(report.eventIDs)", "quarantined": "\(report.quarantined)"]
                        )
                    }
                } catch {
                    logger.warning("data retention failed; retrying later", metadata: ["error": "\(String(reflecting: error))"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }

    /// One pass: sets TimescaleDB's policy, or deletes what is past each window.
    @discardableResult
    public func runOnce() async throws -> Report {
        let hypertable = try await hypertable()
        if hypertable { try await applyTimescalePolicy() }
        return try await deleteExpired(eventsToo: !hypertable)
    }

    /// Replaces TimescaleDB's retention policy on `events` by one for `eventDays` (or none).
    private func applyTimescalePolicy() async throws {
        try await pool.execute("SELECT remove_retention_policy('events', if_exists => true)")
        if let eventDays {
            try await pool.execute("SELECT add_retention_policy('events', make_interval(days => \(eventDays)::int))")
        }
    }

    /// Deletes in batches what is past each window: events (unless TimescaleDB drops them), old event ids and
    /// quarantined rows.
    private func deleteExpired(eventsToo: Bool) async throws -> Report {
        var report = Report()
        let workspaces = eventDays == nil ? [] : try await pool.query("SELECT id FROM workspaces ORDER BY id").decode((Int).self)
        if eventsToo, let eventDays {
            let cutoff = Date().addingTimeInterval(-Double(eventDays) * 86_400)
            for workspace in workspaces {
                // The same statement takes the deleted rows off `event_counts`, so totals stay exact.
                report.events += try await deleteInBatches(
                    """
                    WITH gone AS (
                        DELETE FROM events
                        WHERE ctid = ANY(ARRAY(SELECT ctid FROM events WHERE workspace_id = \(workspace) AND time < \(cutoff) LIMIT \(batchSize)))
                        RETURNING workspace_id, COALESCE(tenant_id, '') AS tenant_id, (time AT TIME ZONE 'UTC')::date AS day, event_type, is_bot
                    ), counted AS (
                        SELECT workspace_id, tenant_id, day, event_type, is_bot, count(*) AS events FROM gone GROUP BY 1, 2, 3, 4, 5
                    ), updated AS (
                        UPDATE event_counts c SET events = c.events - counted.events
                        FROM counted
                        WHERE c.workspace_id = counted.workspace_id AND c.tenant_id = counted.tenant_id AND c.day = counted.day
                          AND c.event_type = counted.event_type AND c.is_bot = counted.is_bot
                    )
                    SELECT COALESCE(sum(events), 0)::bigint FROM counted
                    """,
                    counted: true
                )
            }
        }
        if let eventDays {
            let cutoff = Date().addingTimeInterval(-Double(eventDays) * 86_400)
            if eventsToo {
                try await pool.execute("DELETE FROM event_counts WHERE events <= 0")
                try await trimRollups(of: workspaces, before: cutoff, recount: true)
            } else {
                // TimescaleDB drops whole one-day chunks once their end is past the cutoff; their counts go with them.
                try await pool.execute("DELETE FROM event_counts WHERE (day + 1)::timestamp <= (\(cutoff)::timestamptz AT TIME ZONE 'UTC')")
                let day = Date(timeIntervalSince1970: (cutoff.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
                try await trimRollups(of: workspaces, before: day, recount: false)
            }
            report.eventIDs = try await deleteInBatches(
                "DELETE FROM event_ids WHERE ctid = ANY(ARRAY(SELECT ctid FROM event_ids WHERE first_seen < \(cutoff) LIMIT \(batchSize)))"
            )
        }
        if let quarantineDays {
            let cutoff = Date().addingTimeInterval(-Double(quarantineDays) * 86_400)
            report.quarantined = try await deleteInBatches(
                "DELETE FROM quarantine WHERE ctid = ANY(ARRAY(SELECT ctid FROM quarantine WHERE received_at < \(cutoff) LIMIT \(batchSize)))"
            )
        }
        return report
    }

    /// Deletes the visitor-hours (`visitor_hours`) of the hours and the visitor-days (`visitor_days`) of the UTC days
    /// that end by `end`, workspace by workspace (the indexes lead with it), and recounts the session totals
    /// (`session_totals`) of the sessions that began before `end` from the events left. With `recount`, events
    /// before `end` are gone: the hour and the day `end` falls in are recounted from the events left in them.
    private func trimRollups(of workspaces: [Int], before end: Date, recount: Bool) async throws {
        let hour = Date(timeIntervalSince1970: (end.timeIntervalSince1970 / 3600).rounded(.down) * 3600)
        let day = Date(timeIntervalSince1970: (end.timeIntervalSince1970 / 86_400).rounded(.down) * 86_400)
        for workspace in workspaces {
            _ = try await deleteInBatches(
                """
                DELETE FROM visitor_hours
                WHERE ctid = ANY(ARRAY(SELECT ctid FROM visitor_hours WHERE workspace_id = \(workspace) AND hour < \(hour) LIMIT \(batchSize)))
                """
            )
            if recount, end > hour {
                try await VisitorHours(pool: pool).recount(workspaceID: workspace, hours: hour..<hour.addingTimeInterval(3600))
            }
            _ = try await deleteInBatches(
                """
                DELETE FROM visitor_days
                WHERE ctid = ANY(ARRAY(
                    SELECT ctid FROM visitor_days WHERE workspace_id = \(workspace) AND day < (\(day)::timestamptz AT TIME ZONE 'UTC')::date LIMIT \(batchSize)
                ))
                """
            )
            if recount, end > day {
                try await VisitorDays(pool: pool).recount(workspaceID: workspace, day: day)
            }
            try await SessionTotals(pool: pool).recount(workspaceID: workspace, sessionsBefore: end)
        }
    }

    /// Runs a batch delete until it deletes nothing; each batch is its own statement (and transaction).
    /// `counted`: the statement returns the number it deleted as its one value, rather than as its row count.
    private func deleteInBatches(_ statement: PostgresQuery, counted: Bool = false) async throws -> Int {
        var total = 0
        while true {
            let deleted = counted ? try await pool.query(statement)[0].decode(Int.self, at: 0) : try await pool.execute(statement)
            total += deleted
            if deleted < batchSize || Task.isCancelled { return total }
        }
    }

    /// Whether `events` is a TimescaleDB hypertable.
    private func hypertable() async throws -> Bool {
        let rows = try await pool.query(
            """
            SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')
               AND to_regclass('timescaledb_information.hypertables') IS NOT NULL
            """
        )
        guard try rows[0].decode(Bool.self, at: 0) else { return false }
        return try await pool.query(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'events')"
        )[0].decode(Bool.self, at: 0)
    }
}
