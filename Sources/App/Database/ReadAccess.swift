import Postgres

/// Whose rows a read may see: one workspace, and within it one tenant when the caller is bound to one.
public struct DataScope: Sendable, Equatable {
    public var workspaceID: Int
    /// The tenant a token is bound to; `nil` sees every tenant of the workspace.
    public var tenantID: String?

    public init(workspaceID: Int, tenantID: String? = nil) {
        self.workspaceID = workspaceID
        self.tenantID = tenantID
    }
}

extension DataScope {
    /// The database role of reads for this scope (migration 0005): neither role can bypass row-level security.
    var readerRole: String { tenantID == nil ? "analytics_reader" : "analytics_tenant_reader" }
}

extension PostgresPool {
    /// Runs `body` the way every read made for an API request runs: in a read-only transaction, as the role
    /// `analytics_reader` (or `analytics_tenant_reader` for a tenant), with `app.workspace_id` and `app.tenant_id`
    /// set for the row-level security policies of `events`, `user_features` and `quarantine`, and with a statement
    /// timeout of `timeout` seconds (`QUERY_TIMEOUT_SECONDS`, or a pipe's longer `@timeout`; no default, so no read
    /// escapes the setting). So a query sees only `scope`'s rows even when its SQL forgets to filter them.
    /// `readOnly: false` is for pipes that update rows (`@writes`): the roles may update only what migration 0006
    /// grants, under the same policies.
    func withReadAccess<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ scope: DataScope,
        timeout: Int,
        workMem: String = "64MB",
        readOnly: Bool = true,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withTransaction(readOnly: readOnly) { connection in
            try await connection.execute(Self.readSettings(scope, timeout: timeout, workMem: workMem))
            return try await body(connection)
        }
    }

    /// Runs `body` the way `withReadAccess` runs it (read-only, as the scope's role, its settings and timeout), on up
    /// to `connections` connections that see one snapshot of the database (`withSharedSnapshot`), for a query split
    /// into parts that run at once: as many as the pool can lend without waiting, so `body` must do its work on
    /// however many it gets (one, when the pool is busy). Each connection's part has the statement timeout.
    func withParallelReadAccess<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ scope: DataScope,
        connections: Int,
        timeout: Int,
        workMem: String = "64MB",
        _ body: ([PostgresConnection]) async throws -> Result
    ) async throws -> Result {
        try await withSharedSnapshot(extra: connections - 1) { lent in
            // Parts running at once already share the cores: parallel workers for each would only contend with the
            // other part. Over HTTP at ten million events, the funnel's two halves without them: p50 694–717 →
            // 566–683 ms (three alternations of builds); at a million 66–72 → 51–67 ms; pages and retention unchanged.
            let settings = Self.readSettings(scope, timeout: timeout, workMem: workMem, parallelWorkers: lent.count < 2)
            for connection in lent {
                try await connection.execute(settings)
            }
            return try await body(lent)
        }
    }

    /// The settings of a read, in one statement: `set_config(…, true)` is SET LOCAL, undone when the transaction
    /// ends. JIT compilation took 100 ms and more of a 0.4 s funnel over a million events (EXPLAIN ANALYZE): these
    /// queries are short. Without `parallelWorkers`, no plan gathers workers (`max_parallel_workers_per_gather` 0;
    /// otherwise the server's setting stands).
    private static func readSettings(_ scope: DataScope, timeout: Int, workMem: String, parallelWorkers: Bool = true) -> PostgresQuery {
        """
        SELECT set_config('app.workspace_id', \(String(scope.workspaceID)), true),
               set_config('app.tenant_id', \(scope.tenantID ?? ""), true),
               set_config('statement_timeout', \("\(timeout)s"), true),
               set_config('work_mem', \(workMem), true),
               set_config('jit', 'off', true),
               set_config('role', \(scope.readerRole), true),
               set_config('max_parallel_workers_per_gather',
                          CASE WHEN \(parallelWorkers) THEN current_setting('max_parallel_workers_per_gather') ELSE '0' END, true)
        """
    }
}

extension [PostgresConnection] {
    /// Runs `queries` over these connections (from `withParallelReadAccess`): query i on connection i modulo their
    /// number, each connection's share one after another and the connections at once, after `setup` on each
    /// connection that runs any. The rows come back in the order of `queries`.
    func query(_ queries: [PostgresQuery], setup: PostgresQuery? = nil) async throws -> [PostgresRows] {
        let connections = self
        var rows = [PostgresRows?](repeating: nil, count: queries.count)
        try await withThrowingTaskGroup(of: [(Int, PostgresRows)].self) { group in
            for (index, connection) in connections.prefix(queries.count).enumerated() {
                group.addTask {
                    if let setup { try await connection.execute(setup) }
                    var done: [(Int, PostgresRows)] = []
                    for query in stride(from: index, to: queries.count, by: connections.count) {
                        done.append((query, try await connection.query(queries[query])))
                    }
                    return done
                }
            }
            for try await done in group {
                for (index, result) in done { rows[index] = result }
            }
        }
        return rows.map { $0! }
    }
}
