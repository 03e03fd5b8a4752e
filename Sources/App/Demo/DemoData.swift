import Foundation
import Logging
import Postgres

/// Generates realistic traffic for demos and benchmarks: visitors who come back, sessions that bounce or wander,
/// popular and unpopular pages, funnels that leak, several devices and sources, and some bots. Seeded, so the
/// same seed gives the same events (times are relative to `now`).
public struct DemoDataGenerator: Sendable {
    public var events: Int
    public var days: Int
    public var seed: UInt64
    public var now: Date
    public var workspaceID = Workspace.defaultID

    public init(events: Int, days: Int, seed: UInt64 = 42, now: Date = Date()) {
        self.events = events
        self.days = max(1, days)
        self.seed = seed
        self.now = now
    }

    static let funnel = ["/", "/pricing", "/signup", "/checkout"]
    /// Content pages, most popular first (popularity falls off as a power law).
    static let pages =
        ["/", "/pricing", "/docs", "/blog", "/features", "/about", "/signup", "/login", "/changelog", "/contact"]
        + (1...40).map { "/blog/post-\($0)" }
    static let agents = [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", 30),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", 15),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", 5),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51", 7),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            20
        ),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", 15),
        ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", 5),
    ]
    static let bots = [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "python-requests/2.31.0",
    ]
    static let referrers: [(String?, Int)] = [
        (nil, 40), ("https://www.google.com/", 30), ("https://t.co/abc", 8), ("https://news.ycombinator.com/", 5),
        ("https://mail.google.com/mail/u/0/", 5), ("https://blog.example.org/review", 12),
    ]
    /// Product features named by click events (seed 001's feature_usage).
    static let features = [("search_bar", 30), ("dashboard_filter", 25), ("export_csv", 15), ("share_link", 12), ("dark_mode", 8)]
    static let countries = [("US", 35), ("DE", 12), ("GB", 10), ("FR", 8), ("IN", 10), ("BR", 7), ("JP", 6), ("CA", 7), ("NL", 5)]

    /// Calls `emit` with batches of about `batchSize` records until `events` were generated.
    public func generate(batchSize: Int = 5000, _ emit: ([EventRecord]) async throws -> Void) async throws {
        var random = SplitMix64(seed: seed)
        let visitors = max(1, events / 12)
        let span = Double(days) * 86_400
        var batch: [EventRecord] = []
        batch.reserveCapacity(batchSize + 32)
        var produced = 0
        var sessionNumber = 0
        while produced < events {
            sessionNumber += 1
            // Returning visitors: a skewed pick, so some come back often and many once.
            let visitorIndex = Int(Double(visitors) * pow(random.nextDouble(), 2))
            let anonymous = visitorIndex % 10 < 3
            let isBot = random.nextDouble() < 0.03
            let agent = isBot ? Self.bots[random.next(below: Self.bots.count)] : Self.pick(Self.agents, &random)
            let referrer = Self.pick(Self.referrers, &random)
            let country = Self.pick(Self.countries, &random)
            // Sessions start in time order across the window (with some jitter), as live traffic arrives, so the table
            // is laid out by time the way ingest lays it out.
            let progress = Double(produced) / Double(events)
            let start = now.addingTimeInterval(-span + max(0, span * progress + 1800 * (random.nextDouble() - 0.5)))
            let sessionID = "sess_\(seed)_\(sessionNumber)"
            // Each visitor belongs to one of 25 tenants (seed 003's multi-tenant sessions).
            let tenantID = "tenant_\(visitorIndex % 25)"
            let userID = anonymous ? nil : "user_\(visitorIndex)"
            var time = start
            var page =
                random.nextDouble() < 0.5 ? "/" : Self.pages[min(Self.pages.count - 1, Int(Double(Self.pages.count) * pow(random.nextDouble(), 3)))]
            let length = random.nextDouble() < 0.35 ? 1 : 2 + random.next(below: 10)
            let info = UserAgentParser.parse(agent)
            for step in 0..<length where produced < events {
                let duration = (5 + 120 * -log(max(1e-9, random.nextDouble()))).rounded()
                let traffic = step == 0 ? ReferrerClassifier.classify(referrer) : TrafficSource(source: "internal", domain: nil)
                let isClick = step > 0 && random.nextDouble() < 0.15
                batch.append(
                    EventRecord(
                        workspaceID: workspaceID,
                        tenantID: tenantID,
                        time: min(time, now),
                        receivedAt: min(time, now),
                        eventID: nil,
                        eventType: isClick ? "click" : "page_view",
                        eventName: nil,
                        userID: userID,
                        sessionID: sessionID,
                        page: page,
                        url: nil,
                        referrer: step == 0 ? referrer : nil,
                        source: traffic.source,
                        referrerDomain: traffic.domain,
                        userAgent: agent,
                        browser: info.browser,
                        os: info.os,
                        deviceType: info.deviceType,
                        isBot: info.isBot,
                        country: country,
                        ip: nil,
                        duration: duration,
                        clicks: random.next(below: 5),
                        feature: isClick ? Self.pick(Self.features, &random) : nil,
                        properties: nil,
                        datasource: "demo"
                    )
                )
                produced += 1
                time = time.addingTimeInterval(duration)
                // Funnel pages lead on to the next step with a leak; other pages wander by popularity.
                if let stage = Self.funnel.firstIndex(of: page), stage + 1 < Self.funnel.count, random.nextDouble() < 0.45 - 0.1 * Double(stage) {
                    page = Self.funnel[stage + 1]
                } else {
                    page = Self.pages[min(Self.pages.count - 1, Int(Double(Self.pages.count) * pow(random.nextDouble(), 2.5)))]
                }
            }
            if batch.count >= batchSize {
                try await emit(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        if !batch.isEmpty { try await emit(batch) }
    }

    static func pick<Value>(_ choices: [(Value, Int)], _ random: inout SplitMix64) -> Value {
        let total = choices.reduce(0) { $0 + $1.1 }
        var ticket = random.next(below: total)
        for (value, weight) in choices {
            if ticket < weight { return value }
            ticket -= weight
        }
        return choices[choices.count - 1].0
    }
}

/// A small, fast, seedable random number generator (SplitMix64).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in 0..<1.
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }

    /// A number in 0..<bound.
    mutating func next(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}

/// Loads generated events through the group-commit writer (the path every ingested event takes: COPY in transactions).
public enum DemoDataLoader {
    /// Writes the generator's events and reports progress after each batch (events written so far).
    public static func load(
        _ generator: DemoDataGenerator,
        pool: PostgresPool,
        logger: Logger,
        progress: @Sendable (Int) -> Void
    ) async throws -> Int {
        // No realtime hub reads this writer's committed batches (a server's hub streams its own writer's).
        let writer = EventWriter(pool: pool, logger: logger, streams: false)
        let running = Task { try await writer.run() }
        defer { running.cancel() }
        var written = 0
        try await withThrowingTaskGroup(of: Int.self) { group in
            var inFlight = 0
            try await generator.generate { batch in
                // Keep two batches in the writer so that it always has the next one ready.
                if inFlight >= 2, let done = try await group.next() {
                    written += done
                    inFlight -= 1
                    progress(written)
                }
                group.addTask { try await writer.write(batch).count }
                inFlight += 1
            }
            for try await done in group {
                written += done
                progress(written)
            }
        }
        return written
    }
}
