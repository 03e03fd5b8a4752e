import App
import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Postgres
import PostgresTestSupport
import Testing

/// The example ingest bodies of the seed documents, byte for byte.
enum SeedBodies {
    static let analytics004 = """
        {
            "page": "/pricing",
            "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            "referrer": "https://google.com",
            "session_id": "abc123",
            "duration": 45
          }
        """
    static let userEvents000 = """
        {
                "event_id": "ev_12345",
                "user_id": "usr_abc123",
                "event_type": "page_view",
                "timestamp": "2023-06-15 14:30:00",
                "session_id": "sess_xyz789",
                "page": "/products",
                "duration": 45,
                "device_type": "mobile",
                "country": "US",
                "os": "iOS",
                "browser": "Safari"
             }
        """
    static let events001 = #"""
        {"event_id":"123e4567-e89b-12d3-a456-426614174000","user_id":"user123","session_id":"session456","event_type":"feature_click","event_name":"button_click","page":"homepage","feature":"search_bar","properties":"{\"query\":\"example\"}","timestamp":"2024-10-27 10:00:00"}
        """#
    static let userEvents002 = """
        {
                "user_id": "u123456",
                "event_type": "page_view",
                "timestamp": "2023-05-15 14:30:00",
                "session_id": "sess_abc123",
                "page": "/products",
                "referrer": "https://google.com",
                "device_type": "mobile",
                "country": "US",
                "duration": 45.5,
                "clicks": 3
             }
        """
    static let userFeatures002 = """
        {
                "user_id": "u123456",
                "avg_session_duration": 125.7,
                "total_sessions": 15,
                "avg_clicks_per_session": 8.3,
                "most_visited_page": "/products",
                "most_used_device": "mobile",
                "country": "US",
                "last_updated": "2023-05-20 16:45:00",
                "cluster_id": 1
             }
        """
    static let userSessions003 = #"""
        {
            "session_id": "sess_12345",
            "user_id": "user_789",
            "tenant_id": "tenant_42",
            "event_type": "page_view",
            "event_data": "{\"page\":\"dashboard\"}",
            "page_url": "https://app.example.com/dashboard",
            "referrer": "https://app.example.com/home",
            "device_type": "desktop",
            "browser": "Chrome",
            "ip_address": "192.168.1.1",
            "created_at": "2023-07-15 14:30:00",
            "updated_at": "2023-07-15 14:30:00"
          }
        """#
}

/// curl -d sends form-urlencoded; the server must not care.
let curlHeaders: HTTPFields = [.contentType: "application/x-www-form-urlencoded", .authorization: "Bearer \(testAdminToken)"]

@Suite("Event ingestion")
struct IngestTests {
    @Test("seed 004's example event is stored with derived fields and read back by id")
    func singleEvent() async throws {
        try await withTestApp { client, pool in
            let created = try await client.execute(
                uri: "/api/events/",
                method: .post,
                headers: [.contentType: "application/json"],
                body: ByteBuffer(text: SeedBodies.analytics004)
            ) { response in
                #expect(response.status == .created)
                return try response.json()
            }
            #expect(created["page"] == .string("/pricing"))
            #expect(created["session_id"] == .string("abc123"))
            #expect(created["duration"] == .int(45))
            #expect(created["os"] == .string("Windows"))
            #expect(created["device_type"] == .string("desktop"))
            #expect(created["source"] == .string("search"))
            #expect(created["referrer_domain"] == .string("google.com"))
            #expect(created["is_bot"] == .bool(false))
            #expect(created["event_type"] == .string("page_view"))
            #expect(created["user_id"] == .null, "absent fields are null, not missing")
            guard case .int(let id) = created["id"], case .string(let time) = created["time"] else {
                Issue.record("no id or time in \(created)")
                return
            }
            #expect(time.hasSuffix("Z"))
            let fetched = try await client.execute(uri: "/api/events/\(id)", method: .get, headers: adminAuth) { response in
                #expect(response.status == .ok)
                return try response.json()
            }
            #expect(fetched == created)
            try await client.execute(uri: "/api/events/999999", method: .get, headers: adminAuth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/api/events/abc", method: .get, headers: adminAuth) { #expect($0.status == .unprocessableContent) }
            let count = try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
            #expect(count == 1)
        }
    }

    @Test("invalid single events get 422 naming each bad field, and nothing is stored")
    func invalidSingleEvent() async throws {
        try await withTestApp { client, pool in
            let body = #"{"page": ["not", "a", "string"], "duration": "long", "clicks": -1, "timestamp": "yesterday"}"#
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(text: body)) { response in
                #expect(response.status == .unprocessableContent)
                let issues = try response.json([String: [APIError.ValidationIssue]].self)["detail"] ?? []
                #expect(Set(issues.map { $0.loc.last ?? "" }) == ["page", "duration", "clicks", "timestamp"])
            }
            // Durations are bounded, so that sums over many rows stay finite (schemathesis found 1e308 + 1e308).
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(text: #"{"page": "/", "duration": 1e308}"#)) { response in
                #expect(response.status == .unprocessableContent)
                #expect(String(buffer: response.body).contains("from 0 to 1000000000"))
            }
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(text: "this is not json")) { response in
                #expect(response.status == .badRequest)
                let body = try response.json()
                #expect(body["detail"] != nil)
            }
            #expect(try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0) == 0)
        }
    }

    @Test("every seed's example ingest body is accepted unchanged and stored in the right columns")
    func seedBodies() async throws {
        try await withTestApp { client, pool in
            for (datasource, body) in [
                ("user_events", SeedBodies.userEvents000), ("events", SeedBodies.events001), ("user_events", SeedBodies.userEvents002),
                ("user_features", SeedBodies.userFeatures002), ("user_sessions", SeedBodies.userSessions003),
            ] {
                try await client.execute(uri: "/v0/events?name=\(datasource)", method: .post, headers: curlHeaders, body: ByteBuffer(text: body)) {
                    response in
                    #expect(response.status == .accepted, "\(datasource)")
                    let summary = try response.json(IngestSummary.self)
                    #expect(summary == IngestSummary(successfulRows: 1, quarantinedRows: 0), "\(datasource)")
                }
            }
            struct Row: Decodable, Equatable {
                var event_id: String?, user_id: String?, session_id: String?, event_type: String, event_name: String?, page: String?
                var url: String?, feature: String?, device_type: String?, os: String?, browser: String?, country: String?
                var duration: Double?, clicks: Int?, tenant_id: String?, ip: String?, datasource: String, source: String?
                var time: String, properties: String?
            }
            let rows = try await pool.query(
                """
                SELECT event_id, user_id, session_id, event_type, event_name, page, url, feature, device_type, os, browser, country,
                       duration, clicks, tenant_id, ip, datasource, source, to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') AS time,
                       properties::text AS properties
                FROM events ORDER BY id
                """
            ).decode(as: Row.self)
            #expect(rows.count == 4)
            guard rows.count == 4 else { return }
            #expect(
                rows[0]
                    == Row(
                        event_id: "ev_12345",
                        user_id: "usr_abc123",
                        session_id: "sess_xyz789",
                        event_type: "page_view",
                        event_name: nil,
                        page: "/products",
                        url: nil,
                        feature: nil,
                        device_type: "mobile",
                        os: "iOS",
                        browser: "Safari",
                        country: "US",
                        duration: 45,
                        clicks: nil,
                        tenant_id: nil,
                        ip: nil,
                        datasource: "user_events",
                        source: "direct",
                        time: "2023-06-15 14:30:00",
                        properties: nil
                    )
            )
            #expect(
                rows[1]
                    == Row(
                        event_id: "123e4567-e89b-12d3-a456-426614174000",
                        user_id: "user123",
                        session_id: "session456",
                        event_type: "feature_click",
                        event_name: "button_click",
                        page: "homepage",
                        url: nil,
                        feature: "search_bar",
                        device_type: nil,
                        os: nil,
                        browser: nil,
                        country: nil,
                        duration: nil,
                        clicks: nil,
                        tenant_id: nil,
                        ip: nil,
                        datasource: "events",
                        source: "direct",
                        time: "2024-10-27 10:00:00",
                        properties: #"{"query": "example"}"#
                    )
            )
            #expect(rows[2].duration == 45.5 && rows[2].clicks == 3 && rows[2].source == "search" && rows[2].time == "2023-05-15 14:30:00")
            #expect(
                rows[3]
                    == Row(
                        event_id: nil,
                        user_id: "user_789",
                        session_id: "sess_12345",
                        event_type: "page_view",
                        event_name: nil,
                        page: "/dashboard",
                        url: "https://app.example.com/dashboard",
                        feature: nil,
                        device_type: "desktop",
                        os: nil,
                        browser: "Chrome",
                        country: nil,
                        duration: nil,
                        clicks: nil,
                        tenant_id: "tenant_42",
                        ip: "192.168.1.0",
                        datasource: "user_sessions",
                        source: "internal",
                        time: "2023-07-15 14:30:00",
                        properties: #"{"page": "dashboard"}"#
                    )
            )
            let features = try await pool.query(
                "SELECT user_id, avg_session_duration, total_sessions, most_visited_page, cluster_id FROM user_features"
            ).decode((String, Double, Int, String, Int).self)
            #expect(features.count == 1)
            #expect(features.first.map { [$0.0, "\($0.1)", "\($0.2)", $0.3, "\($0.4)"] } == ["u123456", "125.7", "15", "/products", "1"])
        }
    }

    @Test("a batch with malformed rows stores the good ones and quarantines the others with their reasons")
    func quarantine() async throws {
        try await withTestApp { client, pool in
            let body = """
                {"event_id": "a", "user_id": "u1", "page": "/a", "timestamp": "2024-01-01 10:00:00"}
                {"user_id": "u2", "duration": "not a number"}
                this line is not json
                [1, 2]
                {"user_id": "u3", "page": "/c", "timestamp": "2024-01-01 11:00:00"}
                {"user_id": "u4", "timestamp": "2999-01-01 00:00:00"}
                """
            try await client.execute(uri: "/v0/events?name=user_events&wait=true", method: .post, headers: curlHeaders, body: ByteBuffer(text: body))
            {
                response in
                #expect(response.status == .ok)
                let decoded = try response.json(IngestSummary.self)
                #expect(decoded == IngestSummary(successfulRows: 2, quarantinedRows: 4))
            }
            #expect(try await pool.query("SELECT user_id FROM events ORDER BY user_id").decode((String).self) == ["u1", "u3"])
            try await client.execute(uri: "/v0/datasources/user_events_quarantine?token=\(testAdminToken)", method: .get) { response in
                #expect(response.status == .ok)
                struct Quarantined: Decodable {
                    struct Row: Decodable {
                        var received_at: String
                        var error: String
                        var line: String
                    }
                    var data: [Row]
                    var rows: Int
                }
                let list = try response.json(Quarantined.self)
                #expect(list.rows == 4)
                let errors = Dictionary(list.data.map { ($0.line, $0.error) }, uniquingKeysWith: { a, _ in a })
                #expect(errors[#"{"user_id": "u2", "duration": "not a number"}"#] == "duration: must be a number")
                #expect(errors["this line is not json"] == "not valid JSON")
                #expect(errors["[1, 2]"] == "not a JSON object")
                #expect(errors[#"{"user_id": "u4", "timestamp": "2999-01-01 00:00:00"}"#]?.contains("in the future") == true)
            }
            // Under /v0 a bad parameter is a 400 with {"error"}, as on the hosted platform.
            try await client.execute(uri: "/v0/datasources/user_events_quarantine?limit=0&token=\(testAdminToken)", method: .get) { response in
                #expect(response.status == .badRequest)
                let body = try response.json()
                #expect(body["error"] == .string("query.limit: must be a whole number from 1 to 10000"))
            }
            try await client.execute(uri: "/v0/datasources/nothing_quarantine?token=\(testAdminToken)", method: .get) {
                #expect($0.status == .notFound)
            }
            // The batch endpoint of /api takes JSON arrays too.
            try await client.execute(
                uri: "/api/events/batch",
                method: .post,
                body: ByteBuffer(text: #"[{"page": "/x", "session_id": "s"}, {"page": 5, "clicks": "many"}]"#)
            ) { response in
                #expect(response.status == .ok)
                let decoded = try response.json(IngestSummary.self)
                #expect(decoded == IngestSummary(successfulRows: 1, quarantinedRows: 1))
            }
        }
    }

    @Test("an event_id is stored once however often it is sent, within a batch or across retries")
    func deduplication() async throws {
        try await withTestApp { client, pool in
            let body = """
                {"event_id": "e1", "page": "/first", "user_id": "u"}
                {"event_id": "e1", "page": "/second", "user_id": "u"}
                {"event_id": "e2", "page": "/other", "user_id": "u"}
                {"page": "/no-id", "user_id": "u"}
                """
            for _ in 0..<3 {
                try await client.execute(uri: "/v0/events?name=user_events", method: .post, headers: curlHeaders, body: ByteBuffer(text: body)) {
                    response in
                    let decoded = try response.json(IngestSummary.self)
                    #expect(decoded == IngestSummary(successfulRows: 4, quarantinedRows: 0))
                }
            }
            let pages = try await pool.query("SELECT page FROM events WHERE event_id IS NOT NULL ORDER BY event_id").decode((String).self)
            #expect(pages == ["/first", "/other"], "the first stored version wins")
            #expect(try await pool.query("SELECT count(*) FROM events WHERE event_id IS NULL")[0].decode(Int.self, at: 0) == 3)
            // A single-event retry answers 200 with the stored event.
            try await client.execute(uri: "/api/events/", method: .post, body: ByteBuffer(text: #"{"event_id": "e1", "page": "/third"}"#)) {
                response in
                #expect(response.status == .ok)
                let body = try response.json()
                #expect(body["page"] == .string("/first"))
            }
        }
    }

    @Test("/v0/events needs the admin token, a known datasource and a JSON body")
    func v0Errors() async throws {
        try await withTestApp { client, _ in
            let event = ByteBuffer(text: #"{"user_id": "u"}"#)
            try await client.execute(uri: "/v0/events?name=user_events", method: .post, body: event) { response in
                #expect(response.status == .unauthorized)
                let body = try response.json()
                #expect(body["error"] != nil)
            }
            try await client.execute(uri: "/v0/events?name=user_events&token=wrong-token", method: .post, body: event) {
                #expect($0.status == .unauthorized)
            }
            try await client.execute(uri: "/v0/events?name=nope", method: .post, headers: curlHeaders, body: event) { response in
                #expect(response.status == .notFound)
                let body = try response.json()
                guard case .string(let message) = body["error"] else { throw HealthTests.Failure("no error") }
                #expect(message.contains("user_events"))
            }
            try await client.execute(uri: "/v0/events", method: .post, headers: curlHeaders, body: event) { #expect($0.status == .badRequest) }
            try await client.execute(uri: "/v0/events?name=events", method: .post, headers: curlHeaders, body: ByteBuffer(text: "%%% nothing")) {
                #expect($0.status == .badRequest)
            }
        }
    }

    @Test("hundreds of concurrent single-event posts over real connections are all committed")
    func concurrentPosts() async throws {
        try await withTestApp(["PORT": "0"], testingSetup: .live) { client, pool in
            // 50 connections, and time enough for a loaded CI machine: the test is about the writer, not the client's pool.
            let http = HTTPClient(
                eventLoopGroup: HTTPClient.defaultEventLoopGroup,
                configuration: .init(
                    timeout: .init(connect: .seconds(60), read: .seconds(60)),
                    connectionPool: .init(idleTimeout: .seconds(1), concurrentHTTP1ConnectionsPerHostSoftLimit: 50)
                )
            )
            let port = try #require(client.port)
            let statuses = await withTaskGroup(of: Int.self) { group in
                for index in 0..<400 {
                    group.addTask {
                        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/api/events/")
                        request.method = .POST
                        request.body = .bytes(ByteBuffer(text: #"{"page": "/p\#(index % 7)", "session_id": "s\#(index)"}"#))
                        do {
                            return Int(try await http.execute(request, timeout: .seconds(60)).status.code)
                        } catch {
                            return -1
                        }
                    }
                }
                return await group.reduce(into: [Int: Int]()) { $0[$1, default: 0] += 1 }
            }
            try await http.shutdown()
            #expect(statuses == [201: 400])
            #expect(try await pool.query("SELECT count(*), count(DISTINCT id) FROM events")[0].decode((Int, Int).self) == (400, 400))
        }
    }

    @Test("GET /api/events/ counts events per time bucket, page and OS")
    func aggregates() async throws {
        try await withTestApp { client, _ in
            let now = Date()
            let hour = 3600.0
            let bucketStart = (now.timeIntervalSince1970 / hour).rounded(.down) * hour - 2 * hour
            func at(_ offset: Double) -> String { PostgresTimestamp.iso8601(Date(timeIntervalSince1970: bucketStart + offset)) }
            let windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
            let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
            let body = """
                [{"page": "/a", "user_agent": "\(windows)", "duration": 10, "timestamp": "\(at(60))"},
                 {"page": "/a", "user_agent": "\(windows)", "duration": 20, "timestamp": "\(at(120))"},
                 {"page": "/a", "user_agent": "\(mac)", "duration": 30, "timestamp": "\(at(180))"},
                 {"page": "/b", "user_agent": "\(windows)", "timestamp": "\(at(hour + 60))"},
                 {"page": "/a", "user_agent": "curl/8.0", "timestamp": "\(at(60))"}]
                """
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(text: body)) { #expect($0.status == .ok) }
            struct Bucket: Decodable, Equatable {
                var bucket: String
                var page: String?
                var os: String?
                var count: Int
                var avg_duration: Double?
            }
            let buckets = try await client.execute(uri: "/api/events/?duration=1%20hour&hours=6", method: .get, headers: adminAuth) { response in
                #expect(response.status == .ok)
                return try response.json([Bucket].self)
            }
            #expect(
                buckets == [
                    Bucket(bucket: at(hour), page: "/b", os: "Windows", count: 1, avg_duration: nil),
                    Bucket(bucket: at(0), page: "/a", os: "Windows", count: 2, avg_duration: 15),
                    Bucket(bucket: at(0), page: "/a", os: "macOS", count: 1, avg_duration: 30),
                ]
            )
            // In a zone half an hour off UTC, hourly buckets start at half past the UTC hour.
            let kolkata = try await client.execute(uri: "/api/events/?duration=1%20hour&hours=6&tz=Asia/Kolkata", method: .get, headers: adminAuth) {
                try $0.json([Bucket].self)
            }
            #expect(kolkata.map(\.count).reduce(0, +) == 4)
            #expect(kolkata.allSatisfy { $0.bucket.hasSuffix(":30:00Z") })
            let onlyB = try await client.execute(uri: "/api/events/?pages=/b&duration=1%20day", method: .get, headers: adminAuth) {
                try $0.json([Bucket].self)
            }
            #expect(onlyB.map(\.count) == [1])
            try await client.execute(uri: "/api/events/?duration=fortnight&hours=-1&tz=Nowhere/Land", method: .get, headers: adminAuth) { response in
                #expect(response.status == .unprocessableContent)
                let issues = try response.json([String: [APIError.ValidationIssue]].self)["detail"] ?? []
                #expect(Set(issues.map { $0.loc.last ?? "" }) == ["duration", "hours", "tz"])
            }
        }
    }

    @Test("ingest past the per-IP and per-token limits answers 429 with Retry-After and X-RateLimit headers")
    func rateLimits() async throws {
        try await withTestApp(["RATE_LIMIT_PER_IP": "1", "RATE_LIMIT_PER_TOKEN": "2", "TRUST_FORWARDED_FOR": "true"]) { client, _ in
            let event = ByteBuffer(text: #"{"page": "/"}"#)
            let alice: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "198.51.100.7"]
            // Eight posts at once: the burst of two passes, the rest get 429. Sent at once, since one after another they
            // can take over a second each on a busy machine, time enough to refill a request's worth each (one a
            // second); at once they are checked within a second or two, so two or three more may pass.
            let statuses = try await withThrowingTaskGroup(of: HTTPResponse.Status.self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        try await client.execute(uri: "/api/events/", method: .post, headers: alice, body: event) { response in
                            #expect(response.headers[HTTPField.Name("X-RateLimit-Limit")!] == "2")
                            if response.status == .tooManyRequests {
                                #expect(response.headers[.retryAfter] == "1")
                                #expect(response.headers[HTTPField.Name("X-RateLimit-Remaining")!] == "0")
                                let body = try response.json()
                                #expect(body["detail"] != nil)
                            }
                            return response.status
                        }
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let created = statuses.filter { $0 == .created }.count
            #expect((2...4).contains(created))
            #expect(statuses.allSatisfy { $0 == .created || $0 == .tooManyRequests })
            // Another client is not limited by the first one's bucket.
            let bob: HTTPFields = [HTTPField.Name("X-Forwarded-For")!: "198.51.100.8"]
            try await client.execute(uri: "/api/events/", method: .post, headers: bob, body: event) { #expect($0.status == .created) }
            // Reading is never limited.
            try await client.execute(uri: "/api/events/1", method: .get, headers: adminAuth) { #expect($0.status == .ok) }
        }
    }

    @Test("REQUIRE_INGEST_TOKEN makes /api/events posts need the token")
    func requiredIngestToken() async throws {
        try await withTestApp(["REQUIRE_INGEST_TOKEN": "true"]) { client, pool in
            let event = ByteBuffer(text: #"{"page": "/"}"#)
            try await client.execute(uri: "/api/events/", method: .post, body: event) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
            try await client.execute(uri: "/api/events/batch", method: .post, body: event) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/events/", method: .post, headers: [.authorization: "Bearer \(testAdminToken)"], body: event) {
                #expect($0.status == .created)
            }
            #expect(try await pool.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0) == 1)
        }
    }
}
