import App
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Postgres
import PostgresTestSupport

/// Settings for a test application on a fresh database; `overrides` replace or add variables.
func testConfig(database: PostgresConfiguration, _ overrides: [String: String] = [:]) throws -> AppConfig {
    var values = [
        "DATABASE_URL": database.resolvedConnectionString,
        "DB_POOL_SIZE": "4",
        "LOG_LEVEL": ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "warning",
        "SECRET_KEY": String(repeating: "k", count: 32),
    ]
    values.merge(overrides) { $1 }
    return try AppConfig(values: values)
}

/// Builds the application on a fresh database and runs `body` against its router.
func withTestApp(
    _ overrides: [String: String] = [:],
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    let database = try await TestDatabase.create()
    let app = try await buildApplication(try testConfig(database: database, overrides), logger: TestDatabase.logger)
    try await app.test(.router, body)
}

extension TestResponse {
    /// The body decoded as a JSON type.
    func json<Value: Decodable>(_ type: Value.Type) throws -> Value {
        try JSONDecoder().decode(type, from: Data(buffer: body))
    }

    /// The body decoded as a JSON object.
    func json() throws -> [String: JSONValue] {
        try json([String: JSONValue].self)
    }
}
