import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Postgres

/// Event ingestion and reading: `/api/events` (seed 004) and `/v0/events`, `/v0/datasources/<name>_quarantine` (seeds 000–003).
struct EventsController: Sendable {
    let ingestor: EventIngestor
    let pool: PostgresPool
    let maxBodySize: Int
    /// Zone of bucket boundaries when a request gives no `tz` (`DB_TIMEZONE`).
    var defaultTimeZone = "UTC"
    let v0Auth: V0Authenticator
    /// `REQUIRE_INGEST_TOKEN`: `/api/events` posts need a token too.
    let requireIngestToken: Bool

    func addRoutes(to router: Router<AppRequestContext>) {
        router.post("/api/events", use: create)
        router.post("/api/events/batch", use: createBatch)
        router.get("/api/events", use: aggregates)
        router.get("/api/events/{id}", use: show)
        router.post("/v0/events", use: ingestV0)
        router.get("/v0/datasources/{name}", use: quarantine)
    }

    // MARK: /api/events

    /// `POST /api/events/`: one event → 201 with the stored event (200 with the stored one when its `event_id` is known).
    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        try authorizeAPIIngest(request)
        let rows = try IngestBody.rows(from: try await body(request))
        guard rows.count == 1, case .object(let object, _) = rows[0] else {
            throw APIError.badRequest("send one JSON object; use /api/events/batch for several")
        }
        let origin = origin(request, context: context, workspaceID: Workspace.defaultID, datasource: .api)
        let record: EventRecord
        switch ingestor.normalizer.normalize(object, origin: origin) {
        case .valid(let normalized): record = normalized
        case .invalid(let issues): throw APIError.validation(issues)
        }
        switch try await ingestor.writer.write([record]).first {
        case .stored(let event):
            return try EventResponse(event).response(status: .created, context: context)
        case .duplicate(let eventID):
            guard let existing = try await findEvent(eventID: eventID, workspaceID: origin.workspaceID) else {
                throw APIError(.conflict, "an event with this event_id is being stored; retry shortly")
            }
            return try EventResponse(existing).response(status: .ok, context: context)
        case nil:
            throw APIError.badRequest("no event in the request body")
        }
    }

    /// `POST /api/events/batch`: a JSON array or NDJSON → `{"successful_rows", "quarantined_rows"}`.
    @Sendable func createBatch(_ request: Request, context: AppRequestContext) async throws -> IngestSummary {
        try authorizeAPIIngest(request)
        let rows = try IngestBody.rows(from: try await body(request))
        let origin = origin(request, context: context, workspaceID: Workspace.defaultID, datasource: .api)
        return try await ingestor.ingest(rows, datasource: .api, origin: origin)
    }

    /// `GET /api/events/{id}`.
    @Sendable func show(_ request: Request, context: AppRequestContext) async throws -> EventResponse {
        guard let id = context.parameters.get("id", as: Int.self) else {
            throw APIError.validation([.init(loc: ["path", "id"], msg: "must be a whole number", type: "int_parsing")])
        }
        let rows = try await pool.query(
            "\(unsafeSQL: EventResponse.selectList) FROM events WHERE workspace_id = \(Workspace.defaultID) AND id = \(id)"
        )
        guard let row = rows.first else { throw APIError.notFound("event \(id) not found") }
        return EventResponse(try EventResponse.decode(row))
    }

    struct Aggregate: ResponseEncodable {
        var bucket: Date
        var page: String?
        var os: String?
        var count: Int
        var avgDuration: Double?

        enum CodingKeys: String, CodingKey {
            case bucket, page, os, count
            case avgDuration = "avg_duration"
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(PostgresTimestamp.iso8601(bucket), forKey: .bucket)
            try container.encode(page, forKey: .page)
            try container.encode(os, forKey: .os)
            try container.encode(count, forKey: .count)
            try container.encode(avgDuration, forKey: .avgDuration)
        }
    }

    /// `GET /api/events/?duration=1 hour&pages=/a&pages=/b&hours=24[&tz=Europe/Berlin]`: event counts per time bucket
    /// (days start at local midnight in `tz`), page and OS.
    @Sendable func aggregates(_ request: Request, context: AppRequestContext) async throws -> [Aggregate] {
        var query = QueryReader(request.uri.queryParameters)
        let bucket = query.interval("duration", default: "1 hour")
        let window = query.window(defaultHours: 24)
        let pages = query.strings("pages")
        let includeBots = query.bool("include_bots", default: false)
        let limit = query.integer("limit", default: 1000, range: 1...10_000)
        let timeZone = query.timeZone(default: defaultTimeZone)
        try query.finish()
        let rows = try await pool.query(
            """
            SELECT time_bucket(\(bucket)::interval, time, \(timeZone)) AS bucket, page, os, count(*) AS count, avg(duration) AS avg_duration
            FROM events
            WHERE workspace_id = \(Workspace.defaultID) AND time >= \(window.from) AND time < \(window.to)
              AND (\(includeBots) OR NOT is_bot)
              AND (cardinality(\(pages)) = 0 OR page = ANY(\(pages)))
            GROUP BY 1, 2, 3
            ORDER BY bucket DESC, count DESC, page, os
            LIMIT \(limit)
            """
        )
        return try rows.map { row in
            let (bucket, page, os, count, average) = try row.decode((Date, String?, String?, Int, Double?).self)
            return Aggregate(bucket: bucket, page: page, os: os, count: count, avgDuration: average)
        }
    }

    // MARK: /v0

    /// `POST /v0/events?name=<datasource>[&wait=true]`: NDJSON or one JSON object → 202 (200 with wait=true).
    @Sendable func ingestV0(_ request: Request, context: AppRequestContext) async throws -> Response {
        let workspaceID = try v0Auth.authenticate(request, scope: .append)
        guard let name = request.uri.queryParameters["name"].map(String.init), !name.isEmpty else {
            throw APIError.badRequest(
                "the datasource is missing: add ?name=<datasource> (one of \(Datasource.ingestible.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        guard let datasource = Datasource(rawValue: name), Datasource.ingestible.contains(datasource) else {
            throw APIError.notFound("datasource \"\(name)\" does not exist (known: \(Datasource.ingestible.map(\.rawValue).joined(separator: ", ")))")
        }
        let rows = try IngestBody.rows(from: try await body(request))
        let origin = origin(request, context: context, workspaceID: workspaceID, datasource: datasource)
        let summary = try await ingestor.ingest(rows, datasource: datasource, origin: origin)
        let wait = request.uri.queryParameters["wait"].map { $0 == "true" || $0 == "1" } ?? false
        return try summary.response(status: wait ? .ok : .accepted, context: context)
    }

    struct QuarantinedRow: Encodable {
        var receivedAt: Date
        var error: String
        var line: String

        enum CodingKeys: String, CodingKey {
            case receivedAt = "received_at"
            case error, line
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(PostgresTimestamp.iso8601(receivedAt), forKey: .receivedAt)
            try container.encode(error, forKey: .error)
            try container.encode(line, forKey: .line)
        }
    }

    struct QuarantineList: ResponseEncodable {
        var data: [QuarantinedRow]
        var rows: Int
    }

    /// `GET /v0/datasources/<name>_quarantine` (admin): quarantined rows with their error, newest first.
    @Sendable func quarantine(_ request: Request, context: AppRequestContext) async throws -> QuarantineList {
        let workspaceID = try v0Auth.authenticate(request, scope: .admin)
        let name = context.parameters.get("name") ?? ""
        guard name.hasSuffix("_quarantine"), let datasource = Datasource(rawValue: String(name.dropLast("_quarantine".count))),
            Datasource.ingestible.contains(datasource)
        else {
            throw APIError.notFound("datasource \"\(name)\" does not exist")
        }
        var query = QueryReader(request.uri.queryParameters)
        let limit = query.integer("limit", default: 100, range: 1...10_000)
        try query.finish()
        let rows = try await pool.query(
            """
            SELECT received_at, error, line FROM quarantine
            WHERE workspace_id = \(workspaceID) AND datasource = \(datasource.rawValue)
            ORDER BY received_at DESC, id DESC
            LIMIT \(limit)
            """
        )
        let data = try rows.map { row in
            let (receivedAt, error, line) = try row.decode((Date, String, String).self)
            return QuarantinedRow(receivedAt: receivedAt, error: error, line: line)
        }
        return QuarantineList(data: data, rows: data.count)
    }

    // MARK: Helpers

    /// Where a request's rows come from: workspace, datasource, client IP, arrival time.
    func origin(_ request: Request, context: AppRequestContext, workspaceID: Int, datasource: Datasource) -> EventNormalizer.Origin {
        EventNormalizer.Origin(workspaceID: workspaceID, datasource: datasource.rawValue, clientIP: context.clientIP(request), receivedAt: Date())
    }

    /// Anonymous unless `REQUIRE_INGEST_TOKEN` is set.
    func authorizeAPIIngest(_ request: Request) throws(APIError) {
        if requireIngestToken { _ = try v0Auth.authenticate(request, scope: .append) }
    }

    /// The whole body, up to `MAX_BODY_SIZE` (413 past it).
    func body(_ request: Request) async throws -> Data {
        var request = request
        do {
            let buffer = try await request.collectBody(upTo: maxBodySize)
            return Data(buffer: buffer)
        } catch let error as HTTPError where error.status == .contentTooLarge {
            throw APIError(.contentTooLarge, "the request body is larger than \(maxBodySize) bytes (MAX_BODY_SIZE)")
        }
    }

    func findEvent(eventID: String, workspaceID: Int) async throws -> StoredEvent? {
        let rows = try await pool.query(
            "\(unsafeSQL: EventResponse.selectList) FROM events WHERE workspace_id = \(workspaceID) AND event_id = \(eventID) ORDER BY time LIMIT 1"
        )
        return try rows.first.map(EventResponse.decode)
    }
}

/// The workspaces this server knows before the auth issue brings more.
enum Workspace {
    /// `default`, created by the first migration.
    static let defaultID = 1
}

extension ResponseEncodable {
    /// Encodes as JSON with a chosen status.
    func response(status: HTTPResponse.Status, context: AppRequestContext) throws -> Response {
        let data = try JSONEncoder.api.encode(self)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

extension IngestSummary: ResponseEncodable {}
