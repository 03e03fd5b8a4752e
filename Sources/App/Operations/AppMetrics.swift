import Postgres
import Prometheus
import Synchronization

/// The server's Prometheus series, served at `GET /metrics`. Each server has its own registry (not the process-wide
/// swift-metrics bootstrap), so several servers in one process, as in the tests, keep their numbers apart.
final class AppMetrics: Sendable {
    let registry: PrometheusCollectorRegistry

    /// Rows of every front door, by what became of them.
    let ingestAccepted: Counter
    let ingestQuarantined: Counter
    let ingestDeduplicated: Counter
    /// Rows per writer transaction, and how long the transaction took.
    let writerBatchRows: ValueHistogram
    let writerCommit: DurationHistogram
    /// Realtime messages dropped because a client's queue was full.
    let realtimeDropped: Counter

    private let poolOpen: Gauge
    private let poolInUse: Gauge
    private let poolIdle: Gauge
    private let poolWaiting: Gauge
    private let realtimeClients: Gauge

    /// A request series: its counter (by method, route and status) and its duration histogram (by method and route).
    private struct RequestSeries: Hashable {
        var method: String
        var route: String
        var status: Int
    }
    /// The series met so far: the registry's `make…` builds and sorts the labels and looks them up under its lock on
    /// every call, which showed in single-event ingest profiles (1.4 % of the machine at 64 clients).
    private let requestSeries = Mutex<[RequestSeries: (requests: Counter, duration: DurationHistogram)]>([:])

    /// Request latency buckets, seconds: most API answers take milliseconds; analytics over a month can take seconds.
    static let latencyBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func ingest(_ result: String) -> Counter {
            registry.makeCounter(
                descriptor: Self.name("ingest_rows", unit: "total", "Rows received for ingestion, by outcome"),
                labels: [("result", result)]
            )
        }
        ingestAccepted = ingest("accepted")
        ingestQuarantined = ingest("quarantined")
        ingestDeduplicated = ingest("deduplicated")
        writerBatchRows = registry.makeValueHistogram(
            descriptor: Self.name("writer_batch", unit: "rows", "Events per writer transaction"),
            buckets: [1, 5, 10, 50, 100, 500, 1000, 2500, 5000]
        )
        writerCommit = registry.makeDurationHistogram(
            descriptor: Self.name("writer_commit", unit: "seconds", "Time to write and commit one batch of events"),
            buckets: Self.latencyBuckets
        )
        realtimeDropped = registry.makeCounter(
            descriptor: Self.name("realtime_dropped_messages", unit: "total", "Realtime messages dropped because a client read too slowly")
        )
        func pool(_ state: String) -> Gauge {
            registry.makeGauge(
                descriptor: Self.name("db_pool_connections", unit: "", "Database pool connections, by state"),
                labels: [("state", state)]
            )
        }
        poolOpen = pool("open")
        poolInUse = pool("in_use")
        poolIdle = pool("idle")
        poolWaiting = registry.makeGauge(descriptor: Self.name("db_pool_waiting", unit: "requests", "Requests waiting for a database connection"))
        realtimeClients = registry.makeGauge(descriptor: Self.name("realtime_clients", unit: "", "Connected WebSocket clients"))
    }

    static func name(_ metric: String, unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "analytics", metricName: metric, unitName: unit, helpText: help)
    }

    /// Counts one answered request. `route` is the matched route (`/api/events/{id}`), never the raw path, so the
    /// number of series stays bounded.
    func recordRequest(method: String, route: String, status: Int, duration: Duration) {
        let key = RequestSeries(method: method, route: route, status: status)
        let series = requestSeries.withLock { $0[key] } ?? makeSeries(key)
        series.requests.increment()
        series.duration.record(duration)
    }

    /// Makes a request series and keeps it. Two requests may make the same one at once: the registry answers both
    /// with the same objects.
    private func makeSeries(_ key: RequestSeries) -> (requests: Counter, duration: DurationHistogram) {
        let made = (
            requests: registry.makeCounter(
                descriptor: Self.name("http_requests", unit: "total", "HTTP requests answered, by method, route and status"),
                labels: [("method", key.method), ("route", key.route), ("status", String(key.status))]
            ),
            duration: registry.makeDurationHistogram(
                descriptor: Self.name("http_request_duration", unit: "seconds", "Time to answer HTTP requests, by method and route"),
                labels: [("method", key.method), ("route", key.route)],
                buckets: Self.latencyBuckets
            )
        )
        requestSeries.withLock { $0[key] = made }
        return made
    }

    /// The exposition text, with the gauges read now.
    func scrape(pool: PostgresPool.Statistics, realtimeClients clients: Int) -> [UInt8] {
        poolOpen.set(Double(pool.open))
        poolInUse.set(Double(pool.inUse))
        poolIdle.set(Double(pool.idle))
        poolWaiting.set(Double(pool.waiting))
        realtimeClients.set(Double(clients))
        return registry.emitToBuffer()
    }
}
