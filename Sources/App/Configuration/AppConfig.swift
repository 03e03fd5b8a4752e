import Foundation
import Logging

/// The server's settings, read from environment variables and an optional `.env` file (see `.env.example`).
public struct AppConfig: Sendable {
    /// PostgreSQL URL or connection string; `nil` starts the embedded server.
    public var databaseURL: String?
    /// Every variable the server reads, in the order read (each one is documented in `.env.example`).
    public internal(set) var settingNames: [String] = []
    /// Folder of the embedded PostgreSQL server (used when `databaseURL` is nil).
    public var embeddedPostgresDirectory: String
    public var host: String
    public var port: Int
    /// HS256 key for user JWTs (at least 32 bytes).
    public var secretKey: String
    /// True when no SECRET_KEY was set and a random one is used for this process only.
    public var secretKeyIsEphemeral: Bool
    public var accessTokenExpireMinutes: Int
    /// The zone analytics use when a request gives no `tz`.
    public var dbTimeZone: String
    /// A fixed admin token of the default workspace, for scripts and compose files.
    public var adminToken: String?
    public var registration: RegistrationPolicy
    /// bcrypt cost (log2 rounds) of new password hashes.
    public var bcryptCost: Int
    /// Failed logins allowed per minute per username and per client IP (0: no limit); bursts of twice that pass.
    public var loginRateLimit: Int
    /// Request bodies larger than this get 413.
    public var maxBodySize: Int
    /// Connections in the PostgreSQL pool.
    public var databasePoolSize: Int
    /// Seconds a read (analytics, event aggregates, pipes) may run before PostgreSQL cancels it and the client gets
    /// 408; a pipe file's `@timeout`, if longer, for that pipe.
    public var queryTimeout: Int
    public var logLevel: Logger.Level
    /// Whether `serve` applies pending migrations at start-up.
    public var migrateOnStart: Bool
    /// How client IP addresses are stored with events.
    public var ipStorage: EventNormalizer.IPStorage
    /// Whether `POST /api/events…` needs an append (or admin) token; anonymous by default, as in seed 004.
    public var requireIngestToken: Bool
    /// Ingest requests per second allowed per client IP (0: no limit); bursts of twice that pass.
    public var rateLimitPerIP: Double
    /// Ingest requests per second allowed per API token (0: no limit); bursts of twice that pass.
    public var rateLimitPerToken: Double
    /// Whether the client IP is read from `X-Forwarded-For` (set only behind a proxy that sets it).
    public var trustForwardedFor: Bool
    /// Seconds an event's client time may lie in the future (clock skew) before the row is rejected.
    public var maxFutureSkew: Double
    /// A folder of pipe templates (`<template>/<name>.sql`) used instead of the bundled ones.
    public var pipesDirectory: String?
    /// Days events are kept (`RETENTION_DAYS`); nil keeps them for ever.
    public var retentionDays: Int?
    /// Days quarantined rows are kept (`QUARANTINE_RETENTION_DAYS`); nil keeps them for ever.
    public var quarantineRetentionDays: Int?
    /// Whether requests without a credential may use the realtime dashboard, stream and stats (of the default
    /// workspace), as in seed 004.
    public var realtimeAnonymous: Bool
    /// Messages a realtime client may have waiting; beyond that new ones are dropped for it (and counted).
    public var realtimeClientQueue: Int

    /// Who may register through `POST /api/auth/register`.
    public enum RegistrationPolicy: String, Sendable, CaseIterable {
        /// Anyone (the seed's behaviour).
        case open
        /// Only while no user exists; the first user becomes superuser.
        case firstUser = "first-user"
        /// Nobody: users are created with the CLI.
        case closed
    }

    /// Settings that could not be read, all of them at once, each naming its variable.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var problems: [String]
        public var description: String {
            "invalid settings:\n" + problems.map { "  - \($0)" }.joined(separator: "\n")
        }
    }

    /// Reads the settings from `environment`, falling back to the `.env` file at `dotEnvPath` for unset variables.
    public static func load(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        dotEnvPath: String? = ".env"
    ) throws -> AppConfig {
        var values = environment
        if let dotEnvPath, let text = try? String(contentsOfFile: dotEnvPath, encoding: .utf8) {
            for (key, value) in DotEnv.parse(text) where values[key] == nil {
                values[key] = value
            }
        }
        return try AppConfig(values: values)
    }

    /// Reads and validates settings from a dictionary of variables.
    public init(values: [String: String]) throws {
        var reader = SettingsReader(values: values)
        databaseURL = reader.string("DATABASE_URL")
        embeddedPostgresDirectory = reader.string("EMBEDDED_POSTGRES_DIR") ?? "./.data/postgres"
        host = reader.string("HOST") ?? "127.0.0.1"
        port = reader.integer("PORT", default: 8002, range: 0...65535)
        if let key = reader.string("SECRET_KEY") {
            if key.utf8.count < 32 {
                reader.problems.append(
                    "SECRET_KEY must be at least 32 bytes long (it signs login tokens with HS256); generate one with: openssl rand -hex 32"
                )
            }
            secretKey = key
            secretKeyIsEphemeral = false
        } else {
            secretKey = (0..<4).map { _ in String(UInt64.random(in: .min ... .max), radix: 16) }.joined()
            secretKeyIsEphemeral = true
        }
        accessTokenExpireMinutes = reader.integer("ACCESS_TOKEN_EXPIRE_MINUTES", default: 30, range: 1...525_600)
        dbTimeZone = reader.string("DB_TIMEZONE") ?? "UTC"
        if TimeZone(identifier: dbTimeZone) == nil {
            reader.problems.append("DB_TIMEZONE \"\(dbTimeZone)\" is not an IANA time zone name (for example UTC or Europe/Berlin)")
        }
        adminToken = reader.string("ADMIN_TOKEN")
        if let adminToken, adminToken.utf8.count < 16 {
            reader.problems.append("ADMIN_TOKEN must be at least 16 characters long")
        }
        registration = reader.choice("REGISTRATION", default: .open)
        bcryptCost = reader.integer("BCRYPT_COST", default: 12, range: 4...31)
        loginRateLimit = reader.integer("LOGIN_RATE_LIMIT", default: 10, range: 0...100_000)
        maxBodySize = reader.byteSize("MAX_BODY_SIZE", default: 10 * 1024 * 1024)
        databasePoolSize = reader.integer("DB_POOL_SIZE", default: 10, range: 1...500)
        queryTimeout = reader.integer("QUERY_TIMEOUT_SECONDS", default: 15, range: 1...86_400)
        logLevel = reader.choice("LOG_LEVEL", default: .info)
        migrateOnStart = reader.boolean("MIGRATE_ON_START", default: true)
        ipStorage = reader.choice("IP_STORAGE", default: .truncated)
        requireIngestToken = reader.boolean("REQUIRE_INGEST_TOKEN", default: false)
        rateLimitPerIP = Double(reader.integer("RATE_LIMIT_PER_IP", default: 0, range: 0...1_000_000))
        rateLimitPerToken = Double(reader.integer("RATE_LIMIT_PER_TOKEN", default: 0, range: 0...1_000_000))
        trustForwardedFor = reader.boolean("TRUST_FORWARDED_FOR", default: false)
        maxFutureSkew = Double(reader.integer("MAX_FUTURE_SKEW_SECONDS", default: 300, range: 0...86_400 * 365))
        pipesDirectory = reader.string("PIPES_DIR")
        let retention = reader.integer("RETENTION_DAYS", default: 0, range: 0...36_500)
        retentionDays = retention > 0 ? retention : nil
        let quarantineRetention = reader.integer("QUARANTINE_RETENTION_DAYS", default: 30, range: 0...36_500)
        quarantineRetentionDays = quarantineRetention > 0 ? quarantineRetention : nil
        realtimeAnonymous = reader.boolean("REALTIME_ANONYMOUS", default: true)
        realtimeClientQueue = reader.integer("REALTIME_CLIENT_QUEUE", default: 10_000, range: 1...1_000_000)
        if let pipesDirectory, !FileManager.default.fileExists(atPath: pipesDirectory) {
            reader.problems.append("PIPES_DIR \"\(pipesDirectory)\" does not exist")
        }
        if !reader.problems.isEmpty { throw Invalid(problems: reader.problems) }
        settingNames = reader.names
    }
}

/// Reads typed settings and collects every problem instead of stopping at the first.
struct SettingsReader {
    let values: [String: String]
    var problems: [String] = []
    /// The variables asked for so far.
    var names: [String] = []

    mutating func string(_ name: String) -> String? {
        if !names.contains(name) { names.append(name) }
        guard let value = values[name]?.trimmingCharacters(in: .whitespaces), !value.isEmpty else { return nil }
        return value
    }

    mutating func integer(_ name: String, default defaultValue: Int, range: ClosedRange<Int>) -> Int {
        guard let text = string(name) else { return defaultValue }
        guard let value = Int(text), range.contains(value) else {
            problems.append("\(name) must be a whole number from \(range.lowerBound) to \(range.upperBound), not \"\(text)\"")
            return defaultValue
        }
        return value
    }

    mutating func boolean(_ name: String, default defaultValue: Bool) -> Bool {
        guard let text = string(name)?.lowercased() else { return defaultValue }
        switch text {
        case "1", "true", "yes", "on": return true
        case "0", "false", "no", "off": return false
        default:
            problems.append("\(name) must be true or false, not \"\(text)\"")
            return defaultValue
        }
    }

    mutating func choice<Value: RawRepresentable & CaseIterable>(_ name: String, default defaultValue: Value) -> Value
    where Value.RawValue == String {
        guard let text = string(name) else { return defaultValue }
        guard let value = Value(rawValue: text.lowercased()) else {
            problems.append("\(name) must be one of \(Value.allCases.map(\.rawValue).joined(separator: ", ")), not \"\(text)\"")
            return defaultValue
        }
        return value
    }

    /// Bytes, optionally with a unit: `10485760`, `512KB`, `10MB`, `1GB` (powers of 1024).
    mutating func byteSize(_ name: String, default defaultValue: Int) -> Int {
        guard let text = string(name)?.uppercased() else { return defaultValue }
        let units: [(String, Int)] = [("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10), ("B", 1)]
        var number = Substring(text)
        var multiplier = 1
        for (suffix, size) in units where text.hasSuffix(suffix) {
            number = text.dropLast(suffix.count)
            multiplier = size
            break
        }
        guard let value = Int(number.trimmingCharacters(in: .whitespaces)), value > 0 else {
            problems.append("\(name) must be a size in bytes such as 10485760 or 10MB, not \"\(text)\"")
            return defaultValue
        }
        return value * multiplier
    }
}

/// Parses `.env` files: `KEY=value` lines, `export` prefixes, comments, single and double quotes.
enum DotEnv {
    static func parse(_ text: String) -> [(String, String)] {
        var pairs: [(String, String)] = []
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            guard let equals = line.firstIndex(of: "=") else { continue }
            let key = line[..<equals].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, let quote = value.first, quote == "\"" || quote == "'", value.last == quote {
                value = String(value.dropFirst().dropLast())
                if quote == "\"" { value = value.replacingOccurrences(of: "\\n", with: "\n").replacingOccurrences(of: "\\\"", with: "\"") }
            } else if let comment = value.range(of: " #") {
                value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            guard !key.isEmpty else { continue }
            pairs.append((key, value))
        }
        return pairs
    }
}
