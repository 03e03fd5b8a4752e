import Foundation
import Postgres
import PostgresTestSupport
import Synchronization
import Testing

@testable import App

@Suite("Demo data")
struct DemoDataTests {
    @Test("the same seed generates the same events; another seed does not")
    func deterministic() async throws {
        let now = Date()
        func collect(seed: UInt64) async throws -> [EventRecord] {
            let records = Mutex<[EventRecord]>([])
            try await DemoDataGenerator(events: 2000, days: 7, seed: seed, now: now).generate(batchSize: 500) { batch in
                records.withLock { $0 += batch }
            }
            return records.withLock { $0 }
        }
        let first = try await collect(seed: 7)
        #expect(first.count == 2000)
        #expect(try await collect(seed: 7) == first)
        #expect(try await collect(seed: 8) != first)
        #expect(first.allSatisfy { $0.time <= now && $0.time >= now.addingTimeInterval(-7 * 86_400) })
    }

    @Test("generated traffic is stored through the writer and looks like traffic")
    func load() async throws {
        let pool = try await TestDatabase.makePool(size: 4)
        try await Migrator(migrations: try Migrator.bundled(), logger: TestDatabase.logger).migrate(pool)
        let written = try await DemoDataLoader.load(DemoDataGenerator(events: 20_000, days: 30), pool: pool, logger: TestDatabase.logger) { _ in }
        #expect(written == 20_000)
        let shape = try await pool.query(
            """
            SELECT count(*), count(DISTINCT session_id), count(*) FILTER (WHERE is_bot), count(DISTINCT device_type),
                   count(DISTINCT source), count(DISTINCT coalesce(user_id, session_id))
            FROM events
            """
        )[0].decode((Int, Int, Int, Int, Int, Int).self)
        #expect(shape.0 == 20_000)
        #expect(shape.1 > 1000, "sessions")
        #expect(shape.2 > 0 && shape.2 < 2000, "some bots")
        #expect(shape.3 >= 4, "desktop, mobile, tablet and bot")
        #expect(shape.4 >= 5, "direct, search, social, email, referral (and internal)")
        #expect(shape.5 < shape.1, "visitors come back for more sessions")
        let bounces = try await pool.query(
            "SELECT count(*) FROM (SELECT session_id FROM events GROUP BY session_id HAVING count(*) = 1) AS single"
        )[0].decode(Int.self, at: 0)
        #expect(bounces > shape.1 / 5, "about a third of sessions bounce")
        await pool.close()
    }
}
