import Foundation

/// The realtime numbers of one scope (a workspace, or one tenant of it), as `GET /api/realtime/stats` and the
/// WebSocket's `stats` messages show them.
public struct RealtimeStats: Sendable, Equatable, Encodable {
    /// Events stored in the scope, all time.
    public var totalEvents: Int
    /// Sessions with an event in the last 5 minutes (by event time; bots left out).
    public var activeSessions: Int
    /// Events of type `page_view` or `pageview` in the last minute (by event time; bots left out).
    public var pageViewsLastMinute: Int
    /// Events committed per second over the last 10 seconds (by arrival, bots included: the ingest rate).
    public var eventsPerSecond: Double
    /// Mean `duration` of the last 5 minutes' events that carry one, in seconds; nil when none do.
    public var avgDuration: Double?
    /// Pages by page views in the last 5 minutes, most viewed first (at most 10).
    public var topPages: [PageCount]
    /// Events committed in each of the last 60 seconds, oldest first (the dashboard's chart).
    public var perSecond: [Int]
    public var time: Date

    public struct PageCount: Sendable, Equatable, Encodable {
        public var page: String
        public var views: Int
    }

    enum CodingKeys: String, CodingKey {
        case totalEvents = "total_events", activeSessions = "active_sessions", pageViewsLastMinute = "page_views_last_minute"
        case eventsPerSecond = "events_per_second", avgDuration = "avg_duration", topPages = "top_pages", perSecond = "per_second"
        case time
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(totalEvents, forKey: .totalEvents)
        try container.encode(activeSessions, forKey: .activeSessions)
        try container.encode(pageViewsLastMinute, forKey: .pageViewsLastMinute)
        try container.encode(eventsPerSecond, forKey: .eventsPerSecond)
        // SPEC shows the field even when there is nothing to average.
        try container.encode(avgDuration, forKey: .avgDuration)
        try container.encode(topPages, forKey: .topPages)
        try container.encode(perSecond, forKey: .perSecond)
        try container.encode(time, forKey: .time)
    }
}

/// Sliding windows over the last 5 minutes of one scope's events, kept in memory from the events the hub sees,
/// so stats never scan the table. Times are whole seconds since 1970.
struct RealtimeWindow: Sendable {
    /// How far back the windows reach, in seconds.
    static let span = 300

    struct Second: Sendable {
        var pageViews: [String: Int] = [:]
        var pageViewTotal = 0
        var durationSum = 0.0
        var durationCount = 0
    }

    /// Per second of event time.
    private var seconds: [Int: Second] = [:]
    /// Events per second of arrival.
    private var arrivals: [Int: Int] = [:]
    /// The last second each session had an event.
    private var sessions: [String: Int] = [:]

    var isEmpty: Bool { seconds.isEmpty && arrivals.isEmpty && sessions.isEmpty }

    /// Counts one event; `arrival` nil for events loaded at start-up (they did not arrive now).
    mutating func add(_ record: EventRecord, arrival: Int?, now: Int) {
        if let arrival { arrivals[arrival, default: 0] += 1 }
        guard !record.isBot else { return }
        // A client clock slightly ahead counts as now; anything older than the window is history.
        let second = min(Int(record.time.timeIntervalSince1970.rounded(.down)), now)
        guard second > now - Self.span else { return }
        if let session = record.sessionID { sessions[session] = max(sessions[session] ?? second, second) }
        var bucket = seconds[second] ?? Second()
        if record.eventType == "page_view" || record.eventType == "pageview" {
            bucket.pageViewTotal += 1
            if let page = record.page { bucket.pageViews[page, default: 0] += 1 }
        }
        if let duration = record.duration {
            bucket.durationSum += duration
            bucket.durationCount += 1
        }
        seconds[second] = bucket
    }

    /// Forgets what left the window.
    mutating func prune(now: Int) {
        let oldest = now - Self.span
        seconds = seconds.filter { $0.key > oldest }
        arrivals = arrivals.filter { $0.key > oldest }
        sessions = sessions.filter { $0.value > oldest }
    }

    func stats(now: Int, totalEvents: Int) -> RealtimeStats {
        let oldest = now - Self.span
        var pages: [String: Int] = [:]
        var pageViewsLastMinute = 0
        var durationSum = 0.0
        var durationCount = 0
        for (second, bucket) in seconds where second > oldest {
            pages.merge(bucket.pageViews, uniquingKeysWith: +)
            if second > now - 60 { pageViewsLastMinute += bucket.pageViewTotal }
            durationSum += bucket.durationSum
            durationCount += bucket.durationCount
        }
        let topPages = pages.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(10)
        let lastTen = (now - 9...now).reduce(0) { $0 + (arrivals[$1] ?? 0) }
        return RealtimeStats(
            totalEvents: totalEvents,
            activeSessions: sessions.values.count { $0 > oldest },
            pageViewsLastMinute: pageViewsLastMinute,
            eventsPerSecond: Double(lastTen) / 10,
            avgDuration: durationCount > 0 ? durationSum / Double(durationCount) : nil,
            topPages: topPages.map { RealtimeStats.PageCount(page: $0.key, views: $0.value) },
            perSecond: (now - 59...now).map { arrivals[$0] ?? 0 },
            time: Date(timeIntervalSince1970: Double(now))
        )
    }
}
