import Foundation
import Postgres
import PostgresTestSupport
import Synchronization
import Testing

@Suite("Pool, transactions, COPY and LISTEN/NOTIFY")
struct ConnectionTests {
    struct Failure: Error {}

    final class Log: Sendable {
        let entries = Mutex<[String]>([])
        func append(_ entry: String) { entries.withLock { $0.append(entry) } }
        var last: String? { entries.withLock { $0.last } }
    }

    @Test("a transaction commits when its closure returns and rolls back when it throws")
    func transactions() async throws {
        let pool = try await TestDatabase.makePool()
        try await pool.execute("CREATE TABLE t (n int)")
        try await pool.withTransaction { try await $0.execute("INSERT INTO t VALUES (1)") }
        await #expect(throws: Failure.self) {
            try await pool.withTransaction { connection in
                try await connection.execute("INSERT INTO t VALUES (2)")
                throw Failure()
            }
        }
        // A statement that failed inside the closure aborts the transaction even if the closure swallows the error.
        await #expect(throws: PostgresError.self) {
            try await pool.withTransaction { connection in
                try await connection.execute("INSERT INTO t VALUES (3)")
                _ = try? await connection.execute("INSERT INTO t VALUES ('not a number')")
            }
        }
        await #expect(throws: PostgresError.self) {
            try await pool.withTransaction(readOnly: true) { try await $0.execute("INSERT INTO t VALUES (4)") }
        }
        #expect(try await pool.query("SELECT n FROM t ORDER BY n").decode((Int).self) == [1])
    }

    @Test("COPY FROM STDIN stores 100,000 rows with escaping and returns the count")
    func copyManyRows() async throws {
        let pool = try await TestDatabase.makePool()
        try await pool.execute("CREATE TABLE copied (id int8, page text, note text)")
        let tricky = [
            "tab\there", "new\nline", "carriage\rreturn", #"back\slash"#, #"\N"#, "ünïcødé 🎉", "", "\t\\ü\n\r", "bell\u{7} and ✓\\",
        ]
        var rows: [[String?]] = []
        rows.reserveCapacity(100_000)
        for index in 0..<100_000 {
            rows.append([String(index), "/page/\(index % 100)", index < tricky.count ? tricky[index] : (index % 10 == 0 ? nil : "n")])
        }
        let stored = try await pool.withConnection { try await $0.copy(into: "copied", columns: ["id", "page", "note"], rows: rows) }
        #expect(stored == 100_000)
        let summary = try await pool.query("SELECT count(*), count(note), count(DISTINCT page), sum(id) FROM copied")[0]
            .decode((Int, Int, Int, Int).self)
        #expect(summary.0 == 100_000)
        #expect(summary.1 == 100_000 - 9_999)  // multiples of 10 from 10 on are NULL; row 0 holds "tab\there"
        #expect(summary.2 == 100)
        #expect(summary.3 == 99_999 * 100_000 / 2)
        let back = try await pool.query("SELECT note FROM copied WHERE id < \(tricky.count) ORDER BY id").decode((String?).self)
        #expect(back == tricky)
    }

    @Test("COPY quotes the table's and columns' names: quotes doubled, case and unicode kept")
    func copyQuotedNames() async throws {
        let pool = try await TestDatabase.makePool()
        try await pool.execute(#"CREATE TABLE "odd ""table"" ü" ("Id" int8, "say ""hi""" text, """" text)"#)
        #expect(PostgresIdentifier.quote(#"odd "table" ü"#) == #""odd ""table"" ü""#)
        let stored = try await pool.withConnection {
            try await $0.copy(into: #"odd "table" ü"#, columns: ["Id", #"say "hi""#, #"""#], rows: [["7", "hello", "q"]])
        }
        #expect(stored == 1)
        let row = try await pool.query(#"SELECT "Id", "say ""hi""", """" FROM "odd ""table"" ü""#)[0].decode((Int, String, String).self)
        #expect(row == (7, "hello", "q"))
    }

    @Test("a prepared statement is prepared once per connection and text, outlives a rolled-back transaction and fails like any")
    func preparedStatements() async throws {
        let pool = try await TestDatabase.makePool(size: 1)
        try await pool.execute("CREATE TABLE numbers (n int8 PRIMARY KEY, note text)")
        try await pool.withConnection { connection in
            func insert(_ n: Int, _ note: String?) async throws -> [Int] {
                try await connection.query(
                    "INSERT INTO numbers SELECT n, \(note) FROM unnest(\([n, n + 100])::int8[]) AS n ON CONFLICT DO NOTHING RETURNING n",
                    prepared: true
                ).decode((Int).self)
            }
            #expect(try await insert(1, "one") == [1, 101])
            #expect(try await insert(1, "again") == [])  // conflicts: nothing inserted
            #expect(try await insert(2, nil) == [2, 102])
            try await connection.executeScript(unsafeSQL: "BEGIN")
            #expect(try await insert(3, "three") == [3, 103])
            try await connection.executeScript(unsafeSQL: "ROLLBACK")
            #expect(try await insert(4, "four") == [4, 104])
            // A failing run (a NUL in a parameter, a value PostgreSQL refuses) leaves the statement and connection usable.
            await #expect(throws: PostgresError.self) { try await insert(5, "nul\u{0}") }
            await #expect(throws: PostgresError.self) {
                try await connection.query("SELECT \("x")::int8 + \(1)", prepared: true)
            }
            #expect(try await insert(6, "six") == [6, 106])
            let statements = try await connection.query("SELECT count(*) FROM pg_prepared_statements").decode((Int).self)
            #expect(statements == [2])  // the insert and the failing sum, each once
        }
        let notes = try await pool.query("SELECT n, note FROM numbers WHERE n < 100 ORDER BY n").decode((Int, String?).self)
        #expect(notes.map(\.0) == [1, 2, 4, 6])
        #expect(notes.map(\.1) == ["one", nil, "four", "six"])
    }

    @Test("rows packed as they arrive equal libpq's whole result, over several pages, prepared or not, and fail cleanly")
    func packedRows() async throws {
        let pool = try await TestDatabase.makePool(size: 1)
        try await pool.withConnection { connection in
            // Values of every kind a page holds: NULLs, empty text, multibyte text, numbers, arrays, JSON; 2,500 rows
            // make two full pages (1,024 rows each) and a part, and 2,048 exactly two.
            func rows(_ count: Int) -> PostgresQuery {
                """
                SELECT n, CASE WHEN n % 3 = 0 THEN NULL ELSE repeat('é', (n % 5)::int) END AS note, n * 0.5 AS half,
                       ARRAY[n, NULL] AS pair, json_build_object('n', n) AS doc, NULL::text AS nothing
                FROM generate_series(1, \(count)) AS n
                """
            }
            for count in [0, 1, 1_023, 1_024, 2_048, 2_500] {
                for prepared in [false, true] {
                    let whole = try await connection.query(rows(count), prepared: prepared)
                    let packed = try await connection.query(rows(count), prepared: prepared, packed: true)
                    #expect(packed.count == count)
                    #expect(packed.affectedRows == count)
                    #expect(packed.columns?.names == ["n", "note", "half", "pair", "doc", "nothing"])
                    #expect(packed.columns?.types == whole.columns?.types)
                    let texts = { (rows: PostgresRows) in rows.map { row in (0..<row.count).map { row.text($0) } } }
                    #expect(texts(packed) == texts(whole))
                }
            }
            let notes = try await connection.query(rows(7), packed: true).decode((Int, String?).self)
            #expect(notes.map(\.1) == ["é", "éé", nil, "éééé", "", nil, "éé"])

            // Statements without rows: their count is the command's.
            try await connection.query("CREATE TEMP TABLE numbers (n int8)", packed: true)
            let inserted = try await connection.query("INSERT INTO numbers SELECT generate_series(1, \(1_500))", packed: true)
            #expect(inserted.affectedRows == 1_500 && inserted.isEmpty)
            let updated = try await connection.query("UPDATE numbers SET n = -n WHERE n > \(1_000) RETURNING n", packed: true)
            #expect(updated.affectedRows == 500 && updated.count == 500)
            #expect(try updated.decode((Int).self).reduce(0, +) == -(1_001...1_500).reduce(0, +))

            // An error after rows were sent (the 1,500th row divides by zero): thrown, the rows dropped, and the
            // connection ready for the next statement.
            await #expect(throws: PostgresError.self) {
                try await connection.query("SELECT 1 / (n - \(1_500)) FROM generate_series(1, \(3_000)) AS n", packed: true)
            }
            await #expect(throws: PostgresError.self) { try await connection.query("SELECT \("x")::int8", packed: true) }
            #expect(try await connection.query("SELECT \(2) + \(2)", packed: true).decode((Int).self) == [4])
        }
    }

    @Test("a COPY with an invalid value stores nothing and leaves the connection usable")
    func copyAborts() async throws {
        let pool = try await TestDatabase.makePool(size: 1)
        try await pool.execute("CREATE TABLE copied (id int8, note text)")
        await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try await $0.copy(into: "copied", columns: ["id", "note"], rows: [["1", "ok"], ["2", "nul\u{0}"]]) }
        }
        await #expect(throws: PostgresError.self) {
            try await pool.withConnection { try await $0.copy(into: "copied", columns: ["id", "note"], rows: [["1", "ok"], ["x", "bad id"]]) }
        }
        #expect(try await pool.query("SELECT count(*) FROM copied")[0].decode(Int.self, at: 0) == 0)
    }

    @Test("LISTEN delivers notifications published with pg_notify")
    func listenNotify() async throws {
        let pool = try await TestDatabase.makePool()
        let listener = PostgresListener(
            configuration: pool.configuration,
            channels: ["events", "other channel"],
            threadPool: TestDatabase.threadPool,
            logger: TestDatabase.logger
        )
        let task = Task { try await listener.run() }
        defer { task.cancel() }
        var reconnections = listener.reconnections.makeAsyncIterator()
        _ = await reconnections.next()

        let payload = #"{"id": 1, "page": "it's \"quoted\""}"#
        try await pool.notify(channel: "events", payload: payload)
        try await pool.notify(channel: "other channel", payload: "second")
        try await pool.notify(channel: "not listened", payload: "ignored")
        var iterator = listener.notifications.makeAsyncIterator()
        let first = await iterator.next()
        let second = await iterator.next()
        #expect(first?.channel == "events" && first?.payload == payload)
        #expect(second?.channel == "other channel" && second?.payload == "second")
    }

    @Test("when every connection is lent, callers wait and then proceed; past the timeout they fail")
    func poolExhaustion() async throws {
        let pool = try await TestDatabase.makePool(size: 2, acquireTimeout: .seconds(30))
        let order = Log()
        // Each step waits for the one before it rather than for a time, which a busy machine can overrun.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<2 {
                group.addTask {
                    try await pool.withConnection { connection in
                        try await connection.query("SELECT 1")
                        if index == 0 {
                            // Given back once a third caller waits, the pool opening no third connection.
                            #expect(try await eventually { pool.statistics.waiting == 1 && pool.statistics.inUse == 2 })
                        } else {
                            // Kept until the waiter has had holder 0's connection.
                            #expect(try await eventually { order.entries.withLock { $0.contains("waiter") } })
                        }
                        order.append("holder \(index)")
                    }
                }
            }
            #expect(try await eventually { pool.statistics.inUse == 2 })
            group.addTask {
                try await pool.withConnection { connection in
                    try await connection.query("SELECT 1")
                    order.append("waiter")
                }
            }
            try await group.waitForAll()
        }
        #expect(order.entries.withLock { $0 } == ["holder 0", "waiter", "holder 1"])
        #expect(pool.statistics == .init(open: 2, inUse: 0, idle: 2, waiting: 0))

        let small = try await TestDatabase.makePool(size: 1, acquireTimeout: .milliseconds(200))
        try await small.withConnection { _ in
            do {
                try await small.query("SELECT 1")
                Issue.record("expected a pool timeout")
            } catch let error as PostgresError {
                #expect(error.kind == .poolTimeout)
                #expect(error.isUnavailable)
            }
        }
        #expect(try await small.query("SELECT 1").count == 1)
    }

    @Test("connections sharing a snapshot see the same rows, are only those the pool can spare, and all end with the body")
    func sharedSnapshot() async throws {
        // Extra connections are lent while at most half of the pool's six would be: two besides the first.
        let pool = try await TestDatabase.makePool(size: 6, acquireTimeout: .seconds(30))
        let writer = PostgresPool(
            configuration: pool.configuration,
            options: .init(size: 1),
            threadPool: TestDatabase.threadPool,
            logger: TestDatabase.logger
        )
        try await pool.execute("CREATE TABLE t (n int)")
        try await pool.execute("INSERT INTO t VALUES (1)")

        try await pool.withSharedSnapshot(extra: 4) { connections in
            #expect(connections.count == 3)
            var backends: Set<Int> = []
            var snapshots: Set<String> = []
            for connection in connections {
                let row = try await connection.query(
                    "SELECT pg_backend_pid(), pg_current_snapshot()::text, current_setting('transaction_isolation'), current_setting('transaction_read_only')"
                )[0]
                let (backend, snapshot, isolation, readOnly) = try row.decode((Int, String, String, String).self)
                backends.insert(backend)
                snapshots.insert(snapshot)
                #expect(isolation == "repeatable read" && readOnly == "on")
            }
            #expect(backends.count == 3)
            #expect(snapshots.count == 1)
            // A row committed after the snapshot was taken is seen by none of them.
            try await writer.execute("INSERT INTO t VALUES (2)")
            for connection in connections {
                #expect(try await connection.query("SELECT count(*) FROM t")[0].decode(Int.self) == 1)
            }
        }
        #expect(pool.statistics == .init(open: 3, inUse: 0, idle: 3, waiting: 0))
        #expect(try await pool.query("SELECT count(*) FROM t")[0].decode(Int.self) == 2)

        // Two connections lent elsewhere: the body gets a third alone, at once (a fourth would leave two of six free).
        try await pool.withConnection { _ in
            try await pool.withConnection { _ in
                let count = try await pool.withSharedSnapshot(extra: 2) { connections async throws -> Int in
                    #expect(try await connections[0].query("SELECT count(*) FROM t")[0].decode(Int.self) == 2)
                    return connections.count
                }
                #expect(count == 1)
            }
        }

        // A body that throws rolls every transaction back and gives every connection back, usable.
        await #expect(throws: Failure.self) {
            try await pool.withSharedSnapshot(extra: 1) { connections in
                #expect(connections.count == 2)
                _ = try? await connections[1].execute("INSERT INTO t VALUES (3)")  // read-only: fails, aborting it
                throw Failure()
            }
        }
        #expect(pool.statistics.inUse == 0)
        for _ in 0..<3 {
            #expect(try await pool.query("SELECT count(*) FROM t")[0].decode(Int.self) == 2)
        }
        // A statement that failed on an extra connection fails the whole, even if the body swallowed the error.
        await #expect(throws: PostgresError.self) {
            try await pool.withSharedSnapshot(extra: 1) { connections in
                _ = try? await connections[1].execute("SELECT 1 / 0")
            }
        }
        #expect(pool.statistics.inUse == 0)
        await writer.close()
    }

    @Test("a backend terminated by the server is replaced transparently")
    func terminatedBackend() async throws {
        let pool = try await TestDatabase.makePool(size: 1)
        let firstPID = try await pool.withConnection { $0.backendPID }
        let admin = PostgresPool(
            configuration: pool.configuration,
            options: .init(size: 1),
            threadPool: TestDatabase.threadPool,
            logger: TestDatabase.logger
        )
        #expect(try await admin.query("SELECT pg_terminate_backend(\(firstPID))")[0].decode(Bool.self, at: 0))
        // Gone from the server (its end takes a moment on a busy machine), so the pool's next use meets a dead one.
        #expect(
            try await eventually {
                try await admin.query("SELECT count(*) FROM pg_stat_activity WHERE pid = \(firstPID)")[0].decode(Int.self, at: 0) == 0
            }
        )
        let (pid, value) = try await pool.withConnection { connection in
            (connection.backendPID, try await connection.query("SELECT 41 + 1")[0].decode(Int.self, at: 0))
        }
        #expect(value == 42)
        #expect(pid != firstPID)
        #expect(pool.statistics.open == 1)
    }
}
