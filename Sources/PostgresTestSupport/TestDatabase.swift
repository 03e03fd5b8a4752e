import EmbeddedPostgres
import Foundation
import Logging
import NIOPosix
import Postgres

/// The PostgreSQL server the tests use, and a fresh database for each test or suite.
///
/// With `TEST_DATABASE_URL` set, tests use that server; otherwise they start an embedded cluster under
/// `/tmp` (created once, reused by later runs, stopped when the test process exits). Databases are named
/// `aa_test_<random>`; those left by earlier runs are dropped when the server is first used.
public enum TestDatabase {
    /// A thread pool for libpq calls, large enough for many pools at once.
    public static let threadPool: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 48)
        pool.start()
        return pool
    }()

    /// A logger for tests (warnings and worse, unless `LOG_LEVEL` says otherwise).
    public static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = ProcessInfo.processInfo.environment["LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
        return logger
    }()

    /// The server (its maintenance database).
    public static func server() async throws -> PostgresConfiguration {
        try await TestServer.shared.configuration()
    }

    /// Creates an empty database and returns how to reach it.
    public static func create() async throws -> PostgresConfiguration {
        let server = try await server()
        let name = "aa_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await EmbeddedPostgres.createDatabaseIfMissing(String(name), on: server)
        return server.with(database: String(name))
    }

    /// A pool on a new empty database.
    public static func makePool(size: Int = 4, acquireTimeout: Duration = .seconds(10)) async throws -> PostgresPool {
        PostgresPool(
            configuration: try await create(),
            options: .init(size: size, acquireTimeout: acquireTimeout),
            threadPool: threadPool,
            logger: logger
        )
    }
}

/// Starts (or finds) the test server once per process.
actor TestServer {
    static let shared = TestServer()
    private var starting: Task<PostgresConfiguration, any Error>?

    /// Starts the server on first use; concurrent callers share the one start.
    func configuration() async throws -> PostgresConfiguration {
        if let starting { return try await starting.value }
        let task = Task { try await Self.start() }
        starting = task
        return try await task.value
    }

    private static func start() async throws -> PostgresConfiguration {
        let server: PostgresConfiguration
        if let url = ProcessInfo.processInfo.environment["TEST_DATABASE_URL"], !url.isEmpty {
            server = try PostgresConfiguration(url)
        } else {
            let directory = FileManager.default.temporaryDirectory.path + "/analytics-api-tests/cluster-\(geteuid())"
            let embedded = EmbeddedPostgres(
                options: .init(directory: directory, database: "postgres", durable: false, maxConnections: 500),
                logger: TestDatabase.logger
            )
            server = try await embedded.start()
            StopAtExit.register(embedded)
        }
        try await dropLeftoverDatabases(server)
        return server
    }

    private static func dropLeftoverDatabases(_ server: PostgresConfiguration) async throws {
        let connection = try await PostgresConnection.connect(server.with(database: "postgres"), threadPool: TestDatabase.threadPool)
        let names = try await connection.query(#"SELECT datname FROM pg_database WHERE datname LIKE 'aa\_test\_%'"#).decode((String).self)
        for name in names {
            try? await connection.executeScript(unsafeSQL: "DROP DATABASE IF EXISTS \(PostgresIdentifier.quote(name)) WITH (FORCE)")
        }
        await connection.close()
    }
}

/// Stops the embedded test server when the test process exits.
enum StopAtExit {
    nonisolated(unsafe) static var server: EmbeddedPostgres?

    static func register(_ embedded: EmbeddedPostgres) {
        server = embedded
        atexit {
            try? StopAtExit.server?.stop()
        }
    }
}
