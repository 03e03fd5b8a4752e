import Foundation
import Logging
import Migrations
import Postgres

/// One numbered schema change, from a `migrations/NNNN_name.sql` file.
public struct Migration: Sendable, Equatable {
    public var version: Int
    public var name: String
    public var sql: String

    /// A stable fingerprint of the SQL (FNV-1a, 64 bits), to notice an applied file that was edited later.
    public var checksum: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in sql.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x100_0000_01b3
        }
        return String(hash, radix: 16)
    }
}

/// Why migrating failed.
public struct MigrationError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Applies the numbered SQL files in order, each in its own transaction, recording them in `schema_migrations`.
///
/// An advisory lock serialises migrators, so replicas that start together do not race: the second waits
/// and then finds nothing left to do.
public struct Migrator: Sendable {
    /// Arbitrary, fixed: the advisory lock key of this project's migrations.
    static let lockKey = 7_276_104_911

    public let migrations: [Migration]
    let logger: Logger

    public init(migrations: [Migration], logger: Logger) {
        self.migrations = migrations.sorted { $0.version < $1.version }
        self.logger = logger
    }

    /// The migrations that ship with the server.
    public static func bundled() throws -> [Migration] {
        guard let directory = BundledMigrations.directory else {
            throw MigrationError(description: "the bundled migrations were not found next to the executable")
        }
        return try load(from: directory)
    }

    /// Reads `NNNN_name.sql` files from a folder.
    public static func load(from directory: URL) throws -> [Migration] {
        let files = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".sql") }
        var migrations: [Migration] = []
        for file in files {
            let stem = file.dropLast(4)
            guard let underscore = stem.firstIndex(of: "_"), let version = Int(stem[..<underscore]) else {
                throw MigrationError(description: "migration file \(file) is not named NNNN_name.sql")
            }
            let sql = try String(contentsOf: directory.appendingPathComponent(file), encoding: .utf8)
            migrations.append(Migration(version: version, name: String(stem[stem.index(after: underscore)...]), sql: sql))
        }
        let versions = migrations.map(\.version)
        guard Set(versions).count == versions.count else {
            throw MigrationError(description: "two migration files share a version number in \(directory.path)")
        }
        return migrations
    }

    /// The latest version of the bundled files.
    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// Applies pending migrations and returns the schema version afterwards.
    @discardableResult
    public func migrate(_ pool: PostgresPool) async throws -> Int {
        try await pool.withConnection { connection in
            try await connection.query("SELECT pg_advisory_lock(\(Self.lockKey))")
            do {
                let version = try await migrate(on: connection)
                try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))")
                return version
            } catch {
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))")
                throw error
            }
        }
    }

    private func migrate(on connection: PostgresConnection) async throws -> Int {
        try await connection.executeScript(
            unsafeSQL: """
                SET client_min_messages = warning;
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY,
                    name text NOT NULL,
                    checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                );
                RESET client_min_messages;
                """
        )
        let applied = try await connection.query("SELECT version, checksum FROM schema_migrations").decode((Int, String).self)
        let appliedChecksums = Dictionary(applied, uniquingKeysWith: { first, _ in first })
        for migration in migrations {
            if let checksum = appliedChecksums[migration.version] {
                if checksum != migration.checksum {
                    logger.warning(
                        "an applied migration file has changed since it was applied; changes belong in a new file",
                        metadata: ["version": "\(migration.version)", "name": "\(migration.name)"]
                    )
                }
                continue
            }
            logger.info("applying migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
            do {
                try await connection.executeScript(unsafeSQL: "BEGIN")
                try await connection.executeScript(unsafeSQL: migration.sql)
                try await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(migration.version), \(migration.name), \(migration.checksum))"
                )
                try await connection.executeScript(unsafeSQL: "COMMIT")
            } catch let error as PostgresError {
                try? await connection.executeScript(unsafeSQL: "ROLLBACK")
                if error.isUnavailable { throw error }
                throw MigrationError(
                    description: "migration \(String(format: "%04d", migration.version))_\(migration.name).sql failed: \(String(reflecting: error))"
                )
            }
        }
        return try await connection.query("SELECT coalesce(max(version), 0) FROM schema_migrations")[0].decode(Int.self, at: 0)
    }

    /// The schema version recorded in the database (0 before the first migration).
    public static func currentVersion(_ pool: PostgresPool) async throws -> Int {
        let rows = try await pool.query(
            "SELECT coalesce((SELECT max(version) FROM schema_migrations), 0) WHERE to_regclass('schema_migrations') IS NOT NULL"
        )
        return try rows.first?.decode(Int.self, at: 0) ?? 0
    }
}
