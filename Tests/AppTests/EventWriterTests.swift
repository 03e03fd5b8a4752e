import Foundation
import Logging
import Postgres
import PostgresTestSupport
import ServiceLifecycle
import Testing

@testable import App

@Suite("Group-commit writer")
struct EventWriterTests {
    static func record(_ index: Int) -> EventRecord {
        EventRecord(
            workspaceID: 1,
            tenantID: nil,
            time: Date(),
            receivedAt: Date(),
            eventID: nil,
            eventType: "page_view",
            eventName: nil,
            userID: "u\(index)",
            sessionID: "s\(index)",
            page: "/",
            url: nil,
            referrer: nil,
            source: "direct",
            referrerDomain: nil,
            userAgent: nil,
            browser: nil,
            os: nil,
            deviceType: nil,
            isBot: false,
            country: nil,
            ip: nil,
            duration: nil,
            clicks: nil,
            feature: nil,
            properties: nil,
            datasource: "api"
        )
    }

    /// Runs `body` with a writer running on a freshly migrated database, then shuts the writer down.
    static func withWriter(
        maxBatchRows: Int = 5000,
        concurrency: Int = 2,
        streams: Bool = true,
        deadlockTimeout: String? = nil,
        _ body: (EventWriter, PostgresPool) async throws -> Void
    ) async throws {
        let database = try await TestDatabase.create()
        if let deadlockTimeout, let name = database.database {
            // For every session of the database, set before the pool opens any.
            let server = PostgresPool(
                configuration: try await TestDatabase.server(),
                options: .init(size: 1),
                threadPool: TestDatabase.threadPool,
                logger: TestDatabase.logger
            )
            try await server.execute("ALTER DATABASE \(identifier: name) SET deadlock_timeout = \(unsafeSQL: "'\(deadlockTimeout)'")")
            await server.close()
        }
        let pool = PostgresPool(configuration: database, options: .init(size: 4), threadPool: TestDatabase.threadPool, logger: TestDatabase.logger)
        try await Migrator(migrations: try Migrator.bundled(), logger: TestDatabase.logger).migrate(pool)
        let writer = EventWriter(
            pool: pool,
            logger: TestDatabase.logger,
            maxBatchRows: maxBatchRows,
            concurrency: concurrency,
            streams: streams
        )
        let group = ServiceGroup(configuration: .init(services: [.init(service: writer)], logger: TestDatabase.logger))
        let running = Task { try await group.run() }
        do {
            try await body(writer, pool)
        } catch {
            await group.triggerGracefulShutdown()
            try? await running.value
            await pool.close()
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
        await pool.close()
    }

    @Test("at graceful shutdown every acknowledged write is committed and later writes are refused")
    func drainsAtShutdown() async throws {
        let pool = try await TestDatabase.makePool(size: 4)
        try await Migrator(migrations: try Migrator.bundled(), logger: TestDatabase.logger).migrate(pool)
        let writer = EventWriter(pool: pool, logger: TestDatabase.logger, maxBatchRows: 50)
        let group = ServiceGroup(configuration: .init(services: [.init(service: writer)], logger: TestDatabase.logger))
        let running = Task { try await group.run() }

        let acknowledged = try await withThrowingTaskGroup(of: Int.self) { tasks in
            for index in 0..<300 {
                tasks.addTask {
                    do {
                        return try await writer.write([Self.record(index)]).count
                    } catch let error as APIError where error.status == .serviceUnavailable {
                        return 0  // refused: arrived after shutdown began
                    }
                }
                if index == 150 { await group.triggerGracefulShutdown() }
            }
            return try await tasks.reduce(0, +)
        }
        try await running.value
        let stored = try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
        #expect(stored == acknowledged)
        #expect(acknowledged > 0)
        await pool.close()
    }

    @Test(
        "concurrent batches keep visitor-hours, visitor-days, event counts and session totals exact: hours, days, types, tenants (none, empty, named), bots, duplicates, new and known visitors, clicks, durations, countries"
    )
    func visitorHours() async throws {
        // Small batches, two at a time, of records that share visitors, hours and tenants across batches.
        try await Self.withWriter(maxBatchRows: 7, concurrency: 2) { writer, pool in
            // 22:00 UTC: the events' hours cross midnight, so visitors have two days.
            let start = Date(timeIntervalSince1970: 1_720_044_000)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                for index in 0..<200 {
                    tasks.addTask {
                        var record = Self.record(index % 23)
                        record.time = start.addingTimeInterval(Double(index % 9) * 1_900)
                        record.tenantID = [nil, "", "t1", "t2"][index % 4]
                        record.isBot = index % 5 == 0
                        // What session totals add up: types, clicks, durations, countries (several at the same time).
                        record.eventType = ["page_view", "click", "pageview", "signup"][index % 4]
                        record.clicks = index % 6 == 1 ? 3 : nil
                        record.duration = index % 3 == 0 ? Double(index) * 0.37 : nil
                        record.country = [nil, "US", "DE", "FR"][index % 4]
                        if index % 7 == 0 { record.userID = nil }  // the session is the visitor
                        if index % 11 == 0 {
                            record.userID = nil
                            record.sessionID = nil
                        }  // no visitor at all
                        record.eventID = "e\(index % 150)"  // 50 duplicates
                        _ = try await writer.write([record])
                    }
                }
                try await tasks.waitForAll()
            }
            let stored = try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
            #expect(stored == 150)
            try await expectRollupsMatchEvents(pool)
        }
    }

    @Test("a batch that PostgreSQL ends to break a deadlock is written again, and its request succeeds")
    func retriesDeadlocks() async throws {
        // PostgreSQL checks a lock wait for a deadlock once, `deadlock_timeout` after it began, and ends the waiter
        // that finds one. At its default (1 s), a loaded machine could take longer than that between the batch's wait
        // and this transaction's, so the batch found no deadlock yet and this transaction was ended instead (seen
        // once in CI). At 5 s the batch's check comes first whenever this transaction waits within 5 s of it.
        try await Self.withWriter(deadlockTimeout: "5s") { writer, pool in
            var first = Self.record(1)
            first.tenantID = "t1"
            _ = try await writer.write([first])
            var later = first
            later.time = first.time.addingTimeInterval(60)
            let second = later
            let write = try await pool.withTransaction { holder in
                // Holds u1's totals (migration 0027): the next batch of u1's session updates it, its triggers lock t1's
                // totals, then wait for u1's.
                #expect(try await holder.query("SHOW deadlock_timeout")[0].decode(String.self, at: 0) == "5s")
                try await holder.execute("SELECT 1 FROM user_totals WHERE user_id = 'u1' FOR UPDATE")
                let write = Task { try await writer.write([second]) }
                let waits = try await eventually {
                    try await pool.query(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
                    )[0].decode(Int.self, at: 0) == 1
                }
                #expect(waits, "the batch waits for u1's totals")
                // Then this transaction waits for t1's totals, which the batch holds: PostgreSQL ends the transaction
                // that waited first, the batch's, and this one goes on.
                try await holder.execute("SELECT 1 FROM tenant_totals WHERE tenant_id = 't1' FOR UPDATE")
                return write
            }
            #expect(try await write.value.count == 1)
            let totals = try await pool.query("SELECT people_rows, people_events FROM tenant_totals WHERE tenant_id = 't1'")
            #expect(try totals.decode((Int, Int).self).first.map { [$0.0, $0.1] } == [1, 2])
            try await expectRollupsMatchEvents(pool)
        }
    }

    @Test("events written around the writer get their visitor-hours and -days, counts and session totals from a rebuild, which keeps the others")
    func rebuildVisitorHours() async throws {
        try await Self.withWriter { writer, pool in
            _ = try await writer.write((0..<5).map { Self.record($0) })
            // A new visitor and a known one in another hour, straight into the table.
            try await pool.execute(
                """
                INSERT INTO events (workspace_id, time, user_id, session_id, tenant_id, is_bot)
                VALUES (1, now() - interval '3 hours', 'raw', 'raw-s', 't', false), (1, now() - interval '5 hours', 'u1', 's1', NULL, true)
                """
            )
            let missing = try await pool.query(
                """
                SELECT count(*) FROM events e
                WHERE NOT EXISTS (
                    SELECT 1 FROM visitor_hours h JOIN visitors v ON v.id = h.visitor_id
                    WHERE v.visitor = coalesce(e.user_id, e.session_id) AND h.hour = date_trunc('hour', e.time, 'UTC')
                )
                """
            )[0].decode(Int.self, at: 0)
            #expect(missing == 2)
            // Their visitors were numbered as they were stored (migration 0014's trigger): the new one drew a number.
            let numbers = try await pool.query(
                """
                SELECT e.user_id, e.visitor_id, v.id FROM events e JOIN visitors v ON v.visitor = e.user_id
                WHERE e.user_id IN ('raw', 'u1') ORDER BY e.user_id, e.time
                """
            ).decode((String, Int?, Int).self)
            #expect(numbers.count == 3)
            #expect(numbers.allSatisfy { $0.1 == $0.2 })
            // Nor have their sessions totals: one session is new, the other's totals lack an event.
            let totals = try await pool.query(
                "SELECT session_id, events FROM session_totals WHERE session_id IN ('raw-s', 's1') ORDER BY session_id"
            ).decode((String, Int).self)
            #expect(totals.map(\.0) == ["s1"])
            // Nor have they visitor-days or counts: the realtime total still counts the writer's five.
            let counted = try await pool.query("SELECT sum(events)::bigint FROM event_counts")[0].decode(Int.self, at: 0)
            #expect(counted == 5)
            // What `workspace rebuild-rollups` runs.
            let rebuilt = try await Rollups(pool: pool).rebuild(workspaceID: 1)
            try await expectRollupsMatchEvents(pool)
            // u0…u4 and raw in their hours and on their days; u1 again as a bot.
            #expect(rebuilt == Rollups.Rebuilt(visitorHours: 7, visitorDays: 7, sessionTotals: 7))
            // An event whose visitor changes gets the new visitor's number, and none once it has no visitor.
            try await pool.execute("UPDATE events SET user_id = 'renamed' WHERE user_id = 'raw'")
            try await pool.execute("UPDATE events SET user_id = NULL, session_id = NULL WHERE user_id = 'u2'")
            let changed = try await pool.query(
                """
                SELECT (SELECT e.visitor_id = v.id FROM events e JOIN visitors v ON v.visitor = 'renamed' WHERE e.user_id = 'renamed'),
                       (SELECT visitor_id IS NULL FROM events WHERE user_id IS NULL AND session_id IS NULL)
                """
            )[0].decode((Bool, Bool).self)
            #expect(changed == (true, true))
        }
    }

    @Test("batches the realtime hub is too far behind to take are counted, for its clients to be told; a writer without a hub streams none")
    func unstreamedBatches() async throws {
        try await Self.withWriter { writer, _ in
            // Nobody reads `committed`: it keeps the newest 8 batches; one write at a time makes one batch each.
            for index in 0..<12 { _ = try await writer.write([Self.record(index)]) }
            #expect(writer.takeUnstreamed() == 4)
            #expect(writer.takeUnstreamed() == 0)
        }
        // A writer that does not stream (demo-data's) drops nothing, so it warns of nothing.
        try await Self.withWriter(streams: false) { writer, _ in
            for index in 0..<12 { _ = try await writer.write([Self.record(index)]) }
            #expect(writer.takeUnstreamed() == 0)
        }
    }

    @Test("the keys a batch locks in order sort as their fields do: none before any text, people before bots")
    func keyOrders() {
        // Every combination of a few values, empty text and none among them: each pair must compare as the fields'
        // tuple does (none as the lowest), the order concurrent batches rely on to lock rows alike.
        let texts: [String?] = [nil, "", "a", "b", "ü"]
        var hours: [EventWriter.VisitorActivity.Hour] = []
        var days: [EventWriter.VisitorActivity.Day] = []
        var sessions: [EventWriter.SessionAdditions.Key] = []
        for workspace in [1, 2] {
            for text in texts {
                for other in texts {
                    for isBot in [false, true] {
                        for number in [0, 3_600] {
                            let visitor = EventWriter.VisitorActivity.Visitor(workspaceID: workspace, visitor: other ?? "v")
                            hours.append(.init(visitor: visitor, hour: number, tenantID: text, isBot: isBot))
                            days.append(.init(visitor: visitor, eventType: other ?? "click", day: number, tenantID: text, isBot: isBot))
                            let session = number == 0 ? "s" : "t"
                            sessions.append(.init(workspaceID: workspace, sessionID: session, tenantID: text, userID: other, isBot: isBot))
                        }
                    }
                }
            }
        }
        func rank(_ text: String?) -> (Int, String) { text.map { (1, $0) } ?? (0, "") }
        func bot(_ isBot: Bool) -> Int { isBot ? 1 : 0 }
        func expectOrder<Key: Comparable>(_ keys: [Key], _ before: (Key, Key) -> Bool) {
            var mismatches = 0
            for lhs in keys {
                for rhs in keys where (lhs < rhs) != before(lhs, rhs) || (lhs == rhs) != (!before(lhs, rhs) && !before(rhs, lhs)) {
                    mismatches += 1
                }
            }
            #expect(mismatches == 0)
        }
        expectOrder(hours) { l, r in
            let (a, b) = (rank(l.tenantID), rank(r.tenantID))
            return (l.visitor.workspaceID, l.hour, a.0, a.1, bot(l.isBot), l.visitor.visitor)
                < (r.visitor.workspaceID, r.hour, b.0, b.1, bot(r.isBot), r.visitor.visitor)
        }
        expectOrder(days) { l, r in
            let (a, b) = (rank(l.tenantID), rank(r.tenantID))
            return (l.visitor.workspaceID, l.eventType, l.day, l.visitor.visitor, a.0, a.1)
                < (r.visitor.workspaceID, r.eventType, r.day, r.visitor.visitor, b.0, b.1)
                || ((l.visitor.workspaceID, l.eventType, l.day, l.visitor.visitor, a.0, a.1)
                    == (r.visitor.workspaceID, r.eventType, r.day, r.visitor.visitor, b.0, b.1) && bot(l.isBot) < bot(r.isBot))
        }
        expectOrder(sessions) { l, r in
            let (a, b, c, d) = (rank(l.tenantID), rank(r.tenantID), rank(l.userID), rank(r.userID))
            return (l.workspaceID, l.sessionID, a.0, a.1, c.0, c.1) < (r.workspaceID, r.sessionID, b.0, b.1, d.0, d.1)
                || ((l.workspaceID, l.sessionID, a.0, a.1, c.0, c.1) == (r.workspaceID, r.sessionID, b.0, b.1, d.0, d.1)
                    && bot(l.isBot) < bot(r.isBot))
        }
    }
}
