import App
import EmbeddedPostgres
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Postgres
import PostgresTestSupport
import Testing

@Suite("Health, readiness and error responses")
struct HealthTests {
    @Test("GET /health answers ok and /ready reports the migration version")
    func healthAndReady() async throws {
        try await withTestApp { client in
            try await client.execute(uri: "/health", method: .get) { response in
                #expect(response.status == .ok)
                let body = try response.json()
                #expect(body == ["status": .string("ok")])
            }
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .ok)
                let body = try response.json()
                #expect(body["status"] == .string("ready"))
                #expect(body["migration"] == .int(try Migrator.bundled().map(\.version).max()!))
                #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil)
            }
        }
    }

    @Test("unknown routes answer JSON 404s shaped for their API")
    func notFound() async throws {
        try await withTestApp { client in
            try await client.execute(uri: "/api/nothing", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                let body = try response.json()
                #expect(body == ["detail": .string("Not Found")])
            }
            try await client.execute(uri: "/v0/nothing", method: .get) { response in
                #expect(response.status == .notFound)
                let body = try response.json()
                #expect(body == ["error": .string("Not Found")])
            }
        }
    }

    @Test("a body larger than MAX_BODY_SIZE gets 413 before it is read")
    func bodyTooLarge() async throws {
        try await withTestApp(["MAX_BODY_SIZE": "1KB"]) { client in
            let big = ByteBuffer(repeating: UInt8(ascii: "x"), count: 2048)
            try await client.execute(uri: "/api/events/", method: .post, body: big) { response in
                #expect(response.status == .contentTooLarge)
                let body = try response.json()
                guard case .string(let detail) = body["detail"] else { throw Failure("no detail") }
                #expect(detail.contains("1024"))
            }
            try await client.execute(uri: "/v0/events?name=events", method: .post, body: big) { response in
                #expect(response.status == .contentTooLarge)
                let body = try response.json()
                #expect(body["error"] != nil)
            }
        }
    }

    @Test("/ready answers 503 while the database is stopped and 200 again once it is back, without a restart")
    func readyFollowsTheDatabase() async throws {
        let directory = FileManager.default.temporaryDirectory.path + "/analytics-api-tests/restart-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let server = EmbeddedPostgres(options: .init(directory: directory, durable: false), logger: TestDatabase.logger)
        let database = try await server.start()
        defer { try? server.stop() }
        let app = try await buildApplication(try testConfig(database: database), logger: TestDatabase.logger)
        try await app.test(.router) { client in
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }

            try server.stop()
            let started = ContinuousClock.now
            try await client.execute(uri: "/ready", method: .get) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "5")
                let detail = try response.json()["detail"]
                guard case .string(let text) = detail else { throw Failure("no detail") }
                #expect(text.contains("database unavailable"))
            }
            #expect(ContinuousClock.now - started < .seconds(3), "a stopped database fails fast")
            // Ingest fails as retryable too: nothing was stored, so the client must send again.
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(string: #"{"page": "/"}"#)) { response in
                #expect(response.status == .serviceUnavailable)
                #expect(response.headers[.retryAfter] == "5")
            }

            _ = try await server.start()
            try await client.execute(uri: "/ready", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(string: #"{"page": "/"}"#)) {
                #expect($0.status == .created)
            }
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}
