import App
import Foundation
import Postgres
import PostgresTestSupport
import Testing

@Suite("Schema migrations")
struct MigrationTests {
    @Test("migrations apply once, in order, and two migrators starting together do not race")
    func concurrentMigrators() async throws {
        let pool = try await TestDatabase.makePool(size: 4)
        let migrations = try Migrator.bundled()
        let migrator = Migrator(migrations: migrations, logger: TestDatabase.logger)
        async let first = migrator.migrate(pool)
        async let second = migrator.migrate(pool)
        let versions = try await [first, second]
        #expect(versions == [migrator.latestVersion, migrator.latestVersion])
        #expect(try await migrator.migrate(pool) == migrator.latestVersion)
        let recorded = try await pool.query("SELECT version FROM schema_migrations ORDER BY version").decode((Int).self)
        #expect(recorded == migrations.map(\.version).sorted())
        #expect(try await Migrator.currentVersion(pool) == migrator.latestVersion)
    }

    @Test("the first migration creates the tables of SPEC section 3 and the default workspace")
    func schema() async throws {
        let pool = try await TestDatabase.makePool()
        try await Migrator(migrations: try Migrator.bundled(), logger: TestDatabase.logger).migrate(pool)
        let tables = try await pool.query(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1"
        ).decode((String).self)
        for table in ["api_tokens", "events", "quarantine", "schema_migrations", "user_features", "users", "workspaces"] {
            #expect(tables.contains(table), "missing table \(table)")
        }
        let workspace = try await pool.query("SELECT id, name FROM workspaces WHERE name = 'default'")[0].decode((Int, String).self)
        #expect(workspace == (1, "default"))
        // A new workspace does not collide with the default one's id.
        let next = try await pool.query("INSERT INTO workspaces (name) VALUES ('second') RETURNING id")[0].decode(Int.self, at: 0)
        #expect(next == 2)
        // Events take their defaults: time, received_at, event_type, is_bot.
        let event = try await pool.query(
            "INSERT INTO events (workspace_id, page) VALUES (1, '/') RETURNING event_type, is_bot, time <= now()"
        )[0].decode((String, Bool, Bool).self)
        #expect(event == ("page_view", false, true))
    }

    @Test(
        "upgrading numbers the visitors of the events already stored (0014): users, else sessions, per workspace; adds up their sessions (0015), visitor-days and counts (0016)"
    )
    func visitorNumbersOfStoredEvents() async throws {
        let pool = try await TestDatabase.makePool()
        let migrations = try Migrator.bundled()
        try await Migrator(migrations: migrations.filter { $0.version < 14 }, logger: TestDatabase.logger).migrate(pool)
        try await pool.execute("INSERT INTO workspaces (name) VALUES ('second')")
        try await pool.execute(
            """
            INSERT INTO events (workspace_id, user_id, session_id) VALUES
                (1, 'ann', 's1'), (1, 'ann', 's2'), (1, NULL, 's3'), (1, NULL, NULL), (2, 'ann', 's1')
            """
        )
        try await Migrator(migrations: migrations, logger: TestDatabase.logger).migrate(pool)
        let numbers = try await pool.query(
            """
            SELECT e.workspace_id, coalesce(e.user_id, e.session_id), e.visitor_id, v.id
            FROM events e LEFT JOIN visitors v ON v.workspace_id = e.workspace_id AND v.visitor = coalesce(e.user_id, e.session_id)
            ORDER BY e.id
            """
        ).decode((Int, String?, Int?, Int?).self)
        #expect(numbers.count == 5)
        #expect(numbers.allSatisfy { $0.2 == $0.3 })
        #expect(numbers.map { $0.2 == nil } == [false, false, false, true, false])
        // Ann is one visitor in workspace 1 (two sessions) and another in workspace 2.
        #expect(numbers[0].2 == numbers[1].2)
        #expect(Set(numbers.compactMap(\.2)).count == 3)
        // The upgrade also adds up their sessions' totals (0015), with their visitors' numbers; the event without a
        // session has none.
        let sessions = try await pool.query(
            """
            SELECT t.workspace_id, t.session_id, t.events, t.visitor_id = e.visitor_id
            FROM session_totals t JOIN events e ON e.workspace_id = t.workspace_id AND e.session_id = t.session_id
            ORDER BY 1, 2
            """
        ).decode((Int, String, Int, Bool).self)
        #expect(sessions.map { "\($0.0) \($0.1) \($0.2) \($0.3)" } == ["1 s1 1 true", "1 s2 1 true", "1 s3 1 true", "2 s1 1 true"])
        // And their visitor-days and counts per day and type (0016): every event counted, those stored around the
        // writer before it too; Ann once a day in workspace 1; the event without a visitor counted, but no visitor.
        let days = try await pool.query(
            """
            SELECT d.workspace_id, v.visitor, d.event_type, d.day = (SELECT max(time AT TIME ZONE 'UTC')::date FROM events)
            FROM visitor_days d JOIN visitors v ON v.id = d.visitor_id
            ORDER BY 1, 2
            """
        ).decode((Int, String, String, Bool).self)
        #expect(days.map { "\($0.0) \($0.1) \($0.2) \($0.3)" } == ["1 ann page_view true", "1 s3 page_view true", "2 ann page_view true"])
        let counts = try await pool.query(
            "SELECT workspace_id, tenant_id, event_type, is_bot, events FROM event_counts ORDER BY 1"
        ).decode((Int, String, String, Bool, Int).self)
        #expect(counts.map { "\($0.0) '\($0.1)' \($0.2) \($0.3) \($0.4)" } == ["1 '' page_view false 4", "2 '' page_view false 1"])
    }

    @Test("time_bucket works like TimescaleDB's on plain PostgreSQL, in UTC and in a named zone")
    func timeBucket() async throws {
        let pool = try await TestDatabase.makePool()
        try await Migrator(migrations: try Migrator.bundled(), logger: TestDatabase.logger).migrate(pool)
        func bucket(_ width: String, _ time: String, zone: String? = nil) async throws -> String {
            let query: PostgresQuery =
                zone == nil
                ? "SELECT time_bucket(\(width)::interval, \(time)::timestamptz)::text"
                : "SELECT time_bucket(\(width)::interval, \(time)::timestamptz, \(zone))::text"
            return try await pool.query(query)[0].decode(String.self, at: 0)
        }
        #expect(try await bucket("15 minutes", "2024-05-05 13:07:59+00") == "2024-05-05 13:00:00+00")
        #expect(try await bucket("1 hour", "2024-05-05 13:59:59.9+00") == "2024-05-05 13:00:00+00")
        #expect(try await bucket("1 day", "2024-05-05 23:59:00+00") == "2024-05-05 00:00:00+00")
        // Weeks start on Monday (2024-04-29 is a Monday).
        #expect(try await bucket("1 week", "2024-05-05 12:00:00+00") == "2024-04-29 00:00:00+00")
        #expect(try await bucket("1 month", "2024-05-31 23:00:00+00") == "2024-05-01 00:00:00+00")
        #expect(try await bucket("3 months", "2024-05-31 23:00:00+00") == "2024-04-01 00:00:00+00")
        #expect(try await bucket("1 year", "2024-05-31 23:00:00+00") == "2024-01-01 00:00:00+00")
        // 23:30 UTC on 5 May is 01:30 on 6 May in Berlin (UTC+2): the local day starts at 22:00 UTC.
        #expect(try await bucket("1 day", "2024-05-05 23:30:00+00", zone: "Europe/Berlin") == "2024-05-05 22:00:00+00")
        #expect(try await bucket("1 day", "2024-05-05 21:30:00+00", zone: "Europe/Berlin") == "2024-05-04 22:00:00+00")
        #expect(try await bucket("1 month", "2024-05-31 23:00:00+00", zone: "Europe/Berlin") == "2024-05-31 22:00:00+00")
    }
}
