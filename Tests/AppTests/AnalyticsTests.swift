import Foundation
import Hummingbird
import HummingbirdTesting
import Postgres
import Testing

@testable import App

/// A small hand-built history whose analytics are computed by hand below.
///
/// T is two hours ago. Sessions (visitor = user_id, or the session id when there is none):
/// - s1 (u1, Chrome on Windows): / T (10 s, from google.com), /pricing T+1m (20 s), /signup T+2m (30 s)
/// - s2 (u2, Safari on an iPhone): / T (5 s), /signup T+1m (5 s), /pricing T+2m (5 s)     — signup before pricing
/// - s3 (no user): / T (from t.co)                                   — a bounce
/// - s4 (u4): /pricing T (40 s), / T+1m (40 s)                       — pricing before /
/// - s5a (u5): / T                                                   — a bounce
/// - s5b (u5): /pricing T+10m, /signup T+11m                         — the rest of u5's journey, another session
/// - bot (Googlebot): / T, /pricing T+1m, /signup T+2m               — excluded unless include_bots=true
enum Fixture {
    /// Two hours ago at half a second past a whole second: times then print with their milliseconds both ways (a
    /// time on a whole second prints without them, which once made a comparison fail 1 time in 1,000).
    static let base = Date(timeIntervalSince1970: (Date().timeIntervalSince1970 - 7200).rounded(.down) + 0.5)

    static func at(_ minutes: Double) -> String { PostgresTimestamp.iso8601(base.addingTimeInterval(minutes * 60)) }

    static var body: String {
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        let chrome: JSONValue = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
        let iphone: JSONValue =
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
        let events: [[String: JSONValue]] = [
            [
                "session_id": "s1", "user_id": "u1", "page": "/", "timestamp": .string(at(0)), "duration": 10, "referrer": "https://google.com",
                "user_agent": chrome,
            ],
            ["session_id": "s1", "user_id": "u1", "page": "/pricing", "timestamp": .string(at(1)), "duration": 20, "user_agent": chrome],
            ["session_id": "s1", "user_id": "u1", "page": "/signup", "timestamp": .string(at(2)), "duration": 30],
            ["session_id": "s2", "user_id": "u2", "page": "/", "timestamp": .string(at(0)), "duration": 5, "user_agent": iphone],
            ["session_id": "s2", "user_id": "u2", "page": "/signup", "timestamp": .string(at(1)), "duration": 5],
            ["session_id": "s2", "user_id": "u2", "page": "/pricing", "timestamp": .string(at(2)), "duration": 5],
            ["session_id": "s3", "page": "/", "timestamp": .string(at(0)), "referrer": "https://t.co/x"],
            ["session_id": "s4", "user_id": "u4", "page": "/pricing", "timestamp": .string(at(0)), "duration": 40],
            ["session_id": "s4", "user_id": "u4", "page": "/", "timestamp": .string(at(1)), "duration": 40],
            ["session_id": "s5a", "user_id": "u5", "page": "/", "timestamp": .string(at(0))],
            ["session_id": "s5b", "user_id": "u5", "page": "/pricing", "timestamp": .string(at(10))],
            ["session_id": "s5b", "user_id": "u5", "page": "/signup", "timestamp": .string(at(11))],
            ["session_id": "sb", "user_id": "bot", "page": "/", "timestamp": .string(at(0)), "user_agent": .string(bot)],
            ["session_id": "sb", "user_id": "bot", "page": "/pricing", "timestamp": .string(at(1)), "user_agent": .string(bot)],
            ["session_id": "sb", "user_id": "bot", "page": "/signup", "timestamp": .string(at(2)), "user_agent": .string(bot)],
        ]
        return JSONValue.array(events.map(JSONValue.object)).jsonText
    }

    /// Builds the app, loads the fixture and runs `body`.
    static func withApp(_ body: @Sendable @escaping (any TestClientProtocol) async throws -> Void) async throws {
        try await withApp { client, _ in try await body(client) }
    }

    static func withApp(
        _ overrides: [String: String] = [:],
        _ body: @Sendable @escaping (any TestClientProtocol, PostgresPool) async throws -> Void
    ) async throws {
        try await withTestApp(overrides) { client, pool in
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(string: Fixture.body)) { response in
                let summary = try response.json(IngestSummary.self)
                #expect(summary == IngestSummary(successfulRows: 15, quarantinedRows: 0))
            }
            try await body(client, pool)
        }
    }
}

/// GETs a JSON array of objects.
func rows(_ client: any TestClientProtocol, _ uri: String, headers: HTTPFields = adminAuth) async throws -> [[String: JSONValue]] {
    try await client.execute(uri: uri, method: .get, headers: headers) { response in
        #expect(response.status == .ok, "\(uri): \(String(buffer: response.body))")
        // The server's own parser keeps 100.0 a number with a fraction, as sent (Foundation would read an integer).
        guard case .array(let items) = try JSONParser.parse(Array(response.body.readableBytesView)) else { return [] }
        return items.compactMap { item in
            guard case .object(let object) = item else { return nil }
            return object
        }
    }
}

@Suite("Analytics: sessions, funnel, pages")
struct AnalyticsTests {
    /// With a pool of four the funnel counts odd and even visitors on two connections at once; with one, all on one.
    @Test("the funnel counts a visitor at a step only after the earlier steps, in order", arguments: ["4", "1"])
    func funnel(poolSize: String) async throws {
        try await Fixture.withApp(["DB_POOL_SIZE": poolSize]) { client, _ in
            let steps = "pages=/&pages=/pricing&pages=/signup"
            let window = try await rows(client, "/api/analytics/funnel?\(steps)")
            #expect(
                window == [
                    ["step": 1, "page": "/", "visitors": 5, "conversion_rate": 100.0, "step_conversion_rate": 100.0, "drop_off": 0],
                    ["step": 2, "page": "/pricing", "visitors": 3, "conversion_rate": 60.0, "step_conversion_rate": 60.0, "drop_off": 2],
                    ["step": 3, "page": "/signup", "visitors": 2, "conversion_rate": 40.0, "step_conversion_rate": 66.67, "drop_off": 1],
                ]
            )
            let session = try await rows(client, "/api/analytics/funnel?\(steps)&within=session")
            #expect(session.map { $0["visitors"] } == [5, 2, 1])
            let bots = try await rows(client, "/api/analytics/funnel?\(steps)&include_bots=true")
            #expect(bots.map { $0["visitors"] } == [6, 4, 3])
            // A step may repeat a page: it then needs a later event on it (u4 saw "/" after "/pricing" only).
            let again = try await rows(client, "/api/analytics/funnel?pages=/pricing&pages=/&pages=/pricing")
            #expect(again.map { $0["visitors"] } == [4, 1, 0])
            try await client.execute(uri: "/api/analytics/funnel?pages=/", method: .get, headers: adminAuth) {
                #expect($0.status == .unprocessableContent)
            }
        }
    }

    /// With a pool of four the entries and the top pages are computed on two connections at once; with one, on one.
    @Test("pages: views, visitors, durations, entries, exits, bounce rate and top referrers", arguments: ["4", "1"])
    func pages(poolSize: String) async throws {
        try await Fixture.withApp(["DB_POOL_SIZE": poolSize]) { client, _ in
            let pages = try await rows(client, "/api/analytics/pages")
            #expect(
                pages == [
                    [
                        "page": "/", "views": 5, "unique_visitors": 5, "avg_duration": 18.33, "bounce_rate": 50.0, "entries": 4, "exits": 3,
                        "top_referrers": [["referrer": "google.com", "visits": 1], ["referrer": "t.co", "visits": 1]],
                    ],
                    [
                        "page": "/pricing", "views": 4, "unique_visitors": 4, "avg_duration": 21.67, "bounce_rate": 0.0, "entries": 2, "exits": 1,
                        "top_referrers": [],
                    ],
                    [
                        "page": "/signup", "views": 3, "unique_visitors": 3, "avg_duration": 17.5, "bounce_rate": 0.0, "entries": 0, "exits": 2,
                        "top_referrers": [],
                    ],
                ]
            )
            let limited = try await rows(client, "/api/analytics/pages?limit=1")
            #expect(limited.map { $0["page"] } == ["/"])
            // A page whose events carry no duration, and no referrer: its average duration is null.
            let lonely = #"[{"session_id": "s9", "page": "/lonely", "timestamp": "\#(Fixture.at(3))"}]"#
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(string: lonely)) {
                #expect($0.status == .ok)
            }
            let withLonely = try await rows(client, "/api/analytics/pages")
            #expect(
                withLonely.last == [
                    "page": "/lonely", "views": 1, "unique_visitors": 1, "avg_duration": .null, "bounce_rate": 100.0, "entries": 1, "exits": 1,
                    "top_referrers": [],
                ]
            )
            #expect(withLonely.dropLast() == pages)
        }
    }

    @Test("sessions: the newest sessions are exact whether the window's newest events hold them or not")
    func sessionsProbe() async throws {
        try await withTestApp { client, _ in
            // "long" has 2,500 events, one every 2 seconds from T; "quiet" began before it; "newest" began after it.
            // The newest events probed (50 × limit, at least 2,000) hold "newest" whole but only part of "long", so
            // limit=2 must group the whole window.
            var events: [JSONValue] = (0..<2_500).map { index in
                [
                    "session_id": "long", "user_id": "ul", "page": .string("/p\(index)"), "timestamp": .string(Fixture.at(Double(index) / 30)),
                    "duration": 1,
                ]
            }
            events.append(["session_id": "quiet", "page": "/q", "timestamp": .string(Fixture.at(-10))])
            events.append(["session_id": "newest", "page": "/n", "timestamp": .string(Fixture.at(119.5))])
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(string: JSONValue.array(events).jsonText)) {
                response in
                let summary = try response.json(IngestSummary.self)
                #expect(summary == IngestSummary(successfulRows: 2_502, quarantinedRows: 0))
            }
            let one = try await rows(client, "/api/analytics/sessions?limit=1")
            #expect(one.map { $0["session_id"] } == ["newest"])
            for limit in [2, 3] {
                let sessions = try await rows(client, "/api/analytics/sessions?limit=\(limit)")
                #expect(sessions.map { $0["session_id"] } == Array(["newest", "long", "quiet"].prefix(limit)))
                let long = sessions.first { $0["session_id"] == "long" } ?? [:]
                #expect(long["page_count"] == 2_500)
                #expect(long["total_duration"] == 2_500.0)
                #expect(long["first_page"] == "/p0")
                #expect(long["last_page"] == "/p2499")
                #expect(long["started_at"] == .string(Fixture.at(0)))
                #expect(long["duration_seconds"] == 4_998.0)
            }
        }
    }

    @Test("sessions: first and last page by time, counts and durations, newest first; and their summary")
    func sessions() async throws {
        try await Fixture.withApp { client in
            let sessions = try await rows(client, "/api/analytics/sessions")
            #expect(sessions.map { $0["session_id"] } == ["s5b", "s1", "s2", "s3", "s4", "s5a"])
            let s2 = sessions.first { $0["session_id"] == "s2" } ?? [:]
            #expect(s2["first_page"] == "/")
            #expect(s2["last_page"] == "/pricing", "by time, not alphabetically (/signup)")
            #expect(s2["page_count"] == 3)
            #expect(s2["total_duration"] == 15.0)
            #expect(s2["duration_seconds"] == 120.0)
            #expect(s2["visitor"] == "u2")
            #expect(s2["started_at"] == .string(Fixture.at(0)))
            #expect(s2["ended_at"] == .string(Fixture.at(2)))
            #expect(sessions.first { $0["session_id"] == "s3" }?["visitor"] == "s3")

            let summary = try await rows(client, "/api/analytics/sessions/summary")
            #expect(summary == [["sessions": 6, "avg_duration_seconds": 60.0, "avg_page_count": 2.0, "bounce_rate": 33.33]])
            let withBots = try await rows(client, "/api/analytics/sessions/summary?include_bots=true")
            #expect(withBots.first?["sessions"] == 7)
            let empty = try await rows(client, "/api/analytics/sessions/summary?hours=1")
            #expect(empty == [["sessions": 0, "avg_duration_seconds": 0.0, "avg_page_count": 0.0, "bounce_rate": 0.0]])
        }
    }

    @Test("CSV output holds the same rows as JSON")
    func csv() async throws {
        try await Fixture.withApp { client in
            let json = try await rows(client, "/api/analytics/funnel?pages=/&pages=/pricing&pages=/signup")
            let csv = try await client.execute(
                uri: "/api/analytics/funnel?pages=/&pages=/pricing&pages=/signup&format=csv",
                method: .get,
                headers: adminAuth
            ) {
                response in
                #expect(response.headers[.contentType]?.hasPrefix("text/csv") == true)
                return String(buffer: response.body)
            }
            let lines = csv.split(separator: "\r\n").map(String.init)
            #expect(lines.first == "step,page,visitors,conversion_rate,step_conversion_rate,drop_off")
            func text(_ value: JSONValue?) -> String {
                switch value {
                case .int(let number): String(number)
                case .double(let number): String(number)
                case .string(let string): string
                default: ""
                }
            }
            let expected = json.map { row in
                ["step", "page", "visitors", "conversion_rate", "step_conversion_rate", "drop_off"].map { text(row[$0]) }.joined(separator: ",")
            }
            #expect(Array(lines.dropFirst()) == expected)
            let pagesCSV = try await client.execute(uri: "/api/analytics/pages?format=csv&limit=1", method: .get, headers: adminAuth) {
                String(buffer: $0.body)
            }
            #expect(pagesCSV.contains(#""[{""referrer"":""google.com"",""visits"":1},{""referrer"":""t.co"",""visits"":1}]""#))
        }
    }

    @Test("parameters are validated before any query runs")
    func validation() async throws {
        try await withTestApp { client in
            try await client.execute(
                uri: "/api/analytics/sessions?hours=-1&limit=0&tz=Mars/Base&format=xml&include_bots=maybe",
                method: .get,
                headers: adminAuth
            ) {
                response in
                #expect(response.status == .unprocessableContent)
                let issues = try response.json([String: [APIError.ValidationIssue]].self)["detail"] ?? []
                #expect(Set(issues.map { $0.loc.last ?? "" }) == ["hours", "limit", "tz", "format", "include_bots"])
            }
            try await client.execute(uri: "/api/analytics/pages?from=2024-01-02T00:00:00Z&to=2024-01-01T00:00:00Z", method: .get, headers: adminAuth)
            {
                #expect($0.status == .unprocessableContent)
            }
            // PostgreSQL text cannot hold NUL: refused as a validation issue before any SQL (schemathesis found it).
            try await client.execute(uri: "/api/analytics/funnel?pages=%2Fa%00&pages=%2Fb", method: .get, headers: adminAuth) { response in
                #expect(response.status == .unprocessableContent)
                let issues = try response.json([String: [APIError.ValidationIssue]].self)["detail"] ?? []
                #expect(issues.map(\.loc) == [["query", "pages"]])
            }
        }
    }

    @Test("traffic sources attribute each session to its first event's source")
    func trafficSources() async throws {
        try await Fixture.withApp { client in
            let sources = try await rows(client, "/api/analytics/traffic-sources")
            #expect(
                sources == [
                    ["source": "direct", "referrer_domain": .null, "visits": 4, "visitors": 3, "percentage": 66.67],
                    ["source": "search", "referrer_domain": "google.com", "visits": 1, "visitors": 1, "percentage": 16.67],
                    ["source": "social", "referrer_domain": "t.co", "visits": 1, "visitors": 1, "percentage": 16.67],
                ]
            )
        }
    }

    @Test("devices group sessions by device type, browser and OS")
    func devices() async throws {
        try await Fixture.withApp { client in
            let devices = try await rows(client, "/api/analytics/devices")
            #expect(
                devices == [
                    ["device_type": .null, "browser": .null, "os": .null, "visits": 4, "visitors": 3, "percentage": 66.67],
                    ["device_type": "desktop", "browser": "Chrome", "os": "Windows", "visits": 1, "visitors": 1, "percentage": 16.67],
                    ["device_type": "mobile", "browser": "Safari", "os": "iOS", "visits": 1, "visitors": 1, "percentage": 16.67],
                ]
            )
            let withBots = try await rows(client, "/api/analytics/devices?include_bots=true")
            #expect(withBots.contains { $0["device_type"] == "bot" && $0["browser"] == "Googlebot" && $0["visits"] == 1 })
        }
    }

    @Test("paths count transitions between consecutive pages within sessions, from a rare page and from a common one")
    func paths() async throws {
        try await Fixture.withApp { client, pool in
            let all = try await rows(client, "/api/analytics/paths")
            #expect(
                all == [
                    ["from_page": "/pricing", "to_page": "/signup", "transitions": 2],
                    ["from_page": "/", "to_page": "/pricing", "transitions": 1],
                    ["from_page": "/", "to_page": "/signup", "transitions": 1],
                    ["from_page": "/pricing", "to_page": "/", "transitions": 1],
                    ["from_page": "/signup", "to_page": "/pricing", "transitions": 1],
                ]
            )
            // No statistics yet: every page counts as rare, and only the sessions that visited it are read.
            let fromHome = try await rows(client, "/api/analytics/paths?page=/")
            #expect(fromHome.map { $0["to_page"] } == ["/pricing", "/signup"])
            let fromPricing = try await rows(client, "/api/analytics/paths?page=/pricing")
            #expect(
                fromPricing == [
                    ["from_page": "/pricing", "to_page": "/signup", "transitions": 2], ["from_page": "/pricing", "to_page": "/", "transitions": 1],
                ]
            )
            // With statistics, both pages are common (a third of the events each): every session is read, same answers.
            try await pool.execute("ANALYZE events")
            let common = try await pool.query(
                """
                SELECT count(*) FROM pg_stats s, unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS m(value, frequency)
                WHERE s.tablename = 'events' AND s.attname = 'page' AND m.value IN ('/', '/pricing') AND m.frequency >= 0.1
                """
            )[0].decode(Int.self, at: 0)
            #expect(common == 2)
            #expect(try await rows(client, "/api/analytics/paths?page=/") == fromHome)
            #expect(try await rows(client, "/api/analytics/paths?page=/pricing") == fromPricing)
        }
    }

    @Test("retention: cohorts by first day, share active in later days, and tz moves the day boundary")
    func retention() async throws {
        // 10 July 2024 (D). u1: D 10:00 and D+1 10:00 UTC; u2: D 10:00; u3: D+1 03:00 UTC, which is D 23:00 in New York.
        // u9, in November, across New York's change from summer time (UTC−4) to winter time (UTC−5) on 3 November:
        // 1 November 14:00 UTC (10:00 there) and 5 November 04:30 UTC, which is 4 November 23:30 there.
        let events = """
            {"user_id": "u1", "page": "/", "timestamp": "2024-07-10T10:00:00Z"}
            {"user_id": "u1", "page": "/", "timestamp": "2024-07-11T10:00:00Z"}
            {"user_id": "u2", "page": "/", "timestamp": "2024-07-10T10:00:00Z"}
            {"user_id": "u3", "page": "/", "timestamp": "2024-07-11T03:00:00Z"}
            {"user_id": "u9", "page": "/", "timestamp": "2024-11-01T14:00:00Z"}
            {"user_id": "u9", "page": "/", "timestamp": "2024-11-05T04:30:00Z"}
            """
        try await withTestApp { client, _ in
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(string: events)) { #expect($0.status == .ok) }
            let window = "period=day&from=2024-07-09T00:00:00Z&to=2024-07-13T00:00:00Z"
            let utc = try await rows(client, "/api/analytics/retention?\(window)")
            #expect(
                utc == [
                    ["cohort_date": "2024-07-10", "period": 0, "users": 2, "retained": 2, "retention_rate": 100.0],
                    ["cohort_date": "2024-07-10", "period": 1, "users": 2, "retained": 1, "retention_rate": 50.0],
                    ["cohort_date": "2024-07-10", "period": 2, "users": 2, "retained": 0, "retention_rate": 0.0],
                    ["cohort_date": "2024-07-11", "period": 0, "users": 1, "retained": 1, "retention_rate": 100.0],
                    ["cohort_date": "2024-07-11", "period": 1, "users": 1, "retained": 0, "retention_rate": 0.0],
                ]
            )
            // Windows of more than 60 periods take the other form of the query (no bit per period): same answers.
            let long = "period=day&from=2024-05-01T00:00:00Z&to=2024-07-13T00:00:00Z"
            #expect(try await rows(client, "/api/analytics/retention?\(long)") == utc)
            let newYork = try await rows(client, "/api/analytics/retention?\(window)&tz=America/New_York")
            #expect(
                newYork == [
                    ["cohort_date": "2024-07-10", "period": 0, "users": 3, "retained": 3, "retention_rate": 100.0],
                    ["cohort_date": "2024-07-10", "period": 1, "users": 3, "retained": 1, "retention_rate": 33.33],
                    ["cohort_date": "2024-07-10", "period": 2, "users": 3, "retained": 0, "retention_rate": 0.0],
                ]
            )
            let weekly = try await rows(client, "/api/analytics/retention?from=2024-07-01T00:00:00Z&to=2024-07-15T00:00:00Z")
            #expect(weekly.first == ["cohort_date": "2024-07-08", "period": 0, "users": 3, "retained": 3, "retention_rate": 100.0])
            #expect(weekly.count == 1)
            let longWeekly = try await rows(client, "/api/analytics/retention?from=2023-01-01T00:00:00Z&to=2024-07-15T00:00:00Z")
            #expect(longWeekly == weekly)
            // Local days across the change of offset: u9's second day is 4 November there (by the offset the window
            // starts with, it would be the 5th).
            let autumn = try await rows(
                client,
                "/api/analytics/retention?period=day&from=2024-11-01T00:00:00Z&to=2024-11-06T00:00:00Z&tz=America/New_York"
            )
            #expect(autumn.map { $0["cohort_date"] } == Array(repeating: "2024-11-01", count: 5))
            #expect(autumn.map { $0["retained"] } == [1, 0, 0, 1, 0])
        }
    }

    @Test("retention by day over 58 days: periods in every byte of the bits, up to the 58th")
    func retentionAcrossBytes() async throws {
        // 15 May to 12 July 2024 is 58 days, the longest window by day that keeps each visitor's periods in the bits of
        // one bigint. w1 on day 0 and day 57 (the eighth byte), w2 on days 21 and 22 (the third).
        let events = """
            {"user_id": "w1", "page": "/", "timestamp": "2024-05-15T10:00:00Z"}
            {"user_id": "w1", "page": "/", "timestamp": "2024-07-11T10:00:00Z"}
            {"user_id": "w2", "page": "/", "timestamp": "2024-06-05T10:00:00Z"}
            {"user_id": "w2", "page": "/", "timestamp": "2024-06-06T10:00:00Z"}
            """
        try await withTestApp { client, _ in
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(string: events)) { #expect($0.status == .ok) }
            let cells = try await rows(client, "/api/analytics/retention?period=day&from=2024-05-15T00:00:00Z&to=2024-07-12T00:00:00Z")
            // Every period of each cohort: 58 for the first, 37 for the second (5 June to 11 July).
            #expect(cells.count == 58 + 37)
            #expect(cells.allSatisfy { $0["users"] == 1 })
            let retained = cells.filter { $0["retained"] != 0 }.map { [$0["cohort_date"], $0["period"]] }
            #expect(retained == [["2024-05-15", 0], ["2024-05-15", 57], ["2024-06-05", 0], ["2024-06-05", 1]])
        }
    }

    /// With a pool of four, the visitors below and from the median of the visitor-hours are counted on two
    /// connections at once (the tenant's token sees one visitor-hour, so its count is not split); with one, on one.
    @Test(
        "retention is exact in the partial hours at a window's ends, in a half-hour zone, with bots, and per tenant",
        arguments: ["4", "1"]
    )
    func retentionAtHourEdges(poolSize: String) async throws {
        // The window is 10 July 10:30 to 12 July 10:30 UTC. Whole hours are read from the visitor-hours the writer
        // keeps; the two half hours at the ends, from the events, so the events just outside count for nothing:
        // u1: 10 Jul 10:45 and 12 Jul 10:15 (both inside, in the ends' hours);
        // u2: 10 Jul 10:15 (outside, in the first hour) and 11 Jul 12:00;
        // u3: 10 Jul 10:50 (inside, in the first hour), 11 Jul 05:00 and 12 Jul 10:45 (outside, in the last hour), so
        //     its periods come from both the events and the visitor-hours;
        // u5: 11 Jul 18:45 UTC, which is 12 Jul 00:15 in Kolkata (UTC+5:30), though its hour starts on 11 Jul there;
        // u6: 10 Jul 10:40 (inside, in the first hour) and 12 Jul 09:00, the only visitor whose whole hours fall on
        //     12 Jul alone (so no visitor is left with that pattern once u6's first hour is added);
        // u4: a bot on 11 Jul 12:00. Tenant t1 holds u1 and u2; the others have no tenant.
        let bot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        let events = [
            #"{"user_id": "u1", "tenant_id": "t1", "page": "/", "timestamp": "2024-07-10T10:45:00Z"}"#,
            #"{"user_id": "u1", "tenant_id": "t1", "page": "/", "timestamp": "2024-07-12T10:15:00Z"}"#,
            #"{"user_id": "u2", "tenant_id": "t1", "page": "/", "timestamp": "2024-07-10T10:15:00Z"}"#,
            #"{"user_id": "u2", "tenant_id": "t1", "page": "/", "timestamp": "2024-07-11T12:00:00Z"}"#,
            #"{"user_id": "u3", "page": "/", "timestamp": "2024-07-10T10:50:00Z"}"#,
            #"{"user_id": "u3", "page": "/", "timestamp": "2024-07-11T05:00:00Z"}"#,
            #"{"user_id": "u3", "page": "/", "timestamp": "2024-07-12T10:45:00Z"}"#,
            #"{"user_id": "u5", "page": "/", "timestamp": "2024-07-11T18:45:00Z"}"#,
            #"{"user_id": "u6", "page": "/", "timestamp": "2024-07-10T10:40:00Z"}"#,
            #"{"user_id": "u6", "page": "/", "timestamp": "2024-07-12T09:00:00Z"}"#,
            #"{"user_id": "u4", "page": "/", "timestamp": "2024-07-11T12:00:00Z", "user_agent": "\#(bot)"}"#,
        ]
        try await withTestApp(["DB_POOL_SIZE": poolSize]) { client, _ in
            try await client.execute(
                uri: "/api/events/batch",
                method: .post,
                headers: adminAuth,
                body: ByteBuffer(string: events.joined(separator: "\n"))
            ) {
                #expect($0.status == .ok)
            }
            let window = "period=day&from=2024-07-10T10:30:00Z&to=2024-07-12T10:30:00Z"
            func row(_ cohort: String, _ period: Int, _ users: Int, _ retained: Int, _ rate: Double) -> [String: JSONValue] {
                [
                    "cohort_date": .string(cohort), "period": .int(period), "users": .int(users), "retained": .int(retained),
                    "retention_rate": .double(rate),
                ]
            }
            let utc = try await rows(client, "/api/analytics/retention?\(window)")
            #expect(
                utc == [
                    row("2024-07-10", 0, 3, 3, 100), row("2024-07-10", 1, 3, 1, 33.33), row("2024-07-10", 2, 3, 2, 66.67),
                    row("2024-07-11", 0, 2, 2, 100), row("2024-07-11", 1, 2, 0, 0),
                ]
            )
            let withBots = try await rows(client, "/api/analytics/retention?\(window)&include_bots=true")
            #expect(withBots.filter { $0["cohort_date"] == "2024-07-11" }.map { $0["users"] } == [3, 3])
            let kolkata = try await rows(client, "/api/analytics/retention?\(window)&tz=Asia/Kolkata")
            #expect(
                kolkata == [
                    row("2024-07-10", 0, 3, 3, 100), row("2024-07-10", 1, 3, 1, 33.33), row("2024-07-10", 2, 3, 2, 66.67),
                    row("2024-07-11", 0, 1, 1, 100), row("2024-07-11", 1, 1, 0, 0),
                    row("2024-07-12", 0, 1, 1, 100),
                ]
            )
            let token = try await createToken(client, #"{"name": "t1", "scopes": ["read"], "tenant_id": "t1"}"#)
            let tenant = try await rows(client, "/api/analytics/retention?\(window)", headers: bearer(token))
            #expect(
                tenant == [
                    row("2024-07-10", 0, 1, 1, 100), row("2024-07-10", 1, 1, 0, 0), row("2024-07-10", 2, 1, 1, 100),
                    row("2024-07-11", 0, 1, 1, 100), row("2024-07-11", 1, 1, 0, 0),
                ]
            )
        }
    }
}
