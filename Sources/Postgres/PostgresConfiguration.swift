import Foundation

/// Where and how to connect: a libpq connection string (`host=… dbname=…`) or URL (`postgres://…`).
public struct PostgresConfiguration: Sendable, CustomStringConvertible {
    /// The libpq connection string or URL, with any `+driver` suffix of the scheme removed.
    public var connectionString: String
    /// Overrides the database named in `connectionString`.
    public var database: String?
    /// Seconds to wait for a connection before giving up (`connect_timeout`), unless the string sets it.
    public var connectTimeout: Int = 5
    /// Shown in `pg_stat_activity`, unless the string sets it.
    public var applicationName: String = "analytics-api"

    /// Accepts `postgres://`, `postgresql://` and driver-qualified schemes such as `postgresql+psycopg://`,
    /// or a libpq key/value connection string.
    public init(_ connectionString: String, database: String? = nil) throws(PostgresError) {
        let trimmed = connectionString.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else {
            throw PostgresError(.invalidInput, message: "the database URL is empty")
        }
        if let schemeEnd = trimmed.range(of: "://") {
            let scheme = trimmed[..<schemeEnd.lowerBound].lowercased()
            let base = scheme.split(separator: "+", maxSplits: 1).first.map(String.init) ?? scheme
            guard base == "postgres" || base == "postgresql" else {
                throw PostgresError(
                    .invalidInput,
                    message: "unsupported database URL scheme \"\(scheme)\": use postgres:// or postgresql://"
                )
            }
            self.connectionString = "postgresql://" + trimmed[schemeEnd.upperBound...]
        } else {
            guard trimmed.contains("=") else {
                throw PostgresError(.invalidInput, message: "the database URL is neither a postgres:// URL nor a key=value connection string")
            }
            self.connectionString = trimmed
        }
        self.database = database
    }

    /// The same server, another database.
    public func with(database: String) -> PostgresConfiguration {
        var copy = self
        copy.database = database
        return copy
    }

    /// One connection string (URL or key/value) that includes the `database` override, for passing on.
    public var resolvedConnectionString: String {
        guard let database else { return connectionString }
        if connectionString.hasPrefix("postgresql://"), var components = URLComponents(string: connectionString) {
            components.path = "/" + database
            if let url = components.string { return url }
        }
        let quoted = database.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
        return connectionString + " dbname='\(quoted)'"
    }

    /// The connection string with any password replaced by `****`, for logs.
    public var description: String {
        var text = connectionString
        if text.hasPrefix("postgresql://"), let at = text.lastIndex(of: "@") {
            let credentials = text[text.index(text.startIndex, offsetBy: 13)..<at]
            if let colon = credentials.firstIndex(of: ":") {
                text.replaceSubrange(text.index(after: colon)..<at, with: "****")
            }
        }
        if let range = text.range(of: #"password\s*=\s*('([^'\\]|\\.)*'|\S+)"#, options: .regularExpression) {
            text.replaceSubrange(range, with: "password=****")
        }
        if let database { text += " (database \(database))" }
        return text
    }

    /// Keyword/value pairs for `PQconnectdbParams` with `expand_dbname`: defaults first, then the string,
    /// then the overrides, so that later entries win.
    var keywordValues: [(String, String)] {
        var pairs: [(String, String)] = [
            ("connect_timeout", String(connectTimeout)),
            ("application_name", applicationName),
            ("dbname", connectionString),
            ("client_encoding", "UTF8"),
        ]
        if let database { pairs.append(("dbname", database)) }
        return pairs
    }
}
