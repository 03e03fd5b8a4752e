/// The payload the writer sends with `pg_notify` after storing events, so that every server on the database can
/// deliver them: the sending server's instance id and the new event ids as ranges (`"<instance>;5-9,12,20-41"`).
/// Receivers read the events by id; a payload stays under PostgreSQL's 8,000-byte limit by splitting into several.
struct RealtimeNotice: Sendable, Equatable {
    /// The channel every server listens on.
    static let channel = "analytics_events"
    /// Well under PostgreSQL's limit of 8,000 bytes per payload.
    static let maxPayloadBytes = 7_000

    var instance: String
    var ids: [Int]

    /// Payloads announcing `ids` (any order, no duplicates) from `instance`.
    static func payloads(instance: String, ids: [Int]) -> [String] {
        var payloads: [String] = []
        var current = ""
        for range in ranges(of: ids) {
            let text = range.lowerBound == range.upperBound ? "\(range.lowerBound)" : "\(range.lowerBound)-\(range.upperBound)"
            if !current.isEmpty, instance.utf8.count + current.utf8.count + text.utf8.count + 2 > maxPayloadBytes {
                payloads.append("\(instance);\(current)")
                current = ""
            }
            current += current.isEmpty ? text : ",\(text)"
        }
        if !current.isEmpty { payloads.append("\(instance);\(current)") }
        return payloads
    }

    /// Reads a payload; nil when it is not one of ours.
    init?(payload: String) {
        guard let separator = payload.firstIndex(of: ";") else { return nil }
        instance = String(payload[..<separator])
        var ids: [Int] = []
        for part in payload[payload.index(after: separator)...].split(separator: ",") {
            let bounds = part.split(separator: "-", maxSplits: 1)
            guard let low = Int(bounds[0]) else { return nil }
            let high = bounds.count == 2 ? Int(bounds[1]) : low
            guard let high, high >= low, high - low < 1_000_000 else { return nil }
            ids.append(contentsOf: low...high)
        }
        guard !instance.isEmpty, !ids.isEmpty else { return nil }
        self.ids = ids
    }

    /// Consecutive runs of the sorted ids.
    private static func ranges(of ids: [Int]) -> [ClosedRange<Int>] {
        var result: [ClosedRange<Int>] = []
        for id in ids.sorted() {
            if let last = result.last, last.upperBound + 1 == id {
                result[result.count - 1] = last.lowerBound...id
            } else {
                result.append(id...id)
            }
        }
        return result
    }
}
