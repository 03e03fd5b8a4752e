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
    /// `REQUIRE_INGEST_TOKEN`: `/api/events` posts need a token too.
    let requireIngestToken: Bool
    /// Seconds a read may run before it is cancelled (408): `QUERY_TIMEOUT_SECONDS`.
    var queryTimeout = 15

    /// Posts to `/api/events` may be anonymous (seed 004); everything else needs a token or a login.
    func addRoutes(to router: Router<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        router.post("/api/events", use: create)
        router.post("/api/events/batch", use: createBatch)
        let readers = authenticated.group().add(middleware: RequirePermission(permission: .readAnalytics))
        readers.get("/api/events", use: aggregates)
        readers.get("/api/events/{id}", use: show)
        authenticated.post("/v0/events", use: ingestV0)
        authenticated.get("/v0/datasources/{name}", use: quarantine)
    }

    // MARK: /api/events

    /// `POST /api/events/`: one event → 201 with the stored event (200 with the stored one when its `event_id` is known).
    @Sendable func create(_ request: Request, context: AppRequestContext) async throws -> Response {
        let scope = try apiIngestScope(context)
        let rows = try IngestBody.rows(from: try await body(request))
        guard rows.count == 1, case .object(let object, _) = rows[0] else {
            throw APIError.badRequest("send one JSON object; use /api/events/batch for several")
        }
        let origin = origin(request, context: context, scope: scope, datasource: .api)
        let record: EventRecord
        switch ingestor.normalizer.normalize(object, origin: origin) {
        case .valid(let normalized): record = normalized
        case .invalid(let issues): throw APIError.validation(issues)
        }
        switch try await ingestor.writer.write([record]).first {
        case .stored(let event):
            return EventResponse(event).response(status: .created)
        case .duplicate(let eventID):
            guard let existing = try await findEvent(eventID: eventID, scope: scope) else {
                throw APIError(.conflict, "an event with this event_id is being stored; retry shortly")
            }
            return EventResponse(existing).response(status: .ok)
        case nil:
            throw APIError.badRequest("no event in the request body")
        }
    }

    /// `POST /api/events/batch`: a JSON array or NDJSON → `{"successful_rows", "quarantined_rows"}`.
    @Sendable func createBatch(_ request: Request, context: AppRequestContext) async throws -> IngestSummary {
        let scope = try apiIngestScope(context)
        let rows = try IngestBody.rows(from: try await body(request))
        let origin = origin(request, context: context, scope: scope, datasource: .api)
        return try await ingestor.ingest(rows, datasource: .api, origin: origin)
    }

    /// `GET /api/events/{id}`.
    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> EventResponse {
        guard let id = context.parameters.get("id", as: Int.self) else {
            throw APIError.validation([.init(loc: ["path", "id"], msg: "must be a whole number", type: "int_parsing")])
        }
        let scope = context.identity.dataScope
        let rows = try await pool.withReadAccess(scope, timeout: queryTimeout) { connection in
            try await connection.query(
                "\(unsafeSQL: EventResponse.selectList) FROM events WHERE workspace_id = \(scope.workspaceID) AND id = \(id)"
            )
        }
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
    @Sendable func aggregates(_ request: Request, context: AuthenticatedContext) async throws -> [Aggregate] {
        var query = QueryReader(request.formParameters)
        let bucket = query.interval("duration", default: "1 hour")
        let window = query.window(defaultHours: 24)
        let pages = query.strings("pages")
        let includeBots = query.bool("include_bots", default: false)
        let limit = query.integer("limit", default: 1000, range: 1...10_000)
        let timeZone = query.timeZone(default: defaultTimeZone)
        try query.finish()
        let scope = context.identity.dataScope
        let rows = try await pool.withReadAccess(scope, timeout: queryTimeout) { connection in
            try await connection.query(
                """
                SELECT time_bucket(\(PostgresInterval(bucket)), time, \(timeZone)) AS bucket, page, os, count(*) AS count, avg(duration) AS avg_duration
                FROM events
                WHERE workspace_id = \(scope.workspaceID) AND time >= \(window.from) AND time < \(window.to)
                  AND (\(includeBots) OR NOT is_bot)
                  AND (cardinality(\(pages)) = 0 OR page = ANY(\(pages)))
                GROUP BY 1, 2, 3
                ORDER BY bucket DESC, count DESC, page, os
                LIMIT \(limit)
                """
            )
        }
        return try rows.map { row in
            let (bucket, page, os, count, average) = try row.decode((Date, String?, String?, Int, Double?).self)
            return Aggregate(bucket: bucket, page: page, os: os, count: count, avgDuration: average)
        }
    }

    // MARK: /v0

    /// `POST /v0/events?name=<datasource>[&wait=true]`: NDJSON or one JSON object → 202 (200 with wait=true).
    @Sendable func ingestV0(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        guard let name = request.formParameters["name"].map(String.init), !name.isEmpty else {
            throw APIError.badRequest(
                "the datasource is missing: add ?name=<datasource> (one of \(Datasource.ingestible.map(\.rawValue).joined(separator: ", ")))"
            )
        }
        guard let datasource = Datasource(rawValue: name), Datasource.ingestible.contains(datasource) else {
            throw APIError.notFound("datasource \"\(name)\" does not exist (known: \(Datasource.ingestible.map(\.rawValue).joined(separator: ", ")))")
        }
        try context.require(.append(datasource: datasource.rawValue))
        let rows = try IngestBody.rows(from: try await body(request))
        let origin = origin(request, context: context, scope: context.identity.dataScope, datasource: datasource)
        let summary = try await ingestor.ingest(rows, datasource: datasource, origin: origin)
        let wait = request.formParameters["wait"].map { $0 == "true" || $0 == "1" } ?? false
        return try summary.response(status: wait ? .ok : .accepted)
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
    @Sendable func quarantine(_ request: Request, context: AuthenticatedContext) async throws -> QuarantineList {
        try context.require(.admin)
        let scope = context.identity.dataScope
        let name = context.parameters.get("name") ?? ""
        guard name.hasSuffix("_quarantine"), let datasource = Datasource(rawValue: String(name.dropLast("_quarantine".count))) else {
            throw APIError.notFound("datasource \"\(name)\" does not exist")
        }
        var query = QueryReader(request.formParameters)
        let limit = query.integer("limit", default: 100, range: 1...10_000)
        try query.finish()
        let rows = try await pool.withReadAccess(scope, timeout: queryTimeout) { connection in
            try await connection.query(
                """
                SELECT received_at, error, line FROM quarantine
                WHERE workspace_id = \(scope.workspaceID) AND datasource = \(datasource.rawValue)
                ORDER BY received_at DESC, id DESC
                LIMIT \(limit)
                """
            )
        }
        let data = try rows.map { row in
            let (receivedAt, error, line) = try row.decode((Date, String, String).self)
            return QuarantinedRow(receivedAt: receivedAt, error: error, line: line)
        }
        return QuarantineList(data: data, rows: data.count)
    }

    // MARK: Helpers

    /// Where a request's rows come from: workspace and tenant, datasource, client IP, arrival time.
    func origin(_ request: Request, context: some ClientAddressContext, scope: DataScope, datasource: Datasource) -> EventNormalizer.Origin {
        EventNormalizer.Origin(
            workspaceID: scope.workspaceID,
            tenantID: scope.tenantID,
            datasource: datasource.rawValue,
            clientIP: context.clientIP(request),
            receivedAt: Date()
        )
    }

    /// Where `/api/events` posts go: the default workspace when anonymous (allowed unless `REQUIRE_INGEST_TOKEN`),
    /// else the workspace (and tenant) of a token that may append, or the default one for a user who may.
    func apiIngestScope(_ context: AppRequestContext) throws(APIError) -> DataScope {
        guard let identity = context.identity else {
            if requireIngestToken {
                throw APIError.unauthorized("this server needs a token to ingest (REQUIRE_INGEST_TOKEN): send Authorization: Bearer <token>")
            }
            return DataScope(workspaceID: Workspace.defaultID)
        }
        guard identity.allows(.append(datasource: Datasource.api.rawValue)) else {
            throw APIError.forbidden("Not enough permissions: \(identity.label) lacks the scope append:api")
        }
        return identity.dataScope
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

    func findEvent(eventID: String, scope: DataScope) async throws -> StoredEvent? {
        let rows = try await pool.withReadAccess(scope, timeout: queryTimeout) { connection in
            try await connection.query(
                "\(unsafeSQL: EventResponse.selectList) FROM events WHERE workspace_id = \(scope.workspaceID) AND event_id = \(eventID) ORDER BY time LIMIT 1"
            )
        }
        return try rows.first.map(EventResponse.decode)
    }
}

extension ResponseEncodable {
    /// Encodes as JSON with a chosen status.
    func response(status: HTTPResponse.Status) throws -> Response {
        let data = try JSONEncoder.api.encode(self)
        return Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }
}

extension IngestSummary: ResponseEncodable {}
