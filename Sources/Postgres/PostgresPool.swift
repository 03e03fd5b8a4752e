import CLibPQ
import Logging
import NIOPosix
import ServiceLifecycle
import Synchronization

/// A bounded pool of connections.
///
/// `withConnection` lends a connection to one task at a time; when all are in use, callers wait (up to
/// `acquireTimeout`) for one to come back. Idle connections are checked before they are lent, so a backend
/// the server terminated is replaced instead of failing a request. When the server cannot be reached, calls
/// fail at once with an error whose `isUnavailable` is true, and succeed again once it is back.
///
/// As a `Service`, the pool closes its connections at graceful shutdown.
public final class PostgresPool: Service, Sendable {
    /// Pool settings.
    public struct Options: Sendable {
        /// The most connections open at once.
        public var size: Int
        /// How long a caller waits for a connection when all are in use.
        public var acquireTimeout: Duration

        public init(size: Int = 10, acquireTimeout: Duration = .seconds(10)) {
            self.size = max(1, size)
            self.acquireTimeout = acquireTimeout
        }
    }

    /// A snapshot of the pool's state, for metrics.
    public struct Statistics: Sendable, Equatable {
        public var open: Int
        public var inUse: Int
        public var idle: Int
        public var waiting: Int

        public init(open: Int, inUse: Int, idle: Int, waiting: Int) {
            self.open = open
            self.inUse = inUse
            self.idle = idle
            self.waiting = waiting
        }
    }

    public let configuration: PostgresConfiguration
    public let options: Options
    let threadPool: NIOThreadPool
    let logger: Logger
    private let state = Mutex(State())

    private enum Grant {
        case connection(PostgresConnection)
        case connect
    }

    private struct Waiter {
        let id: Int
        let continuation: CheckedContinuation<Grant, any Error>
    }

    private struct State {
        var idle: [PostgresConnection] = []
        /// Connections open or being opened, idle or lent.
        var open = 0
        var inUse = 0
        var waiters: [Waiter] = []
        var nextWaiterID = 0
        var closed = false
    }

    /// Creates a pool. Connections are opened on demand, on `threadPool` (which needs at least `options.size` threads
    /// so that every lent connection can make progress).
    public init(configuration: PostgresConfiguration, options: Options = Options(), threadPool: NIOThreadPool, logger: Logger) {
        self.configuration = configuration
        self.options = options
        self.threadPool = threadPool
        self.logger = logger
    }

    /// The current counts of open, lent, idle connections and waiting callers.
    public var statistics: Statistics {
        state.withLock { Statistics(open: $0.open, inUse: $0.inUse, idle: $0.idle.count, waiting: $0.waiters.count) }
    }

    /// Lends a connection to `body` and takes it back afterwards (a broken one is closed and replaced later).
    @discardableResult
    public func withConnection<Result>(
        isolation: isolated (any Actor)? = #isolation,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        let connection = try await lease()
        do {
            let result = try await body(connection)
            release(connection)
            return result
        } catch {
            release(connection)
            throw error
        }
    }

    /// Runs `body` in a transaction: committed when it returns, rolled back when it throws. `repeatableRead`: the
    /// whole transaction sees one snapshot (REPEATABLE READ) instead of one per statement.
    @discardableResult
    public func withTransaction<Result>(
        isolation: isolated (any Actor)? = #isolation,
        readOnly: Bool = false,
        repeatableRead: Bool = false,
        _ body: (PostgresConnection) async throws -> Result
    ) async throws -> Result {
        try await withConnection { connection in
            let level = repeatableRead ? " ISOLATION LEVEL REPEATABLE READ" : ""
            try await connection.executeScript(unsafeSQL: "BEGIN\(level)\(readOnly ? " READ ONLY" : "")")
            do {
                let result = try await body(connection)
                try await connection.commit()
                return result
            } catch {
                await connection.rollbackIfNeeded()
                throw error
            }
        }
    }

    /// Runs `body` in read-only transactions on up to `1 + extra` connections that all see one snapshot of the
    /// database: the first connection's (`REPEATABLE READ`; it exports its snapshot with `pg_export_snapshot`, the
    /// others import it with `SET TRANSACTION SNAPSHOT`), so work split among them reads the same rows as on one.
    /// The extra connections are only those the pool can lend at once (idle, or a slot free to open one) while no
    /// more than half of its connections would be lent: a caller never waits for them, so `body` may get the first
    /// connection alone, two callers each holding one connection cannot wait for each other's, and work split this
    /// way never takes the connections that other callers (the event writer among them) need when the server is busy.
    /// All transactions are committed when `body` returns and rolled back when it throws.
    @discardableResult
    public func withSharedSnapshot<Result>(
        isolation: isolated (any Actor)? = #isolation,
        extra: Int,
        _ body: ([PostgresConnection]) async throws -> Result
    ) async throws -> Result {
        try await withTransaction(readOnly: true, repeatableRead: true) { first in
            var others: [PostgresConnection] = []
            do {
                while others.count < extra, let spare = await leaseSpare() { others.append(spare) }
                if !others.isEmpty {
                    // The first statement of the transaction takes its snapshot.
                    let snapshot = try await first.query("SELECT pg_export_snapshot()")[0].decode(String.self)
                    var joined: [PostgresConnection] = []
                    for spare in others {
                        if await spare.importSnapshot(snapshot) { joined.append(spare) } else { release(spare) }
                    }
                    others = joined
                }
                let result = try await body([first] + others)
                while let other = others.popLast() {
                    defer { release(other) }
                    try await other.commit()
                }
                return result
            } catch {
                for other in others {
                    await other.rollbackIfNeeded()
                    release(other)
                }
                throw error
            }
        }
    }

    /// Runs one statement on a pooled connection.
    @discardableResult
    public func query(_ query: PostgresQuery) async throws -> PostgresRows {
        try await withConnection { try await $0.query(query) }
    }

    /// Runs one statement on a pooled connection and returns the number of rows it affected.
    @discardableResult
    public func execute(_ query: PostgresQuery) async throws -> Int {
        try await withConnection { try await $0.execute(query) }
    }

    /// Publishes a notification with `pg_notify`.
    public func notify(channel: String, payload: String) async throws {
        try await withConnection { try await $0.notify(channel: channel, payload: payload) }
    }

    /// Waits for graceful shutdown, then closes the pool.
    public func run() async throws {
        try? await gracefulShutdown()
        await close()
    }

    /// Closes idle connections and fails waiting callers; lent connections are closed when they come back.
    public func close() async {
        let (idle, waiters) = state.withLock { state in
            state.closed = true
            defer {
                state.open -= state.idle.count
                state.idle = []
                state.waiters = []
            }
            return (state.idle, state.waiters)
        }
        for waiter in waiters {
            waiter.continuation.resume(throwing: PostgresError(.poolClosed, message: "the pool was closed while waiting"))
        }
        for connection in idle { await connection.close() }
    }

    // MARK: Lending

    private func lease() async throws -> PostgresConnection {
        let grant = try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Grant, any Error>) in
            let (immediate, waiterID): (Result<Grant, any Error>?, Int?) = state.withLock { state in
                if state.closed {
                    return (.failure(PostgresError(.poolClosed, message: "the pool is closed")), nil)
                }
                if let connection = state.idle.popLast() {
                    state.inUse += 1
                    return (.success(.connection(connection)), nil)
                }
                if state.open < options.size {
                    state.open += 1
                    state.inUse += 1
                    return (.success(.connect), nil)
                }
                let id = state.nextWaiterID
                state.nextWaiterID += 1
                state.waiters.append(Waiter(id: id, continuation: continuation))
                return (nil, id)
            }
            if let immediate {
                continuation.resume(with: immediate)
            } else if let waiterID {
                scheduleTimeout(for: waiterID)
            }
        }
        switch grant {
        case .connection(let connection):
            if await connection.checkAlive() { return connection }
            logger.info("replacing a broken database connection", metadata: ["backend_pid": "\(connection.backendPID)"])
            await connection.close()
            return try await openInGrantedSlot()
        case .connect:
            return try await openInGrantedSlot()
        }
    }

    /// A connection if one is idle or a slot is free to open one, and lending it leaves at least half of the pool's
    /// connections free; without waiting (nor taking one from a waiting caller). `nil` otherwise, or when the
    /// database cannot be reached.
    private func leaseSpare() async -> PostgresConnection? {
        enum Spare { case none, connection(PostgresConnection), connect }
        let spare = state.withLock { state -> Spare in
            guard !state.closed, state.waiters.isEmpty, state.inUse < options.size / 2 else { return .none }
            if let connection = state.idle.popLast() {
                state.inUse += 1
                return .connection(connection)
            }
            guard state.open < options.size else { return .none }
            state.open += 1
            state.inUse += 1
            return .connect
        }
        switch spare {
        case .none:
            return nil
        case .connection(let connection):
            if await connection.checkAlive() { return connection }
            await connection.close()
            giveBackSlot()
            return nil
        case .connect:
            return try? await openInGrantedSlot()
        }
    }

    /// Opens a connection in a slot already counted as open and lent; gives the slot back when that fails.
    private func openInGrantedSlot() async throws -> PostgresConnection {
        do {
            return try await PostgresConnection.connect(configuration, threadPool: threadPool)
        } catch {
            giveBackSlot()
            if let error = error as? PostgresError {
                logger.warning("cannot connect to the database", metadata: ["error": "\(String(reflecting: error))"])
            }
            throw error
        }
    }

    private func scheduleTimeout(for waiterID: Int) {
        let timeout = options.acquireTimeout
        Task { [self] in
            try? await Task.sleep(for: timeout)
            let waiter = state.withLock { state -> Waiter? in
                guard let index = state.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                return state.waiters.remove(at: index)
            }
            waiter?.continuation.resume(
                throwing: PostgresError(.poolTimeout, message: "no database connection became free within \(timeout)")
            )
        }
    }

    private func release(_ connection: PostgresConnection) {
        if connection.isBroken || state.withLock({ $0.closed }) {
            Task { await connection.close() }
            giveBackSlot()
            return
        }
        let waiter = state.withLock { state -> Waiter? in
            if !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.inUse -= 1
            state.idle.append(connection)
            return nil
        }
        waiter?.continuation.resume(returning: .connection(connection))
    }

    /// Frees a lent slot whose connection is gone; a waiting caller gets the slot to open a new connection.
    private func giveBackSlot() {
        let waiter = state.withLock { state -> Waiter? in
            if !state.closed, !state.waiters.isEmpty { return state.waiters.removeFirst() }
            state.open -= 1
            state.inUse -= 1
            return nil
        }
        waiter?.continuation.resume(returning: .connect)
    }
}

extension PostgresConnection {
    /// Rolls back the open transaction, if there is one and the connection still works.
    func rollbackIfNeeded() async {
        _ = try? await threadPool.runIfActive { [self] in
            guard !isBroken, PQtransactionStatus(pointer) != PQTRANS_IDLE else { return }
            _ = try? execBlocking(sql: "ROLLBACK", binds: nil)
        }
    }

    /// Begins a read-only transaction that sees the snapshot another transaction exported; false (and no
    /// transaction open) when it cannot: the exporting transaction ended, or the connection broke.
    func importSnapshot(_ snapshot: String) async -> Bool {
        // The identifier is spliced (SET TRANSACTION SNAPSHOT takes no parameters): only what PostgreSQL's
        // identifiers are made of (hexadecimal digits and dashes) is accepted.
        guard !snapshot.isEmpty, snapshot.utf8.allSatisfy(Self.isSnapshotByte) else { return false }
        do {
            try await executeScript(
                unsafeSQL: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT '\(snapshot)'"
            )
            return true
        } catch {
            await rollbackIfNeeded()
            return false
        }
    }

    private static func isSnapshotByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "F"), UInt8(ascii: "a")...UInt8(ascii: "f"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }

    /// Commits the open transaction; fails (after rolling back) when an earlier statement already aborted it.
    func commit() async throws {
        try await threadPool.runIfActive { [self] in
            if PQtransactionStatus(pointer) == PQTRANS_INERROR {
                _ = try? execBlocking(sql: "ROLLBACK", binds: nil)
                throw PostgresError(.server, code: SQLState(rawValue: "25P02"), message: "the transaction was aborted by an earlier error")
            }
            _ = try execBlocking(sql: "COMMIT", binds: nil)
        }
    }
}
