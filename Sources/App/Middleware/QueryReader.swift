import Foundation
import Hummingbird
import Postgres

/// Reads and validates query parameters before any SQL runs, collecting one issue per bad parameter;
/// `finish()` throws them all as a 422.
struct QueryReader {
    let parameters: Parameters
    var issues: [APIError.ValidationIssue] = []

    /// PostgreSQL text cannot hold NUL, so a parameter with one is refused here, not by the database.
    init(_ parameters: Parameters) {
        self.parameters = parameters
        var refused: Set<Substring> = []
        for (name, value) in parameters where value.contains("\0") && refused.insert(name).inserted {
            fail(String(name), "must not contain NUL characters", type: "string_pattern_mismatch")
        }
    }

    mutating func fail(_ name: String, _ message: String, type: String = "value_error") {
        issues.append(APIError.ValidationIssue(loc: ["query", name], msg: message, type: type))
    }

    /// Throws the collected issues, if any.
    func finish() throws(APIError) {
        if !issues.isEmpty { throw APIError.validation(issues) }
    }

    func string(_ name: String) -> String? {
        guard let value = parameters[Substring(name)], !value.isEmpty else { return nil }
        return String(value)
    }

    /// Every value of a repeated parameter (`pages=/a&pages=/b`).
    func strings(_ name: String) -> [String] {
        parameters.getAll(name).filter { !$0.isEmpty }
    }

    mutating func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let text = string(name) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            fail(name, "must be a whole number from \(range.lowerBound) to \(range.upperBound)", type: "int_parsing")
            return defaultValue
        }
        return value
    }

    mutating func bool(_ name: String, default defaultValue: Bool) -> Bool {
        guard let text = string(name)?.lowercased() else { return defaultValue }
        switch text {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default:
            fail(name, "must be true or false", type: "bool_parsing")
            return defaultValue
        }
    }

    /// A time: ISO-8601 or `YYYY-MM-DD HH:MM:SS` (UTC).
    mutating func time(_ name: String) -> Date? {
        guard let text = string(name) else { return nil }
        guard let date = Self.parseTime(text.trimmingCharacters(in: .whitespaces)) else {
            fail(name, "must be a time such as 2024-05-01T12:30:00Z or 2024-05-01 12:30:00", type: "datetime_parsing")
            return nil
        }
        return date
    }

    /// A time as `PostgresTimestamp.parse` reads it, or with a space where its offset's `+` was: a `+` sent unescaped
    /// in a query (`from=2024-05-01T12:30:00+02:00`) arrives as a space.
    static func parseTime(_ text: String) -> Date? {
        if let date = PostgresTimestamp.parse(text) { return date }
        guard let space = text.lastIndex(of: " "), text.distance(from: text.startIndex, to: space) > 10 else { return nil }
        var signed = text
        signed.replaceSubrange(space...space, with: "+")
        return PostgresTimestamp.parse(signed)
    }

    /// `tz`: an IANA zone name, or `defaultValue`.
    mutating func timeZone(default defaultValue: String) -> String {
        let zone = string("tz") ?? defaultValue
        if TimeZone(identifier: zone) == nil {
            fail("tz", "must be an IANA time zone name such as UTC or Europe/Berlin")
        }
        return zone
    }

    /// An interval such as `1 hour`, `30 day`, `5 minutes`, normalised to `N unit`.
    mutating func interval(_ name: String, default defaultValue: String) -> String {
        guard let text = string(name) else { return defaultValue }
        guard let interval = Self.parseInterval(text) else {
            fail(name, "must be an interval such as 5 minute, 1 hour, 7 day, 1 week or 1 month")
            return defaultValue
        }
        return interval
    }

    static let intervalUnits = ["second", "minute", "hour", "day", "week", "month", "year"]

    /// `"1 hour"` → `"1 hour"`, `"30 days"` → `"30 day"`; nil for anything else (including zero or huge counts).
    static func parseInterval(_ text: String) -> String? {
        let parts = text.lowercased().split(whereSeparator: \.isWhitespace)
        guard parts.count == 2, let count = Int(parts[0]), (1...100_000).contains(count) else { return nil }
        var unit = String(parts[1])
        if unit.hasSuffix("s") { unit.removeLast() }
        guard intervalUnits.contains(unit) else { return nil }
        return "\(count) \(unit)"
    }

    /// The time window: `from`/`to`, or the last `hours` (default `defaultHours`) up to now.
    mutating func window(defaultHours: Int) -> (from: Date, to: Date) {
        let now = Date()
        let hours = integer("hours", default: defaultHours, range: 1...87_600)
        let from = time("from")
        let to = time("to") ?? now
        if let from, from >= to { fail("from", "must be before to") }
        return (from ?? to.addingTimeInterval(-Double(hours) * 3600), to)
    }
}

extension Request {
    /// The query's parameters as forms and most HTTP clients encode them (`application/x-www-form-urlencoded`: Python's
    /// `urlencode` and `requests`, JavaScript's `URLSearchParams`, Go's `url.Values`): `+` is a space (a plus sign is
    /// sent as `%2B`), then percent escapes are decoded, in names and values. Hummingbird's `queryParameters` keeps a
    /// `+` as it is, so `time_range=1+hour` was refused and `country=United+States` matched nothing. A value whose
    /// escapes are broken is kept as sent.
    var formParameters: Parameters {
        guard let query = uri.query, !query.isEmpty else { return [:] }
        func decoded(_ text: Substring) -> Substring {
            let spaced = String(text).replacingOccurrences(of: "+", with: " ")
            let plain: String = spaced.removingPercentEncoding ?? spaced
            return plain[...]
        }
        return Parameters(
            query.split(separator: "&").map { pair in
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                return (key: decoded(parts[0]), value: parts.count > 1 ? decoded(parts[1]) : "")
            }
        )
    }
}
