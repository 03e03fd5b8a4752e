import NIOPosix
import Postgres

extension KMeansStep {
    /// The pipe's SQL returned columns that `@kmeans` cannot use: a mistake in the pipe file, found when it first runs.
    struct MismatchedColumns: Error, CustomStringConvertible {
        var description: String
    }

    /// The column in which the SQL may return each user's stored cluster (NULL for none).
    static let previousColumn = "previous_cluster_id"

    /// Clusters the users of `table` (the pipe's SQL result), stores their clusters in `user_features` through
    /// `connection` (the pipe's transaction, under the caller's row-level security), and answers every row with its
    /// `cluster_id` and `distance` after `user_id`, by cluster, distance and user. Where the SQL returns each user's
    /// stored cluster as `previous_cluster_id`, only the users whose cluster differs are written. The k-means itself
    /// runs on `threadPool`, away from the tasks that serve requests. The answer is the query's rows with the two
    /// columns added, written in that order.
    func run(
        _ table: consuming ResultTable,
        values: [String: PipeValue],
        workspaceID: Int,
        on connection: PostgresConnection,
        threadPool: NIOThreadPool
    ) async throws -> ResultTable {
        guard table.columns.first == "user_id" else {
            throw MismatchedColumns(description: "@kmeans needs user_id as the first column, not \(table.columns.first ?? "nothing")")
        }
        let indices = try features.map { name in
            guard let index = table.columns.firstIndex(of: name) else {
                throw MismatchedColumns(description: "@kmeans names the column \(name), which the SQL does not return")
            }
            return index
        }
        func integer(_ name: String, default: Int) -> Int {
            if case .text(let text)? = values[name], let number = Int(text) { number } else { `default` }
        }
        // The users and their features are read from the query's rows, which the answer then writes with the
        // clusters added: the rows are never all converted at once (at ten million events, 494,000 users).
        let users = (0..<table.count).map { row -> String in if case .string(let user) = table.value(row: row, column: 0) { user } else { "" } }
        var values: [Double] = []
        values.reserveCapacity(table.count * indices.count)
        for row in 0..<table.count {
            for index in indices {
                switch table.value(row: row, column: index) {
                case .int(let number): values.append(Double(number))
                case .double(let number): values.append(number)
                default: values.append(.nan)  // missing (NULL); numbers read are finite
                }
            }
        }
        let points = KMeans.Points(width: indices.count, count: table.count, values: values)
        let kmeans = KMeans(k: integer("k", default: 4), maxIterations: integer("max_iterations", default: 100))
        let result = try await threadPool.runIfActive { kmeans.cluster(points) }
        // Only the users whose cluster changed are written, where the SQL returns the stored one (`previous_cluster_id`):
        // looking up every user in the key index found nothing to change when the same data was clustered again, and
        // took 4 s at ten million events (494,000 users).
        let previous = table.columns.firstIndex(of: Self.previousColumn)
        let changed = (0..<table.count).filter { row in
            guard let previous else { return true }
            return table.value(row: row, column: previous) != .int(result.assignments[row].cluster)
        }
        // Stored 50,000 users a statement: one statement's arrays, as text, then as libpq's copy, took 20 MB more at
        // the peak for 494,000 users.
        for start in stride(from: 0, to: changed.count, by: 50_000) {
            let rows = changed[start..<min(start + 50_000, changed.count)]
            try await connection.execute(
                """
                UPDATE user_features AS uf
                SET cluster_id = c.cluster_id, last_updated = now()
                FROM unnest(\(rows.map { users[$0] })::text[], \(rows.map { result.assignments[$0].cluster })::bigint[]) AS c(user_id, cluster_id)
                WHERE uf.workspace_id = \(workspaceID) AND uf.user_id = c.user_id AND uf.cluster_id IS DISTINCT FROM c.cluster_id
                """
            )
        }

        // Each row gains its cluster and distance after user_id, and the rows are written by cluster, distance, user.
        let assignments = result.assignments
        table.insertColumns([
            ("cluster_id", "Int32", { .int(assignments[$0].cluster) }),
            ("distance", "Float64", { .double((assignments[$0].distance * 10_000).rounded() / 10_000) }),
        ])
        table.reorder(
            (0..<table.count).sorted { lhs, rhs in
                let (left, right) = (result.assignments[lhs], result.assignments[rhs])
                if left.cluster != right.cluster { return left.cluster < right.cluster }
                if left.distance != right.distance { return left.distance < right.distance }
                return users[lhs] < users[rhs]
            }
        )
        return table
    }
}
