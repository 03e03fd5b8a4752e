import HTTPTypes
import Hummingbird
import Postgres

/// `GET /health` (the process is up) and `GET /ready` (the database answers and the schema is migrated).
struct HealthController<Context: RequestContext>: Sendable {
    let pool: PostgresPool
    /// The schema version this server needs.
    let requiredSchemaVersion: Int

    struct Health: ResponseEncodable {
        var status: String
    }

    struct Readiness: ResponseEncodable {
        var status: String
        var database: String
        var migration: Int
    }

    func addRoutes(to router: Router<Context>) {
        router.get("/health") { _, _ in Health(status: "ok") }
        router.get("/ready", use: ready)
    }

    @Sendable func ready(_ request: Request, context: Context) async throws -> Response {
        let version: Int
        do {
            version = try await Migrator.currentVersion(pool)
        } catch let error as PostgresError where error.isUnavailable {
            throw APIError(.serviceUnavailable, "database unavailable: \(error.description)", headers: [.retryAfter: "5"])
        }
        guard version >= requiredSchemaVersion else {
            throw APIError(
                .serviceUnavailable,
                "database schema is at version \(version); this server needs \(requiredSchemaVersion): run analytics-api migrate"
            )
        }
        return try Readiness(status: "ready", database: "ok", migration: version).response(from: request, context: context)
    }
}
