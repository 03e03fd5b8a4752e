import HTTPTypes
import Hummingbird
import Logging
import Postgres
import ServiceLifecycle

/// The request context used by every route.
public typealias AppRequestContext = BasicRequestContext

/// Builds the whole application from its settings: database (embedded or `DATABASE_URL`), migrations, router, services.
public func buildApplication(_ config: AppConfig, logger: Logger) async throws -> some ApplicationProtocol {
    var logger = logger
    logger.logLevel = config.logLevel
    if config.secretKeyIsEphemeral {
        logger.warning("SECRET_KEY is not set: using a random key, so login tokens stop working when the server restarts")
    }
    let database = try await Database.start(config, logger: logger)
    let router = buildRouter(config: config, database: database)
    return Application(
        router: router,
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "analytics-api"),
        services: database.services,
        logger: logger
    )
}

/// Registers middleware and mounts each module's routes: this function is the API's table of contents.
func buildRouter(config: AppConfig, database: Database) -> Router<AppRequestContext> {
    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestLoggingMiddleware())
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: BodyLimitMiddleware(maxBodySize: config.maxBodySize))

    HealthController(pool: database.pool, requiredSchemaVersion: database.schemaVersion).addRoutes(to: router)
    return router
}
