import Foundation
import HTTPTypes
import Logging
import Postgres
import Prometheus
import ServiceLifecycle
import Synchronization

/// An event as stored: the record and its id.
public struct StoredEvent: Sendable, Equatable {
    public var id: Int
    public var record: EventRecord
}

/// The group-commit writer: the one place events are written.
///
/// Requests hand their records to `write`, which returns once they are committed. The writer takes everything
/// waiting (up to `maxBatchRows`), writes it with one `COPY` in one transaction and then completes every request
/// in the batch, so concurrent requests share commits; up to `concurrency` such transactions run at once. Records whose `event_id` is already stored in the workspace
/// (or repeated in the batch) are not stored again. A failed write fails exactly the requests in the batch; when
/// the failure is not the database being unavailable, the requests are retried one by one so that one bad request
/// does not fail the others. New visitors are numbered in `visitors` first, in a short transaction of their own (the
/// events carry their visitor's number, `visitor_id`). Each transaction adds its events to `event_counts` and to
/// their sessions' `session_totals`, their visitors' active hours to `visitor_hours` and days per event type to
/// `visitor_days` and, when the writer has an `instanceID`, announces the new ids on the realtime channel
/// (`RealtimeNotice`), which PostgreSQL delivers to the listening servers only once the transaction commits.
/// Committed events are published on `committed` for this server's realtime delivery.
public final class EventWriter: Service, Sendable {
    /// What happened to each record of a `write`, in order.
    public enum Outcome: Sendable, Equatable {
        case stored(StoredEvent)
        /// Its `event_id` was already stored (or came earlier in the same batch).
        case duplicate(eventID: String)
    }

    private struct Pending {
        let records: [EventRecord]
        let continuation: CheckedContinuation<[Outcome], any Error>
    }

    private struct Queue {
        var pending: [Pending] = []
        /// Flushes running now.
        var inFlight = 0
        var closed = false
    }

    let pool: PostgresPool
    let logger: Logger
    let maxBatchRows: Int
    /// Transactions written at once (PostgreSQL spreads concurrent COPYs over its cores).
    let concurrency: Int
    /// The id of this server in realtime notices; nil sends none.
    let instanceID: String?
    /// Where batches and rows are counted (`GET /metrics`); nil counts nothing.
    let metrics: AppMetrics?
    private let queue = Mutex(Queue())
    /// Visitors' numbers (`visitors.id`) this writer has read or drawn, and seen committed.
    private let knownVisitors = BoundedCache<VisitorActivity.Visitor, Int>(capacity: 200_000)
    /// Committed events the realtime hub was too far behind to take (see `committed`), not yet reported.
    private let unstreamed = Mutex(0)
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation
    private let publisher: AsyncStream<[StoredEvent]>.Continuation
    /// Batches of committed events, in commit order (for the realtime hub). When nobody reads, only the newest 8
    /// batches are kept. A writer made with `streams: false` has none: the stream is finished from the start.
    public let committed: AsyncStream<[StoredEvent]>

    /// `streams`: whether committed batches go to `committed`. A writer that no hub reads (`demo-data`) passes
    /// false: otherwise every batch after the eighth would be dropped as one the hub was too far behind to take,
    /// with a warning each.
    init(
        pool: PostgresPool,
        logger: Logger,
        maxBatchRows: Int = 5000,
        concurrency: Int = 2,
        instanceID: String? = nil,
        metrics: AppMetrics? = nil,
        streams: Bool = true
    ) {
        self.pool = pool
        self.instanceID = instanceID
        self.metrics = metrics
        self.logger = logger
        self.maxBatchRows = maxBatchRows
        self.concurrency = max(1, concurrency)
        (doorbell, ring) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
        // A few batches at most wait for a slow reader; older ones are dropped rather than held in memory.
        (committed, publisher) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(8))
        if !streams { publisher.finish() }
    }

    /// Committed events left out of `committed` since the last call (the hub reports them to its clients as dropped).
    func takeUnstreamed() -> Int {
        unstreamed.withLock { count in
            defer { count = 0 }
            return count
        }
    }

    /// Stores records and returns once they are committed (or fails with the write's error).
    public func write(_ records: [EventRecord]) async throws -> [Outcome] {
        guard !records.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            let accepted = queue.withLock { queue in
                guard !queue.closed else { return false }
                queue.pending.append(Pending(records: records, continuation: continuation))
                return true
            }
            if accepted {
                ring.yield()
            } else {
                continuation.resume(throwing: APIError(.serviceUnavailable, "the server is shutting down", headers: [.retryAfter: "5"]))
            }
        }
    }

    /// Writes batches as requests arrive, up to `concurrency` transactions at once; at graceful shutdown stops
    /// accepting and drains what is waiting.
    public func run() async throws {
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                for await _ in doorbell {
                    // Start a flush per free slot; each finished flush rings again to pick up what came meanwhile.
                    while let batch = takeBatch() {
                        group.addTask { [self] in
                            await flush(batch)
                            queue.withLock { $0.inFlight -= 1 }
                            ring.yield()
                        }
                    }
                }
            }
        } onGracefulShutdown: { [self] in
            queue.withLock { $0.closed = true }
            ring.finish()
        }
        queue.withLock { $0.closed = true }
        while let batch = takeBatch(ignoringLimit: true) {
            await flush(batch)
            queue.withLock { $0.inFlight -= 1 }
        }
        publisher.finish()
    }

    /// The next batch (requests in arrival order, up to `maxBatchRows` rows) if a flush slot is free.
    private func takeBatch(ignoringLimit: Bool = false) -> [Pending]? {
        queue.withLock { queue -> [Pending]? in
            guard !queue.pending.isEmpty, ignoringLimit || queue.inFlight < concurrency else { return nil }
            var rows = 0
            var count = 0
            while count < queue.pending.count, count == 0 || rows + queue.pending[count].records.count <= maxBatchRows {
                rows += queue.pending[count].records.count
                count += 1
            }
            defer { queue.pending.removeFirst(count) }
            queue.inFlight += 1
            return Array(queue.pending.prefix(count))
        }
    }

    private func flush(_ batch: [Pending]) async {
        do {
            let started = ContinuousClock.now
            let outcomes = try await storeEndingDeadlocks(batch.map(\.records))
            if let metrics {
                let rows = outcomes.joined()
                let duplicates = rows.count { if case .duplicate = $0 { true } else { false } }
                metrics.writerCommit.record(ContinuousClock.now - started)
                metrics.writerBatchRows.record(Double(rows.count))
                metrics.ingestAccepted.increment(by: Int64(rows.count - duplicates))
                metrics.ingestDeduplicated.increment(by: Int64(duplicates))
            }
            for (pending, outcome) in zip(batch, outcomes) { pending.continuation.resume(returning: outcome) }
        } catch let error as PostgresError where !error.isUnavailable && batch.count > 1 {
            logger.warning("a batch write failed; retrying its requests one by one", metadata: ["error": "\(String(reflecting: error))"])
            for pending in batch { await flush([pending]) }
        } catch {
            logger.error("event write failed", metadata: ["error": "\(String(reflecting: error))", "requests": "\(batch.count)"])
            for pending in batch { pending.continuation.resume(throwing: error) }
        }
    }

    /// `store`, written again (up to three times in all) when PostgreSQL ended its transaction to break a deadlock or
    /// a serialization failure. The triggers on `session_totals` (migration 0027) update tenants' and users' totals in
    /// two rounds, the session rows a statement updated and then those it inserted, so two batches (or a batch and
    /// other SQL) can each hold a row the other's later round waits for; PostgreSQL ends one of them after
    /// `deadlock_timeout` (1 s). Its transaction left nothing behind, so writing the batch again is safe: its
    /// requests are not failed (a batch of one request had no other retry) nor retried one by one.
    private func storeEndingDeadlocks(_ requests: [[EventRecord]]) async throws -> [[Outcome]] {
        var attempt = 1
        while true {
            do {
                return try await store(requests)
            } catch let error as PostgresError where attempt < 3 && (error.code == .deadlockDetected || error.code == .serializationFailure) {
                attempt += 1
                logger.notice(
                    "PostgreSQL ended a batch write to break a deadlock (or a serialization failure); writing it again",
                    metadata: ["error": "\(error)"]
                )
            }
        }
    }

    /// Numbers the batch's new visitors in a short transaction of its own, then, in one transaction: claims the
    /// event ids, allocates row ids, COPYs the new rows with their visitors' numbers. Returns outcomes per request.
    ///
    /// New visitors are inserted before the events' transaction, not in it: a batch inserting a visitor that a
    /// concurrent batch is also inserting waits for that batch's commit, which inside the events' transaction came
    /// only after its COPY, so the writer's concurrent batches ran one after another: `demo-data` of a million
    /// events took 25–27 s that way, 19.5–20.3 s this way (as before events carried the numbers). A number whose
    /// events then fail to store stays unused, which is harmless.
    /// That transaction commits without waiting for its flush (`synchronous_commit = off`): the events' commit
    /// flushes the log up to itself, so the numbers are durable whenever events that use them are.
    /// The events' transaction's statements are prepared on each connection (`prepared: true`): under single-event
    /// POSTs at 64 clients (batches of ~20 events) the rollup statement's planning took 0.19 of its 0.49 ms a batch, and
    /// alternating builds answered 5,680–5,880 → 6,100–6,960 events/s (`demo-data`, in batches of thousands: unchanged).
    private func store(_ requests: [[EventRecord]]) async throws -> [[Outcome]] {
        let records = requests.flatMap { $0 }
        let visitorIDs = try await numberVisitors(VisitorActivity.visitors(of: records))
        let stored = try await pool.withTransaction { connection -> [Outcome] in
            let fresh = try await claimEventIDs(records, on: connection)
            var unclaimed = fresh
            var outcomes: [Outcome] = []
            var rows: [EventRecord] = []
            for record in records {
                if let eventID = record.eventID {
                    guard unclaimed.remove(EventKey(workspaceID: record.workspaceID, eventID: eventID)) != nil else {
                        outcomes.append(.duplicate(eventID: eventID))
                        continue
                    }
                }
                rows.append(record)
                outcomes.append(.stored(StoredEvent(id: 0, record: record)))
            }
            guard !rows.isEmpty else { return outcomes }
            // The sequence is looked up once (OFFSET 0 keeps the sub-select from being merged into the outer query,
            // where `pg_get_serial_sequence` ran for every row: 3.7 against 0.6 ms for 1,307 ids in psql).
            let ids = try await connection.query(
                """
                SELECT nextval(s.id) FROM (SELECT pg_get_serial_sequence('events', 'id')::regclass AS id OFFSET 0) s,
                                          generate_series(1, \(rows.count))
                """,
                prepared: true
            ).decode((Int).self)
            var copyRows: [[String?]] = []
            copyRows.reserveCapacity(rows.count)
            for (id, row) in zip(ids, rows) {
                let visitorID = VisitorActivity.Visitor(row).flatMap { visitorIDs[$0] }
                copyRows.append([String(id), visitorID.map(String.init)] + row.copyValues)
            }
            try await connection.copy(into: "events", columns: ["id", "visitor_id"] + EventRecord.copyColumns, rows: copyRows)
            try await countAndAnnounce(rows, ids: ids, activity: VisitorActivity(rows), visitorIDs: visitorIDs, on: connection)
            var nextID = ids.makeIterator()
            return outcomes.map { outcome in
                guard case .stored(let event) = outcome, let id = nextID.next() else { return outcome }
                return .stored(StoredEvent(id: id, record: event.record))
            }
        }
        if case .dropped(let lost) = publisher.yield(stored.compactMap { if case .stored(let event) = $0 { event } else { nil } }) {
            // The realtime hub fell 8 batches behind: its clients miss these events (they stay stored), and are told.
            unstreamed.withLock { $0 += lost.count }
            logger.warning("realtime: the hub is behind; a committed batch was not streamed", metadata: ["events": "\(lost.count)"])
        }
        var result: [[Outcome]] = []
        var index = 0
        for request in requests {
            result.append(Array(stored[index..<index + request.count]))
            index += request.count
        }
        return result
    }

    private struct CountKey: Hashable, Comparable {
        var workspaceID: Int
        var tenantID: String
        /// Days since 1970-01-01, UTC.
        var day: Int
        var eventType: String
        var isBot: Bool

        static func < (lhs: Self, rhs: Self) -> Bool {
            if lhs.workspaceID != rhs.workspaceID { return lhs.workspaceID < rhs.workspaceID }
            if lhs.tenantID != rhs.tenantID { return lhs.tenantID < rhs.tenantID }
            if lhs.day != rhs.day { return lhs.day < rhs.day }
            if lhs.eventType != rhs.eventType { return lhs.eventType < rhs.eventType }
            return !lhs.isBot && rhs.isBot
        }
    }

    /// Whether `lhs` comes before `rhs` where keys hold an optional text (none before any text, texts in `String`
    /// order), or nil when they are equal. The keys below compare field by field: comparing tuples of their fields
    /// copied every string of both keys on each comparison (sorting a batch's keys showed in `demo-data` profiles).
    static func precedes(_ lhs: String?, _ rhs: String?) -> Bool? {
        switch (lhs, rhs) {
        case (nil, nil): nil
        case (nil, _?): true
        case (_?, nil): false
        case (let left?, let right?): left == right ? nil : left < right
        }
    }

    /// The visitors of a batch, the UTC hours they were active in (`visitors` and `visitor_hours`, migration 0011) and
    /// the UTC days they had events of each type on (`visitor_days`, 0016), each once and in key order, so that
    /// concurrent batches insert the same keys in the same order.
    struct VisitorActivity {
        struct Visitor: Hashable, Comparable {
            var workspaceID: Int
            var visitor: String
            static func < (lhs: Self, rhs: Self) -> Bool {
                lhs.workspaceID != rhs.workspaceID ? lhs.workspaceID < rhs.workspaceID : lhs.visitor < rhs.visitor
            }

            init(workspaceID: Int, visitor: String) {
                self.workspaceID = workspaceID
                self.visitor = visitor
            }

            /// The visitor of `row`: its user, else its session; nil when it has neither.
            init?(_ row: EventRecord) {
                guard let key = row.userID ?? row.sessionID else { return nil }
                self.init(workspaceID: row.workspaceID, visitor: key)
            }
        }

        struct Hour: Hashable, Comparable {
            var visitor: Visitor
            /// Seconds since 1970 of the hour's start.
            var hour: Int
            var tenantID: String?
            var isBot: Bool
            /// By workspace, hour, tenant (none first), bot flag (people first), visitor.
            static func < (lhs: Self, rhs: Self) -> Bool {
                if lhs.visitor.workspaceID != rhs.visitor.workspaceID { return lhs.visitor.workspaceID < rhs.visitor.workspaceID }
                if lhs.hour != rhs.hour { return lhs.hour < rhs.hour }
                if let order = precedes(lhs.tenantID, rhs.tenantID) { return order }
                if lhs.isBot != rhs.isBot { return rhs.isBot }
                return lhs.visitor.visitor < rhs.visitor.visitor
            }
        }

        struct Day: Hashable, Comparable {
            var visitor: Visitor
            var eventType: String
            /// Days since 1970-01-01.
            var day: Int
            var tenantID: String?
            var isBot: Bool
            /// By workspace, event type, day, visitor, tenant (none first), bot flag (people first).
            static func < (lhs: Self, rhs: Self) -> Bool {
                if lhs.visitor.workspaceID != rhs.visitor.workspaceID { return lhs.visitor.workspaceID < rhs.visitor.workspaceID }
                if lhs.eventType != rhs.eventType { return lhs.eventType < rhs.eventType }
                if lhs.day != rhs.day { return lhs.day < rhs.day }
                if lhs.visitor.visitor != rhs.visitor.visitor { return lhs.visitor.visitor < rhs.visitor.visitor }
                if let order = precedes(lhs.tenantID, rhs.tenantID) { return order }
                return !lhs.isBot && rhs.isBot
            }
        }

        var hours: [Hour]
        var days: [Day]

        init(_ rows: [EventRecord]) {
            var hours: Set<Hour> = []
            var days: Set<Day> = []
            for row in rows {
                guard let visitor = Visitor(row) else { continue }
                let seconds = row.time.timeIntervalSince1970
                let hour = Int((seconds / 3600).rounded(.down)) * 3600
                let day = Int((seconds / 86_400).rounded(.down))
                hours.insert(Hour(visitor: visitor, hour: hour, tenantID: row.tenantID, isBot: row.isBot))
                days.insert(Day(visitor: visitor, eventType: row.eventType, day: day, tenantID: row.tenantID, isBot: row.isBot))
            }
            self.hours = hours.sorted()
            self.days = days.sorted()
        }

        /// The visitors of `rows`, each once, in key order.
        static func visitors(of rows: [EventRecord]) -> [Visitor] {
            Set(rows.compactMap(Visitor.init)).sorted()
        }
    }

    /// What a batch adds to each session's row of `session_totals` (migration 0015), in key order, so that concurrent
    /// batches lock the same rows in the same order. Computed as `session_totals_of_events` computes a row.
    struct SessionAdditions {
        struct Key: Hashable, Comparable {
            var workspaceID: Int
            var sessionID: String
            var tenantID: String?
            var userID: String?
            var isBot: Bool
            /// By workspace, session, tenant (none first), user (none first), bot flag (people first).
            static func < (lhs: Self, rhs: Self) -> Bool {
                if lhs.workspaceID != rhs.workspaceID { return lhs.workspaceID < rhs.workspaceID }
                if lhs.sessionID != rhs.sessionID { return lhs.sessionID < rhs.sessionID }
                if let order = precedes(lhs.tenantID, rhs.tenantID) { return order }
                if let order = precedes(lhs.userID, rhs.userID) { return order }
                return !lhs.isBot && rhs.isBot
            }
        }

        struct Totals {
            var events = 0
            var pageViews = 0
            var clicks = 0
            var durationSum: Double?
            var first: Date
            var last: Date
            var country: String?
            var countryTime: Date?
            /// The session's visitor under this key (its user, else the session).
            var visitor: VisitorActivity.Visitor?
        }

        var rows: [(key: Key, totals: Totals)]

        init(_ records: [EventRecord]) {
            var totals: [Key: Totals] = [:]
            for record in records {
                guard let sessionID = record.sessionID else { continue }
                let key = Key(
                    workspaceID: record.workspaceID,
                    sessionID: sessionID,
                    tenantID: record.tenantID,
                    userID: record.userID,
                    isBot: record.isBot
                )
                var entry = totals[key] ?? Totals(first: record.time, last: record.time, visitor: VisitorActivity.Visitor(record))
                entry.events += 1
                if record.eventType == "page_view" || record.eventType == "pageview" { entry.pageViews += 1 }
                entry.clicks += record.clicks ?? (record.eventType == "click" ? 1 : 0)
                if let duration = record.duration { entry.durationSum = (entry.durationSum ?? 0) + duration }
                entry.first = min(entry.first, record.time)
                entry.last = max(entry.last, record.time)
                // The latest country; of those named at the same latest time, the least.
                if let country = record.country {
                    if entry.countryTime.map({ record.time > $0 }) ?? true {
                        (entry.country, entry.countryTime) = (country, record.time)
                    } else if record.time == entry.countryTime, country < entry.country ?? country {
                        entry.country = country
                    }
                }
                totals[key] = entry
            }
            rows = totals.sorted { $0.key < $1.key }.map { (key: $0.key, totals: $0.value) }
        }
    }

    /// The numbers (`visitors.id`) of `visitors`, numbering those new to the database in a transaction of their own
    /// (see `store`). Numbers are remembered once committed (`knownVisitors`; a number never changes), so a batch
    /// of returning visitors costs no statement here.
    private func numberVisitors(_ visitors: [VisitorActivity.Visitor]) async throws -> [VisitorActivity.Visitor: Int] {
        var all: [VisitorActivity.Visitor: Int] = [:]
        var unknown: [VisitorActivity.Visitor] = []
        for visitor in visitors {
            if let id = knownVisitors.cached(visitor) { all[visitor] = id } else { unknown.append(visitor) }
        }
        guard !unknown.isEmpty else { return all }
        let read = try await pool.withTransaction { connection in
            try await connection.execute("SET LOCAL synchronous_commit = off")
            return try await Self.number(unknown, on: connection)
        }
        for (visitor, id) in read { knownVisitors.store(id, for: visitor) }
        all.merge(read) { $1 }
        return all
    }

    private static func number(
        _ unknown: [VisitorActivity.Visitor],
        on connection: PostgresConnection
    ) async throws -> [VisitorActivity.Visitor: Int] {
        // New visitors are inserted in key order (concurrent batches then wait for each other in the same order), after
        // skipping those already stored: an insert that conflicts still draws a number. The statement returns the
        // numbers it drew and those committed before it started.
        var read: [VisitorActivity.Visitor: Int] = [:]
        let rows = try await connection.query(
            """
            WITH wanted AS (
                SELECT w, v, n FROM unnest(\(unknown.map(\.workspaceID)), \(unknown.map(\.visitor))) WITH ORDINALITY AS u(w, v, n)
            ), inserted AS (
                INSERT INTO visitors (workspace_id, visitor)
                SELECT w, v FROM wanted
                WHERE NOT EXISTS (SELECT 1 FROM visitors k WHERE k.workspace_id = wanted.w AND k.visitor = wanted.v)
                ORDER BY n
                ON CONFLICT DO NOTHING
                RETURNING workspace_id, visitor, id
            )
            SELECT workspace_id, visitor, id FROM inserted
            UNION ALL
            SELECT k.workspace_id, k.visitor, k.id FROM wanted JOIN visitors k ON k.workspace_id = wanted.w AND k.visitor = wanted.v
            """
        )
        for (workspaceID, visitor, id) in try rows.decode((Int, String, Int).self) {
            read[VisitorActivity.Visitor(workspaceID: workspaceID, visitor: visitor)] = id
        }
        // A visitor another transaction numbered while this statement waited for it is not in that statement's
        // snapshot; a new statement sees it.
        let late = unknown.filter { read[$0] == nil }
        if !late.isEmpty {
            let rows = try await connection.query(
                """
                SELECT k.workspace_id, k.visitor, k.id
                FROM unnest(\(late.map(\.workspaceID)), \(late.map(\.visitor))) AS u(w, v)
                JOIN visitors k ON k.workspace_id = u.w AND k.visitor = u.v
                """
            )
            for (workspaceID, visitor, id) in try rows.decode((Int, String, Int).self) {
                read[VisitorActivity.Visitor(workspaceID: workspaceID, visitor: visitor)] = id
            }
        }
        return read
    }

    /// Adds the rows to `event_counts` and `session_totals` (in key order, so that concurrent batches lock the same
    /// rows in the same order), records the visitors' active hours (`visitor_hours`) and days per event type
    /// (`visitor_days`) and, when the writer has an `instanceID`, announces their ids: one statement, one round trip.
    private func countAndAnnounce(
        _ rows: [EventRecord],
        ids: [Int],
        activity: VisitorActivity,
        visitorIDs: [VisitorActivity.Visitor: Int],
        on connection: PostgresConnection
    ) async throws {
        // Every visitor has its number by now (`numberVisitors`). Were one missing, its hours and days are left out
        // and said.
        let hours = activity.hours.filter { visitorIDs[$0.visitor] != nil }
        let days = activity.days.filter { visitorIDs[$0.visitor] != nil }
        if hours.count < activity.hours.count || days.count < activity.days.count {
            logger.error(
                "visitor_hours, visitor_days: visitors without a number; their hours and days are not recorded",
                metadata: ["hours": "\(activity.hours.count - hours.count)", "days": "\(activity.days.count - days.count)"]
            )
        }
        var counts: [CountKey: Int] = [:]
        for row in rows {
            let day = Int((row.time.timeIntervalSince1970 / 86_400).rounded(.down))
            let key = CountKey(workspaceID: row.workspaceID, tenantID: row.tenantID ?? "", day: day, eventType: row.eventType, isBot: row.isBot)
            counts[key, default: 0] += 1
        }
        let keys = counts.keys.sorted()
        let sessions = SessionAdditions(rows).rows
        let sessionVisitors = sessions.map { row in row.totals.visitor.flatMap { visitorIDs[$0] } }
        let notices = instanceID.map { RealtimeNotice.payloads(instance: $0, ids: ids) } ?? []
        // A data-modifying WITH runs whether or not the SELECT reads it.
        try await connection.execute(
            """
            WITH counted AS (
                INSERT INTO event_counts (workspace_id, tenant_id, day, event_type, is_bot, events)
                SELECT w, t, date '1970-01-01' + d::int, et, b, n
                FROM unnest(
                    \(keys.map(\.workspaceID)), \(keys.map(\.tenantID)), \(keys.map(\.day)), \(keys.map(\.eventType)), \(keys.map(\.isBot)),
                    \(keys.map { counts[$0]! })
                ) WITH ORDINALITY AS u(w, t, d, et, b, n, o)
                ORDER BY o
                ON CONFLICT (workspace_id, tenant_id, day, event_type, is_bot) DO UPDATE SET events = event_counts.events + EXCLUDED.events
            ), sessions AS (
                INSERT INTO session_totals AS t (workspace_id, session_id, tenant_id, user_id, is_bot, visitor_id, events, page_views,
                                                 clicks, duration_sum, first_time, last_time, country, country_time)
                SELECT w, s, te, us, b, v, n, p, c, d, f, l, co, ct
                FROM unnest(
                    \(sessions.map(\.key.workspaceID)), \(sessions.map(\.key.sessionID)), \(sessions.map(\.key.tenantID)),
                    \(sessions.map(\.key.userID)), \(sessions.map(\.key.isBot)), \(sessionVisitors), \(sessions.map(\.totals.events)),
                    \(sessions.map(\.totals.pageViews)), \(sessions.map(\.totals.clicks)), \(sessions.map(\.totals.durationSum)),
                    \(sessions.map { PostgresTimestamp.format($0.totals.first) })::timestamptz[],
                    \(sessions.map { PostgresTimestamp.format($0.totals.last) })::timestamptz[],
                    \(sessions.map(\.totals.country)), \(sessions.map { $0.totals.countryTime.map(PostgresTimestamp.format) })::timestamptz[]
                ) WITH ORDINALITY AS u(w, s, te, us, b, v, n, p, c, d, f, l, co, ct, o)
                ORDER BY o
                ON CONFLICT (workspace_id, session_id, tenant_id, user_id, is_bot) DO UPDATE SET
                    visitor_id = coalesce(t.visitor_id, EXCLUDED.visitor_id),
                    events = t.events + EXCLUDED.events,
                    page_views = t.page_views + EXCLUDED.page_views,
                    clicks = t.clicks + EXCLUDED.clicks,
                    duration_sum = CASE WHEN t.duration_sum IS NULL THEN EXCLUDED.duration_sum
                                        ELSE t.duration_sum + coalesce(EXCLUDED.duration_sum, 0) END,
                    first_time = least(t.first_time, EXCLUDED.first_time),
                    last_time = greatest(t.last_time, EXCLUDED.last_time),
                    country = CASE WHEN t.country_time IS NULL OR EXCLUDED.country_time > t.country_time THEN EXCLUDED.country
                                   WHEN EXCLUDED.country_time = t.country_time THEN least(t.country, EXCLUDED.country)
                                   ELSE t.country END,
                    country_time = greatest(t.country_time, EXCLUDED.country_time)
            ), active AS (
                INSERT INTO visitor_hours (workspace_id, hour, tenant_id, is_bot, visitor_id)
                SELECT w, to_timestamp(h), t, b, v
                FROM unnest(
                    \(hours.map(\.visitor.workspaceID)), \(hours.map(\.hour)), \(hours.map(\.tenantID)), \(hours.map(\.isBot)),
                    \(hours.map { visitorIDs[$0.visitor]! })
                ) WITH ORDINALITY AS u(w, h, t, b, v, n)
                ORDER BY n
                ON CONFLICT DO NOTHING
            ), typed AS (
                INSERT INTO visitor_days (workspace_id, event_type, day, visitor_id, tenant_id, is_bot)
                SELECT w, et, date '1970-01-01' + d::int, v, t, b
                FROM unnest(
                    \(days.map(\.visitor.workspaceID)), \(days.map(\.eventType)), \(days.map(\.day)), \(days.map { visitorIDs[$0.visitor]! }),
                    \(days.map(\.tenantID)), \(days.map(\.isBot))
                ) WITH ORDINALITY AS u(w, et, d, v, t, b, n)
                ORDER BY n
                ON CONFLICT DO NOTHING
            )
            SELECT pg_notify(\(RealtimeNotice.channel), payload) FROM unnest(\(notices)) AS payload
            """,
            prepared: true
        )
    }

    private struct EventKey: Hashable {
        var workspaceID: Int
        var eventID: String
    }

    /// Inserts the batch's event ids and returns those that were new (each once, however often it appears).
    private func claimEventIDs(_ records: [EventRecord], on connection: PostgresConnection) async throws -> Set<EventKey> {
        var idsByWorkspace: [Int: [String]] = [:]
        for record in records {
            if let eventID = record.eventID { idsByWorkspace[record.workspaceID, default: []].append(eventID) }
        }
        var fresh: Set<EventKey> = []
        for (workspaceID, ids) in idsByWorkspace {
            let rows = try await connection.query(
                """
                INSERT INTO event_ids (workspace_id, event_id)
                SELECT \(workspaceID), id FROM unnest(\(ids)::text[]) AS id
                ON CONFLICT DO NOTHING
                RETURNING event_id
                """,
                prepared: true
            )
            for eventID in try rows.decode((String).self) { fresh.insert(EventKey(workspaceID: workspaceID, eventID: eventID)) }
        }
        return fresh
    }
}
