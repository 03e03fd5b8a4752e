import EmbeddedPostgres
import Logging
import NIOPosix
import Postgres
import ServiceLifecycle

/// The application's PostgreSQL: the pool, the thread pool its blocking libpq calls run on, and (without
/// `DATABASE_URL`) the embedded server. Each part is a `Service`, so shutdown closes them in order.
public struct Database: Sendable {
    public let pool: PostgresPool
    public let threadPool: NIOThreadPool
    /// The embedded server, when this process started it (and so stops it).
    public let embedded: EmbeddedPostgres?
    /// The schema version after start-up migrations.
    public let schemaVersion: Int

    /// Connects (starting the embedded server when no URL is configured) and applies pending migrations.
    public static func start(_ config: AppConfig, logger: Logger) async throws -> Database {
        // Enough threads for every pooled connection, plus listeners and one-off connections.
        let threadPool = NIOThreadPool(numberOfThreads: config.databasePoolSize + 4)
        threadPool.start()
        var embedded: EmbeddedPostgres?
        do {
            let configuration: PostgresConfiguration
            if let url = config.databaseURL {
                configuration = try PostgresConfiguration(url)
            } else {
                let server = EmbeddedPostgres(options: .init(directory: config.embeddedPostgresDirectory), logger: logger)
                let started = try await server.startOrReuse()
                configuration = started.configuration
                // A server another process started (a running `serve`) is left running when this one stops.
                embedded = started.startedHere ? server : nil
            }
            logger.info("database", metadata: ["connection": "\(configuration)"])
            let pool = PostgresPool(
                configuration: configuration,
                options: .init(size: config.databasePoolSize),
                threadPool: threadPool,
                logger: logger
            )
            let migrator = Migrator(migrations: try Migrator.bundled(), logger: logger)
            let version = config.migrateOnStart ? try await migrator.migrate(pool) : try await Migrator.currentVersion(pool)
            return Database(pool: pool, threadPool: threadPool, embedded: embedded, schemaVersion: version)
        } catch {
            try? embedded?.stop()
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Closes the pool, stops the embedded server and the thread pool, for commands that do not run services.
    public func shutdown() async {
        await pool.close()
        try? embedded?.stop()
        try? await threadPool.shutdownGracefully()
    }

    /// The services to run with the application, in start order (they stop in reverse).
    public var services: [any Service] {
        var services: [any Service] = [ThreadPoolService(threadPool: threadPool)]
        if let embedded { services.append(EmbeddedPostgresService(server: embedded)) }
        services.append(pool)
        return services
    }
}

/// Shuts the libpq thread pool down after everything that uses it.
struct ThreadPoolService: Service {
    let threadPool: NIOThreadPool

    func run() async throws {
        try? await gracefulShutdown()
        try await threadPool.shutdownGracefully()
    }
}

/// Stops the embedded PostgreSQL server at shutdown.
struct EmbeddedPostgresService: Service {
    let server: EmbeddedPostgres

    func run() async throws {
        try? await gracefulShutdown()
        try server.stop()
    }
}
