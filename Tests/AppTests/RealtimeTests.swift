import EmbeddedPostgres
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import Logging
import NIOCore
import Postgres
import PostgresTestSupport
import Testing

@testable import App

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Reads a WebSocket's JSON messages: one per socket, since a socket's messages can be iterated only once.
/// Used by one task at a time (the handler that made it, or one nested in it), hence unchecked.
final class SocketReader: @unchecked Sendable {
    private var iterator: WebSocketInboundMessageStream.AsyncIterator
    let outbound: WebSocketOutboundWriter

    init(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) {
        iterator = inbound.messages(maxSize: 1 << 22).makeAsyncIterator()
        self.outbound = outbound
    }

    /// Reads messages until `done` says enough (or `timeout` passes, which closes the socket).
    func receive(timeout: Duration = .seconds(20), until done: ([[String: JSONValue]]) -> Bool) async throws -> [[String: JSONValue]] {
        let timer = closeAfter(timeout)
        defer { timer.cancel() }
        var messages: [[String: JSONValue]] = []
        while let message = try await iterator.next() {
            guard case .text(let text) = message, case .object(let object) = try JSONParser.parse(text) else { continue }
            messages.append(object)
            if done(messages) { break }
        }
        return messages
    }

    /// Counts live event messages, without decoding them, until `expected` arrived (or `timeout` passes); also
    /// returns the drops the server reported.
    func countEvents(_ expected: Int, timeout: Duration) async throws -> (events: Int, dropped: Int) {
        let timer = closeAfter(timeout)
        defer { timer.cancel() }
        var events = 0
        var dropped = 0
        while events < expected, let message = try await iterator.next() {
            guard case .text(var text) = message else { continue }
            if text.hasPrefix(#"{"dropped":"#) {
                dropped += Int(text.dropFirst(11).prefix { $0.isNumber }) ?? 0
                text = "{" + text.drop { $0 != "," }.dropFirst()
            }
            if text.hasPrefix(#"{"type":"event","event""#) { events += 1 }
        }
        return (events, dropped)
    }

    func close() async throws { try await outbound.close(.normalClosure, reason: nil) }

    /// Closes the socket after `timeout`, which ends a read waiting for more, unless cancelled first.
    private func closeAfter(_ timeout: Duration) -> Task<Void, any Error> {
        let outbound = outbound
        return Task {
            try await Task.sleep(for: timeout)
            try await outbound.close(.normalClosure, reason: "test timeout")
        }
    }
}

/// The `event` objects among `messages`, leaving out the greeting's recent events.
func liveEvents(_ messages: [[String: JSONValue]]) -> [[String: JSONValue]] {
    messages.compactMap { message in
        guard message["type"] == "event", message["recent"] == nil, case .object(let event)? = message["event"] else { return nil }
        return event
    }
}

/// Posts events to `/api/events/batch` and expects them all stored.
func postBatch(_ client: any TestClientProtocol, _ events: [String]) async throws {
    try await client.execute(
        uri: "/api/events/batch",
        method: .post,
        headers: [.contentType: "application/json"],
        body: ByteBuffer(text: "[" + events.joined(separator: ",") + "]")
    ) { response in
        #expect(response.status == .created || response.status == .ok, "\(String(buffer: response.body))")
    }
}

/// A page view as `/api/events` takes it.
func pageView(_ page: String, session: String, secondsAgo: Double = 0, type: String = "page_view", extra: String = "") -> String {
    #"{"event_type": "\#(type)", "page": "\#(page)", "session_id": "\#(session)", "timestamp": "\#(isoAgo(secondsAgo))"\#(extra)}"#
}

func isoAgo(_ seconds: Double) -> String { PostgresTimestamp.iso8601(Date().addingTimeInterval(-seconds)) }

/// Two applications on one fresh database, both serving on their own port.
func withTwoLiveApps(
    _ overrides: [String: String] = [:],
    database: PostgresConfiguration? = nil,
    _ body: @Sendable (any TestClientProtocol, any TestClientProtocol) async throws -> Void
) async throws {
    let database: PostgresConfiguration = if let database { database } else { try await TestDatabase.create() }
    var settings = ["ADMIN_TOKEN": testAdminToken, "PORT": "0"]
    settings.merge(overrides) { $1 }
    let first = try await buildApplication(try testConfig(database: database, settings), logger: TestDatabase.logger)
    let second = try await buildApplication(try testConfig(database: database, settings), logger: TestDatabase.logger)
    try await first.test(.live) { one in
        try await second.test(.live) { two in
            // Each server streams the other's events once its hub listens (over a connection of its own, opened as
            // it starts): before that, they are not streamed to its clients.
            #expect(try await waitForListeners(2, on: database))
            try await body(one, two)
        }
    }
}

/// Whether `count` sessions on `database` are listening (have run `LISTEN` and wait), within 30 s.
func waitForListeners(_ count: Int, on database: PostgresConfiguration) async throws -> Bool {
    let connection = try await PostgresConnection.connect(database, threadPool: TestDatabase.threadPool)
    do {
        let listening = try await eventually {
            let rows = try await connection.query(
                """
                SELECT count(*) FROM pg_stat_activity
                WHERE datname = current_database() AND state = 'idle' AND query LIKE 'LISTEN %'
                """
            )
            return try rows[0].decode(Int.self, at: 0) == count
        }
        await connection.close()
        return listening
    } catch {
        await connection.close()
        throw error
    }
}

@Suite("Realtime: stats, WebSocket stream, fan-out across servers, slow clients, database restarts")
struct RealtimeTests {
    @Test("events are written as JSON by hand: every column but the workspace, escaped, nulls and ISO times")
    func eventJSON() throws {
        let full = EventRecord(
            workspaceID: 3,
            tenantID: "t\"1",
            time: Date(timeIntervalSince1970: 1_790_000_000.25),
            receivedAt: Date(timeIntervalSince1970: 1_790_000_001),
            eventID: "e/1",
            eventType: "page_view",
            eventName: "Ünïcode ✓ \u{1F600}",
            userID: "line\nbreak\ttab\u{1}",
            sessionID: "s",
            page: "/a?b=\\c",
            url: "https://x.test/a",
            referrer: nil,
            source: "direct",
            referrerDomain: nil,
            userAgent: "Mozilla/5.0",
            browser: "Firefox",
            os: "Linux",
            deviceType: "desktop",
            isBot: false,
            country: "DE",
            ip: "10.0.0.0",
            duration: 45.5,
            clicks: 3,
            feature: "export",
            properties: #"{"plan": "pro", "n": [1, 2.5, null]}"#,
            datasource: "api"
        )
        var bare = full
        (bare.tenantID, bare.eventID, bare.eventName, bare.userID, bare.page, bare.properties) = (nil, nil, nil, nil, nil, nil)
        (bare.duration, bare.clicks, bare.isBot) = (45, nil, true)
        let expected: [String: JSONValue] = [
            "id": 42, "time": "2026-09-21T14:13:20.250Z", "received_at": "2026-09-21T14:13:21Z", "tenant_id": "t\"1",
            "event_id": "e/1", "event_type": "page_view", "event_name": "Ünïcode ✓ \u{1F600}", "user_id": "line\nbreak\ttab\u{1}",
            "session_id": "s", "page": "/a?b=\\c", "url": "https://x.test/a", "referrer": .null, "source": "direct",
            "referrer_domain": .null, "user_agent": "Mozilla/5.0", "browser": "Firefox", "os": "Linux", "device_type": "desktop",
            "is_bot": false, "country": "DE", "ip": "10.0.0.0", "duration": 45.5, "clicks": 3, "feature": "export",
            "properties": ["plan": "pro", "n": [1, 2.5, .null]], "datasource": "api",
        ]
        #expect(try JSONParser.parse(EventResponse.jsonText(StoredEvent(id: 42, record: full))) == .object(expected))
        var bareExpected = expected
        for key in ["tenant_id", "event_id", "event_name", "user_id", "page", "properties", "clicks"] { bareExpected[key] = .null }
        (bareExpected["duration"], bareExpected["is_bot"]) = (45, true)
        #expect(try JSONParser.parse(EventResponse.jsonText(StoredEvent(id: 42, record: bare))) == .object(bareExpected))
    }

    @Test("notices: id ranges round-trip and split under PostgreSQL's payload limit")
    func notices() {
        let ids = Array(1...5) + [9] + Array(20...30)
        let payloads = RealtimeNotice.payloads(instance: "abc", ids: ids.shuffled())
        #expect(payloads == ["abc;1-5,9,20-30"])
        let notice = RealtimeNotice(payload: payloads[0])
        #expect(notice?.instance == "abc")
        #expect(notice?.ids == ids)
        let scattered = Array(stride(from: 0, to: 40_000, by: 2))
        let many = RealtimeNotice.payloads(instance: "abc", ids: scattered)
        #expect(many.count > 1)
        #expect(many.allSatisfy { $0.utf8.count <= RealtimeNotice.maxPayloadBytes })
        #expect(many.flatMap { RealtimeNotice(payload: $0)?.ids ?? [] } == scattered)
        #expect(RealtimeNotice(payload: "garbage") == nil)
        #expect(RealtimeNotice(payload: "abc;9-1") == nil)
    }

    @Test("a client's queue is bounded, drops are reported with its next message, forced replies are bounded too")
    func subscriberQueue() async {
        let subscriber = RealtimeSubscriber(id: 1, filter: RealtimeFilter(scope: DataScope(workspaceID: 1)), capacity: 2)
        #expect(subscriber.offer(#"{"n":1}"#))
        #expect(subscriber.offer(#"{"n":2}"#))
        #expect(!subscriber.offer(#"{"n":3}"#))
        let first = await subscriber.next()?.map { String(buffer: $0) }
        #expect(first == [#"{"dropped":1,"n":1}"#, #"{"n":2}"#])
        for _ in 0..<(2 + RealtimeSubscriber.forcedAllowance) { subscriber.offer("{}", force: true) }
        #expect(!subscriber.offer("{}", force: true))
        subscriber.close()
        #expect(await subscriber.next() == nil)

        // A commit's events in one offer: as many as fit, in order; the rest dropped and reported.
        let batched = RealtimeSubscriber(id: 2, filter: RealtimeFilter(scope: DataScope(workspaceID: 1)), capacity: 3)
        batched.offer(contentsOf: (1...2).map { ByteBuffer(string: #"{"n":\#($0)}"#) })
        batched.offer(contentsOf: (3...5).map { ByteBuffer(string: #"{"n":\#($0)}"#) })
        let taken = await batched.next()?.map { String(buffer: $0) }
        #expect(taken == [#"{"dropped":2,"n":1}"#, #"{"n":2}"#, #"{"n":3}"#])
        // Events the hub never had (it fell behind the writer) are reported with the next message too.
        batched.reportDropped(5)
        batched.offer(contentsOf: [ByteBuffer(string: #"{"n":6}"#)])
        #expect(await batched.next()?.map { String(buffer: $0) } == [#"{"dropped":5,"n":6}"#])
    }

    @Test("stats: hand-counted windows, totals, bots left out, tenants, anonymous access and its setting")
    func stats() async throws {
        try await withTestApp { client, _ in
            try await ingest(
                client,
                "user_events",
                [
                    #"{"event_id": "e1", "event_type": "page_view", "page": "/a", "session_id": "s1", "timestamp": "\#(ago(10))", "duration": 4}"#,
                    #"{"event_id": "e2", "event_type": "page_view", "page": "/a", "session_id": "s2", "timestamp": "\#(ago(30))", "duration": 6}"#,
                    #"{"event_id": "e3", "event_type": "page_view", "page": "/b", "session_id": "s2", "timestamp": "\#(ago(90))"}"#,
                    #"{"event_id": "e4", "event_type": "click", "page": "/a", "session_id": "s1", "timestamp": "\#(ago(5))"}"#,
                    #"{"event_id": "e5", "event_type": "page_view", "page": "/old", "session_id": "s3", "timestamp": "\#(ago(600))"}"#,
                    #"{"event_id": "e6", "event_type": "page_view", "page": "/", "session_id": "sb", "timestamp": "\#(ago(5))", "user_agent": "Googlebot/2.1"}"#,
                    #"{"event_id": "e7", "event_type": "page_view", "page": "/t", "session_id": "st", "tenant_id": "t1", "timestamp": "\#(ago(20))"}"#,
                ]
            )
            // All 7 stored; sessions with an event in 5 minutes: s1, s2, st (s3 is older, sb a bot); page views in the
            // last minute: e1, e2, e7; top pages over 5 minutes: /a ×2, /b, /t; durations 4 and 6; 7 arrivals / 10 s.
            let stats = try await client.execute(uri: "/api/realtime/stats", method: .get) { response in
                #expect(response.status == .ok)
                return try response.json()
            }
            #expect(stats["total_events"] == 7)
            #expect(stats["active_sessions"] == 3)
            #expect(stats["page_views_last_minute"] == 3)
            #expect(stats["avg_duration"] == 5)
            #expect(stats["events_per_second"] == 0.7)
            #expect(
                stats["top_pages"]
                    == [["page": "/a", "views": 2], ["page": "/b", "views": 1], ["page": "/t", "views": 1]]
            )
            guard case .array(let perSecond)? = stats["per_second"] else { throw TestFailure("no per_second") }
            #expect(perSecond.count == 60)
            #expect(perSecond.reduce(0) { if case .int(let n) = $1 { $0 + n } else { $0 } } == 7)

            // A token of tenant t1 sees only its tenant.
            let tenantToken = try await createToken(client, #"{"name": "t1 reader", "scopes": ["read"], "tenant_id": "t1"}"#)
            try await client.execute(uri: "/api/realtime/stats?token=\(tenantToken)", method: .get) { response in
                let tenant = try response.json()
                #expect(tenant["total_events"] == 1)
                #expect(tenant["active_sessions"] == 1)
                #expect(tenant["page_views_last_minute"] == 1)
                #expect(tenant["avg_duration"] == .null)
                #expect(tenant["top_pages"] == [["page": "/t", "views": 1]])
            }
            // An append-only token may not read; a wrong token is refused.
            let appendToken = try await createToken(client, #"{"name": "writer", "scopes": ["append"]}"#)
            try await client.execute(uri: "/api/realtime/stats", method: .get, headers: bearer(appendToken)) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/api/realtime/stats?token=ak_nope", method: .get) { #expect($0.status == .unauthorized) }

            // The dashboard is one HTML page; the WebSocket path explains itself to plain HTTP.
            for path in ["/api/realtime/", "/api/realtime"] {
                try await client.execute(uri: path, method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType] == "text/html; charset=utf-8")
                    let page = String(buffer: response.body)
                    #expect(page.contains("/api/realtime/ws"))
                    #expect(!page.contains("http://") || page.contains("http://www.w3.org/2000/svg"))
                    #expect(!page.contains("https://"))
                }
            }
            try await client.execute(uri: "/api/realtime/ws", method: .get) { #expect($0.status == .upgradeRequired) }
        }
        try await withTestApp(["REALTIME_ANONYMOUS": "false"]) { client, _ in
            try await client.execute(uri: "/api/realtime/stats", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/realtime/stats", method: .get, headers: adminAuth) { #expect($0.status == .ok) }
        }
    }

    @Test("retention takes deleted events off the totals")
    func totalsFollowRetention() async throws {
        try await withTestApp { client, pool in
            try await ingest(
                client,
                "user_events",
                [
                    #"{"event_type": "page_view", "page": "/old", "timestamp": "\#(ago(40 * 86_400))"}"#,
                    #"{"event_type": "page_view", "page": "/old", "tenant_id": "t", "timestamp": "\#(ago(40 * 86_400))"}"#,
                    #"{"event_type": "page_view", "page": "/new", "timestamp": "\#(ago(60))"}"#,
                ]
            )
            try await client.execute(uri: "/api/realtime/stats", method: .get) { response in
                let body = try response.json()
                #expect(body["total_events"] == 3)
            }
            let report = try await DataRetention(pool: pool, eventDays: 30, quarantineDays: nil, logger: TestDatabase.logger).runOnce()
            #expect(report.events == 2)
            try await client.execute(uri: "/api/realtime/stats", method: .get) { response in
                let body = try response.json()
                #expect(body["total_events"] == 1)
            }
            let rows = try await pool.query("SELECT count(*)::bigint FROM event_counts")[0].decode(Int.self, at: 0)
            #expect(rows == 1)
        }
    }

    @Test("the WebSocket streams committed events with filters, greets with stats and recent events, answers ping")
    func stream() async throws {
        try await withTestApp(["PORT": "0"], testingSetup: .live) { client, _ in
            try await postBatch(client, [pageView("/before", session: "s0")])
            try await client.ws("/api/realtime/ws?event_type=click") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                try await postBatch(
                    client,
                    [
                        pageView("/pricing", session: "s1"),
                        pageView("/pricing", session: "s1", type: "click"),
                        pageView("/other", session: "s1", type: "click", extra: #", "tenant_id": "t9""#),
                    ]
                )
                try await outbound.write(.text("ping"))
                let messages = try await socket.receive { messages in
                    liveEvents(messages).count == 2 && messages.contains { $0["type"] == "pong" }
                }
                #expect(messages.first?["type"] == "stats")
                let events = liveEvents(messages)
                #expect(events.map { $0["page"] } == ["/pricing", "/other"])
                #expect(events.allSatisfy { $0["event_type"] == "click" && $0["id"] != nil && $0["user_id"] == .null })
                #expect(messages.contains { $0["type"] == "pong" })
                // The greeting's recent events are filtered too: /before is a page view.
                #expect(!messages.contains { $0["recent"] == true })
                try await outbound.close(.normalClosure, reason: nil)
            }
            // A new client is greeted with the latest events, oldest first; a tenant token sees only its tenant.
            try await client.ws("/api/realtime/ws") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                let messages = try await socket.receive { $0.filter { $0["recent"] == true }.count == 4 }
                let pages = messages.filter { $0["recent"] == true }.compactMap { message -> JSONValue? in
                    guard case .object(let event)? = message["event"] else { return nil }
                    return event["page"]
                }
                #expect(pages == ["/before", "/pricing", "/pricing", "/other"])
                try await outbound.close(.normalClosure, reason: nil)
            }
            let tenantToken = try await createToken(client, #"{"name": "t9 reader", "scopes": ["read"], "tenant_id": "t9"}"#)
            try await client.ws("/api/realtime/ws?token=\(tenantToken)") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                try await postBatch(client, [pageView("/not-mine", session: "x"), pageView("/mine", session: "y", extra: #", "tenant_id": "t9""#)])
                let messages = try await socket.receive { liveEvents($0).count == 1 && $0.contains { $0["type"] == "stats" } }
                #expect(liveEvents(messages).map { $0["page"] } == ["/mine"])
                #expect(messages.filter { $0["recent"] == true }.count == 1)
                let stats = messages.first { $0["type"] == "stats" }
                #expect(stats?["total_events"] == 1 || stats?["total_events"] == 2)
                try await outbound.close(.normalClosure, reason: nil)
            }
            // Without a valid credential when one is given, no upgrade.
            await #expect(throws: (any Error).self) {
                try await client.ws("/api/realtime/ws?token=ak_wrong") { _, _, _ in }
            }
        }
    }

    @Test("?batch=1 sends what waits as one batch message: the same messages, in order, one WebSocket message per take")
    func batched() async throws {
        try await withTestApp(["PORT": "0"], testingSetup: .live) { client, _ in
            try await client.ws("/api/realtime/ws?batch=1") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                let greeting = try await socket.receive { !$0.isEmpty }
                #expect(greeting.allSatisfy { $0["type"] == "batch" })
                let pages = (1...30).map { "/b\($0)" }
                try await postBatch(client, pages.map { pageView($0, session: "s") })
                try await outbound.write(.text("ping"))
                let frames = try await socket.receive { frames in
                    let messages = frames.flatMap(Self.unbatched)
                    return liveEvents(messages).count == 30 && messages.contains { $0["type"] == "pong" }
                }
                #expect(frames.allSatisfy { $0["type"] == "batch" })
                // 30 events from one commit: fewer WebSocket messages than events.
                #expect(frames.count < 30)
                #expect(liveEvents(frames.flatMap(Self.unbatched)).map { $0["page"] } == pages.map(JSONValue.string))
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
        // Batch messages hold the messages as they are; a batch inside a batch gives its messages (a client that fell
        // behind gets one flat list), and drops are reported at the top.
        let one = RealtimeSubscriber.batchMessage([ByteBuffer(string: #"{"n":1}"#), ByteBuffer(string: #"{"n":2}"#)])
        #expect(String(buffer: one) == #"{"type":"batch","messages":[{"n":1},{"n":2}]}"#)
        let flat = RealtimeSubscriber.batchMessage([one, ByteBuffer(string: #"{"type":"pong"}"#), one], dropped: 7)
        #expect(String(buffer: flat) == #"{"type":"batch","dropped":7,"messages":[{"n":1},{"n":2},{"type":"pong"},{"n":1},{"n":2}]}"#)
        // A batch is queued whole or dropped whole, its events counted against the capacity.
        let subscriber = RealtimeSubscriber(id: 9, filter: RealtimeFilter(scope: DataScope(workspaceID: 1)), capacity: 3, batched: true)
        subscriber.offer(batch: one, count: 2)
        subscriber.offer(batch: one, count: 2)
        let taken = await subscriber.take()
        #expect(taken?.messages.map { String(buffer: $0) } == [String(buffer: one)])
        #expect(taken?.dropped == 2)
    }

    /// The messages of a batch message.
    static func unbatched(_ frame: [String: JSONValue]) -> [[String: JSONValue]] {
        guard case .array(let items)? = frame["messages"] else { return [frame] }
        return items.compactMap { item in
            guard case .object(let object) = item else { return nil }
            return object
        }
    }

    @Test("two servers on one database deliver each other's events, each exactly once")
    func twoServers() async throws {
        try await withTwoLiveApps { one, two in
            try await one.ws("/api/realtime/ws") { inboundOne, outboundOne, _ in
                let socketOne = SocketReader(inboundOne, outboundOne)
                try await two.ws("/api/realtime/ws") { inboundTwo, outboundTwo, _ in
                    let socketTwo = SocketReader(inboundTwo, outboundTwo)
                    // Let each server's first stats arrive, so both are subscribed before anything is stored.
                    _ = try await socketOne.receive { $0.contains { $0["type"] == "stats" } }
                    _ = try await socketTwo.receive { $0.contains { $0["type"] == "stats" } }
                    try await postBatch(two, [pageView("/via-two", session: "a"), pageView("/via-two-b", session: "a")])
                    try await postBatch(one, [pageView("/via-one", session: "b")])
                    let seenByOne = try await socketOne.receive(timeout: .seconds(10)) { liveEvents($0).count >= 3 }
                    let seenByTwo = try await socketTwo.receive(timeout: .seconds(10)) { liveEvents($0).count >= 3 }
                    let expected: Set<JSONValue> = ["/via-two", "/via-two-b", "/via-one"]
                    #expect(Set(liveEvents(seenByOne).map { $0["page"]! }) == expected)
                    #expect(Set(liveEvents(seenByTwo).map { $0["page"]! }) == expected)
                    // Nothing twice: wait a moment for stray duplicates.
                    try await postBatch(one, [pageView("/marker", session: "c")])
                    let restOne = try await socketOne.receive(timeout: .seconds(10)) { liveEvents($0).contains { $0["page"] == "/marker" } }
                    let restTwo = try await socketTwo.receive(timeout: .seconds(10)) { liveEvents($0).contains { $0["page"] == "/marker" } }
                    #expect(liveEvents(restOne).map { $0["page"] } == ["/marker"])
                    #expect(liveEvents(restTwo).map { $0["page"] } == ["/marker"])
                    try await outboundTwo.close(.normalClosure, reason: nil)
                }
                try await outboundOne.close(.normalClosure, reason: nil)
            }
        }
    }

    @Test("a client that stops reading gets messages dropped and counted; ingest and other clients do not wait for it")
    func slowClient() async throws {
        let batches = 40
        let perBatch = 500
        @Sendable func ingestAll(_ client: any TestClientProtocol, tag: String) async throws -> Duration {
            let start = ContinuousClock.now
            for batch in 0..<batches {
                try await postBatch(client, (0..<perBatch).map { pageView("/\(tag)/\(batch)/\($0)", session: "s\(batch)") })
            }
            return ContinuousClock.now - start
        }
        try await withTestApp(["PORT": "0", "REALTIME_CLIENT_QUEUE": "5000"], testingSetup: .live) { client, _ in
            let port = try #require(client.port)
            let baseline = try await ingestAll(client, tag: "warm-up")
            let stalled = try StalledSocket(port: port, path: "/api/realtime/ws")
            try await client.ws("/api/realtime/ws") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                _ = try await socket.receive { $0.contains { $0["type"] == "stats" } }
                async let received = socket.countEvents(batches * perBatch, timeout: .seconds(60))
                let withStalled = try await ingestAll(client, tag: "measured")
                // The reading client got every event, none dropped.
                let (events, dropped) = try await received
                #expect(events == batches * perBatch)
                #expect(dropped == 0)
                TestDatabase.logger.notice(
                    "ingest of \(batches * perBatch) events: \(baseline) without clients, \(withStalled) with a stalled and a reading client"
                )
                try await socket.close()
            }
            // The stalled client, reading at last, learns how many messages it missed.
            let dropped = try stalled.readUntilDropped(timeout: .seconds(30))
            #expect(dropped > 0)
            #expect(dropped < batches * perBatch)
        }
    }

    @Test("after the database restarts, each server listens again and delivers the other's events")
    func databaseRestart() async throws {
        let directory = "/tmp/analytics-api-tests/realtime-restart-\(getpid())"
        let embedded = EmbeddedPostgres(options: .init(directory: directory, durable: false), logger: TestDatabase.logger)
        let database = try await embedded.start()
        defer {
            try? embedded.stop()
            try? FileManager.default.removeItem(atPath: directory)
        }
        try await withTwoLiveApps(database: database) { one, two in
            try await one.ws("/api/realtime/ws") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                _ = try await socket.receive { $0.contains { $0["type"] == "stats" } }
                try await postBatch(two, [pageView("/before-restart", session: "a")])
                let before = try await socket.receive { liveEvents($0).count == 1 }
                #expect(liveEvents(before).map { $0["page"] } == ["/before-restart"])

                try embedded.stop()
                _ = try await embedded.start()
                // Each server's listener reconnects on its own, with backoff; events stored before server one listens
                // again are not streamed to its clients. So wait for both, then store one event through server two,
                // whose pool replaces its broken connections as it lends them (a request meeting the restart gets 503).
                #expect(try await waitForListeners(2, on: database))
                var status = HTTPResponse.Status.serviceUnavailable
                for _ in 0..<40 where status != .created {
                    status = try await two.execute(
                        uri: "/api/events/",
                        method: .post,
                        headers: [.contentType: "application/json"],
                        body: ByteBuffer(text: pageView("/after-restart", session: "b"))
                    ) { $0.status }
                    if status != .created { try await Task.sleep(for: .milliseconds(250)) }
                }
                #expect(status == .created)
                let after = try await socket.receive(timeout: .seconds(30)) { !liveEvents($0).isEmpty }
                #expect(liveEvents(after).map { $0["page"] } == ["/after-restart"])
                try await socket.close()
            }
        }
    }
}

/// A WebSocket client that completes the handshake and then reads nothing until asked to, with a small receive
/// buffer, so the server's writes to it back up at once.
final class StalledSocket: Sendable {
    let descriptor: Int32

    init(port: Int, path: String) throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket() failed") }
        var size: Int32 = 4096
        setsockopt(descriptor, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestFailure("connect() failed") }
        let request =
            "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        _ = request.withCString { send(descriptor, $0, strlen($0), 0) }
    }

    deinit { close(descriptor) }

    /// Reads what the server sends until a message reports drops; returns the count. Only what is new is searched
    /// (with the few bytes before it that could hold the start of the marker): searching all that was kept on every
    /// read took longer than the timeout in a debug build on a busy machine.
    func readUntilDropped(timeout: Duration) throws -> Int {
        let deadline = ContinuousClock.now + timeout
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let marker = Array(#"{"dropped":"#.utf8)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 500) > 0 else { continue }
            let count = recv(descriptor, &buffer, buffer.count, 0)
            guard count > 0 else { break }
            received += buffer[0..<count]
            if let start = Self.find(marker, in: received) {
                // Kept from the marker on, until its number has ended.
                received.removeFirst(start)
                let digits = received[marker.count...].prefix { (48...57).contains($0) }
                if digits.count < received.count - marker.count, let value = Int(String(decoding: digits, as: UTF8.self)) {
                    return value
                }
            } else {
                received.removeFirst(max(0, received.count - (marker.count - 1)))
            }
        }
        throw TestFailure("no message reported dropped messages")
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for index in 0...(haystack.count - needle.count) where haystack[index] == needle[0] {
            if Array(haystack[index..<index + needle.count]) == needle { return index }
        }
        return nil
    }
}
