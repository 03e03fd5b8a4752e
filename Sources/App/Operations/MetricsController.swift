import Hummingbird
import NIOCore
import Postgres

/// `GET /metrics`: the server's series in Prometheus's text format.
struct MetricsController: Sendable {
    let metrics: AppMetrics
    let pool: PostgresPool
    let hub: RealtimeHub

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/metrics") { _, _ in
            let text = metrics.scrape(pool: pool.statistics, realtimeClients: hub.clientCount)
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: text))
            )
        }
    }

    static let operations: [APIOperation] = [
        APIOperation.get("/metrics", id: "metrics", tag: "operations", summary: "Prometheus metrics", access: .anonymous)
            .describing(
                """
                HTTP requests by method, route and status, and their latency; ingested rows accepted, quarantined and \
                deduplicated; writer batch sizes and commit latency; database pool connections in use, idle and waiting; \
                WebSocket clients; dropped realtime messages. All series are prefixed analytics_.
                """
            )
            .response(200, .content("the series, in Prometheus's text format 0.0.4", ["text/plain": Schema.string]))
            .withoutDatabase()
    ]
}
