import Foundation
import Logging
import Postgres
import Prometheus

/// The schemas events arrive in: `/api/events` and the four datasources of `/v0/events?name=`.
public enum Datasource: String, Sendable, CaseIterable {
    /// `POST /api/events/` and `/api/events/batch` (seed 004).
    case api
    /// Seeds 000 and 002: the union of their fields, named as in `events`.
    case userEvents = "user_events"
    /// Seed 001: `properties` is a JSON string.
    case events
    /// Seed 003: `created_at` is the event time, `page_url` the URL, `event_data` a JSON string, `ip_address` the client.
    case userSessions = "user_sessions"
    /// Seed 002: per-user features, upserted into `user_features` rather than stored as events.
    case userFeatures = "user_features"

    /// The datasources of `/v0/events`.
    static let ingestible: [Datasource] = [.userEvents, .events, .userSessions, .userFeatures]

    /// Renames a row's fields to the names `EventNormalizer` reads.
    func mapFields(_ object: [String: JSONValue]) -> [String: JSONValue] {
        guard self == .userSessions else { return object }
        var mapped = object
        for (from, to) in [("page_url", "url"), ("event_data", "properties"), ("created_at", "timestamp"), ("ip_address", "ip")] {
            if let value = mapped.removeValue(forKey: from), mapped[to] == nil { mapped[to] = value }
        }
        mapped.removeValue(forKey: "updated_at")
        return mapped
    }
}

/// Counts of one ingest request.
public struct IngestSummary: Sendable, Equatable, Codable {
    /// Rows stored, plus rows whose `event_id` was already stored (the retry succeeded).
    public var successfulRows: Int
    public var quarantinedRows: Int

    public init(successfulRows: Int, quarantinedRows: Int) {
        self.successfulRows = successfulRows
        self.quarantinedRows = quarantinedRows
    }

    enum CodingKeys: String, CodingKey {
        case successfulRows = "successful_rows"
        case quarantinedRows = "quarantined_rows"
    }
}

/// The one ingest pipeline behind every front door: normalise → enrich → write (group commit) → quarantine the rest.
struct EventIngestor: Sendable {
    let writer: EventWriter
    let pool: PostgresPool
    let normalizer: EventNormalizer

    /// Longest raw line kept in quarantine.
    static let maxQuarantineLineBytes = 65_536

    init(writer: EventWriter, pool: PostgresPool, normalizer: EventNormalizer) {
        self.writer = writer
        self.pool = pool
        self.normalizer = normalizer
    }

    /// Stores the good rows, quarantines the others with their reasons, and returns the counts.
    func ingest(_ rows: [IngestRow], datasource: Datasource, origin: EventNormalizer.Origin) async throws -> IngestSummary {
        var quarantine: [(line: String, reason: String)] = []
        var stored = 0
        if datasource == .userFeatures {
            var features: [(row: UserFeatures, line: String)] = []
            for row in rows {
                switch row {
                case .invalid(let line, let reason): quarantine.append((line, reason))
                case .object(let object, let line):
                    switch UserFeatures.parse(object, tenant: origin.tenantID) {
                    case .valid(let parsed): features.append((parsed, IngestRow.text(of: object, line: line)))
                    case .invalid(let issues): quarantine.append((IngestRow.text(of: object, line: line), Self.describe(issues)))
                    }
                }
            }
            let written = try await UserFeatures.upsert(features.map(\.row), workspaceID: origin.workspaceID, pool: pool)
            for (index, wasWritten) in written.enumerated() where !wasWritten {
                quarantine.append((features[index].line, "user_id: this user belongs to another tenant"))
            }
            stored = written.count { $0 }
            writer.metrics?.ingestAccepted.increment(by: Int64(stored))
        } else {
            var records: [EventRecord] = []
            for row in rows {
                switch row {
                case .invalid(let line, let reason): quarantine.append((line, reason))
                case .object(let object, let line):
                    switch normalizer.normalize(datasource.mapFields(object), origin: origin) {
                    case .valid(let record): records.append(record)
                    case .invalid(let issues): quarantine.append((IngestRow.text(of: object, line: line), Self.describe(issues)))
                    }
                }
            }
            stored = try await writer.write(records).count
        }
        try await store(quarantine: quarantine, datasource: datasource, workspaceID: origin.workspaceID)
        return IngestSummary(successfulRows: stored, quarantinedRows: quarantine.count)
    }

    /// `duration: must be a number; timestamp: must be a time …`
    static func describe(_ issues: [APIError.ValidationIssue]) -> String {
        issues.map { "\($0.loc.last ?? "body"): \($0.msg)" }.joined(separator: "; ")
    }

    private func store(quarantine: [(line: String, reason: String)], datasource: Datasource, workspaceID: Int) async throws {
        guard !quarantine.isEmpty else { return }
        defer { writer.metrics?.ingestQuarantined.increment(by: Int64(quarantine.count)) }
        let lines = quarantine.map { entry -> String in
            var line = entry.line.replacingOccurrences(of: "\u{0}", with: "\\u0000")
            if line.utf8.count > Self.maxQuarantineLineBytes {
                line = String(decoding: Array(line.utf8.prefix(Self.maxQuarantineLineBytes)), as: UTF8.self) + "…"
            }
            return line
        }
        try await pool.execute(
            """
            INSERT INTO quarantine (workspace_id, datasource, error, line)
            SELECT \(workspaceID), \(datasource.rawValue), error, line FROM unnest(\(quarantine.map(\.reason)), \(lines)) AS q(error, line)
            """
        )
    }
}

/// A row of the `user_features` datasource (seed 002).
struct UserFeatures: Sendable {
    var userID: String
    var avgSessionDuration: Double?
    var totalSessions: Int?
    var avgClicksPerSession: Double?
    var mostVisitedPage: String?
    var mostUsedDevice: String?
    var country: String?
    var lastUpdated: Date?
    var clusterID: Int?
    var tenantID: String?

    static func parse(_ object: [String: JSONValue], tenant: String? = nil) -> Validated<UserFeatures> {
        var reader = FieldReader(object: object)
        let userID = reader.text("user_id")
        if userID == nil, reader.issues.isEmpty { reader.fail("user_id", "is required", type: "missing") }
        let features = UserFeatures(
            userID: userID ?? "",
            avgSessionDuration: reader.number("avg_session_duration"),
            totalSessions: reader.integer("total_sessions"),
            avgClicksPerSession: reader.number("avg_clicks_per_session"),
            mostVisitedPage: reader.text("most_visited_page"),
            mostUsedDevice: reader.text("most_used_device"),
            country: reader.text("country"),
            lastUpdated: reader.time(["last_updated"], now: Date(), maxFutureSkew: 86_400),
            clusterID: reader.integer("cluster_id"),
            tenantID: reader.tenant(bound: tenant)
        )
        return reader.issues.isEmpty ? .valid(features) : .invalid(reader.issues)
    }

    /// Inserts or replaces each user's row; returns, per row, whether it was written. A row of a tenant (from a
    /// tenant-bound token) does not replace a user of another tenant.
    static func upsert(_ rows: [UserFeatures], workspaceID: Int, pool: PostgresPool) async throws -> [Bool] {
        guard !rows.isEmpty else { return [] }
        return try await pool.withTransaction { connection in
            var written: [Bool] = []
            for row in rows {
                let count = try await connection.execute(
                    """
                    INSERT INTO user_features (workspace_id, user_id, tenant_id, avg_session_duration, total_sessions, avg_clicks_per_session,
                        most_visited_page, most_used_device, country, last_updated, cluster_id)
                    VALUES (\(workspaceID), \(row.userID), \(row.tenantID), \(row.avgSessionDuration), \(row.totalSessions)::int,
                        \(row.avgClicksPerSession), \(row.mostVisitedPage), \(row.mostUsedDevice), \(row.country),
                        coalesce(\(row.lastUpdated), now()), \(row.clusterID)::int)
                    ON CONFLICT (workspace_id, user_id) DO UPDATE SET
                        tenant_id = excluded.tenant_id,
                        avg_session_duration = excluded.avg_session_duration, total_sessions = excluded.total_sessions,
                        avg_clicks_per_session = excluded.avg_clicks_per_session, most_visited_page = excluded.most_visited_page,
                        most_used_device = excluded.most_used_device, country = excluded.country,
                        last_updated = excluded.last_updated, cluster_id = excluded.cluster_id
                    WHERE excluded.tenant_id IS NULL OR user_features.tenant_id IS NOT DISTINCT FROM excluded.tenant_id
                    """
                )
                written.append(count > 0)
            }
            return written
        }
    }
}
