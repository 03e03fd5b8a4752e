import Foundation
import Postgres

/// One pipe: a named, parameterised SQL query read from `pipes/<template>/<name>.sql`.
///
/// The file starts with a comment header:
///
/// ```sql
/// -- Breakdown of events by type within a time range.
/// -- @param time_range Interval = '1 hour'   Time window for analysis
/// -- @param user_id    String?               Filter by a specific user
/// -- @param limit      Int(1..10000) = 100   Rows to return
/// -- @param time_frame Enum(minute|hour|day) = hour
/// -- @column events    events of that type in the window
/// SELECT event_type, count(*) AS events FROM events WHERE time >= now() - :time_range …
/// ```
///
/// Comment lines before the first `@` line are the description. `@param name Type[?] [= default] [description]`
/// declares a parameter: `?` makes it optional (NULL when absent); without `?` or a default it is required.
/// `@column name description` documents an output column; `@writes` marks a pipe that updates rows (it runs in a
/// read-write transaction, still under row-level security). `@kmeans feature …` makes the SQL's rows the users to
/// cluster (see `KMeansStep`). `@timeout seconds` lets the pipe run at least that long before it is cancelled, where
/// the server's `QUERY_TIMEOUT_SECONDS` is shorter (for all-time summaries and batch work such as clustering every
/// user). In the SQL, `:name` is the parameter, always sent as a bound value with a cast to its
/// type, never spliced into the text.
public struct PipeDefinition: Sendable {
    public var name: String
    public var template: String
    public var description: String
    public var parameters: [PipeParameter]
    /// Output columns as documented in the header.
    public var columns: [(name: String, description: String)]
    public var writes: Bool
    /// Set by `@kmeans`: the rows are clustered in the server.
    public var kmeans: KMeansStep?
    /// Set by `@timeout`: seconds the pipe may run at least, whatever shorter query timeout the server has.
    public var timeout: Int?
    /// Where it was read from, for messages.
    public var path: String
    /// The SQL split at its placeholders: `sql[0] :param[0] sql[1] :param[1] … sql[n]`.
    var segments: [String]
    var placeholders: [String]

    /// Placeholders the server sets, which files use without declaring: `:workspace_id`, the caller's workspace
    /// (every query filters by it, SPEC section 3; row-level security enforces it anyway).
    static let implicitParameters: [String: PipeParameter.Kind] = ["workspace_id": .int(nil)]

    /// The query with every placeholder bound to its parameter's value (already validated), cast to its type.
    func query(_ values: [String: PipeValue]) -> PostgresQuery {
        var query = PostgresQuery(unsafeSQL: segments[0])
        for (index, name) in placeholders.enumerated() {
            let kind = parameters.first { $0.name == name }?.kind ?? Self.implicitParameters[name] ?? .string
            switch values[name] ?? .null {
            // Bound untyped, so that the cast gives the parameter its type: PostgreSQL then plans with the value
            // itself, and `(:to_date IS NULL OR time <= :to_date)` becomes an index condition. (A `text` parameter
            // cast to `timestamptz` stays an expression that the planner cannot fold.)
            case .null: query.append("\(PostgresBind(type: .unknown, text: nil))::\(unsafeSQL: kind.sqlType)")
            case .text(let text): query.append("\(PostgresBind(type: .unknown, text: text))::\(unsafeSQL: kind.sqlType)")
            case .list(let items): query.append("\(items)::\(unsafeSQL: kind.sqlType)")
            }
            query.append(PostgresQuery(unsafeSQL: segments[index + 1]))
        }
        return query
    }
}

/// What `@kmeans feature …` asks of a pipe (`assign_clusters`): its SQL returns one row per user, `user_id` first
/// and ordered by it; the server clusters the rows on the named numeric columns with `KMeans` (the pipe's `k`
/// parameter, and `max_iterations` if declared, else 100), stores each user's `cluster_id` in `user_features` (only
/// where it differs from the row's `previous_cluster_id`, when the SQL returns that column), and answers the rows with
/// `cluster_id` and `distance` after `user_id`, by cluster and distance.
public struct KMeansStep: Sendable, Equatable {
    /// The feature columns, by name.
    public var features: [String]
    /// The parameters the step reads (they need not appear in the SQL).
    static let parameters = ["k", "max_iterations"]
}

/// A pipe parameter's value in PostgreSQL's text input form.
enum PipeValue: Sendable, Equatable {
    case null
    case text(String)
    case list([String])
}

/// A declared parameter of a pipe.
public struct PipeParameter: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case string
        case int(ClosedRange<Int>?)
        case float
        case bool
        case dateTime
        case date
        case interval
        case enumeration([String])
        case stringArray

        /// The cast applied to the bound value in SQL.
        var sqlType: String {
            switch self {
            case .string, .enumeration: "text"
            case .int: "bigint"
            case .float: "double precision"
            case .bool: "boolean"
            case .dateTime: "timestamptz"
            case .date: "date"
            case .interval: "interval"
            case .stringArray: "text[]"
            }
        }

        /// The name as written in pipe files and shown in listings.
        public var name: String {
            switch self {
            case .string: "String"
            case .int(let range): range.map { "Int(\($0.lowerBound)..\($0.upperBound))" } ?? "Int"
            case .float: "Float"
            case .bool: "Bool"
            case .dateTime: "DateTime"
            case .date: "Date"
            case .interval: "Interval"
            case .enumeration(let words): "Enum(\(words.joined(separator: "|")))"
            case .stringArray: "String[]"
            }
        }

        static func parse(_ text: String) -> Kind? {
            switch text {
            case "String": return .string
            case "Int": return .int(nil)
            case "Float": return .float
            case "Bool": return .bool
            case "DateTime": return .dateTime
            case "Date": return .date
            case "Interval": return .interval
            case "String[]": return .stringArray
            default: break
            }
            if text.hasPrefix("Int("), text.hasSuffix(")") {
                let bounds = text.dropFirst(4).dropLast().components(separatedBy: "..")
                guard bounds.count == 2, let low = Int(bounds[0]), let high = Int(bounds[1]), low <= high else { return nil }
                return .int(low...high)
            }
            if text.hasPrefix("Enum("), text.hasSuffix(")") {
                let words = text.dropFirst(5).dropLast().split(separator: "|").map(String.init)
                guard !words.isEmpty, words.allSatisfy({ !$0.isEmpty }) else { return nil }
                return .enumeration(words)
            }
            return nil
        }
    }

    public var name: String
    public var kind: Kind
    /// May be absent (NULL in SQL).
    public var optional: Bool
    /// The default as written, already checked against the type.
    public var defaultValue: String?
    public var description: String

    public var required: Bool { !optional && defaultValue == nil }

    /// The value of this parameter in a request (`nil` text when absent), or why it is not valid.
    func value(from texts: [String]) -> Result<PipeValue, PipeParameterError> {
        if case .stringArray = kind {
            let items = texts.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            if !items.isEmpty { return .success(.list(items)) }
            if let defaultValue { return .success(.list(defaultValue.split(separator: ",").map(String.init))) }
            return required ? .failure(.init(self, "is required")) : .success(.null)
        }
        guard let text = texts.last ?? defaultValue else {
            return required ? .failure(.init(self, "is required")) : .success(.null)
        }
        return convert(text).map(PipeValue.text)
    }

    /// `text` in PostgreSQL's input form for this type, or why it is not one.
    func convert(_ text: String) -> Result<String, PipeParameterError> {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        switch kind {
        case .string:
            return text.utf8.count <= 10_000 ? .success(text) : .failure(.init(self, "is longer than 10000 bytes"))
        case .int(let range):
            guard let number = Int(trimmed) else { return .failure(.init(self, "must be a whole number, not \"\(text)\"")) }
            if let range, !range.contains(number) {
                return .failure(.init(self, "must be from \(range.lowerBound) to \(range.upperBound), not \(number)"))
            }
            return .success(String(number))
        case .float:
            guard let number = Double(trimmed), number.isFinite else { return .failure(.init(self, "must be a number, not \"\(text)\"")) }
            return .success(String(number))
        case .bool:
            switch trimmed.lowercased() {
            case "true", "1", "yes": return .success("true")
            case "false", "0", "no": return .success("false")
            default: return .failure(.init(self, "must be true or false, not \"\(text)\""))
            }
        case .dateTime:
            guard let date = QueryReader.parseTime(trimmed) else {
                return .failure(.init(self, "must be a time as YYYY-MM-DD HH:MM:SS or ISO 8601, not \"\(text)\""))
            }
            return .success(PostgresTimestamp.format(date))
        case .date:
            let parts = trimmed.split(separator: "-")
            guard parts.count == 3, parts[0].count == 4, let year = Int(parts[0]), let month = Int(parts[1]), let day = Int(parts[2]),
                (1...12).contains(month), (1...31).contains(day), year > 0,
                PostgresTimestamp.parse("\(trimmed) 00:00:00") != nil
            else {
                return .failure(.init(self, "must be a date as YYYY-MM-DD, not \"\(text)\""))
            }
            return .success(trimmed)
        case .interval:
            guard let interval = QueryReader.parseInterval(trimmed) else {
                return .failure(.init(self, "must be an interval such as 1 hour, 30 day or 5 minute, not \"\(text)\""))
            }
            return .success(interval)
        case .enumeration(let words):
            guard words.contains(trimmed) else {
                return .failure(.init(self, "must be one of \(words.joined(separator: ", ")), not \"\(text)\""))
            }
            return .success(trimmed)
        case .stringArray:
            return .success(text)
        }
    }
}

/// A parameter value that is not valid: 400 naming the parameter.
struct PipeParameterError: Error, Sendable, CustomStringConvertible {
    var parameter: String
    var message: String

    init(_ parameter: PipeParameter, _ message: String) {
        self.parameter = parameter.name
        self.message = message
    }

    var description: String { "parameter \(parameter) \(message)" }
}
