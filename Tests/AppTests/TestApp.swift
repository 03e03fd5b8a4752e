import App
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import Postgres
import PostgresTestSupport
import Testing

/// Settings for a test application on a fresh database; `overrides` replace or add variables.
func testConfig(database: PostgresConfiguration, _ overrides: [String: String] = [:]) throws -> AppConfig {
    var values = [
        "DATABASE_URL": database.resolvedConnectionString,
        "DB_POOL_SIZE": "4",
        "LOG_LEVEL": ProcessInfo.processInfo.environment["LOG_LEVEL"] ?? "warning",
        "SECRET_KEY": String(repeating: "k", count: 32),
        "BCRYPT_COST": "4",
    ]
    values.merge(overrides) { $1 }
    return try AppConfig(values: values)
}

/// The admin token test applications accept under `/v0`.
let testAdminToken = "test-admin-token-0123456789"

/// Builds the application on a fresh database and runs `body` against its router.
func withTestApp(
    _ overrides: [String: String] = [:],
    _ body: @Sendable (any TestClientProtocol) async throws -> Void
) async throws {
    try await withTestApp(overrides) { client, _ in try await body(client) }
}

/// Builds the application on a fresh database and runs `body` with a client and a pool on the same database.
func withTestApp(
    _ overrides: [String: String] = [:],
    testingSetup: TestingSetup = .router,
    _ body: @Sendable (any TestClientProtocol, PostgresPool) async throws -> Void
) async throws {
    let database = try await TestDatabase.create()
    var settings = ["ADMIN_TOKEN": testAdminToken]
    settings.merge(overrides) { $1 }
    let app = try await buildApplication(try testConfig(database: database, settings), logger: TestDatabase.logger)
    let pool = PostgresPool(configuration: database, options: .init(size: 2), threadPool: TestDatabase.threadPool, logger: TestDatabase.logger)
    try await app.test(testingSetup) { client in try await body(client, pool) }
    await pool.close()
}

/// Checks that `visitor_hours` holds exactly the visitor-hours of the stored events (what migration 0011 would
/// build from them), each visitor numbered once, that every event carries its visitor's number (0014), that
/// `session_totals` holds exactly the totals of the stored events' sessions (0015; durations to a millionth), and
/// that `visitor_days` and `event_counts` hold exactly the events' visitor-days and counts per day, type and bot
/// flag (0016).
func expectRollupsMatchEvents(_ pool: PostgresPool, sourceLocation: SourceLocation = #_sourceLocation) async throws {
    let days = try await pool.query(
        """
        WITH kept_days AS (
            SELECT d.workspace_id, d.event_type, d.day, d.tenant_id, d.is_bot, v.visitor
            FROM visitor_days d JOIN visitors v ON v.id = d.visitor_id AND v.workspace_id = d.workspace_id
        ), expected_days AS (
            SELECT DISTINCT workspace_id, event_type, (time AT TIME ZONE 'UTC')::date, tenant_id, is_bot, coalesce(user_id, session_id)
            FROM events WHERE coalesce(user_id, session_id) IS NOT NULL
        ), kept_counts AS (
            SELECT workspace_id, tenant_id, day, event_type, is_bot, events FROM event_counts
        ), expected_counts AS (
            SELECT workspace_id, coalesce(tenant_id, ''), (time AT TIME ZONE 'UTC')::date, event_type, is_bot, count(*)
            FROM events GROUP BY 1, 2, 3, 4, 5
        )
        SELECT (SELECT count(*) FROM (TABLE kept_days EXCEPT ALL TABLE expected_days) extra),
               (SELECT count(*) FROM (TABLE expected_days EXCEPT ALL TABLE kept_days) missing),
               (SELECT count(*) FROM (TABLE kept_counts EXCEPT ALL TABLE expected_counts) extra),
               (SELECT count(*) FROM (TABLE expected_counts EXCEPT ALL TABLE kept_counts) missing)
        """
    )[0].decode((Int, Int, Int, Int).self)
    #expect(days.0 == 0, "visitor-days without events", sourceLocation: sourceLocation)
    #expect(days.1 == 0, "events without visitor-days", sourceLocation: sourceLocation)
    #expect(days.2 == 0, "event counts that the events do not add up to", sourceLocation: sourceLocation)
    #expect(days.3 == 0, "events without their count", sourceLocation: sourceLocation)
    let sessions = try await pool.query(
        """
        WITH kept AS (
            SELECT workspace_id, session_id, tenant_id, user_id, is_bot, visitor_id, events, page_views, clicks,
                   round(duration_sum::numeric, 6) AS duration_sum, first_time, last_time, country, country_time
            FROM session_totals
        ), expected AS (
            SELECT workspace_id, session_id, tenant_id, user_id, is_bot, visitor_id, events, page_views, clicks,
                   round(duration_sum::numeric, 6), first_time, last_time, country, country_time
            FROM session_totals_of_events
        )
        SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE expected) extra),
               (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE kept) missing),
               (SELECT count(*) FROM session_totals)
        """
    )[0].decode((Int, Int, Int).self)
    #expect(sessions.0 == 0, "session totals that the events do not add up to", sourceLocation: sourceLocation)
    #expect(sessions.1 == 0, "sessions of events without their totals", sourceLocation: sourceLocation)
    // Each session's count of rows of totals (migration 0025's triggers).
    let counts = try await pool.query(
        """
        WITH kept AS (
            SELECT workspace_id, session_id, rows FROM session_rows
        ), expected AS (
            SELECT workspace_id, session_id, count(*)::integer FROM session_totals GROUP BY workspace_id, session_id
        )
        SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE expected) extra),
               (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE kept) missing)
        """
    )[0].decode((Int, Int).self)
    #expect(counts.0 == 0, "session row counts that the totals do not add up to", sourceLocation: sourceLocation)
    #expect(counts.1 == 0, "sessions of totals without their row count", sourceLocation: sourceLocation)
    // Each tenant's totals and visitors (migration 0027's triggers), as the session totals add up.
    let tenants = try await pool.query(
        """
        WITH rows AS (
            SELECT workspace_id, tenant_id, visitor_id, is_bot, events, page_views,
                   coalesce(duration_sum::numeric, extract(epoch FROM last_time - first_time)) AS duration
            FROM session_totals WHERE tenant_id IS NOT NULL
        ), kept_visitors AS (
            SELECT workspace_id, tenant_id, visitor_id, people_rows, bot_rows FROM tenant_visitors
        ), expected_visitors AS (
            SELECT workspace_id, tenant_id, visitor_id, (count(*) FILTER (WHERE NOT is_bot))::integer AS people_rows,
                   (count(*) FILTER (WHERE is_bot))::integer AS bot_rows
            FROM rows WHERE visitor_id IS NOT NULL GROUP BY 1, 2, 3
        ), kept AS (
            SELECT workspace_id, tenant_id, people_rows, bot_rows, people_durations, bot_durations, people_events, bot_events,
                   people_page_views, bot_page_views, people_visitors, visitors
            FROM tenant_totals
        ), expected AS (
            SELECT r.workspace_id, r.tenant_id, count(*) FILTER (WHERE NOT r.is_bot), count(*) FILTER (WHERE r.is_bot),
                   coalesce(sum(r.duration) FILTER (WHERE NOT r.is_bot), 0), coalesce(sum(r.duration) FILTER (WHERE r.is_bot), 0),
                   coalesce(sum(r.events) FILTER (WHERE NOT r.is_bot), 0), coalesce(sum(r.events) FILTER (WHERE r.is_bot), 0),
                   coalesce(sum(r.page_views) FILTER (WHERE NOT r.is_bot), 0), coalesce(sum(r.page_views) FILTER (WHERE r.is_bot), 0),
                   (SELECT count(*) FROM expected_visitors v WHERE v.workspace_id = r.workspace_id AND v.tenant_id = r.tenant_id AND v.people_rows > 0),
                   (SELECT count(*) FROM expected_visitors v WHERE v.workspace_id = r.workspace_id AND v.tenant_id = r.tenant_id)
            FROM rows r GROUP BY r.workspace_id, r.tenant_id
        )
        SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE expected) extra),
               (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE kept) missing),
               (SELECT count(*) FROM (TABLE kept_visitors EXCEPT ALL TABLE expected_visitors) extra),
               (SELECT count(*) FROM (TABLE expected_visitors EXCEPT ALL TABLE kept_visitors) missing)
        """
    )[0].decode((Int, Int, Int, Int).self)
    #expect(tenants.0 == 0, "tenant totals that the session totals do not add up to", sourceLocation: sourceLocation)
    #expect(tenants.1 == 0, "tenants of session totals without their totals", sourceLocation: sourceLocation)
    #expect(tenants.2 == 0, "tenant visitors that the session totals do not name", sourceLocation: sourceLocation)
    #expect(tenants.3 == 0, "visitors of session totals missing from their tenant's", sourceLocation: sourceLocation)
    // Each user's totals (0027), as the session totals add up.
    let users = try await pool.query(
        """
        WITH kept AS (
            SELECT workspace_id, user_id, people_rows, bot_rows, people_durations, bot_durations, people_clicks, bot_clicks,
                   people_events, bot_events
            FROM user_totals
        ), expected AS (
            SELECT workspace_id, user_id, count(*) FILTER (WHERE NOT is_bot), count(*) FILTER (WHERE is_bot),
                   coalesce(sum(coalesce(duration_sum::numeric, extract(epoch FROM last_time - first_time))) FILTER (WHERE NOT is_bot), 0),
                   coalesce(sum(coalesce(duration_sum::numeric, extract(epoch FROM last_time - first_time))) FILTER (WHERE is_bot), 0),
                   coalesce(sum(clicks) FILTER (WHERE NOT is_bot), 0), coalesce(sum(clicks) FILTER (WHERE is_bot), 0),
                   coalesce(sum(events) FILTER (WHERE NOT is_bot), 0), coalesce(sum(events) FILTER (WHERE is_bot), 0)
            FROM session_totals WHERE user_id IS NOT NULL
            GROUP BY workspace_id, user_id
        )
        SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE expected) extra),
               (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE kept) missing)
        """
    )[0].decode((Int, Int).self)
    #expect(users.0 == 0, "user totals that the session totals do not add up to", sourceLocation: sourceLocation)
    #expect(users.1 == 0, "users of session totals without their totals", sourceLocation: sourceLocation)
    let sessionEvents = try await pool.query("SELECT count(*) FROM events WHERE session_id IS NOT NULL")[0].decode(Int.self, at: 0)
    #expect((sessions.2 == 0) == (sessionEvents == 0), "session_totals is empty only without sessions", sourceLocation: sourceLocation)
    let mismatches = try await pool.query(
        """
        WITH kept AS (
            SELECT h.workspace_id, h.hour, h.tenant_id, h.is_bot, v.visitor
            FROM visitor_hours h JOIN visitors v ON v.id = h.visitor_id AND v.workspace_id = h.workspace_id
        ), expected AS (
            SELECT DISTINCT workspace_id, date_trunc('hour', time, 'UTC') AS hour, tenant_id, is_bot, coalesce(user_id, session_id) AS visitor
            FROM events WHERE coalesce(user_id, session_id) IS NOT NULL
        )
        SELECT (SELECT count(*) FROM (TABLE kept EXCEPT ALL TABLE expected) extra),
               (SELECT count(*) FROM (TABLE expected EXCEPT ALL TABLE kept) missing),
               (SELECT count(*) FROM visitors) - (SELECT count(DISTINCT (workspace_id, visitor)) FROM visitors)
        """
    )[0].decode((Int, Int, Int).self)
    #expect(mismatches.0 == 0, "visitor-hours without events", sourceLocation: sourceLocation)
    #expect(mismatches.1 == 0, "events without visitor-hours", sourceLocation: sourceLocation)
    #expect(mismatches.2 == 0, "visitors numbered twice", sourceLocation: sourceLocation)
    let misnumbered = try await pool.query(
        """
        SELECT count(*) FROM events e
        LEFT JOIN visitors v ON v.workspace_id = e.workspace_id AND v.visitor = coalesce(e.user_id, e.session_id)
        WHERE e.visitor_id IS DISTINCT FROM v.id
        """
    )[0].decode(Int.self, at: 0)
    #expect(misnumbered == 0, "events without their visitor's number", sourceLocation: sourceLocation)
    let rows = try await pool.query("SELECT count(*) FROM visitor_hours")[0].decode(Int.self, at: 0)
    let events = try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
    #expect((rows == 0) == (events == 0), "visitor_hours is empty only without events", sourceLocation: sourceLocation)
}

extension ByteBuffer {
    /// A buffer holding a string's UTF-8 bytes.
    init(text: String) { self.init(string: text) }
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

/// Headers that authenticate as the test server's `ADMIN_TOKEN`.
let adminAuth: HTTPFields = [.authorization: "Bearer \(testAdminToken)"]

/// Headers that authenticate with a bearer token.
func bearer(_ token: String) -> HTTPFields { [.authorization: "Bearer \(token)"] }

/// Creates a workspace through `POST /v0/workspaces` (as `auth`, a logged-in user) and returns its admin token.
func createWorkspace(_ client: any TestClientProtocol, _ body: String, auth: HTTPFields) async throws -> String {
    try await client.execute(uri: "/v0/workspaces", method: .post, headers: auth, body: ByteBuffer(text: body)) { response in
        guard case .string(let token)? = try response.json()["admin_token"] else {
            throw TestFailure("no admin_token: \(String(buffer: response.body))")
        }
        return token
    }
}

/// Creates an API token through `POST /v0/tokens` (as the admin token unless `auth` says otherwise) and returns
/// its secret.
func createToken(_ client: any TestClientProtocol, _ body: String, auth: HTTPFields = adminAuth) async throws -> String {
    try await client.execute(uri: "/v0/tokens", method: .post, headers: auth, body: ByteBuffer(text: body)) { response in
        guard case .string(let token)? = try response.json()["token"] else { throw TestFailure("no token: \(String(buffer: response.body))") }
        return token
    }
}
