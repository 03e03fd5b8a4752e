import Foundation
import Postgres
import PostgresTestSupport
import Testing

@Suite("Queries, parameters and decoding")
struct QueryTests {
    struct Payload: Codable, Equatable, Sendable {
        var name: String
        var tags: [String]
    }

    @Test("every supported type round-trips through a bound parameter, including NULL")
    func roundTrip() async throws {
        let pool = try await TestDatabase.makePool()
        let date = Date(timeIntervalSince1970: 1_700_000_000.123456)
        let uuid = UUID()
        let strings = ["", "plain", "it's \"quoted\"", #"back\slash \N"#, "tab\tnew\nline", "ünïcødé 日本語 🎉", "'; DROP TABLE t; --"]
        try await pool.withConnection { connection in
            for string in strings {
                let back = try await connection.query("SELECT \(string)::text").decode((String).self)
                #expect(back == [string])
            }
            // The same strings as the elements of an array, each in its own row.
            let unnested = try await connection.query("SELECT s FROM unnest(\(strings)) WITH ORDINALITY AS u(s, n) ORDER BY n")
            #expect(try unnested.decode((String).self) == strings)
            let row = try await connection.query(
                """
                SELECT \(42)::int8, \(Int64.min), \(Int32.max)::int4, \(2.5)::float8, \(true), \(false), \(date), \(uuid),
                       \(PostgresJSON(Payload(name: "a", tags: ["x", "y"]))), \(["a", "b,c", "d\"e", "f\\g", ""]), \([1, 2, 3])
                """
            )[0]
            let decoded = try row.decode((Int, Int64, Int32, Double, Bool, Bool, Date, UUID, PostgresJSON<Payload>, [String], [Int]).self)
            #expect(decoded.0 == 42)
            #expect(decoded.1 == Int64.min)
            #expect(decoded.2 == Int32.max)
            #expect(decoded.3 == 2.5)
            #expect(decoded.4 == true)
            #expect(decoded.5 == false)
            #expect(abs(decoded.6.timeIntervalSince1970 - date.timeIntervalSince1970) < 0.000_001)
            #expect(decoded.7 == uuid)
            #expect(decoded.8.value == Payload(name: "a", tags: ["x", "y"]))
            #expect(decoded.9 == ["a", "b,c", "d\"e", "f\\g", ""])
            #expect(decoded.10 == [1, 2, 3])

            let none: String? = nil
            let noInt: Int? = nil
            let noDate: Date? = nil
            let nulls = try await connection.query("SELECT \(none), \(noInt), \(noDate), \(none) IS NULL")[0]
                .decode((String?, Int?, Date?, Bool).self)
            #expect(nulls.0 == nil && nulls.1 == nil && nulls.2 == nil && nulls.3)

            // Arrays of optionals send NULL elements (not empty strings); booleans arrive as boolean[].
            let tenants: [String?] = ["a", nil, "", "NULL"]
            let elements = try await connection.query(
                "SELECT t IS NULL, coalesce(t, '-'), b FROM unnest(\(tenants), \([true, false, true, false])) WITH ORDINALITY AS u(t, b, n) ORDER BY n"
            ).decode((Bool, String, Bool).self)
            #expect(elements.map(\.0) == [false, true, false, false])
            #expect(elements.map(\.1) == ["a", "-", "", "NULL"])
            #expect(elements.map(\.2) == [true, false, true, false])

            // An interval is bound as one: a constant to the planner, where text cast to interval is not.
            let interval = try await connection.query(
                "SELECT \(PostgresInterval("1 day 02:00:00")), pg_typeof(\(PostgresInterval("1 week")))::text"
            )[0].decode((PostgresInterval, String).self)
            #expect(interval.0 == PostgresInterval("1 day 02:00:00") && interval.1 == "interval")

            let special = try await connection.query("SELECT \(Double.infinity), \(-Double.infinity), \(Double.nan)")[0]
                .decode((Double, Double, Double).self)
            #expect(special.0 == .infinity && special.1 == -.infinity && special.2.isNaN)
        }
    }

    @Test("injection attempts stay data and identifiers are quoted")
    func injectionStaysData() async throws {
        let pool = try await TestDatabase.makePool()
        let table = #"we"ird table"#
        try await pool.execute("CREATE TABLE \(identifier: table) (name text)")
        let attacks = ["'; DROP TABLE \"we\"\"ird table\"; --", "$1", "\\'); DELETE FROM x; --", "' OR '1'='1"]
        for attack in attacks {
            try await pool.execute("INSERT INTO \(identifier: table) (name) VALUES (\(attack))")
        }
        let stored = try await pool.query("SELECT name FROM \(identifier: table) ORDER BY name").decode((String).self)
        #expect(stored == attacks.sorted())
        let matches = try await pool.query("SELECT count(*) FROM \(identifier: table) WHERE name = \("' OR '1'='1")")[0].decode(Int.self, at: 0)
        #expect(matches == 1)
    }

    @Test("a query prints placeholders, never values, and fragments keep their parameters")
    func queryDescription() async throws {
        let secret = "hunter2"
        let filter: PostgresQuery = "page = \("/pricing")"
        let query: PostgresQuery = "SELECT * FROM events WHERE user_id = \(secret) AND \(filter) LIMIT \(10)"
        #expect(query.description == "SELECT * FROM events WHERE user_id = $1 AND page = $2 LIMIT $3")
        #expect(!query.description.contains(secret))
        #expect(query.binds.map(\.text) == ["hunter2", "/pricing", "10"])

        let pool = try await TestDatabase.makePool()
        let parts: [PostgresQuery] = ["\(1)::int", "\(2)::int", "\(3)::int"]
        let sum = try await pool.query("SELECT \(PostgresQuery.joined(parts, separator: " + "))")[0].decode(Int.self, at: 0)
        #expect(sum == 6)
    }

    struct EventRow: Decodable, Equatable {
        var id: Int
        var page: String
        var duration: Double?
        var properties: [String: Int]?
        var created: Date
    }

    @Test("rows decode into Decodable structs by column name, with NULLs and JSON columns")
    func decodeStructs() async throws {
        let pool = try await TestDatabase.makePool()
        let rows = try await pool.query(
            """
            SELECT * FROM (VALUES
              (1, '/a', 1.5::float8, '{"x": 1}'::jsonb, timestamptz '2024-01-02 03:04:05.5+00'),
              (2, '/b', NULL, NULL, timestamptz '2024-01-02 03:04:05+02')
            ) AS t(id, page, duration, properties, created)
            """
        ).decode(as: EventRow.self)
        #expect(
            rows == [
                EventRow(id: 1, page: "/a", duration: 1.5, properties: ["x": 1], created: Date(timeIntervalSince1970: 1_704_164_645.5)),
                EventRow(id: 2, page: "/b", duration: nil, properties: nil, created: Date(timeIntervalSince1970: 1_704_157_445)),
            ]
        )
    }

    @Test("decoding errors name the column and both types")
    func decodingErrors() async throws {
        let pool = try await TestDatabase.makePool()
        let row = try await pool.query("SELECT 'abc'::text AS page, NULL::int AS clicks")[0]
        do {
            _ = try row.decode(Int.self, column: "page")
            Issue.record("expected a decoding error")
        } catch {
            #expect(error.kind == .decoding)
            #expect(error.message.contains("\"page\"") && error.message.contains("text") && error.message.contains("Int"))
        }
        #expect(throws: PostgresError.self) { try row.decode(Int.self, column: "clicks") }
        #expect(try row.decode(Int?.self, column: "clicks") == nil)
        #expect(throws: PostgresError.self) { try row.decode(String.self, column: "missing") }
    }

    @Test("server errors carry SQLSTATE, message and detail; their description leaks no data")
    func serverErrors() async throws {
        let pool = try await TestDatabase.makePool()
        try await pool.execute("CREATE TABLE users (email text PRIMARY KEY)")
        try await pool.execute("INSERT INTO users VALUES (\("secret@example.com"))")
        do {
            try await pool.execute("INSERT INTO users VALUES (\("secret@example.com"))")
            Issue.record("expected a unique violation")
        } catch let error as PostgresError {
            #expect(error.kind == .server)
            #expect(error.code == .uniqueViolation)
            #expect(error.detail?.contains("secret@example.com") == true)
            #expect(!error.description.contains("secret"))
            #expect(error.description == "PostgreSQL error 23505 (unique_violation)")
            #expect(String(reflecting: error).contains("secret@example.com"))
            #expect(!error.isUnavailable)
        }
        await #expect(throws: PostgresError.self) { try await pool.query("SELEC nonsense") }
        do {
            try await pool.query("SELECT \("a\u{0}b")")
            Issue.record("expected a NUL error")
        } catch let error as PostgresError {
            #expect(error.kind == .invalidInput)
        }
        // The pool is still usable after errors.
        #expect(try await pool.query("SELECT 1")[0].decode(Int.self, at: 0) == 1)
    }

    @Test("timestamps parse and format in PostgreSQL's ISO text")
    func timestampText() {
        #expect(PostgresTimestamp.parse("1970-01-01 00:00:00+00") == Date(timeIntervalSince1970: 0))
        #expect(PostgresTimestamp.parse("2023-06-15 14:30:00") == Date(timeIntervalSince1970: 1_686_839_400))
        #expect(PostgresTimestamp.parse("2023-06-15T14:30:00Z") == Date(timeIntervalSince1970: 1_686_839_400))
        #expect(PostgresTimestamp.parse("2023-06-15 16:30:00+02") == Date(timeIntervalSince1970: 1_686_839_400))
        #expect(PostgresTimestamp.parse("2023-06-15 09:00:00-05:30") == Date(timeIntervalSince1970: 1_686_839_400))
        #expect(PostgresTimestamp.parse("1969-12-31 23:59:59.5+00") == Date(timeIntervalSince1970: -0.5))
        #expect(PostgresTimestamp.parse("2024-02-30 00:00:00") != nil)  // the server validates calendars; we only parse its output
        #expect(PostgresTimestamp.parse("2023-13-01 00:00:00") == nil)
        #expect(PostgresTimestamp.parse("garbage") == nil)
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 1_686_839_400)) == "2023-06-15 14:30:00+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31 23:59:59.500000+00")
        #expect(PostgresTimestamp.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29 00:00:00+00")
        // ISO-8601 UTC as the API answers: milliseconds only when there is a fraction (its first three digits).
        #expect(PostgresTimestamp.iso8601(Date(timeIntervalSince1970: 1_686_839_400)) == "2023-06-15T14:30:00Z")
        #expect(PostgresTimestamp.iso8601(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(PostgresTimestamp.iso8601(Date(timeIntervalSince1970: 1_686_839_400.25)) == "2023-06-15T14:30:00.250Z")
        #expect(PostgresTimestamp.iso8601(Date(timeIntervalSince1970: 1_686_839_400.000_25)) == "2023-06-15T14:30:00.000Z")
        // Formatting agrees with Foundation's calendar and parsing reads it back, across centuries.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate, .withTime, .withColonSeparatorInTime, .withDashSeparatorInDate, .withSpaceBetweenDateAndTime]
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let date = Date(timeIntervalSince1970: Double(Int64.random(in: -3_000_000_000...6_000_000_000, using: &generator)))
            let text = PostgresTimestamp.format(date)
            #expect(text == formatter.string(from: date) + "+00")
            #expect(PostgresTimestamp.iso8601(date) == text.replacingOccurrences(of: " ", with: "T").dropLast(3) + "Z")
            #expect(PostgresTimestamp.parse(text) == date)
        }
    }

    @Test("database URLs are normalised and printed without passwords")
    func configuration() throws {
        let seed = try PostgresConfiguration("postgresql+psycopg://time-user:time-pw@db_service:5432/timescaledb")
        #expect(seed.connectionString == "postgresql://time-user:time-pw@db_service:5432/timescaledb")
        #expect(!seed.description.contains("time-pw"))
        #expect(try PostgresConfiguration("postgres://u@h/db").connectionString == "postgresql://u@h/db")
        let keywords = try PostgresConfiguration("host=/tmp port=5432 password='p w' dbname=x")
        #expect(!keywords.description.contains("p w"))
        #expect(throws: PostgresError.self) { try PostgresConfiguration("mysql://u@h/db") }
        #expect(throws: PostgresError.self) { try PostgresConfiguration("") }
    }
}
