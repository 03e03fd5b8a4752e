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
///
/// A batched client (`?batch=1`) is handed each commit's events as one ready `{"type":"batch",…}` message, shared
/// with every client whose filter matched the same events; its capacity still counts events.
public final class RealtimeSubscriber: Sendable {
    struct State {
        var messages: [ByteBuffer] = []
        /// Messages queued, counting each event of a batch.
        var queued = 0
        var dropped = 0
        var closed = false
    }

    /// How far forced messages may go past the capacity.
    static let forcedAllowance = 1_000

    let id: Int
    public let filter: RealtimeFilter
    /// Whether the client asked for batch messages.
    let batched: Bool
    let capacity: Int
    /// Counts every dropped message server-wide (`GET /metrics`).
    let droppedCounter: Counter?
    private let state = Mutex(State())
    private let doorbell: AsyncStream<Void>
    private let ring: AsyncStream<Void>.Continuation

    init(id: Int, filter: RealtimeFilter, capacity: Int, batched: Bool = false, droppedCounter: Counter? = nil) {
        self.id = id
        self.filter = filter
        self.batched = batched
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
            guard state.queued < capacity + (force ? Self.forcedAllowance : 0) else {
                state.dropped += 1
                return false
            }
            state.messages.append(message)
            state.queued += 1
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
            let room = max(0, capacity - state.queued)
            state.messages.append(contentsOf: messages.prefix(room))
            state.queued += min(room, messages.count)
            let dropped = max(0, messages.count - room)
            state.dropped += dropped
            return dropped
        }
        if dropped < messages.count { ring.yield() }
        if dropped > 0 { droppedCounter?.increment(by: Int64(dropped)) }
    }

    /// Queues a batch message holding `count` events whole, or drops it whole when they do not fit.
    func offer(batch: ByteBuffer, count: Int) {
        let queued = state.withLock { state -> Bool in
            guard !state.closed else { return false }
            guard state.queued + count <= capacity else {
                state.dropped += count
                return false
            }
            state.messages.append(batch)
            state.queued += count
            return true
        }
        if queued { ring.yield() } else { droppedCounter?.increment(by: Int64(count)) }
    }

    /// Counts messages the client missed without their being offered (the hub fell behind the writer); its next
    /// message reports them.
    func reportDropped(_ count: Int) {
        state.withLock { $0.dropped += count }
    }

    /// Queues a text message (the greeting, replies to the client's own messages).
    @discardableResult
    func offer(_ message: String, force: Bool = false) -> Bool { offer(ByteBuffer(string: message), force: force) }

    /// Waits for queued messages and takes them all, with the number dropped since the last take; nil once closed.
    /// Messages are UTF-8 JSON objects, shared between subscribers (a `ByteBuffer` is copied only on write).
    func take() async -> (messages: [ByteBuffer], dropped: Int)? {
        var iterator = doorbell.makeAsyncIterator()
        while true {
            let taken = state.withLock { state -> (messages: [ByteBuffer], dropped: Int)?? in
                if state.closed { return .some(nil) }
                guard !state.messages.isEmpty else { return nil }
                defer { (state.messages, state.queued, state.dropped) = ([], 0, 0) }
                return .some((state.messages, state.dropped))
            }
            if let taken { return taken }
            guard await iterator.next() != nil else { return nil }
        }
    }

    /// `take()` with the drops reported in the first message: `{"dropped":n,…}`.
    public func next() async -> [ByteBuffer]? {
        guard var (messages, dropped) = await take() else { return nil }
        if dropped > 0, var first = messages.first, first.readableBytesView.first == UInt8(ascii: "{") {
            first.moveReaderIndex(forwardBy: 1)
            var reported = ByteBuffer(string: "{\"dropped\":\(dropped),")
            reported.writeBuffer(&first)
            messages[0] = reported
            dropped = 0
        }
        return messages
    }

    func close() {
        state.withLock { $0.closed = true }
        ring.finish()
    }

    // MARK: Batch messages

    static let batchPrefix = ByteBuffer(string: #"{"type":"batch","messages":["#)

    /// `{"type":"batch"[,"dropped":n],"messages":[…]}` holding `messages`; a message that is itself a batch gives its
    /// messages, so a client that fell behind still gets one flat list.
    static func batchMessage(_ messages: some Collection<ByteBuffer>, dropped: Int = 0) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(messages.reduce(48) { $0 + $1.readableBytes + 1 })
        buffer.writeString(dropped > 0 ? #"{"type":"batch","dropped":\#(dropped),"messages":["# : #"{"type":"batch","messages":["#)
        var first = true
        for message in messages {
            var inner = message
            if message.readableBytesView.starts(with: batchPrefix.readableBytesView) {
                inner.moveReaderIndex(forwardBy: batchPrefix.readableBytes)
                inner.moveWriterIndex(to: inner.writerIndex - 2)  // "]}"
                if inner.readableBytes == 0 { continue }
            }
            if !first { buffer.writeInteger(UInt8(ascii: ",")) }
            buffer.writeImmutableBuffer(inner)
            first = false
        }
        buffer.writeString("]}")
        return buffer
    }
}
