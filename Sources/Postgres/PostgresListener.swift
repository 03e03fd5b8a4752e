import CLibPQ
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle

/// A notification received on a `LISTEN`ed channel.
public struct PostgresNotification: Sendable, Hashable {
    /// The channel it was sent on.
    public var channel: String
    /// The payload given to `pg_notify`.
    public var payload: String
    /// The server process of the session that sent it.
    public var senderPID: Int32
}

/// Listens on channels over a dedicated connection and delivers notifications as an `AsyncSequence`.
///
/// `run()` connects, issues `LISTEN` for each channel, and waits for notifications until cancelled or shut
/// down. When the connection breaks (for example when the server restarts) it reconnects with backoff and
/// listens again; notifications sent while it was disconnected are lost, which `reconnections` lets callers notice.
public final class PostgresListener: Service, Sendable {
    public let channels: [String]
    let configuration: PostgresConfiguration
    let threadPool: NIOThreadPool
    let logger: Logger
    private let continuation: AsyncStream<PostgresNotification>.Continuation
    /// Every notification on the listened channels, in the order the server sent them.
    public let notifications: AsyncStream<PostgresNotification>
    private let reconnectContinuation: AsyncStream<Void>.Continuation
    /// Yields each time the listener has (re)connected and is listening again.
    public let reconnections: AsyncStream<Void>

    /// Creates a listener; nothing happens until `run()`. The listener occupies one thread of `threadPool` while it waits.
    public init(configuration: PostgresConfiguration, channels: [String], threadPool: NIOThreadPool, logger: Logger) {
        self.configuration = configuration
        self.channels = channels
        self.threadPool = threadPool
        self.logger = logger
        (notifications, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(100_000))
        (reconnections, reconnectContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(1))
    }

    /// Listens until the task is cancelled or graceful shutdown begins.
    public func run() async throws {
        defer {
            continuation.finish()
            reconnectContinuation.finish()
        }
        await withGracefulShutdownHandler {
            await listenLoop()
        } onGracefulShutdown: {
        }
    }

    private func listenLoop() async {
        var backoff: Duration = .milliseconds(100)
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                let connection = try await PostgresConnection.connect(configuration, threadPool: threadPool)
                backoff = .milliseconds(100)
                do {
                    try await listen(on: connection)
                } catch {
                    await connection.close()
                    throw error
                }
                await connection.close()
            } catch {
                logger.warning("listener connection lost; reconnecting", metadata: ["error": "\(String(reflecting: error))"])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(5))
            }
        }
    }

    /// Listens on `connection` until cancelled or shut down; throws when the connection breaks.
    private func listen(on connection: PostgresConnection) async throws {
        for channel in channels {
            try await connection.executeScript(unsafeSQL: "LISTEN \(PostgresIdentifier.quote(channel))")
        }
        reconnectContinuation.yield()
        logger.debug("listening", metadata: ["channels": "\(channels)"])
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            let received = try await connection.waitForNotifications(timeout: .milliseconds(250))
            for notification in received { continuation.yield(notification) }
        }
    }
}

extension PostgresConnection {
    /// Waits up to `timeout` for notifications and returns those that arrived (possibly none).
    public func waitForNotifications(timeout: Duration) async throws -> [PostgresNotification] {
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        return try await threadPool.runIfActive { [self] in
            var received = try readNotifications()
            guard received.isEmpty else { return received }
            var descriptor = pollfd(fd: PQsocket(pointer), events: Int16(POLLIN), revents: 0)
            guard descriptor.fd >= 0 else { throw connectionError() }
            let ready = poll(&descriptor, 1, milliseconds)
            if ready > 0 { received = try readNotifications() }
            return received
        }
    }

    /// Consumes input without blocking and returns queued notifications.
    func readNotifications() throws(PostgresError) -> [PostgresNotification] {
        guard PQconsumeInput(pointer) == 1, !isBroken else {
            // A FATAL message (shutdown, pg_terminate_backend) ends the session before its socket closes.
            let message = String(cString: PQerrorMessage(pointer))
            throw PostgresError(.connectionLost, message: message.isEmpty ? "the server ended the session" : message)
        }
        var received: [PostgresNotification] = []
        while let notify = PQnotifies(pointer) {
            received.append(
                PostgresNotification(
                    channel: String(cString: notify.pointee.relname),
                    payload: String(cString: notify.pointee.extra),
                    senderPID: notify.pointee.be_pid
                )
            )
            PQfreemem(notify)
        }
        return received
    }
}
