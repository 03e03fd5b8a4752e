import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
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
    let parts = try await ApplicationParts(config: config, database: database, logger: logger)
    return Application(
        router: parts.router,
        server: .http1WebSocketUpgrade(webSocketRouter: parts.socketRouter),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: "analytics-api"),
        // Stopped in reverse: the server stops taking requests, the writer drains, then the database closes.
        services: database.services + parts.services,
        logger: logger
    )
}

/// The routers and background services of a server on a started database.
struct ApplicationParts {
    let router: Router<AppRequestContext>
    /// WebSocket upgrades are routed separately; every other request goes to `router`.
    let socketRouter: Router<RealtimeSocketContext>
    let services: [any Service]

    init(config: AppConfig, database: Database, logger: Logger) async throws {
        // Names this server in realtime notices, so it does not deliver its own events twice.
        let instanceID = String(UUID().uuidString.prefix(13))
        let metrics = AppMetrics()
        let writer = EventWriter(pool: database.pool, logger: logger, instanceID: instanceID, metrics: metrics)
        let listener = PostgresListener(
            configuration: database.pool.configuration,
            channels: [RealtimeNotice.channel],
            threadPool: database.threadPool,
            logger: logger
        )
        let hub = RealtimeHub(
            pool: database.pool,
            writer: writer,
            listener: listener,
            instanceID: instanceID,
            clientQueue: config.realtimeClientQueue,
            logger: logger,
            metrics: metrics
        )
        let loginTokens = await LoginTokens(secret: config.secretKey, lifetimeMinutes: config.accessTokenExpireMinutes)
        let catalog = try PipeCatalog.load(from: config.pipesDirectory)
        let authenticator = Authenticator(
            loginTokens: loginTokens,
            tokens: APITokenStore(pool: database.pool),
            users: UserDirectory(pool: database.pool, bcryptCost: config.bcryptCost),
            adminToken: config.adminToken
        )
        let realtime = RealtimeController(
            hub: hub,
            access: RealtimeAccess(authenticator: authenticator, allowAnonymous: config.realtimeAnonymous),
            dashboardHTML: try RealtimeDashboard.load()
        )
        router = buildRouter(
            config: config,
            database: database,
            writer: writer,
            authenticator: authenticator,
            catalog: catalog,
            realtime: realtime,
            metrics: metrics
        )
        socketRouter = Router(context: RealtimeSocketContext.self)
        socketRouter.add(middleware: AuthenticationMiddleware(authenticator: authenticator))
        realtime.addRoutes(to: socketRouter)
        services = [
            writer,
            listener,
            hub,
            DataRetention(pool: database.pool, eventDays: config.retentionDays, quarantineDays: config.quarantineRetentionDays, logger: logger),
        ]
    }

    /// Every route served, as `GET /api/events/{id}`: what the API document must describe.
    var routes: Set<String> {
        Set(router.routes.map { "\($0.method) \($0.path)" } + socketRouter.routes.map { "\($0.method) \($0.path)" })
    }
}

/// Registers middleware and mounts each module's routes: this function is the API's table of contents.
///
/// Routes on `router` allow anonymous requests (their handlers may still look at `context.identity`); routes on
/// `authenticated` answer 401 without a valid credential, and each group or handler names the permission it needs.
func buildRouter(
    config: AppConfig,
    database: Database,
    writer: EventWriter,
    authenticator: Authenticator,
    catalog: PipeCatalog,
    realtime: RealtimeController,
    metrics: AppMetrics
) -> Router<AppRequestContext> {
    let pool = database.pool
    let tokens = authenticator.tokens
    let users = authenticator.users
    let loginTokens = authenticator.loginTokens

    let router = Router(context: AppRequestContext.self)
    router.add(middleware: RequestLoggingMiddleware(metrics: metrics))
    router.add(middleware: ErrorMiddleware())
    router.add(middleware: BodyLimitMiddleware(maxBodySize: config.maxBodySize))
    router.add(middleware: ProxyMiddleware(trustForwardedFor: config.trustForwardedFor))
    router.add(
        middleware: RateLimitMiddleware(
            perIP: config.rateLimitPerIP > 0 ? RateLimiter(rate: config.rateLimitPerIP, burst: Int(config.rateLimitPerIP * 2)) : nil,
            perToken: config.rateLimitPerToken > 0 ? RateLimiter(rate: config.rateLimitPerToken, burst: Int(config.rateLimitPerToken * 2)) : nil
        )
    )
    router.add(middleware: AuthenticationMiddleware(authenticator: authenticator))
    let authenticated = router.group(context: AuthenticatedContext.self)

    HealthController(pool: pool, requiredSchemaVersion: database.schemaVersion).addRoutes(to: router)
    DocsController().addRoutes(to: router)
    MetricsController(metrics: metrics, pool: pool, hub: realtime.hub).addRoutes(to: router)
    AuthController(
        users: users,
        loginTokens: loginTokens,
        registration: config.registration,
        failedLogins: config.loginRateLimit > 0 ? RateLimiter(rate: Double(config.loginRateLimit) / 60, burst: config.loginRateLimit * 2) : nil
    ).addRoutes(to: router, authenticated: authenticated)
    TokensController(tokens: tokens, workspaces: WorkspaceDirectory(pool: pool, tokens: tokens, catalog: catalog)).addRoutes(to: authenticated)
    PipesController(pool: pool, catalog: catalog, queryTimeout: config.queryTimeout).addRoutes(to: authenticated)
    EventsController(
        ingestor: EventIngestor(
            writer: writer,
            pool: pool,
            normalizer: EventNormalizer(ipStorage: config.ipStorage, maxFutureSkew: config.maxFutureSkew)
        ),
        pool: pool,
        maxBodySize: config.maxBodySize,
        defaultTimeZone: config.dbTimeZone,
        requireIngestToken: config.requireIngestToken,
        queryTimeout: config.queryTimeout
    ).addRoutes(to: router, authenticated: authenticated)
    AnalyticsController(pool: pool, defaultTimeZone: config.dbTimeZone, queryTimeout: config.queryTimeout)
        .addRoutes(to: authenticated.group().add(middleware: RequirePermission(permission: .readAnalytics)))
    realtime.addRoutes(to: router)
    return router
}
