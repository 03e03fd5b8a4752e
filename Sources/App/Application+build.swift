import HTTPTypes
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// Builds the whole application from its settings: database (embedded or `DATABASE_URL`), migrations, router, services.
public func buildApplication(_ config: AppConfig, logger: Logger) async throws -> some ApplicationProtocol {
    var logger = logger
    logger.logLevel = config.logLevel
    if config.secretKeyIsEphemeral {
        logger.warning("SECRET_KEY is not set: using a random key, so login tokens stop working when the server restarts")
    }
    let database = try await Database.start(config, logger: logger)
    let writer = EventWriter(pool: database.pool, logger: logger)
    let router = buildRouter(config: config, database: database, writer: writer)
    return Application(
        router: router,
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "analytics-api"),
        // Stopped in reverse: the server stops taking requests, the writer drains, then the database closes.
        services: database.services + [writer],
        logger: logger
    )
}

/// Registers middleware and mounts each module's routes: this function is the API's table of contents.
func buildRouter(config: AppConfig, database: Database, writer: EventWriter) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestLoggingMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: BodyLimitMiddleware(maxBodySize: config.maxBodySize))
    router.add(middleware: ProxyMiddleware(trustForwardedFor: config.trustForwardedFor))
    router.add(
        middleware: RateLimitMiddleware(
            perIP: config.rateLimitPerIP > 0 ? RateLimiter(rate: config.rateLimitPerIP, burst: Int(config.rateLimitPerIP * 2)) : nil,
            perToken: config.rateLimitPerToken > 0 ? RateLimiter(rate: config.rateLimitPerToken, burst: Int(config.rateLimitPerToken * 2)) : nil
        )
    )

    HealthController(pool: database.pool, requiredSchemaVersion: database.schemaVersion).addRoutes(to: router)
    EventsController(
        ingestor: EventIngestor(
            writer: writer,
            pool: database.pool,
            normalizer: EventNormalizer(ipStorage: config.ipStorage, maxFutureSkew: config.maxFutureSkew)
        ),
        pool: database.pool,
        maxBodySize: config.maxBodySize,
        defaultTimeZone: config.dbTimeZone,
        v0Auth: V0Authenticator(adminToken: config.adminToken),
        requireIngestToken: config.requireIngestToken
    ).addRoutes(to: router)
    AnalyticsController(pool: database.pool, defaultTimeZone: config.dbTimeZone).addRoutes(to: router)
    return router
}
