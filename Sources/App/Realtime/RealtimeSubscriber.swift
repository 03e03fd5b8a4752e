import NIOCore
import Prometheus
import Synchronization

/// What a WebSocket client asked to see: its scope (from its token, or the default workspace when anonymous) and
/// optional filters on event type and page.
public struct RealtimeFilter: Sendable, Equatable {
    public var scope: DataScope
    public var eventType: String?
    public var page: String?

    public init(scope: DataScope, eventType: String? = nil, page: String? = nil) {
        self.scope = scope
        self.eventType = eventType
        self.page = page
    }

    func matches(_ record: EventRecord) -> Bool {
        record.workspaceID == scope.workspaceID
            && (scope.tenantID == nil || record.tenantID == scope.tenantID)
            && (eventType == nil || record.eventType == eventType)
            && (page == nil || record.page == page)
    }
}

/// One connected client's outbox: a bounded queue of JSON messages that the hub fills without ever waiting and the
/// client's connection drains. When the queue is full, new messages are dropped and counted; the next message the
/// client receives carries `"dropped": n`, so a slow client knows what it missed and never slows anyone else down.
public final class RealtimeSubscriber: Sendable {
    struct State {
        var messages: [ByteBuffer] = []
        var dropped = 0
        var closed = false
    }

    /// How far forced messages may go past the capacity.
    static let forcedAllowance = 1_000

    let id: Int
    public let filter: RealtimeFilter
    let capacity: Int
    /// Counts every dropped message server-wide (`GET /metrics`).
    let droppedCounter: Counter?
    private let state = Mutex(State())
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    init(id: Int, filter: RealtimeFilter, capacity: Int, droppedCounter: Counter? = nil) {
        self.id = id
        self.filter = filter
        self.capacity = max(1, capacity)
        self.droppedCounter = droppedCounter
        (doorbell, ring) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Queues a message unless the queue is full (then counts it as dropped); `force` lets it past a full queue by up
    /// to `forcedAllowance` messages (for the greeting and the replies to the client's own requests). Returns whether
    /// it was queued.
    @discardableResult
    func offer(_ message: ByteBuffer, force: Bool = false) -> Bool {
        let queued = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            // Forced messages (greetings, pongs) may go past the capacity, but not without bound: a client that
            // sends pings without reading must not grow its queue for ever.
            guard state.messages.count < capacity + (force ? Self.forcedAllowance : 0) else {
                state.dropped += 1
                return false
            }
            state.messages.append(message)
            return true
        }
        if queued { ring.yield() } else { droppedCounter?.increment() }
        return queued
    }

    /// Queues messages in order, as many as fit; the rest are dropped (and counted). One lock and one wake-up for all of
    /// them: the hub hands each client a commit's events at once.
    func offer(contentsOf messages: [ByteBuffer]) {
        guard !messages.isEmpty else { return }
        let dropped = state.withLock { state -> Int in
            guard !state.closed else { return 0 }
            let room = max(0, capacity - state.messages.count)
            state.messages.append(contentsOf: messages.prefix(room))
            let dropped = max(0, messages.count - room)
            state.dropped += dropped
            return dropped
        }
        if dropped < messages.count { ring.yield() }
        if dropped > 0 { droppedCounter?.increment(by: Int64(dropped)) }
    }

    /// Queues a text message (the greeting, replies to the client's own messages).
    @discardableResult
    func offer(_ message: String, force: Bool = false) -> Bool { offer(ByteBuffer(string: message), force: force) }

    /// Waits for queued messages and takes them all; nil once closed. The first message reports drops since the last
    /// take. Messages are UTF-8 JSON objects, shared between subscribers (a `ByteBuffer` is copied only on write).
    public func next() async -> [ByteBuffer]? {
        var iterator = doorbell.makeAsyncIterator()
        while true {
            let taken = state.withLock { state -> [ByteBuffer]?? in
                if state.closed { return .some(nil) }
                guard !state.messages.isEmpty else { return nil }
                var messages = state.messages
                state.messages = []
                if state.dropped > 0, var first = messages.first, first.readInteger(as: UInt8.self) == UInt8(ascii: "{") {
                    var reported = ByteBuffer(string: "{\"dropped\":\(state.dropped),")
                    reported.writeBuffer(&first)
                    messages[0] = reported
                    state.dropped = 0
                }
                return .some(messages)
            }
            if let taken { return taken }
            guard await iterator.next() != nil else { return nil }
        }
    }

    func close() {
        state.withLock { $0.closed = true }
        ring.finish()
    }
}
