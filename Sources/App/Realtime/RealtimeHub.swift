import Foundation
import Logging
import NIOCore
import Postgres
import ServiceLifecycle
import Synchronization

/// Delivers committed events to WebSocket clients and keeps the realtime stats.
///
/// Events come from this server's writer (`EventWriter.committed`) and, through `LISTEN`, from every other server
/// on the database: their writers announce new ids with `pg_notify` (`RealtimeNotice`) and the hub reads those
/// events back. Each event is matched against every subscriber's filter and queued on its bounded outbox; the hub
/// never waits for a client. Every second each subscriber also gets its scope's stats. At start the hub loads the
/// last 5 minutes of events, so stats do not start from zero after a restart.
public final class RealtimeHub: Service, Sendable {
    /// Events kept per workspace to greet new clients with.
    static let recentLimit = 50

    struct ScopeKey: Hashable {
        var workspaceID: Int
        /// nil: the whole workspace.
        var tenantID: String?
    }

    struct State {
        var nextSubscriberID = 0
        var subscribers: [Int: RealtimeSubscriber] = [:]
        var windows: [ScopeKey: RealtimeWindow] = [:]
        var recent: [Int: [StoredEvent]] = [:]
        /// Ids counted from the start-up load, so the same events arriving live are not counted twice.
        var loadedIDs: Set<Int> = []
        /// Ids counted live while the start-up load ran.
        var liveIDsDuringLoad: Set<Int>? = nil
    }

    let pool: PostgresPool
    let writer: EventWriter
    let listener: PostgresListener?
    let instanceID: String
    let clientQueue: Int
    let logger: Logger
    let metrics: AppMetrics?
    private let state = Mutex(State())

    /// - Parameters:
    ///   - listener: listens on `RealtimeNotice.channel` for other servers' events; nil for a single server.
    ///   - instanceID: this server's id in notices (the writer's), so its own events are not delivered twice.
    ///   - clientQueue: messages a client may have waiting before new ones are dropped.
    init(
        pool: PostgresPool,
        writer: EventWriter,
        listener: PostgresListener?,
        instanceID: String,
        clientQueue: Int,
        logger: Logger,
        metrics: AppMetrics? = nil
    ) {
        self.metrics = metrics
        self.pool = pool
        self.writer = writer
        self.listener = listener
        self.instanceID = instanceID
        self.clientQueue = clientQueue
        self.logger = logger
    }

    // MARK: Subscribers

    /// Registers a client; it receives matching events and stats until `unsubscribe`.
    public func subscribe(_ filter: RealtimeFilter, batched: Bool = false) -> RealtimeSubscriber {
        state.withLock { state in
            state.nextSubscriberID += 1
            let subscriber = RealtimeSubscriber(
                id: state.nextSubscriberID,
                filter: filter,
                capacity: clientQueue,
                batched: batched,
                droppedCounter: metrics?.realtimeDropped
            )
            state.subscribers[subscriber.id] = subscriber
            return subscriber
        }
    }

    /// Clients connected now.
    var clientCount: Int { state.withLock { $0.subscribers.count } }

    public func unsubscribe(_ subscriber: RealtimeSubscriber) {
        subscriber.close()
        _ = state.withLock { $0.subscribers.removeValue(forKey: subscriber.id) }
    }

    /// The most recent events `filter` matches, oldest first (to fill a new client's list).
    func recentEvents(for filter: RealtimeFilter) -> [StoredEvent] {
        state.withLock { $0.recent[filter.scope.workspaceID] ?? [] }.filter { filter.matches($0.record) }
    }

    // MARK: Stats

    /// The stats of `scope` now: windows from memory, the total from `event_counts`.
    public func stats(for scope: DataScope) async throws -> RealtimeStats {
        let rows = try await pool.query(
            """
            SELECT COALESCE(sum(events), 0)::bigint FROM event_counts
            WHERE workspace_id = \(scope.workspaceID) AND (\(scope.tenantID)::text IS NULL OR tenant_id = \(scope.tenantID))
            """
        )
        let total = try rows[0].decode(Int.self, at: 0)
        return window(for: ScopeKey(workspaceID: scope.workspaceID, tenantID: scope.tenantID), totalEvents: total)
    }

    private func window(for key: ScopeKey, totalEvents: Int) -> RealtimeStats {
        let now = Self.now()
        return state.withLock { $0.windows[key] ?? RealtimeWindow() }.stats(now: now, totalEvents: totalEvents)
    }

    static func now() -> Int { Int(Date().timeIntervalSince1970.rounded(.down)) }

    // MARK: Delivery

    /// Counts events in the windows and queues them for matching subscribers.
    func deliver(_ events: [StoredEvent]) {
        guard !events.isEmpty else { return }
        let now = Self.now()
        let subscribers = state.withLock { state -> [RealtimeSubscriber] in
            for event in events {
                if state.loadedIDs.remove(event.id) == nil {
                    state.liveIDsDuringLoad?.insert(event.id)
                    Self.count(event.record, arrival: now, now: now, in: &state.windows)
                }
                // In place, trimmed once per batch: copying a workspace's recent events out and back for every event
                // showed in single-event ingest profiles.
                state.recent[event.record.workspaceID, default: []].append(event)
            }
            for workspace in Set(events.map(\.record.workspaceID)) {
                let extra = (state.recent[workspace]?.count ?? 0) - Self.recentLimit
                if extra > 0 { state.recent[workspace]?.removeFirst(extra) }
            }
            return Array(state.subscribers.values)
        }
        // Batches the writer had to leave out because this hub fell behind: every client may have missed them.
        let missed = writer.takeUnstreamed()
        guard !subscribers.isEmpty else { return }
        if missed > 0 { for subscriber in subscribers { subscriber.reportDropped(missed) } }
        // Each event is encoded once (when a subscriber first wants it), into one buffer that every matching
        // subscriber shares; each subscriber gets the commit's events in one offer. Batched subscribers that match the
        // same events share one batch message, built once.
        // (Indices rather than elements: binding each event would copy its twenty strings, per subscriber.)
        var messages = [ByteBuffer?](repeating: nil, count: events.count)
        var batches: [[Int]: ByteBuffer] = [:]
        for subscriber in subscribers {
            let filter = subscriber.filter
            var matching: [Int] = []
            for index in events.indices where filter.matches(events[index].record) {
                if messages[index] == nil { messages[index] = ByteBuffer(string: Self.eventMessage(events[index])) }
                matching.append(index)
            }
            guard !matching.isEmpty else { continue }
            if subscriber.batched {
                let batch = batches[matching] ?? RealtimeSubscriber.batchMessage(matching.map { messages[$0]! })
                batches[matching] = batch
                subscriber.offer(batch: batch, count: matching.count)
            } else {
                subscriber.offer(contentsOf: matching.map { messages[$0]! })
            }
        }
    }

    static func count(_ record: EventRecord, arrival: Int?, now: Int, in windows: inout [ScopeKey: RealtimeWindow]) {
        windows[ScopeKey(workspaceID: record.workspaceID, tenantID: nil), default: RealtimeWindow()].add(record, arrival: arrival, now: now)
        if let tenant = record.tenantID {
            windows[ScopeKey(workspaceID: record.workspaceID, tenantID: tenant), default: RealtimeWindow()].add(record, arrival: arrival, now: now)
        }
    }

    /// `{"type":"event","event":{…}}` with every column of the event.
    static func eventMessage(_ event: StoredEvent, recent: Bool = false) -> String {
        "{\"type\":\"event\"\(recent ? ",\"recent\":true" : ""),\"event\":\(EventResponse.jsonText(event))}"
    }

    /// `{"type":"stats",…}`.
    static func statsMessage(_ stats: RealtimeStats) -> String? {
        guard let json = try? JSONEncoder.api.encode(stats), let text = String(data: json, encoding: .utf8) else { return nil }
        return "{\"type\":\"stats\"," + text.dropFirst()
    }

    // MARK: Running

    public func run() async throws {
        await cancelWhenGracefulShutdown { [self] in
            await withDiscardingTaskGroup { group in
                group.addTask { [self] in
                    for await batch in writer.committed { deliver(batch) }
                }
                if let listener {
                    group.addTask { [self] in
                        for await notification in listener.notifications where notification.channel == RealtimeNotice.channel {
                            await deliverAnnounced(notification.payload)
                        }
                    }
                    group.addTask { [self] in
                        var first = true
                        for await _ in listener.reconnections {
                            if !first { logger.info("realtime: listening again; events stored by other servers meanwhile were not streamed") }
                            first = false
                        }
                    }
                }
                group.addTask { [self] in
                    await loadRecent()
                    await tick()
                }
            }
        }
    }

    /// Reads the events another server announced and delivers them.
    private func deliverAnnounced(_ payload: String) async {
        guard let notice = RealtimeNotice(payload: payload), notice.instance != instanceID else { return }
        do {
            let rows = try await pool.query(
                """
                \(unsafeSQL: EventResponse.selectList) FROM events
                WHERE id BETWEEN \(notice.ids.min()!) AND \(notice.ids.max()!) AND id = ANY(\(notice.ids))
                ORDER BY id
                """
            )
            deliver(try rows.map(EventResponse.decode))
        } catch {
            logger.warning("realtime: could not read announced events", metadata: ["error": "\(String(reflecting: error))"])
        }
    }

    /// Loads each workspace's last 5 minutes into the windows and its latest events into the greeting list.
    private func loadRecent() async {
        state.withLock { $0.liveIDsDuringLoad = [] }
        var loaded: [StoredEvent] = []
        var latest: [Int: [StoredEvent]] = [:]
        do {
            for workspace in try await pool.query("SELECT id FROM workspaces ORDER BY id").decode((Int).self) {
                let window = try await pool.query(
                    """
                    \(unsafeSQL: EventResponse.selectList) FROM events
                    WHERE workspace_id = \(workspace) AND time > now() - make_interval(secs => \(RealtimeWindow.span))
                      AND time < now() + interval '1 hour'
                    LIMIT 500000
                    """
                )
                loaded += try window.map(EventResponse.decode)
                let last = try await pool.query(
                    "\(unsafeSQL: EventResponse.selectList) FROM events WHERE workspace_id = \(workspace) ORDER BY time DESC LIMIT \(Self.recentLimit)"
                )
                latest[workspace] = try last.map(EventResponse.decode).reversed()
            }
        } catch {
            logger.warning("realtime: could not load the last minutes' events", metadata: ["error": "\(String(reflecting: error))"])
        }
        let now = Self.now()
        state.withLock { state in
            let live = state.liveIDsDuringLoad ?? []
            state.liveIDsDuringLoad = nil
            for event in loaded where !live.contains(event.id) {
                // Events that arrived in the last minute count as arrivals at their received_at, so the rate is
                // right even when the load ran after they were committed but before the writer's batch came in.
                let received = Int(event.record.receivedAt.timeIntervalSince1970.rounded(.down))
                Self.count(event.record, arrival: now - received < 60 ? received : nil, now: now, in: &state.windows)
                state.loadedIDs.insert(event.id)
            }
            for (workspace, events) in latest where state.recent[workspace] == nil {
                state.recent[workspace] = events
            }
        }
        // Loaded events still in flight from the writer arrive within moments; after that the ids are not needed.
        Task { [self] in
            try? await Task.sleep(for: .seconds(30))
            state.withLock { $0.loadedIDs = [] }
        }
    }

    /// Every second: prunes the windows and sends each subscriber its scope's stats.
    private func tick() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(1))
            let now = Self.now()
            let subscribers = state.withLock { state -> [RealtimeSubscriber] in
                for key in Array(state.windows.keys) {
                    state.windows[key]!.prune(now: now)
                    if state.windows[key]!.isEmpty { state.windows[key] = nil }
                }
                return Array(state.subscribers.values)
            }
            guard !subscribers.isEmpty else { continue }
            let totals: [ScopeKey: Int]
            do {
                totals = try await totalsByScope(Set(subscribers.map(\.filter.scope.workspaceID)))
            } catch {
                logger.warning("realtime: could not read event totals", metadata: ["error": "\(String(reflecting: error))"])
                continue
            }
            var messages: [ScopeKey: ByteBuffer] = [:]
            for subscriber in subscribers {
                let key = ScopeKey(workspaceID: subscriber.filter.scope.workspaceID, tenantID: subscriber.filter.scope.tenantID)
                if messages[key] == nil {
                    messages[key] = Self.statsMessage(window(for: key, totalEvents: totals[key] ?? 0)).map { ByteBuffer(string: $0) }
                }
                if let message = messages[key] { subscriber.offer(message) }
            }
        }
    }

    /// Events stored per workspace and per tenant of `workspaces`, in one query.
    private func totalsByScope(_ workspaces: Set<Int>) async throws -> [ScopeKey: Int] {
        let rows = try await pool.query(
            """
            SELECT workspace_id, tenant_id, sum(events)::bigint FROM event_counts
            WHERE workspace_id = ANY(\(Array(workspaces))) GROUP BY 1, 2
            """
        )
        var totals: [ScopeKey: Int] = [:]
        for row in rows {
            let workspace = try row.decode(Int.self, at: 0)
            let tenant = try row.decode(String.self, at: 1)
            let events = try row.decode(Int.self, at: 2)
            totals[ScopeKey(workspaceID: workspace, tenantID: nil), default: 0] += events
            if !tenant.isEmpty { totals[ScopeKey(workspaceID: workspace, tenantID: tenant), default: 0] += events }
        }
        return totals
    }
}
