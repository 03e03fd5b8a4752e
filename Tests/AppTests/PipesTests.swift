import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Postgres
import Testing

@testable import App

/// `YYYY-MM-DD HH:MM:SS` (UTC) of `seconds` before now, as the seeds send times.
func ago(_ seconds: Double) -> String {
    String(PostgresTimestamp.format(Date().addingTimeInterval(-seconds)).prefix(19))
}

/// GETs a pipe and returns its JSON body (`meta`, `data`, `rows`, `statistics`).
func pipe(_ client: any TestClientProtocol, _ uri: String, headers: HTTPFields = [:]) async throws -> [String: JSONValue] {
    try await client.execute(uri: uri, method: .get, headers: headers) { response in
        #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
        guard case .object(let body) = try JSONParser.parse(Array(response.body.readableBytesView)) else { return [:] }
        return body
    }
}

/// The `data` rows of a pipe's JSON body.
func data(_ body: [String: JSONValue]) -> [[String: JSONValue]] {
    guard case .array(let rows)? = body["data"] else { return [] }
    return rows.compactMap { if case .object(let row) = $0 { row } else { nil } }
}

/// Posts NDJSON to `/v0/events` with the admin token and waits for the commit.
func ingest(_ client: any TestClientProtocol, _ datasource: String, _ lines: [String], token: String = testAdminToken) async throws {
    try await client.execute(
        uri: "/v0/events?name=\(datasource)&wait=true&token=\(token)",
        method: .post,
        body: ByteBuffer(text: lines.joined(separator: "\n"))
    ) { response in
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        let body = try response.json()
        #expect(body["quarantined_rows"] == 0, "\(body)")
    }
}

/// One NDJSON event line of the fields that have a value.
func eventLine(_ fields: [String: JSONValue?]) -> String {
    JSONValue.object(fields.compactMapValues { $0 }).jsonText
}

@Suite("Pipes: files with typed parameters, formats, statistics, templates, tenants and k-means")
struct PipesTests {
    @Test("every pipe request of seeds 000 and 003 works unchanged, with hand-checked numbers")
    func seedRequests() async throws {
        try await withTestApp { client, _ in
            try await ingest(
                client,
                "user_events",
                [
                    #"{"event_id": "e1", "user_id": "u1", "event_type": "page_view", "timestamp": "\#(ago(600))", "session_id": "s1", "page": "/products", "duration": 45, "device_type": "mobile", "country": "US"}"#,
                    #"{"event_id": "e2", "user_id": "u1", "event_type": "click", "timestamp": "\#(ago(590))", "session_id": "s1", "page": "/products", "device_type": "mobile", "country": "US"}"#,
                    #"{"event_id": "e3", "user_id": "u2", "event_type": "page_view", "timestamp": "\#(ago(120))", "session_id": "s2", "page": "/", "device_type": "desktop", "country": "DE"}"#,
                    #"{"event_id": "e4", "user_id": "u2", "event_type": "page_view", "timestamp": "\#(ago(60))", "session_id": "s2", "page": "/products", "device_type": "desktop", "country": "DE"}"#,
                    #"{"event_id": "e5", "user_id": "u3", "event_type": "page_view", "timestamp": "\#(ago(7200))", "session_id": "s3", "page": "/old"}"#,
                    #"{"event_id": "e6", "user_id": "bot", "event_type": "page_view", "timestamp": "\#(ago(30))", "session_id": "sb", "page": "/", "user_agent": "Googlebot/2.1"}"#,
                ]
            )
            // event_breakdown: the last hour, bots left out: page_view ×3 (u1, u2 ×2), click ×1.
            let breakdown = try await pipe(client, "/v0/pipes/event_breakdown.json?time_range=1%20hour&token=\(testAdminToken)")
            #expect(data(breakdown).map { $0["event_type"] } == ["page_view", "click"])
            #expect(data(breakdown).map { $0["events"] } == [3, 1])
            #expect(data(breakdown).map { $0["unique_users"] } == [2, 1])
            #expect(breakdown["rows"] == 2)
            #expect(
                breakdown["meta"] == [
                    ["name": "event_type", "type": "String"], ["name": "events", "type": "Int64"],
                    ["name": "unique_users", "type": "Int64"], ["name": "unique_sessions", "type": "Int64"],
                    ["name": "avg_duration", "type": "Float64"],
                ]
            )
            guard case .object(let statistics)? = breakdown["statistics"], case .double(let elapsed)? = statistics["elapsed"],
                case .int(let rowsRead)? = statistics["rows_read"], case .int(let bytesRead)? = statistics["bytes_read"]
            else { throw TestFailure("no statistics") }
            #expect(elapsed > 0 && elapsed < 15)
            #expect(rowsRead >= 4)
            #expect(bytesRead >= 0)
            let forUser = try await pipe(client, "/v0/pipes/event_breakdown.json?time_range=1%20hour&user_id=u2&token=\(testAdminToken)")
            #expect(data(forUser).map { $0["events"] } == [2])
            let withBots = try await pipe(client, "/v0/pipes/event_breakdown.json?time_range=1%20hour&include_bots=true&token=\(testAdminToken)")
            #expect(data(withBots).first?["events"] == 4)

            // realtime_traffic over 5 minutes: / (u2) and /products (u2) once each; ordered by views then page.
            let traffic = try await pipe(client, "/v0/pipes/realtime_traffic.json?time_window=5%20minute&limit=10&token=\(testAdminToken)")
            #expect(data(traffic).map { $0["page"] } == ["/", "/products"])

            // session_duration: s1 carries a duration (45 s); s2 does not, so first to last event (60 s).
            let durations = try await pipe(client, "/v0/pipes/session_duration.json?interval=1%20hour&time_range=1%20day&token=\(testAdminToken)")
            let sessions = data(durations).reduce(0) { total, row in
                total + (row["sessions"].flatMap { if case .int(let n) = $0 { n } else { nil } } ?? 0)
            }
            #expect(sessions == 3)
            let maxima = data(durations).compactMap { row -> Double? in if case .double(let d)? = row["max_session_duration"] { d } else { nil } }
            #expect(maxima.contains { abs($0 - 60) < 0.01 } || maxima.contains { abs($0 - 45) < 0.01 })

            let active = try await pipe(client, "/v0/pipes/active_users.json?time_range=1%20day&time_frame=hour&token=\(testAdminToken)")
            #expect(!data(active).isEmpty)
            // user_retention: each of u1, u2 and u3 is new on exactly one day. (u1's two events can fall either side of
            // midnight, so the active users per day may sum to 4; every extra day of a visitor is a returning one.)
            let retention = try await pipe(client, "/v0/pipes/user_retention.json?lookback_days=30%20day&token=\(testAdminToken)")
            func total(_ column: String) -> Int {
                data(retention).reduce(0) { $0 + ($1[column].flatMap { if case .int(let n) = $0 { n } else { nil } } ?? 0) }
            }
            #expect(total("new_users") == 3)
            #expect(total("active_users") == 3 + total("returning_users"))

            // Seed 003's requests.
            try await ingest(
                client,
                "user_sessions",
                [
                    #"{"session_id": "sess_12345", "user_id": "user_789", "tenant_id": "tenant_42", "event_type": "page_view", "event_data": "{\"page\":\"dashboard\"}", "page_url": "https://app.example.com/dashboard", "referrer": "https://app.example.com/home", "device_type": "desktop", "browser": "Chrome", "ip_address": "192.168.1.1", "created_at": "2023-07-15 14:30:00", "updated_at": "2023-07-15 14:30:00"}"#,
                    #"{"session_id": "sess_12345", "user_id": "user_789", "tenant_id": "tenant_42", "event_type": "click", "page_url": "https://app.example.com/dashboard", "created_at": "2023-07-15 14:31:30"}"#,
                    #"{"session_id": "sess_9", "user_id": "user_1", "tenant_id": "tenant_7", "event_type": "page_view", "page_url": "https://app.example.com/", "created_at": "2023-07-20 09:00:00"}"#,
                ]
            )
            let activeSessions = try await pipe(
                client,
                "/v0/pipes/get_active_sessions.json?token=\(testAdminToken)&tenant_id=tenant_42&from_date=2023-07-01%2000:00:00&to_date=2023-07-31%2023:59:59&limit=50"
            )
            #expect(data(activeSessions).count == 1)
            #expect(data(activeSessions).first?["session_id"] == "sess_12345")
            #expect(data(activeSessions).first?["events"] == 2)
            #expect(data(activeSessions).first?["duration_seconds"] == 90.0)
            let summary = try await pipe(
                client,
                "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)&from_date=2023-07-01%2000:00:00&to_date=2023-07-31%2023:59:59"
            )
            #expect(data(summary).map { $0["tenant_id"] } == ["tenant_42", "tenant_7"])
            #expect(data(summary).map { $0["events"] } == [2, 1])
            #expect(data(summary).map { $0["page_views"] } == [1, 1])
            let details = try await pipe(client, "/v0/pipes/get_session_details.json?token=\(testAdminToken)&session_id=sess_12345")
            #expect(data(details).map { $0["event_type"] } == ["page_view", "click"])
            #expect(data(details).first?["event_data"] == ["page": "dashboard"])
            #expect(data(details).first?["url"] == "https://app.example.com/dashboard")
        }
    }

    @Test("seeds 001 and 002: product pipes in a workspace of their own, behaviour pipes and real k-means")
    func productAndBehavior() async throws {
        try await withTestApp { client, pool in
            try await register(client, "root")
            let root = try await login(client, "root")
            let shopToken = try await createWorkspace(client, #"{"name": "product_analytics", "templates": ["product"]}"#, auth: bearer(root))
            try await ingest(
                client,
                "events",
                [
                    #"{"event_id":"123e4567-e89b-12d3-a456-426614174000","user_id":"user123","session_id":"session456","event_type":"feature_click","event_name":"button_click","page":"homepage","feature":"search_bar","properties":"{\"query\":\"example\"}","timestamp":"2024-10-27 10:00:00"}"#,
                    #"{"event_id":"e2","user_id":"user123","session_id":"session456","event_type":"pageview","page":"homepage","timestamp":"2024-10-27 10:05:00"}"#,
                    #"{"event_id":"e3","user_id":"user9","session_id":"session9","event_type":"pageview","page":"pricing","timestamp":"2024-10-26 08:00:00"}"#,
                    #"{"event_id":"e4","user_id":"user9","session_id":"session9","event_type":"feature_click","feature":"search_bar","timestamp":"2024-10-26 08:01:00"}"#,
                ],
                token: shopToken
            )
            // The seed's requests, with their spaces percent-encoded as any HTTP client sends them.
            let usage = try await pipe(
                client,
                "/v0/pipes/feature_usage.json?token=\(shopToken)&feature=search_bar&start_date=2024-10-26%2000:00:00&end_date=2024-10-27%2023:59:59"
            )
            #expect(data(usage).first?["uses"] == 2)
            #expect(data(usage).first?["unique_users"] == 2)
            let details = try await pipe(
                client,
                "/v0/pipes/user_session_details.json?token=\(shopToken)&user_id=user123&session_id=session456&start_date=2024-10-26%2000:00:00&end_date=2024-10-27%2023:59:59"
            )
            #expect(data(details).first?["events"] == 2)
            #expect(data(details).first?["event_types"] == ["feature_click", "pageview"])
            #expect(data(details).first?["duration_seconds"] == 300.0)
            // Newest sessions first, exact whether or not the newest 50 × limit events hold them whole: "long" (120
            // events) began after "quiet" and before "newest"; with limit=2 the newest 100 events hold only part of it.
            var sessionLines = (0..<120).map { minute in
                #"{"user_id": "ul", "session_id": "long", "event_type": "pageview", "timestamp": "2024-11-01 10:\#(String(format: "%02d", minute % 60)):\#(minute < 60 ? "00" : "30")"}"#
            }
            sessionLines.append(#"{"user_id": "uq", "session_id": "quiet", "event_type": "pageview", "timestamp": "2024-11-01 09:00:00"}"#)
            sessionLines.append(#"{"user_id": "un", "session_id": "newest", "event_type": "click", "timestamp": "2024-11-01 11:00:00"}"#)
            try await ingest(client, "events", sessionLines, token: shopToken)
            for limit in [1, 2, 5] {
                let newest = data(try await pipe(client, "/v0/pipes/user_session_details.json?token=\(shopToken)&limit=\(limit)"))
                let expected: [JSONValue] = ["newest", "long", "quiet", "session456", "session9"]
                #expect(newest.map { $0["session_id"] } == Array(expected.prefix(limit)), "limit=\(limit)")
                if limit > 1 { #expect(newest[1]["events"] == 120, "limit=\(limit)") }
            }
            let activeUsers = try await pipe(
                client,
                "/v0/pipes/active_users.json?token=\(shopToken)&start_date=2024-10-26%2000:00:00&end_date=2024-10-27%2023:59:59&event_type=pageview"
            )
            #expect(data(activeUsers).map { $0["active_users"] } == [1, 1])
            // The default workspace's active_users is engagement's, with other parameters; the shop has no engagement pipes.
            try await client.execute(uri: "/v0/pipes/event_breakdown.json?token=\(shopToken)", method: .get) { #expect($0.status == .notFound) }

            // Seed 002 in the default workspace.
            try await ingest(
                client,
                "user_events",
                [
                    #"{"user_id": "u123456", "event_type": "page_view", "timestamp": "\#(ago(3600))", "session_id": "sess_abc123", "page": "/products", "referrer": "https://google.com", "device_type": "mobile", "country": "US", "duration": 45.5, "clicks": 3}"#,
                    #"{"user_id": "u123456", "event_type": "page_view", "timestamp": "\#(ago(3500))", "session_id": "sess_abc123", "page": "/cart", "device_type": "mobile", "country": "US", "duration": 10, "clicks": 1}"#,
                ]
            )
            let aggregated = try await pipe(client, "/v0/pipes/aggregate_user_features.json?token=\(testAdminToken)")
            #expect(data(aggregated).first?["user_id"] == "u123456")
            #expect(data(aggregated).first?["avg_session_duration"] == 55.5)
            #expect(data(aggregated).first?["avg_clicks_per_session"] == 4.0)
            #expect(data(aggregated).first?["most_visited_page"] == "/cart", "ties: alphabetical")
            #expect(data(aggregated).first?["most_used_device"] == "mobile")
            let inCountry = try await pipe(client, "/v0/pipes/aggregate_user_features.json?country=US&token=\(testAdminToken)")
            #expect(data(inCountry).map { $0["user_id"] } == ["u123456"])
            #expect(data(inCountry).first?["country"] == "US")
            let elsewhere = try await pipe(client, "/v0/pipes/aggregate_user_features.json?country=DE&token=\(testAdminToken)")
            #expect(elsewhere["rows"] == 0)
            let timeline = try await pipe(
                client,
                "/v0/pipes/user_session_timeline.json?token=\(testAdminToken)&user_id=u123456&from_date=2023-01-01%2000:00:00&to_date=2099-12-31%2023:59:59&limit=10"
            )
            #expect(data(timeline).first?["pages"] == ["/products", "/cart"])

            // Two obvious groups of users: short, few sessions, few clicks (6); long, many sessions, many clicks (8).
            // They have no events, so their rows as sent are their features.
            var features: [String] = []
            for index in 0..<8 {
                if index < 6 {
                    features.append(
                        #"{"user_id": "light\#(index)", "avg_session_duration": \#(10 + index), "total_sessions": \#(1 + index % 2), "avg_clicks_per_session": 1.5, "most_visited_page": "/", "most_used_device": "mobile", "country": "US"}"#
                    )
                }
                features.append(
                    #"{"user_id": "heavy\#(index)", "avg_session_duration": \#(900 + index * 10), "total_sessions": \#(40 + index), "avg_clicks_per_session": 25, "most_visited_page": "/products", "most_used_device": "desktop", "country": "US"}"#
                )
            }
            features.append(
                #"{"user_id": "elsewhere", "avg_session_duration": 5, "total_sessions": 1, "avg_clicks_per_session": 1, "country": "DE", "cluster_id": 9}"#
            )
            // u123456 has events (above): its features are recomputed from them, whatever this row says.
            features.append(
                #"{"user_id": "u123456", "avg_session_duration": 999, "total_sessions": 99, "avg_clicks_per_session": 50, "country": "US"}"#
            )
            try await ingest(client, "user_features", features)
            let assigned = try await pipe(client, "/v0/pipes/assign_clusters.json?token=\(testAdminToken)&country=US&k=2")
            let clusters = Dictionary(
                uniqueKeysWithValues: data(assigned).compactMap { row -> (String, Int)? in
                    guard case .string(let user)? = row["user_id"], case .int(let cluster)? = row["cluster_id"] else { return nil }
                    return (user, cluster)
                }
            )
            #expect(clusters.count == 15)
            // Numbered by size: the eight heavy users are cluster 1; the six light ones and u123456 (one session of
            // 55.5 s with 4 clicks, by its events) cluster 2.
            #expect((0..<8).allSatisfy { clusters["heavy\($0)"] == 1 })
            #expect((0..<6).allSatisfy { clusters["light\($0)"] == 2 })
            #expect(clusters["u123456"] == 2)
            // Rows by cluster, then distance; the clustering's columns after user_id, then the SQL's.
            #expect(data(assigned).map { $0["cluster_id"] } == [JSONValue](repeating: 1, count: 8) + [JSONValue](repeating: 2, count: 7))
            guard case .array(let meta)? = assigned["meta"] else { throw TestFailure("no meta") }
            #expect(
                meta.map { column -> JSONValue? in if case .object(let fields) = column { fields["name"] } else { nil } } == [
                    "user_id", "cluster_id", "distance", "avg_session_duration", "total_sessions", "avg_clicks_per_session",
                    "most_visited_page", "most_used_device", "country", "previous_cluster_id",
                ]
            )
            // None of them had a cluster stored before.
            #expect(data(assigned).allSatisfy { $0["previous_cluster_id"] == .null })
            // Stored, with u123456's features from its events, and the user outside the country keeps its cluster.
            let stored = try await pool.query("SELECT user_id, cluster_id FROM user_features ORDER BY user_id").decode((String, Int?).self)
            #expect(stored.first { $0.0 == "elsewhere" }?.1 == 9)
            #expect(stored.filter { $0.0.hasPrefix("light") }.allSatisfy { $0.1 == 2 })
            let recomputed = try await pool.query(
                """
                SELECT total_sessions, avg_session_duration, avg_clicks_per_session, most_visited_page, most_used_device, country
                FROM user_features WHERE user_id = 'u123456'
                """
            )[0].decode((Int, Double, Double, String, String, String).self)
            #expect(recomputed == (1, 55.5, 4, "/cart", "mobile", "US"))
            // Deterministic: the same input gives the same clusters.
            let again = try await pipe(client, "/v0/pipes/assign_clusters.json?token=\(testAdminToken)&country=US&k=2")
            func withoutPrevious(_ rows: [[String: JSONValue]]) -> [[String: JSONValue]] {
                rows.map { $0.filter { $0.key != "previous_cluster_id" } }
            }
            #expect(withoutPrevious(data(again)) == withoutPrevious(data(assigned)))
            #expect(data(again).allSatisfy { $0["previous_cluster_id"] == $0["cluster_id"] })
            let stats = try await pipe(client, "/v0/pipes/get_cluster_stats.json?token=\(testAdminToken)&min_users=2")
            #expect(data(stats).map { $0["cluster_id"] } == [1, 2])
            #expect(data(stats).map { $0["users"] } == [8, 7])
            // Heavy: 40…47 sessions; light: 1, 2, 1, 2, 1, 2 and u123456's 1, so 10 / 7.
            #expect(data(stats).map { $0["avg_total_sessions"] } == [43.5, 1.43])
            #expect(data(stats).map { $0["top_device"] } == ["desktop", "mobile"])
            // Seed 002's requests exactly.
            let patterns = try await pipe(
                client,
                "/v0/pipes/get_user_patterns.json?token=\(testAdminToken)&cluster_id=1&country=US&min_sessions=5&limit=50"
            )
            #expect(data(patterns).count == 8)
            #expect(data(patterns).first?["user_id"] == "heavy7")
            let seedStats = try await pipe(client, "/v0/pipes/get_cluster_stats.json?token=\(testAdminToken)&cluster_id=1&min_users=10")
            #expect(seedStats["rows"] == 0)
            let seedAssign = try await pipe(client, "/v0/pipes/assign_clusters.json?token=\(testAdminToken)&country=US")
            #expect(seedAssign["rows"] == 15)
            let four = Set(data(seedAssign).compactMap { $0["cluster_id"] })
            #expect(four.count == 4)
        }
    }

    @Test("engagement numbers by hand: returning users per day and active users per day")
    func engagementByHand() async throws {
        try await withTestApp { client, _ in
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = TimeZone(identifier: "UTC")!
            let today = calendar.startOfDay(for: Date())
            func at(daysAgo: Int, hour: Int) -> String {
                String(PostgresTimestamp.format(today.addingTimeInterval(Double(-daysAgo * 86_400 + hour * 3600))).prefix(19))
            }
            // v1 on both days (returns), v3 only two days ago, v2 only yesterday (new); a bot yesterday.
            try await ingest(
                client,
                "user_events",
                [
                    #"{"user_id": "v1", "session_id": "a", "event_type": "page_view", "page": "/", "timestamp": "\#(at(daysAgo: 2, hour: 10))"}"#,
                    #"{"user_id": "v3", "session_id": "b", "event_type": "page_view", "page": "/", "timestamp": "\#(at(daysAgo: 2, hour: 11))"}"#,
                    #"{"user_id": "v1", "session_id": "c", "event_type": "page_view", "page": "/", "timestamp": "\#(at(daysAgo: 1, hour: 10))"}"#,
                    #"{"user_id": "v1", "session_id": "c", "event_type": "click", "page": "/", "timestamp": "\#(at(daysAgo: 1, hour: 11))"}"#,
                    #"{"user_id": "v2", "session_id": "d", "event_type": "page_view", "page": "/", "timestamp": "\#(at(daysAgo: 1, hour: 12))"}"#,
                    #"{"user_id": "crawler", "session_id": "e", "event_type": "page_view", "page": "/", "user_agent": "Googlebot/2.1", "timestamp": "\#(at(daysAgo: 1, hour: 13))"}"#,
                ]
            )
            let retention = data(try await pipe(client, "/v0/pipes/user_retention.json?lookback_days=30%20day", headers: adminAuth))
            #expect(
                retention.map { $0["day"] } == [
                    .string(at(daysAgo: 2, hour: 0).replacingOccurrences(of: " ", with: "T") + "Z"),
                    .string(at(daysAgo: 1, hour: 0).replacingOccurrences(of: " ", with: "T") + "Z"),
                ]
            )
            #expect(retention.map { $0["active_users"] } == [2, 2])
            #expect(retention.map { $0["new_users"] } == [2, 1])
            #expect(retention.map { $0["returning_users"] } == [0, 1])
            #expect(retention.map { $0["returning_rate"] } == [0.0, 50.0])
            #expect(retention.map { $0["returned_later"] } == [1, 0])
            // Over 56 days the pipe takes its other branch (no bit per day): the same rows.
            #expect(data(try await pipe(client, "/v0/pipes/user_retention.json?lookback_days=90%20day", headers: adminAuth)) == retention)
            let daily = data(try await pipe(client, "/v0/pipes/active_users.json?time_range=7%20day&time_frame=day", headers: adminAuth))
            #expect(daily.map { $0["active_users"] } == [2, 2])
            #expect(daily.map { $0["events"] } == [2, 3])
            // By hour: each event in an hour of its own, the bot's left out.
            let hourly = data(try await pipe(client, "/v0/pipes/active_users.json?time_range=7%20day&time_frame=hour", headers: adminAuth))
            let hours = [(2, 10), (2, 11), (1, 10), (1, 11), (1, 12)].map {
                at(daysAgo: $0.0, hour: $0.1).replacingOccurrences(of: " ", with: "T") + "Z"
            }
            #expect(hourly.map { $0["period"] } == hours.map { .string($0) })
            #expect(hourly.map { $0["active_users"] } == [1, 1, 1, 1, 1])
            let clicks = data(
                try await pipe(client, "/v0/pipes/active_users.json?time_range=7%20day&time_frame=day&event_type=click", headers: adminAuth)
            )
            #expect(clicks.map { $0["active_users"] } == [1])
            let withBots = data(
                try await pipe(client, "/v0/pipes/active_users.json?time_range=7%20day&time_frame=day&include_bots=true", headers: adminAuth)
            )
            #expect(withBots.map { $0["active_users"] } == [2, 3])
            // Over exactly 56 days today is day 56 of the window, its highest bit: v3 returns today (midnight, never
            // in the future). Both branches give the same rows, ending with today's: one returning visitor.
            try await ingest(
                client,
                "user_events",
                [#"{"user_id": "v3", "session_id": "f", "event_type": "page_view", "page": "/", "timestamp": "\#(at(daysAgo: 0, hour: 0))"}"#]
            )
            let bits = data(try await pipe(client, "/v0/pipes/user_retention.json?lookback_days=56%20day", headers: adminAuth))
            #expect(bits == data(try await pipe(client, "/v0/pipes/user_retention.json?lookback_days=90%20day", headers: adminAuth)))
            #expect(bits.map { $0["active_users"] } == [2, 2, 1])
            #expect(bits.map { $0["returning_users"] } == [0, 1, 1])
            #expect(bits.map { $0["returned_later"] } == [2, 0, 0])
        }
    }

    @Test("get_active_sessions: the most recently active sessions, whether or not the newest events hold enough of them")
    func activeSessionsBothWays() async throws {
        try await withTestApp { client, _ in
            // Session "busy" has the 120 newest events; "quiet" one older event; "old" one older still, in another
            // tenant. With limit=2 the newest 100 events (50 × limit) hold only "busy", so every event is grouped;
            // with limit=1 they are enough.
            let now = Date()
            func ago(_ seconds: Double) -> String { String(PostgresTimestamp.format(now.addingTimeInterval(-seconds)).prefix(19)) }
            var lines: [String] = []
            for index in 0..<120 {
                lines.append(
                    #"{"user_id": "ub", "tenant_id": "t1", "session_id": "busy", "event_type": "page_view", "page": "/p\#(index % 3)", "timestamp": "\#(ago(Double(600 - index)))"}"#
                )
            }
            lines.append(
                #"{"user_id": "uq", "tenant_id": "t1", "session_id": "quiet", "event_type": "click", "timestamp": "\#(ago(3600))", "duration": 4}"#
            )
            lines.append(#"{"user_id": "uo", "tenant_id": "t2", "session_id": "old", "event_type": "page_view", "timestamp": "\#(ago(7200))"}"#)
            try await ingest(client, "user_events", lines)
            let two = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?limit=2", headers: adminAuth))
            #expect(two.map { $0["session_id"] } == ["busy", "quiet"])
            #expect(two.map { $0["events"] } == [120, 1])
            #expect(two.map { $0["page_views"] } == [120, 0])
            #expect(two.map { $0["unique_pages"] } == [3, 0])
            #expect(two.map { $0["duration_seconds"] } == [119.0, 4.0])
            let one = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?limit=1", headers: adminAuth))
            #expect(one.map { $0["session_id"] } == ["busy"])
            #expect(one.first?["events"] == 120)
            let all = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?limit=10", headers: adminAuth))
            #expect(all.map { $0["session_id"] } == ["busy", "quiet", "old"])
            let tenant = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?limit=1&tenant_id=t2", headers: adminAuth))
            #expect(tenant.map { $0["session_id"] } == ["old"])
            // A window that ends before "busy" began: the newest events of the window are read, not the table's.
            let window = data(
                try await pipe(
                    client,
                    "/v0/pipes/get_active_sessions.json?limit=1&to_date=\(ago(1800).replacingOccurrences(of: " ", with: "%20"))",
                    headers: adminAuth
                )
            )
            #expect(window.map { $0["session_id"] } == ["quiet"])
        }
    }

    @Test("query strings as forms and HTTP clients encode them: + is a space, %2B a plus, an offset's unescaped + a space")
    func formEncodedQueries() async throws {
        try await withTestApp { client, _ in
            let now = Date()
            func ago(_ seconds: Double) -> String { String(PostgresTimestamp.format(now.addingTimeInterval(-seconds)).prefix(19)) }
            try await ingest(
                client,
                "user_events",
                [
                    #"{"user_id": "u1", "tenant_id": "acme corp", "session_id": "s1", "event_type": "page_view", "timestamp": "\#(ago(600))"}"#,
                    #"{"user_id": "u2", "tenant_id": "a+b", "session_id": "s2", "event_type": "page_view", "timestamp": "\#(ago(300))"}"#,
                    #"{"user_id": "u3", "session_id": "s3", "event_type": "click", "timestamp": "\#(ago(7200))"}"#,
                ]
            )
            let spaced = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?tenant_id=acme+corp", headers: adminAuth))
            #expect(spaced.map { $0["session_id"] } == ["s1"])
            let plus = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?tenant_id=a%2Bb", headers: adminAuth))
            #expect(plus.map { $0["session_id"] } == ["s2"])
            // An interval and a time whose spaces are sent as +.
            let hour = data(try await pipe(client, "/v0/pipes/event_breakdown.json?time_range=1+hour", headers: adminAuth))
            #expect(hour.map { $0["event_type"] } == ["page_view"])
            #expect(hour.first?["events"] == 2)
            let since = ago(450).replacingOccurrences(of: " ", with: "+")
            let later = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?from_date=\(since)", headers: adminAuth))
            #expect(later.map { $0["session_id"] } == ["s2"])
            // An ISO time's offset sent without escaping its + (it arrives as a space), in a pipe and an endpoint.
            let offset = ago(450).replacingOccurrences(of: " ", with: "T") + "+00:00"
            let pipeRows = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?from_date=\(offset)", headers: adminAuth))
            #expect(pipeRows.map { $0["session_id"] } == ["s2"])
            let sessions = try await rows(client, "/api/analytics/sessions?from=\(offset)")
            #expect(sessions.map { $0["session_id"] } == ["s2"])
        }
    }

    @Test("a tenant's token sees only its tenant in every pipe, whatever it asks")
    func tenantInEveryPipe() async throws {
        try await withTestApp { client, pool in
            try await ingest(
                client,
                "user_events",
                [
                    #"{"user_id": "ua1", "tenant_id": "tenant_a", "session_id": "sa1", "event_type": "page_view", "page": "/a-page", "timestamp": "\#(ago(60))", "duration": 5}"#,
                    #"{"user_id": "ua2", "tenant_id": "tenant_a", "session_id": "sa2", "event_type": "page_view", "page": "/a-page", "timestamp": "\#(ago(55))", "duration": 3}"#,
                    #"{"user_id": "ub1", "tenant_id": "tenant_b", "session_id": "sb1", "event_type": "page_view", "page": "/b-page", "timestamp": "\#(ago(50))", "duration": 7}"#,
                ]
            )
            try await ingest(
                client,
                "user_features",
                [
                    #"{"user_id": "ua1", "tenant_id": "tenant_a", "avg_session_duration": 5, "total_sessions": 9, "avg_clicks_per_session": 1, "country": "US", "cluster_id": 1}"#,
                    #"{"user_id": "ub1", "tenant_id": "tenant_b", "avg_session_duration": 7, "total_sessions": 9, "avg_clicks_per_session": 2, "country": "US", "cluster_id": 1}"#,
                ]
            )
            let tenantA = try await createToken(client, #"{"name": "a", "scopes": ["read"], "tenant_id": "tenant_a"}"#)
            let list = try await client.execute(uri: "/v0/pipes", method: .get, headers: adminAuth) { try $0.json() }
            guard case .array(let pipes)? = list["pipes"] else { throw TestFailure("no pipes") }
            let names = pipes.compactMap { pipe -> String? in if case .object(let o) = pipe, case .string(let n)? = o["name"] { n } else { nil } }
            #expect(names.count == 13)
            let markers = ["ub1", "sb1", "/b-page", "tenant_b"]
            var adminSawB = false
            for name in names {
                let query = "session_id=sb1&user_id=ub1&tenant_id=tenant_b&from_date=2000-01-01%2000:00:00&time_range=1%20day&since=1%20day"
                // The admin's assign_clusters would recluster tenant b's user too; the check below is about the tenant's.
                for (auth, isTenant) in [(bearer(tenantA), true), (adminAuth, false)] where isTenant || name != "assign_clusters" {
                    let text = try await client.execute(uri: "/v0/pipes/\(name).json?\(query)", method: .get, headers: auth) { response in
                        #expect(response.status == .ok, "\(name): \(String(buffer: response.body))")
                        return String(buffer: response.body)
                    }
                    if isTenant {
                        for marker in markers { #expect(!text.contains(marker), "\(name) shows \(marker) to tenant_a") }
                    } else if markers.contains(where: text.contains) {
                        adminSawB = true
                    }
                }
                // Without the parameters that name tenant b's rows: the tenant's own rows only.
                let own = try await client.execute(uri: "/v0/pipes/\(name).json?session_id=sa1&user_id=ua1", method: .get, headers: bearer(tenantA)) {
                    String(buffer: $0.body)
                }
                for marker in markers { #expect(!own.contains(marker), "\(name) shows \(marker) to tenant_a") }
            }
            #expect(adminSawB)
            // assign_clusters run by the tenant changed only its own users, and stored ua2 (events only) as its own.
            let clusterB = try await pool.query("SELECT cluster_id FROM user_features WHERE user_id = 'ub1'")[0].decode(Int?.self, at: 0)
            #expect(clusterB == 1)
            let newUser = try await pool.query("SELECT tenant_id, total_sessions FROM user_features WHERE user_id = 'ua2'")
            #expect(try newUser.decode((String?, Int?).self).first.map { [$0.0 ?? "", String($0.1 ?? 0)] } == ["tenant_a", "1"])
        }
    }

    @Test("parameters are typed: a wrong type, an unknown enum word or a missing required one is a 400 naming it")
    func parameterValidation() async throws {
        try await withTestApp { client, _ in
            for (uri, parameter) in [
                ("/v0/pipes/realtime_traffic.json?limit=ten", "limit"),
                ("/v0/pipes/realtime_traffic.json?limit=0", "limit"),
                ("/v0/pipes/realtime_traffic.json?limit=10001", "limit"),
                ("/v0/pipes/active_users.json?time_frame=fortnight", "time_frame"),
                ("/v0/pipes/event_breakdown.json?time_range=soon", "time_range"),
                ("/v0/pipes/get_session_details.json", "session_id"),
                ("/v0/pipes/get_active_sessions.json?from_date=yesterday", "from_date"),
                ("/v0/pipes/event_breakdown.json?include_bots=maybe", "include_bots"),
            ] {
                try await client.execute(uri: uri, method: .get, headers: adminAuth) { response in
                    #expect(response.status == .badRequest, "\(uri)")
                    let body = try response.json()
                    guard case .string(let message)? = body["error"] else {
                        Issue.record("no error for \(uri)")
                        return
                    }
                    #expect(message.contains(parameter), "\(uri): \(message)")
                }
            }
            // Unknown parameters are ignored (the seeds send token= as one); unknown pipes and formats are 404.
            _ = try await pipe(client, "/v0/pipes/event_breakdown.json?whatever=1", headers: adminAuth)
            try await client.execute(uri: "/v0/pipes/nothing.json", method: .get, headers: adminAuth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v0/pipes/event_breakdown.xml", method: .get, headers: adminAuth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v0/pipes/event_breakdown.json", method: .get) { #expect($0.status == .unauthorized) }
            // A value that looks like SQL is a value.
            let injected = try await pipe(client, "/v0/pipes/event_breakdown.json?user_id=x'%20OR%20'1'='1", headers: adminAuth)
            #expect(injected["rows"] == 0)
        }
    }

    @Test("QUERY_TIMEOUT_SECONDS cancels a slow pipe (408); a pipe's @timeout lets it run longer")
    func timeouts() async throws {
        let sleeper = "-- @param seconds Float = 0\nSELECT count(*)::int AS n FROM pg_sleep(:seconds)\n"
        let folder = try pipesFolder(["sleeper": sleeper, "patient": "-- @timeout 30\n" + sleeper])
        defer { try? FileManager.default.removeItem(at: folder) }
        // Three seconds, not one: a quick query on a busy machine must not meet it.
        try await withTestApp(["QUERY_TIMEOUT_SECONDS": "3", "PIPES_DIR": folder.path]) { client, _ in
            try await client.execute(uri: "/v0/pipes/sleeper.json?seconds=6", method: .get, headers: adminAuth) { response in
                #expect(response.status == .requestTimeout)
                let body = try response.json()
                #expect(body["error"] != nil)
            }
            #expect(data(try await pipe(client, "/v0/pipes/sleeper.json?seconds=0.1", headers: adminAuth)) == [["n": 1]])
            #expect(data(try await pipe(client, "/v0/pipes/patient.json?seconds=6", headers: adminAuth)) == [["n": 1]])
            // The listing says how long each may run.
            let listed = try await pipe(client, "/v0/pipes", headers: adminAuth)
            guard case .array(let pipes)? = listed["pipes"] else {
                Issue.record("no pipes listed")
                return
            }
            var timeouts: [String: JSONValue] = [:]
            for case .object(let described) in pipes {
                if case .string(let name)? = described["name"] { timeouts[name] = described["timeout_seconds"] }
            }
            #expect(timeouts == ["sleeper": 3, "patient": 30])
            // Analytics and event reads keep the server's setting: a day of an empty table answers well within it.
            try await client.execute(uri: "/api/analytics/pages", method: .get, headers: adminAuth) { #expect($0.status == .ok) }
        }
    }

    @Test("long answers are sent in chunks, with the same rows in every format as a one-buffer answer")
    func chunkedAnswers() async throws {
        let numbers = """
            -- @param count Int(0..100000) = 10
            SELECT n, 'row ' || n AS label, CASE WHEN n % 7 = 0 THEN 'a,"b"' END AS quoted
            FROM generate_series(1, :count) AS n
            ORDER BY n
            """
        let folder = try pipesFolder(["numbers": numbers])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withTestApp(["PIPES_DIR": folder.path]) { client, _ in
            // One buffer; one row past it (two chunks); several chunks.
            for count in [ResultTable.chunkRows, ResultTable.chunkRows + 1, 2 * ResultTable.chunkRows + 500] {
                let body = try await pipe(client, "/v0/pipes/numbers.json?count=\(count)", headers: adminAuth)
                let rows = data(body)
                #expect(body["rows"] == .int(count) && rows.count == count)
                #expect(
                    rows.enumerated().allSatisfy { $0.element["n"] == .int($0.offset + 1) && $0.element["label"] == .string("row \($0.offset + 1)") }
                )
                #expect(rows[6]["quoted"] == "a,\"b\"" && rows[7]["quoted"] == .null)
                #expect(body["statistics"] != nil && body["meta"] != nil)

                let ndjson = try await client.execute(uri: "/v0/pipes/numbers.ndjson?count=\(count)", method: .get, headers: adminAuth) {
                    String(buffer: $0.body)
                }
                let lines = ndjson.split(separator: "\n").map { try? JSONParser.parse(Array($0.utf8)) }
                #expect(lines == rows.map { JSONValue.object($0) })

                let csv = try await client.execute(uri: "/v0/pipes/numbers.csvwithnames?count=\(count)", method: .get, headers: adminAuth) {
                    String(buffer: $0.body)
                }
                let records = csv.components(separatedBy: "\r\n")
                #expect(records.count == count + 2 && records.first == "n,label,quoted" && records.last == "")
                #expect(
                    records[7] == #"7,row 7,"a,""b""""# && records[8] == "8,row 8,"
                        && records[count] == "\(count),row \(count),\(count % 7 == 0 ? #""a,""b""""# : "")"
                )
            }
        }
    }

    @Test("CSV, CSV with names and NDJSON carry the same rows as JSON")
    func formats() async throws {
        try await withTestApp { client, _ in
            try await ingest(
                client,
                "user_events",
                [
                    #"{"user_id": "u1", "event_type": "page_view", "timestamp": "\#(ago(60))", "session_id": "s1", "page": "/a, \"quoted\""}"#,
                    #"{"user_id": "u2", "event_type": "page_view", "timestamp": "\#(ago(30))", "session_id": "s2", "page": "/b"}"#,
                ]
            )
            let json = try await pipe(client, "/v0/pipes/realtime_traffic.json", headers: adminAuth)
            let rows = data(json)
            #expect(rows.count == 2)
            let csv = try await client.execute(uri: "/v0/pipes/realtime_traffic.csv", method: .get, headers: adminAuth) { response in
                #expect(response.headers[.contentType]?.hasPrefix("text/csv") == true)
                return String(buffer: response.body)
            }
            let withNames = try await client.execute(uri: "/v0/pipes/realtime_traffic.csvwithnames", method: .get, headers: adminAuth) {
                String(buffer: $0.body)
            }
            #expect(withNames == "page,views,unique_visitors,last_view\r\n" + csv)
            #expect(csv.hasPrefix("\"/a, \"\"quoted\"\"\",1,1,"))
            let ndjson = try await client.execute(uri: "/v0/pipes/realtime_traffic.ndjson", method: .get, headers: adminAuth) {
                String(buffer: $0.body)
            }
            let lines = try ndjson.split(separator: "\n").map { line -> [String: JSONValue] in
                guard case .object(let object) = try JSONParser.parse(Array(line.utf8)) else { return [:] }
                return object
            }
            #expect(lines == rows)
        }
    }

    @Test("product active_users by hand: whole days from the rollups, days cut by the range from events, bots, types, tenants")
    func productActiveUsersByHand() async throws {
        try await withTestApp { client, pool in
            try await register(client, "root")
            let root = try await login(client, "root")
            let shopToken = try await createWorkspace(client, #"{"name": "shop", "templates": ["product"]}"#, auth: bearer(root))
            func event(
                _ day: Int,
                _ time: String,
                user: String?,
                session: String?,
                type: String = "pageview",
                tenant: String? = nil,
                bot: Bool = false
            ) -> String {
                eventLine([
                    "timestamp": .string("2024-10-\(day) \(time)"), "event_type": .string(type), "user_id": user.map(JSONValue.string),
                    "session_id": session.map(JSONValue.string), "tenant_id": tenant.map(JSONValue.string),
                    "user_agent": bot ? "Googlebot/2.1" : nil,
                ])
            }
            try await ingest(
                client,
                "events",
                [
                    // The 26th: u1 three times (once in tenant t2), u2 late, u5 in t2.
                    event(26, "08:00:00", user: "u1", session: "s1"),
                    event(26, "09:00:00", user: "u1", session: "s1"),
                    event(26, "12:00:00", user: "u1", session: "s1b", tenant: "t2"),
                    event(26, "10:00:00", user: "u5", session: "s5", tenant: "t2"),
                    event(26, "23:00:00", user: "u2", session: "s2"),
                    // The 27th: u2 (a page view and a click), an anonymous session s3, a crawler.
                    event(27, "01:00:00", user: "u2", session: "s2"),
                    event(27, "02:00:00", user: "u2", session: "s2", type: "click"),
                    event(27, "12:00:00", user: nil, session: "s3"),
                    event(27, "13:00:00", user: "u4", session: "s4", bot: true),
                    // The 28th: u1, and an event of nobody (counted, but no visitor).
                    event(28, "10:00:00", user: "u1", session: "s1c"),
                    event(28, "11:00:00", user: nil, session: nil),
                ],
                token: shopToken
            )
            try await expectRollupsMatchEvents(pool)
            func days(_ query: String, token: String) async throws -> [String] {
                let rows = data(try await pipe(client, "/v0/pipes/active_users.json?token=\(token)&\(query)"))
                return rows.map { row in
                    guard case .string(let day)? = row["day"], case .int(let users)? = row["active_users"], case .int(let events)? = row["events"]
                    else { return "\(row)" }
                    return "\(day.prefix(10)) \(users) \(events)"
                }
            }
            // All time: every day whole. The 26th: u1, u2, u5 (u1 counted once across tenants), 5 page views.
            #expect(try await days("", token: shopToken) == ["2024-10-26 3 5", "2024-10-27 2 2", "2024-10-28 1 2"])
            #expect(try await days("include_bots=true", token: shopToken) == ["2024-10-26 3 5", "2024-10-27 3 3", "2024-10-28 1 2"])
            #expect(try await days("event_type=click", token: shopToken) == ["2024-10-27 1 1"])
            // A range cutting both its end days: from 09:00 on the 26th (u1 at 08:00 left out, u1 at 09:00 and 12:00 in)
            // to 10:30 on the 28th (nobody's 11:00 event left out); the 27th whole.
            #expect(
                try await days("start_date=2024-10-26%2009:00:00&end_date=2024-10-28%2010:30:00", token: shopToken)
                    == ["2024-10-26 3 4", "2024-10-27 2 2", "2024-10-28 1 1"]
            )
            // Both ends in one day: u1 at 09:00 and u5 at 10:00.
            #expect(try await days("start_date=2024-10-26%2008:30:00&end_date=2024-10-26%2011:00:00", token: shopToken) == ["2024-10-26 2 2"])
            // From midnight, without an end: whole days only; an end at midnight takes that instant's day, empty here.
            #expect(try await days("start_date=2024-10-27%2000:00:00", token: shopToken) == ["2024-10-27 2 2", "2024-10-28 1 2"])
            #expect(try await days("end_date=2024-10-27%2000:00:00", token: shopToken) == ["2024-10-26 3 5"])
            // A token of tenant t2 counts only t2's events: u1 at 12:00 and u5 on the 26th.
            let tenantToken = try await createToken(client, #"{"name": "t2", "scopes": ["read"], "tenant_id": "t2"}"#, auth: bearer(shopToken))
            #expect(try await days("", token: tenantToken) == ["2024-10-26 2 2"])
            #expect(try await days("start_date=2024-10-26%2011:00:00", token: tenantToken) == ["2024-10-26 1 1"])
        }
    }

    @Test("tenant_activity_summary by hand: sessions inside and across the window's ends, two visitors in a session, events without one")
    func tenantSummaryByHand() async throws {
        try await withTestApp { client, pool in
            func event(_ time: String, _ tenant: String, _ session: String?, _ user: String?, _ type: String, duration: Int? = nil) -> String {
                eventLine([
                    "timestamp": .string("2023-08-0\(time)Z"), "tenant_id": .string(tenant), "event_type": .string(type),
                    "session_id": session.map(JSONValue.string), "user_id": user.map(JSONValue.string), "duration": duration.map(JSONValue.int),
                ])
            }
            try await ingest(
                client,
                "user_events",
                [
                    // t1: session A (user a) from 10:00 to 10:20; session B anonymous at 23:50, then user b at 00:20.
                    event("1T10:00:00", "t1", "A", "a", "page_view"),
                    event("1T10:10:00", "t1", "A", "a", "click"),
                    event("1T10:20:00", "t1", "A", "a", "page_view"),
                    event("1T23:50:00", "t1", "B", nil, "page_view"),
                    event("2T00:20:00", "t1", "B", "b", "page_view"),
                    // t2: session C (user c) whose events carry durations, and an event of c without a session.
                    event("2T12:00:00", "t2", "C", "c", "page_view", duration: 30),
                    event("2T12:05:00", "t2", "C", "c", "click", duration: 10),
                    event("2T13:00:00", "t2", nil, "c", "page_view"),
                ]
            )
            try await expectRollupsMatchEvents(pool)
            func column(_ rows: [[String: JSONValue]], _ name: String) -> [JSONValue?] { rows.map { $0[name] } }
            // All time. t1: sessions A and B; visitors a, B (anonymous) and b; 5 events, 4 page views; A lasted 1,200 s
            // and B 1,800 s (its two visitors' events together). t2: session C; visitor c; 3 events (one without a
            // session), 2 page views; C's durations add up to 40 s.
            let all = data(try await pipe(client, "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)"))
            #expect(column(all, "tenant_id") == ["t1", "t2"])
            #expect(column(all, "sessions") == [2, 1])
            #expect(column(all, "users") == [3, 1])
            #expect(column(all, "events") == [5, 3])
            #expect(column(all, "page_views") == [4, 2])
            #expect(column(all, "avg_session_duration") == [1500.0, 40.0])
            // From 10:05 on the 1st to midnight: A's click and last page view (600 s apart), B's first event (0 s).
            // Both sessions cross an end of the window; C and c's other event are outside it.
            let window = data(
                try await pipe(
                    client,
                    "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)&from_date=2023-08-01%2010:05:00&to_date=2023-08-02%2000:00:00"
                )
            )
            #expect(column(window, "tenant_id") == ["t1"])
            #expect(column(window, "sessions") == [2])
            #expect(column(window, "users") == [2])
            #expect(column(window, "events") == [3])
            #expect(column(window, "page_views") == [2])
            #expect(column(window, "avg_session_duration") == [300.0])
            #expect(column(window, "first_activity") == ["2023-08-01T10:10:00Z"])
            #expect(column(window, "last_activity") == ["2023-08-01T23:50:00Z"])
            // Until 10:15 on the 1st, open before: A's first two events (600 s apart), A crossing the window's end
            // while no session begins before it.
            let early = data(
                try await pipe(client, "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)&to_date=2023-08-01%2010:15:00")
            )
            #expect(column(early, "tenant_id") == ["t1"])
            #expect(column(early, "sessions") == [1])
            #expect(column(early, "users") == [1])
            #expect(column(early, "events") == [2])
            #expect(column(early, "page_views") == [1])
            #expect(column(early, "avg_session_duration") == [600.0])
            #expect(column(early, "last_activity") == ["2023-08-01T10:10:00Z"])
            // Only t2's events without a session, from 12:30: no session, one user, one event.
            let late = data(try await pipe(client, "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)&from_date=2023-08-02%2012:30:00"))
            #expect(column(late, "tenant_id") == ["t2"])
            #expect(column(late, "sessions") == [0])
            #expect(column(late, "users") == [1])
            #expect(column(late, "events") == [1])
            #expect(late.first?["avg_session_duration"] == .null)
            // A later batch adds to session A (its totals updated, not inserted): A now lasts 1,800 s, as B does.
            try await ingest(client, "user_events", [event("1T10:30:00", "t1", "A", "a", "page_view")])
            try await expectRollupsMatchEvents(pool)
            let later = data(try await pipe(client, "/v0/pipes/tenant_activity_summary.json?token=\(testAdminToken)"))
            #expect(column(later, "tenant_id") == ["t1", "t2"])
            #expect(column(later, "sessions") == [2, 1])
            #expect(column(later, "users") == [3, 1])
            #expect(column(later, "events") == [6, 3])
            #expect(column(later, "page_views") == [5, 2])
            #expect(column(later, "avg_session_duration") == [1800.0, 40.0])
            #expect(column(later, "first_activity") == ["2023-08-01T10:00:00Z", "2023-08-02T12:00:00Z"])
            #expect(column(later, "last_activity") == ["2023-08-02T00:20:00Z", "2023-08-02T13:00:00Z"])
        }
    }

    @Test("behaviour features by hand: a session of two tenants, one across the window's start, events without a session, ties, both ways")
    func behaviourFeaturesByHand() async throws {
        try await withTestApp { client, pool in
            // Each time taken once: two events share t600 and tie as u1's latest with a country.
            let (t7200, t3000, t2400, t1800, t600, t300, t100) = (ago(7200), ago(3000), ago(2400), ago(1800), ago(600), ago(300), ago(100))
            func event(_ time: String, _ user: String, _ session: String?, _ tenant: String?, _ fields: [String: JSONValue?]) -> String {
                let who: [String: JSONValue?] = [
                    "timestamp": .string(time), "user_id": .string(user), "session_id": session.map(JSONValue.string),
                    "tenant_id": tenant.map(JSONValue.string),
                ]
                return eventLine(fields.merging(who) { $1 })
            }
            try await ingest(
                client,
                "user_events",
                [
                    // S1 names two tenants: one session of u1 all the same, from 7,200 s ago to 2,400 s ago.
                    event(
                        t7200,
                        "u1",
                        "S1",
                        "t1",
                        ["event_type": "page_view", "page": "/a", "device_type": "desktop", "country": "US", "clicks": 2]
                    ),
                    event(t3000, "u1", "S1", "t1", ["event_type": "page_view", "page": "/b", "device_type": "mobile", "country": "FR"]),
                    event(t2400, "u1", "S1", "t2", ["event_type": "click", "page": "/b", "device_type": "mobile", "country": "DE"]),
                    // S2's events carry durations: 50 s.
                    event(t1800, "u1", "S2", "t1", ["event_type": "page_view", "page": "/a", "device_type": "desktop", "duration": 20]),
                    event(
                        t600,
                        "u1",
                        "S2",
                        "t1",
                        ["event_type": "page_view", "page": "/c", "device_type": "tablet", "duration": 30, "country": "NZ"]
                    ),
                    // No session, at the same time as S2's last event: AR and NZ tie as u1's latest country.
                    event(t600, "u1", nil, "t1", ["event_type": "page_view", "page": "/b", "device_type": "tablet", "country": "AR"]),
                    // A bot, left out unless asked for.
                    event(t300, "u1", "S3", "t1", ["event_type": "page_view", "page": "/z", "country": "ZZ", "user_agent": "Googlebot/2.1"]),
                    event(t100, "u2", "S9", nil, ["event_type": "page_view", "page": "/z", "device_type": "tv", "country": "NZ"]),
                ]
            )
            try await expectRollupsMatchEvents(pool)
            func iso(_ time: String) -> JSONValue { .string(time.replacingOccurrences(of: " ", with: "T") + "Z") }
            // u1: sessions S1 (4,800 s, its two tenants' events together; 3 clicks) and S2 (50 s; none): 2,425 s and
            // 1.5 clicks per session; 6 events; /b three times; desktop, mobile and tablet twice each (alphabetical).
            let all = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?token=\(testAdminToken)"))
            #expect(all.map { $0["user_id"] } == ["u1", "u2"])
            let u1 = all.first ?? [:]
            #expect(u1["total_sessions"] == 2)
            #expect(u1["avg_session_duration"] == 2425.0)
            #expect(u1["avg_clicks_per_session"] == 1.5)
            #expect(u1["total_events"] == 6)
            #expect(u1["most_visited_page"] == "/b")
            #expect(u1["most_used_device"] == "desktop")
            #expect(u1["country"] == "AR", "of the countries named last, the least")
            #expect(u1["first_seen"] == iso(t7200))
            #expect(u1["last_seen"] == iso(t600))
            // With the bot: S3 is a third session, and ZZ the latest country.
            let bots = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?include_bots=true&token=\(testAdminToken)"))
            #expect(bots.first?["total_sessions"] == 3)
            #expect(bots.first?["total_events"] == 7)
            #expect(bots.first?["country"] == "ZZ")
            // The last hour: S1 from 3,000 s ago (its t1 page view, then t2's click: 600 s, 1 click), S2 and the event
            // without a session: 325 s and 0.5 clicks per session, 5 events; mobile and tablet twice each.
            let hour = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?since=1%20hour&token=\(testAdminToken)"))
            #expect(hour.first?["user_id"] == "u1")
            #expect(hour.first?["total_sessions"] == 2)
            #expect(hour.first?["avg_session_duration"] == 325.0)
            #expect(hour.first?["avg_clicks_per_session"] == 0.5)
            #expect(hour.first?["total_events"] == 5)
            #expect(hour.first?["first_seen"] == iso(t3000))
            #expect(hour.first?["most_visited_page"] == "/b")
            #expect(hour.first?["most_used_device"] == "mobile")
            // The last 50 minutes, less than half the time since the first event, so read from the events rather
            // than the session totals: S1's click alone (1 click), S2 (50 s) and the event without a session: 25 s
            // and 0.5 clicks per session, 4 events; /b twice; tablet twice.
            let recent = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?since=50%20minute&token=\(testAdminToken)"))
            #expect(recent.map { $0["user_id"] } == ["u1", "u2"])
            #expect(recent.first?["total_sessions"] == 2)
            #expect(recent.first?["avg_session_duration"] == 25.0)
            #expect(recent.first?["avg_clicks_per_session"] == 0.5)
            #expect(recent.first?["total_events"] == 4)
            #expect(recent.first?["first_seen"] == iso(t2400))
            #expect(recent.first?["most_visited_page"] == "/b")
            #expect(recent.first?["most_used_device"] == "tablet")
            #expect(recent.first?["country"] == "AR")
            let recentArgentina = data(
                try await pipe(client, "/v0/pipes/aggregate_user_features.json?since=50%20minute&country=AR&token=\(testAdminToken)")
            )
            #expect(recentArgentina.map { $0["user_id"] } == ["u1"])
            let argentina = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?country=AR&token=\(testAdminToken)"))
            #expect(argentina.map { $0["user_id"] } == ["u1"])
            let newZealand = data(try await pipe(client, "/v0/pipes/aggregate_user_features.json?country=NZ&token=\(testAdminToken)"))
            #expect(newZealand.map { $0["user_id"] } == ["u2"])

            // assign_clusters stores the same features; u1's tenant is the greatest its events name.
            func stored() async throws -> [String] {
                try await pool.query(
                    """
                    SELECT concat_ws(' ', user_id, tenant_id, total_sessions, avg_session_duration, avg_clicks_per_session,
                                     most_visited_page, most_used_device, country)
                    FROM user_features ORDER BY user_id
                    """
                ).decode(String.self)
            }
            // Over all time from the users' totals, over the last hour from the session totals: both answer the two
            // users, once each.
            func users(_ rows: [[String: JSONValue]]) -> [String] {
                rows.map { row in if case .string(let user)? = row["user_id"] { user } else { "none" } }.sorted()
            }
            let clustered = data(try await pipe(client, "/v0/pipes/assign_clusters.json?k=2&token=\(testAdminToken)"))
            #expect(users(clustered) == ["u1", "u2"])
            #expect(try await stored() == ["u1 t2 2 2425 1.5 /b desktop AR", "u2 1 0 0 /z tv NZ"])
            let clusteredHour = data(try await pipe(client, "/v0/pipes/assign_clusters.json?k=2&since=1%20hour&token=\(testAdminToken)"))
            #expect(users(clusteredHour) == ["u1", "u2"])
            #expect(try await stored() == ["u1 t2 2 325 0.5 /b mobile AR", "u2 1 0 0 /z tv NZ"])
        }
    }

    @Test("assign_clusters stores the cluster it answers for every user, past the 50,000 it stores per statement")
    func clustersOfManyUsers() async throws {
        try await withTestApp { client, pool in
            // Two groups, interleaved: the even users light (25,001), the odd ones heavy (25,000). They have no
            // events, so their rows as sent are their features.
            let users = 50_001
            try await ingest(
                client,
                "user_features",
                (0..<users).map { index in
                    let light = index % 2 == 0
                    return eventLine([
                        "user_id": .string("u\(100_000 + index)"),
                        "avg_session_duration": .double((light ? 10 : 900) + Double(index % 5)),
                        "total_sessions": .int(light ? 1 : 40),
                        "avg_clicks_per_session": .double(light ? 1 : 25),
                    ])
                }
            )
            let answered = data(try await pipe(client, "/v0/pipes/assign_clusters.json?k=2&token=\(testAdminToken)"))
            var clusters: [String: Int] = [:]
            for row in answered {
                if case .string(let user)? = row["user_id"], case .int(let cluster)? = row["cluster_id"] { clusters[user] = cluster }
            }
            #expect(clusters.count == users)
            #expect(clusters["u100000"] == 1 && clusters["u100001"] == 2, "the larger group first")
            #expect(clusters.values.count { $0 == 1 } == 25_001)
            let stored = try await pool.query("SELECT user_id, cluster_id FROM user_features").decode((String, Int?).self)
            #expect(stored.count == users)
            #expect(stored.allSatisfy { clusters[$0.0] == $0.1 })

            // Clusters stored meanwhile by something else (every third user's, 16,667: the other one of the two) are
            // answered as the previous ones and stored again; the users whose stored cluster is the one assigned are
            // not written (their last_updated stays).
            let moved = try await pool.execute(
                "UPDATE user_features SET cluster_id = 3 - cluster_id WHERE (substr(user_id, 2)::int - 100000) % 3 = 0"
            )
            #expect(moved == 16_667)
            let scrambled = try await pool.query("SELECT max(last_updated) FROM user_features")[0].decode(Date.self, at: 0)
            let again = data(try await pipe(client, "/v0/pipes/assign_clusters.json?k=2&token=\(testAdminToken)"))
            #expect(again.count == users)
            let previous = again.compactMap { row -> (String, Int)? in
                guard case .string(let user)? = row["user_id"], case .int(let cluster)? = row["previous_cluster_id"] else { return nil }
                return (user, cluster)
            }
            #expect(previous.count == users)
            #expect(
                previous.allSatisfy { user, cluster in
                    let number = Int(user.dropFirst())! - 100_000
                    return cluster == (number % 3 == 0 ? 3 - clusters[user]! : clusters[user]!)
                }
            )
            let restored = try await pool.query("SELECT user_id, cluster_id, last_updated > \(scrambled) FROM user_features")
                .decode((String, Int?, Bool).self)
            #expect(restored.allSatisfy { clusters[$0.0] == $0.1 })
            #expect(restored.filter(\.2).count == 16_667, "only the moved users written again")
        }
    }

    @Test("pipe scopes and tenants: read:<pipe> reads that pipe only; a tenant's token sees its tenant whatever it asks")
    func scopesAndTenants() async throws {
        try await withTestApp { client, _ in
            try await ingest(
                client,
                "user_sessions",
                [
                    #"{"session_id": "a1", "user_id": "ua", "tenant_id": "tenant_a", "event_type": "page_view", "created_at": "2023-07-15 14:30:00"}"#,
                    #"{"session_id": "b1", "user_id": "ub", "tenant_id": "tenant_b", "event_type": "page_view", "created_at": "2023-07-15 15:30:00"}"#,
                ]
            )
            func token(_ body: String) async throws -> String { try await createToken(client, body) }
            let narrow = try await token(#"{"name": "one pipe", "scopes": ["read:get_active_sessions"]}"#)
            let tenantA = try await token(#"{"name": "tenant a", "scopes": ["read"], "tenant_id": "tenant_a"}"#)
            let all = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?token=\(narrow)"))
            #expect(Set(all.map { $0["session_id"] }) == ["a1", "b1"])
            try await client.execute(uri: "/v0/pipes/tenant_activity_summary.json?token=\(narrow)", method: .get) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/v0/pipes?token=\(narrow)", method: .get) { response in
                let body = try response.json()
                guard case .array(let pipes)? = body["pipes"] else { throw TestFailure("no pipes") }
                #expect(pipes.count == 1)
            }

            let own = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?token=\(tenantA)"))
            #expect(own.map { $0["session_id"] } == ["a1"])
            let other = data(try await pipe(client, "/v0/pipes/get_active_sessions.json?token=\(tenantA)&tenant_id=tenant_b"))
            #expect(other.isEmpty)
            let summary = data(try await pipe(client, "/v0/pipes/tenant_activity_summary.json?token=\(tenantA)"))
            #expect(summary.map { $0["tenant_id"] } == ["tenant_a"])
            try await client.execute(uri: "/v0/pipes/get_session_details.json?token=\(tenantA)&session_id=b1", method: .get) { response in
                #expect(response.status == .ok)
                let body = try response.json()
                #expect(body["rows"] == 0)
            }
        }
    }

    @Test("a custom pipe finds the sessions with several rows of totals as the writer adds them; a tenant sees those with a row of its own")
    func sessionsWithSeveralRows() async throws {
        let several = "SELECT session_id FROM sessions_with_several_rows(:workspace_id) ORDER BY session_id"
        let counts = "SELECT session_id, rows FROM session_rows ORDER BY session_id"
        let folder = try pipesFolder(["several": several, "counts": counts])
        defer { try? FileManager.default.removeItem(at: folder) }
        try await withTestApp(["PIPES_DIR": folder.path]) { client, pool in
            func event(_ minute: Int, _ session: String, _ tenant: String, _ user: String?) -> String {
                eventLine([
                    "timestamp": .string("2023-08-01T10:\(minute + 10):00Z"), "session_id": .string(session), "tenant_id": .string(tenant),
                    "user_id": user.map(JSONValue.string), "event_type": "page_view",
                ])
            }
            // S1: a row in tenant a, then (another request) one in tenant b. S2: anonymous, then its user logs in, both
            // in tenant b, in one request. S3: one row in tenant a.
            try await ingest(
                client,
                "user_events",
                [event(0, "S1", "tenant_a", "x"), event(1, "S3", "tenant_a", "z"), event(2, "S3", "tenant_a", "z")]
            )
            try await ingest(
                client,
                "user_events",
                [event(3, "S1", "tenant_b", "y"), event(4, "S2", "tenant_b", nil), event(5, "S2", "tenant_b", "w")]
            )
            try await expectRollupsMatchEvents(pool)
            let tenantA = try await createToken(client, #"{"name": "a", "scopes": ["read"], "tenant_id": "tenant_a"}"#)
            let tenantB = try await createToken(client, #"{"name": "b", "scopes": ["read"], "tenant_id": "tenant_b"}"#)
            func sessions(_ token: String) async throws -> [JSONValue?] {
                data(try await pipe(client, "/v0/pipes/several.json?token=\(token)")).map { $0["session_id"] }
            }
            #expect(try await sessions(testAdminToken) == ["S1", "S2"])
            #expect(try await sessions(tenantA) == ["S1"])
            #expect(try await sessions(tenantB) == ["S1", "S2"])
            // A tenant's reader sees the counts of the sessions it has a row in (of every tenant's rows).
            let ownCounts = data(try await pipe(client, "/v0/pipes/counts.json?token=\(tenantA)"))
            #expect(ownCounts.map { [$0["session_id"], $0["rows"]] } == [["S1", 2], ["S3", 1]])
            // A third row of S2 in a later request; data retention's recount and a rebuild delete rows and insert them again.
            try await ingest(client, "user_events", [event(6, "S2", "tenant_a", "w")])
            #expect(try await sessions(tenantA) == ["S1", "S2"])
            try await pool.execute("DELETE FROM events WHERE session_id = 'S1' AND tenant_id = 'tenant_b'")
            try await SessionTotals(pool: pool).recount(workspaceID: 1, sessionsBefore: Date())
            #expect(try await sessions(testAdminToken) == ["S2"])
            let all = data(try await pipe(client, "/v0/pipes/counts.json?token=\(testAdminToken)"))
            #expect(all.map { [$0["session_id"], $0["rows"]] } == [["S1", 1], ["S2", 3], ["S3", 1]])
            _ = try await Rollups(pool: pool).rebuild(workspaceID: 1)
            try await expectRollupsMatchEvents(pool)
            #expect(try await sessions(testAdminToken) == ["S2"])
        }
    }

    @Test("GET /v0/pipes lists the workspace's pipes with parameters; openapi.json describes them")
    func listingAndOpenAPI() async throws {
        try await withTestApp { client, _ in
            let list = try await client.execute(uri: "/v0/pipes", method: .get, headers: adminAuth) { try $0.json() }
            guard case .array(let pipes)? = list["pipes"] else { throw TestFailure("no pipes") }
            let names = pipes.compactMap { pipe -> String? in if case .object(let o) = pipe, case .string(let n)? = o["name"] { n } else { nil } }
            #expect(names.count == 13)
            #expect(names.contains("event_breakdown") && names.contains("assign_clusters") && names.contains("get_session_details"))
            #expect(!names.contains("feature_usage"))
            let document = try await client.execute(uri: "/v0/pipes/openapi.json", method: .get, headers: adminAuth) { try $0.json() }
            #expect(document["openapi"] == "3.1.0")
            #expect(try await validateOpenAPI(JSONValue.object(document).jsonText) == "")
            guard case .object(let paths)? = document["paths"], case .object(let get)? = paths["/v0/pipes/realtime_traffic.json"],
                case .object(let operation)? = get["get"], case .array(let parameters)? = operation["parameters"]
            else { throw TestFailure("no realtime_traffic path") }
            #expect(
                parameters.contains([
                    "name": "limit", "in": "query", "required": false, "description": "Number of pages to return",
                    "schema": ["type": "integer", "minimum": 1, "maximum": 10000, "default": 10],
                ])
            )
        }
    }

    @Test("pipe files are checked when loaded: the error names the file and line")
    func loaderErrors() throws {
        let good = try PipeLoader.parse(
            """
            -- Counts.
            -- @param since Interval = '1 day'  How far back
            -- @param tag   String?
            SELECT count(*)::int AS n, ':not_a_param' AS text -- :neither
            FROM events WHERE time > now() - :since AND (:tag IS NULL OR event_type = :tag) /* :nor */
            """,
            name: "counts",
            template: "t",
            path: "t/counts.sql"
        )
        #expect(good.placeholders == ["since", "tag", "tag"])
        #expect(good.parameters.map(\.name) == ["since", "tag"])
        #expect(good.description == "Counts.")
        let rendered = good.query(["since": .text("1 day"), "tag": .null, "workspace_id": .text("1")]).render()
        #expect(rendered.sql.contains("now() - $1::interval AND ($2::text IS NULL OR event_type = $3::text)"))
        #expect(rendered.sql.contains("':not_a_param'") && rendered.sql.contains("count(*)::int"))
        // @kmeans: its parameters need not appear in the SQL.
        let clustering = try PipeLoader.parse(
            "-- @writes\n-- @kmeans a b\n-- @param k Int(1..9) = 2\n-- @param max_iterations Int = 5\nSELECT 'u' AS user_id, 1 AS a, 2 AS b",
            name: "clusters",
            template: "t",
            path: "t/clusters.sql"
        )
        #expect(clustering.kmeans == KMeansStep(features: ["a", "b"]) && clustering.placeholders.isEmpty)
        #expect(clustering.timeout == nil)
        #expect(try PipeLoader.parse("-- @timeout 120\nSELECT 1 AS n", name: "slow", template: "t", path: "t/slow.sql").timeout == 120)

        for (text, line, fragment) in [
            ("-- @param a Integer\nSELECT :a", 1, "unknown type"),
            ("-- @param a Int = x\nSELECT :a", 1, "whole number"),
            ("-- @param a Int\nSELECT 1\nWHERE :b", 3, ":b"),
            ("-- @param a Int\nSELECT 1", 1, "never uses"),
            ("-- @param workspace_id Int\nSELECT :workspace_id", 1, "set by the server"),
            ("-- @parm a Int\nSELECT :a", 1, "unknown directive"),
            ("-- just a header", 1, "no SQL"),
            ("SELECT 'open", 1, "not closed"),
            ("-- @kmeans a\n-- @param k Int = 2\nSELECT 1", 1, "needs @writes"),
            ("-- @writes\n-- @kmeans\n-- @param k Int = 2\nSELECT 1", 2, "feature columns"),
            ("-- @writes\n-- @kmeans a b\nSELECT 1", 2, "parameter k declared as Int"),
            ("-- @writes\n-- @kmeans a\n-- @param k Int = 2\n-- @param max_iterations String\nSELECT 1", 2, "max_iterations"),
            ("-- @timeout soon\nSELECT 1", 1, "whole seconds"),
            ("-- @timeout 0\nSELECT 1", 1, "whole seconds"),
            ("-- @timeout 5\n-- @timeout 6\nSELECT 1", 2, "twice"),
        ] {
            #expect {
                try PipeLoader.parse(text, name: "broken", template: "t", path: "t/broken.sql")
            } throws: { error in
                guard let invalid = error as? PipeLoader.Invalid else { return false }
                return invalid.path == "t/broken.sql" && invalid.line == line && invalid.message.contains(fragment)
            }
        }
    }
}

/// Runs openapi-spec-validator (PyPI; `scripts/test` installs it) on a document: "" when valid, else its report.
func validateOpenAPI(_ json: String) async throws -> String {
    let file = FileManager.default.temporaryDirectory.appendingPathComponent("openapi-\(UUID().uuidString).json")
    try json.write(to: file, atomically: true, encoding: .utf8)
    defer { try? FileManager.default.removeItem(at: file) }
    let (status, report) = try await ChildProcess.run("/usr/bin/env", ["python3", "-m", "openapi_spec_validator", file.path])
    return status == 0 ? "" : report
}

/// A folder of pipe templates for `PIPES_DIR`: each pipe (name → file text) in the template `engagement`, which the
/// default workspace has enabled.
func pipesFolder(_ pipes: [String: String]) throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pipes-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("engagement"), withIntermediateDirectories: true)
    for (name, text) in pipes {
        try text.write(to: folder.appendingPathComponent("engagement/\(name).sql"), atomically: true, encoding: .utf8)
    }
    return folder
}
