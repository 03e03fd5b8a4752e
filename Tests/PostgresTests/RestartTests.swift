import EmbeddedPostgres
import Foundation
import Postgres
import PostgresTestSupport
import Testing

@Suite("Surviving a database restart")
struct RestartTests {
    @Test("while the server is down calls fail fast as unavailable; afterwards the pool and the listener recover")
    func restart() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/analytics-api-tests/restart-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = EmbeddedPostgres(options: .init(directory: directory, database: "restart", durable: false), logger: TestDatabase.logger)
        let configuration = try await server.start()
        defer { try? server.stop() }

        let pool = PostgresPool(
            configuration: configuration,
            options: .init(size: 2),
            threadPool: TestDatabase.threadPool,
            logger: TestDatabase.logger
        )
        let listener = PostgresListener(
            configuration: configuration,
            channels: ["ch"],
            threadPool: TestDatabase.threadPool,
            logger: TestDatabase.logger
        )
        let listening = Task { try await listener.run() }
        defer { listening.cancel() }
        var reconnections = listener.reconnections.makeAsyncIterator()
        var notifications = listener.notifications.makeAsyncIterator()
        _ = await reconnections.next()
        try await pool.notify(channel: "ch", payload: "before")
        #expect(await notifications.next()?.payload == "before")

        try server.stop()
        let started = ContinuousClock.now
        do {
            try await pool.query("SELECT 1")
            Issue.record("expected the query to fail while the server is down")
        } catch let error as PostgresError {
            #expect(error.isUnavailable)
        }
        #expect(ContinuousClock.now - started < .seconds(3))

        _ = try await server.start()
        #expect(try await pool.query("SELECT 2")[0].decode(Int.self, at: 0) == 2)
        _ = await reconnections.next()
        try await pool.notify(channel: "ch", payload: "after")
        #expect(await notifications.next()?.payload == "after")
    }

    @Test("missing server binaries give one clear message saying what to install")
    func missingBinaries() throws {
        do {
            _ = try EmbeddedPostgres.findBinaries(in: ["/nonexistent", "/tmp"])
            Issue.record("expected a failure")
        } catch let failure as EmbeddedPostgres.Failure {
            #expect(failure.description.contains("apt-get install postgresql"))
            #expect(failure.description.contains("DATABASE_URL"))
        }
        let found = try EmbeddedPostgres.findBinaries(in: ["/nonexistent"] + EmbeddedPostgres.candidateFolders(preferred: nil))
        #expect(found.pgCtl.hasSuffix("/pg_ctl"))
    }
}
