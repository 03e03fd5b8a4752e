import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import Postgres

/// `/v0/pipes` (seeds 000–003): the workspace's pipes, run with typed parameters and answered as JSON, CSV or
/// NDJSON, listed, and described as OpenAPI.
struct PipesController: Sendable {
    let pool: PostgresPool
    let catalog: PipeCatalog
    /// Seconds a pipe may run before it is cancelled (408), or its file's `@timeout` if longer: `QUERY_TIMEOUT_SECONDS`.
    var queryTimeout = 15
    /// Where CPU-bound steps of pipes run (k-means).
    var threadPool: NIOThreadPool = .singleton
    /// Workspace templates, looked up at most once per few seconds.
    let templateCache = ExpiringCache<Int, [String]>(ttl: .seconds(5))

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("/v0/pipes", use: list)
        group.get("/v0/pipes/openapi.json", use: openAPI)
        group.get("/v0/pipes/{file}", use: run)
    }

    /// The pipes of the caller's workspace, by name.
    func pipes(for context: AuthenticatedContext) async throws -> [String: PipeDefinition] {
        let workspaceID = context.identity.workspaceID
        if let templates = templateCache.value(for: workspaceID) { return catalog.pipes(of: templates) }
        let rows = try await pool.query("SELECT templates FROM workspaces WHERE id = \(workspaceID)")
        let templates = try rows.first.map { try $0.decode([String].self, at: 0) } ?? []
        templateCache.store(templates, for: workspaceID)
        return catalog.pipes(of: templates)
    }

    /// The pipes the caller may run, by name.
    func readablePipes(for context: AuthenticatedContext) async throws -> [PipeDefinition] {
        try await pipes(for: context).values.filter { context.identity.allows(.readPipe($0.name)) }.sorted { $0.name < $1.name }
    }

    // MARK: Listing

    struct PipeList: ResponseEncodable {
        var pipes: [PipeDescription]
    }

    struct PipeDescription: Encodable {
        var name: String
        var template: String
        var description: String
        var endpoint: String
        var writes: Bool
        var timeoutSeconds: Int
        var parameters: [ParameterDescription]
        var columns: [ColumnDescription]

        enum CodingKeys: String, CodingKey {
            case name, template, description, endpoint, writes, timeoutSeconds = "timeout_seconds", parameters, columns
        }
    }

    struct ParameterDescription: Encodable {
        var name: String
        var type: String
        var required: Bool
        var `default`: String?
        var description: String

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(name, forKey: .name)
            try container.encode(type, forKey: .type)
            try container.encode(required, forKey: .required)
            try container.encode(`default`, forKey: .default)
            try container.encode(description, forKey: .description)
        }

        enum CodingKeys: String, CodingKey { case name, type, required, `default`, description }
    }

    struct ColumnDescription: Encodable {
        var name: String
        var description: String
    }

    /// `GET /v0/pipes`: the workspace's pipes with their parameters and output columns.
    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> PipeList {
        let pipes = try await readablePipes(for: context)
        return PipeList(
            pipes: pipes.map { pipe in
                PipeDescription(
                    name: pipe.name,
                    template: pipe.template,
                    description: pipe.description,
                    endpoint: "/v0/pipes/\(pipe.name).json",
                    writes: pipe.writes,
                    timeoutSeconds: timeout(of: pipe),
                    parameters: pipe.parameters.map {
                        ParameterDescription(
                            name: $0.name,
                            type: $0.kind.name,
                            required: $0.required,
                            default: $0.defaultValue,
                            description: $0.description
                        )
                    },
                    columns: pipe.columns.map { ColumnDescription(name: $0.name, description: $0.description) }
                )
            }
        )
    }

    // MARK: Running

    /// Seconds `pipe` may run: the server's query timeout, or the pipe's own `@timeout` where that is longer.
    func timeout(of pipe: PipeDefinition) -> Int { max(queryTimeout, pipe.timeout ?? 0) }

    enum OutputFormat: String, CaseIterable {
        case json, csv, csvwithnames, ndjson
    }

    /// `GET /v0/pipes/openapi.json`: the pipes this caller may read, as OpenAPI.
    @Sendable func openAPI(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        PipesOpenAPI.document(for: try await readablePipes(for: context)).response()
    }

    /// `GET /v0/pipes/<name>.<format>?<parameters>`.
    @Sendable func run(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let file = context.parameters.get("file") ?? ""
        let pipes = try await pipes(for: context)
        guard let dot = file.lastIndex(of: "."), let format = OutputFormat(rawValue: String(file[file.index(after: dot)...]).lowercased()) else {
            throw APIError.notFound("\(file) is not a pipe endpoint: use /v0/pipes/<name>.json, .csv, .csvwithnames or .ndjson")
        }
        let name = String(file[..<dot])
        guard let pipe = pipes[name] else {
            throw APIError.notFound("the pipe \"\(name)\" does not exist in this workspace (list them with GET /v0/pipes)")
        }
        try context.require(.readPipe(name))

        var values: [String: PipeValue] = ["workspace_id": .text(String(context.identity.workspaceID))]
        let query = request.formParameters
        for parameter in pipe.parameters {
            let texts = query.getAll(parameter.name).map { String($0) }
            switch parameter.value(from: texts) {
            case .success(let value): values[parameter.name] = value
            case .failure(let error): throw APIError.badRequest(error.description)
            }
        }

        let started = ContinuousClock.now
        let (table, read) = try await pool.withReadAccess(
            context.identity.dataScope,
            timeout: timeout(of: pipe),
            readOnly: !pipe.writes
        ) { connection in
            let before = try await Self.tableReads(connection)
            // Packed as they arrive: a pipe may answer hundreds of thousands of rows (`assign_clusters` every user).
            var table = ResultTable(try await connection.query(pipe.query(values), packed: true))
            if let kmeans = pipe.kmeans {
                table = try await kmeans.run(
                    consume table,
                    values: values,
                    workspaceID: context.identity.workspaceID,
                    on: connection,
                    threadPool: threadPool
                )
            }
            let after = try await Self.tableReads(connection)
            return (table, (rows: after.rows - before.rows, bytes: after.bytes - before.bytes))
        }
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return PipeOutput(table: table, format: format, elapsed: seconds, rowsRead: read.rows, bytesRead: read.bytes).response()
    }

    /// Rows read so far by this transaction from every table (sequential scans and index fetches, from
    /// `pg_stat_xact_user_tables`), and their bytes estimated from each table's average row size on disk.
    /// Rows read by parallel workers are not in these statistics, so with a parallel plan both are lower bounds.
    static func tableReads(_ connection: PostgresConnection) async throws -> (rows: Int, bytes: Int) {
        let row = try await connection.query(
            """
            SELECT coalesce(sum(s.seq_tup_read + coalesce(s.idx_tup_fetch, 0)), 0)::bigint,
                   coalesce(sum((s.seq_tup_read + coalesce(s.idx_tup_fetch, 0))
                                * (pg_relation_size(s.relid)::float8 / nullif(greatest(c.reltuples, 0), 0))), 0)::bigint
            FROM pg_stat_xact_user_tables s JOIN pg_class c ON c.oid = s.relid
            """
        )[0]
        return try row.decode((Int, Int).self)
    }
}

/// A pipe's result in the hosted platform's shapes.
struct PipeOutput {
    var table: ResultTable
    var format: PipesController.OutputFormat
    var elapsed: Double
    var rowsRead: Int
    var bytesRead: Int

    func response() -> Response {
        switch format {
        case .json:
            var meta: [String] = []
            for (index, name) in table.columns.enumerated() {
                meta.append(#"{"name":\#(JSONValue.string(name).jsonText),"type":\#(JSONValue.string(table.types[index]).jsonText)}"#)
            }
            let statistics = #"{"elapsed":\#(JSONValue.double(elapsed).jsonText),"rows_read":\#(rowsRead),"bytes_read":\#(bytesRead)}"#
            return Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8"],
                body: table.body(
                    .json,
                    prefix: #"{"meta":[\#(meta.joined(separator: ","))],"data":"#,
                    suffix: #","rows":\#(table.count),"statistics":\#(statistics)}"#
                )
            )
        case .ndjson:
            return Response(status: .ok, headers: [.contentType: "application/x-ndjson; charset=utf-8"], body: table.body(.ndjson))
        case .csv:
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: table.body(.csv(header: false)))
        case .csvwithnames:
            return Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: table.body(.csv(header: true)))
        }
    }
}
