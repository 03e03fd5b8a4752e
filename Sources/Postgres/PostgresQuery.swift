import Foundation

/// One bound parameter: its declared type and its text, or `nil` for SQL NULL.
public struct PostgresBind: Sendable, Hashable {
    public var type: PostgresType
    public var text: String?

    public init(type: PostgresType, text: String?) {
        self.type = type
        self.text = text
    }

    /// Binds a value (or NULL for `nil`) with the value type's PostgreSQL type.
    public init<Value: PostgresEncodable>(_ value: Value?) {
        self.type = Value.postgresType
        self.text = value?.postgresText
    }
}

/// A SQL statement built by string interpolation, where every interpolated value becomes a bind parameter.
///
/// ```swift
/// let rows = try await connection.query("SELECT id FROM events WHERE page = \(page) AND time > \(since)")
/// ```
/// Identifiers need an explicit `\(identifier: name)`; raw SQL needs `\(unsafeSQL: text)`; another query
/// can be spliced in with `\(fragment)` and keeps its own parameters. Printing a query shows `$n` in place
/// of values, never the values.
public struct PostgresQuery: Sendable, Hashable, ExpressibleByStringInterpolation, CustomStringConvertible {
    enum Piece: Sendable, Hashable {
        case sql(String)
        case bind(PostgresBind)
    }

    var pieces: [Piece]

    public init(stringLiteral value: String) {
        pieces = [.sql(value)]
    }

    public init(stringInterpolation: StringInterpolation) {
        pieces = stringInterpolation.pieces
    }

    /// A query made of raw SQL text, with no parameters. The label says what it is: never pass user input.
    public init(unsafeSQL sql: String) {
        pieces = [.sql(sql)]
    }

    /// The SQL text with `$1…$n` placeholders, and the parameters in order.
    public func render() -> (sql: String, binds: [PostgresBind]) {
        var sql = ""
        var binds: [PostgresBind] = []
        for piece in pieces {
            switch piece {
            case .sql(let text): sql += text
            case .bind(let bind):
                binds.append(bind)
                sql += "$\(binds.count)"
            }
        }
        return (sql, binds)
    }

    /// The parameters in order.
    public var binds: [PostgresBind] { render().binds }

    /// The SQL text with placeholders; values are never shown.
    public var description: String { render().sql }

    /// Appends another query (its SQL and its parameters).
    public mutating func append(_ other: PostgresQuery) {
        pieces += other.pieces
    }

    /// The concatenation of two queries.
    public static func + (lhs: PostgresQuery, rhs: PostgresQuery) -> PostgresQuery {
        var result = lhs
        result.append(rhs)
        return result
    }

    /// Joins queries with a separator (`", "`, `" AND "`).
    public static func joined(_ parts: [PostgresQuery], separator: String) -> PostgresQuery {
        var result = PostgresQuery(unsafeSQL: "")
        for (index, part) in parts.enumerated() {
            if index > 0 { result.pieces.append(.sql(separator)) }
            result.append(part)
        }
        return result
    }

    public struct StringInterpolation: StringInterpolationProtocol {
        var pieces: [Piece] = []

        public init(literalCapacity: Int, interpolationCount: Int) {
            pieces.reserveCapacity(interpolationCount * 2 + 1)
        }

        public mutating func appendLiteral(_ literal: String) {
            if !literal.isEmpty { pieces.append(.sql(literal)) }
        }

        /// A value, bound as a parameter.
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value) {
            pieces.append(.bind(PostgresBind(value)))
        }

        /// An optional value, bound as a parameter (`nil` is SQL NULL).
        public mutating func appendInterpolation<Value: PostgresEncodable>(_ value: Value?) {
            pieces.append(.bind(PostgresBind(value)))
        }

        /// A bind made by hand, e.g. text of type `.unknown`, which PostgreSQL types from its context (`$1::date`).
        public mutating func appendInterpolation(_ bind: PostgresBind) {
            pieces.append(.bind(bind))
        }

        /// A table, column or channel name, quoted as an identifier.
        public mutating func appendInterpolation(identifier: String) {
            pieces.append(.sql(PostgresIdentifier.quote(identifier)))
        }

        /// Raw SQL text. Never pass user input.
        public mutating func appendInterpolation(unsafeSQL sql: String) {
            pieces.append(.sql(sql))
        }

        /// Another query, with its parameters.
        public mutating func appendInterpolation(_ fragment: PostgresQuery) {
            pieces += fragment.pieces
        }
    }
}

/// Identifier quoting.
public enum PostgresIdentifier {
    /// Quotes a name as a PostgreSQL identifier: `my "table"` → `"my ""table"""`.
    public static func quote(_ name: String) -> String {
        var quoted = "\""
        for character in name.unicodeScalars {
            quoted.unicodeScalars.append(character)
            if character == "\"" { quoted.unicodeScalars.append(character) }
        }
        return quoted + "\""
    }
}
