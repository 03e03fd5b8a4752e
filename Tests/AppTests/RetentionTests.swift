import Foundation
import Hummingbird
import HummingbirdTesting
import Postgres
import PostgresTestSupport
import Testing

@testable import App

@Suite("Data retention")
struct RetentionTests {
    @Test("RETENTION_DAYS deletes only events older than the window, in batches, with their old event ids; quarantine has its own window")
    func deletesOnlyWhatIsOld() async throws {
        try await withTestApp { client, pool in
            // 7 events 40 days old (backfill keeps client times), 3 from 29 days ago, 2 from today; one quarantined row.
            var lines: [String] = []
            for index in 0..<7 { lines.append(#"{"event_id": "old\#(index)", "session_id": "s", "page": "/", "timestamp": "\#(ago(40 * 86_400))"}"#) }
            for index in 0..<3 {
                lines.append(#"{"event_id": "kept\#(index)", "session_id": "s", "page": "/", "timestamp": "\#(ago(29 * 86_400))"}"#)
            }
            for index in 0..<2 { lines.append(#"{"event_id": "new\#(index)", "session_id": "s", "page": "/", "timestamp": "\#(ago(60))"}"#) }
            // Either side of the cutoff, most likely in its hour: that hour's visitor-hours are recounted.
            lines.append(#"{"event_id": "edge-old", "session_id": "s-old", "page": "/", "timestamp": "\#(ago(30 * 86_400 + 60))"}"#)
            lines.append(#"{"event_id": "edge-new", "session_id": "s-new", "page": "/", "timestamp": "\#(ago(30 * 86_400 - 60))"}"#)
            try await ingest(client, "user_events", lines)
            try await client.execute(
                uri: "/v0/events?name=user_events&token=\(testAdminToken)",
                method: .post,
                body: ByteBuffer(text: #"{"duration": "long"}"#)
            ) { #expect($0.status == .accepted) }
            // The ids of the old events were first seen 40 days ago too (as if they had been sent then).
            try await pool.execute("UPDATE event_ids SET first_seen = now() - interval '40 days' WHERE event_id LIKE 'old%'")
            try await pool.execute("UPDATE quarantine SET received_at = now() - interval '31 days'")

            let retention = DataRetention(pool: pool, eventDays: 30, quarantineDays: 30, logger: TestDatabase.logger)
            var small = retention
            small.batchSize = 3
            let report = try await small.runOnce()
            #expect(report == DataRetention.Report(events: 8, eventIDs: 7, quarantined: 1))
            let left = try await pool.query("SELECT event_id FROM events ORDER BY event_id").decode((String?).self)
            #expect(left == ["edge-new", "kept0", "kept1", "kept2", "new0", "new1"])
            let ids = try await pool.query("SELECT count(*) FROM event_ids")[0].decode(Int.self, at: 0)
            #expect(ids == 7)
            try await expectRollupsMatchEvents(pool)
            let quarantined = try await pool.query("SELECT count(*) FROM quarantine")[0].decode(Int.self, at: 0)
            #expect(quarantined == 0)
            // A second pass finds nothing more; without windows nothing is deleted.
            #expect(try await retention.runOnce() == DataRetention.Report())
            let keepAll = DataRetention(pool: pool, eventDays: nil, quarantineDays: nil, logger: TestDatabase.logger)
            #expect(try await keepAll.runOnce() == DataRetention.Report())
            let count = try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
            #expect(count == 6)
        }
    }

    @Test("retention settings: RETENTION_DAYS off by default, quarantine kept 30 days, 0 keeps for ever")
    func settings() throws {
        let defaults = try AppConfig(values: [:])
        #expect(defaults.retentionDays == nil)
        #expect(defaults.quarantineRetentionDays == 30)
        let set = try AppConfig(values: ["RETENTION_DAYS": "90", "QUARANTINE_RETENTION_DAYS": "0"])
        #expect(set.retentionDays == 90)
        #expect(set.quarantineRetentionDays == nil)
        #expect(throws: AppConfig.Invalid.self) { try AppConfig(values: ["RETENTION_DAYS": "-1"]) }
    }
}
