import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdWebSocket
import NIOCore
import NIOWebSocket

/// Who may watch the realtime stream: the holder of a token with read access (its workspace, and its tenant when it
/// has one), a logged-in user (the default workspace), or anyone when `REALTIME_ANONYMOUS` is on (the default
/// workspace, as in seed 004).
struct RealtimeAccess: Sendable {
    let authenticator: Authenticator
    let allowAnonymous: Bool

    func scope(for identity: Identity?) throws(APIError) -> DataScope {
        guard let identity else {
            guard allowAnonymous else {
                throw APIError.unauthorized("Not authenticated: send Authorization: Bearer <token> or ?token=<token> (REALTIME_ANONYMOUS is off)")
            }
            return DataScope(workspaceID: Workspace.defaultID)
        }
        guard identity.allows(.readAnalytics) else {
            throw APIError.forbidden("Not enough permissions: \(identity.label) lacks the scope read")
        }
        return identity.dataScope
    }

    /// The scope and filters of a WebSocket request.
    func filter(for request: Request, identity: Identity?) throws(APIError) -> RealtimeFilter {
        let query = request.formParameters
        return RealtimeFilter(
            scope: try scope(for: identity),
            eventType: query["event_type"].flatMap { $0.isEmpty ? nil : String($0) },
            page: query["page"].flatMap { $0.isEmpty ? nil : String($0) }
        )
    }
}

/// The request context of WebSocket upgrades, which go through their own router (and its own
/// `AuthenticationMiddleware`) before the application's.
public struct RealtimeSocketContext: IdentifiedRequestContext, WebSocketRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let webSocket: WebSocketHandlerReference<Self>
    public var identity: Identity?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

/// `/api/realtime`: the dashboard page, the stats and the WebSocket stream (SPEC section 5, Realtime).
struct RealtimeController {
    let hub: RealtimeHub
    let access: RealtimeAccess
    /// `RealtimeDashboard`'s page.
    let dashboardHTML: String

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/api/realtime", use: dashboard)
        router.get("/api/realtime/stats", use: stats)
        router.get("/api/realtime/ws") { _, _ -> Response in
            throw APIError(
                .upgradeRequired,
                "This is a WebSocket endpoint: connect with ws:// (Upgrade: websocket)",
                headers: [.upgrade: "websocket"]
            )
        }
    }

    func addRoutes(to router: Router<RealtimeSocketContext>) {
        router.ws("/api/realtime/ws") { request, context in
            _ = try access.filter(for: request, identity: context.identity)
            return .upgrade([:])
        } onUpgrade: { inbound, outbound, context in
            let filter = try access.filter(for: context.request, identity: context.requestContext.identity)
            let batched = context.request.formParameters["batch"].map { $0 == "1" || $0 == "true" } ?? false
            try await stream(inbound: inbound, outbound: outbound, filter: filter, batched: batched)
        }
    }

    @Sendable func dashboard(_ request: Request, context: AppRequestContext) async throws -> Response {
        Response(
            status: .ok,
            headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: dashboardHTML))
        )
    }

    @Sendable func stats(_ request: Request, context: AppRequestContext) async throws -> JSONResponse<RealtimeStats> {
        JSONResponse(try await hub.stats(for: try access.scope(for: context.identity)))
    }

    /// Greets the client with its scope's stats and latest events, then forwards what the hub queues for it while
    /// answering its `ping`s. `batched` (`?batch=1`): everything waiting goes in one `{"type":"batch","messages":[…]}`
    /// message (with `"dropped": n` when messages were dropped), so a busy stream costs a client one WebSocket message
    /// per commit rather than one per event.
    func stream(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter, filter: RealtimeFilter, batched: Bool = false) async throws {
        let subscriber = hub.subscribe(filter, batched: batched)
        defer { hub.unsubscribe(subscriber) }
        if let stats = try? await hub.stats(for: filter.scope), let message = RealtimeHub.statsMessage(stats) {
            subscriber.offer(message, force: true)
        }
        for event in hub.recentEvents(for: filter) {
            subscriber.offer(RealtimeHub.eventMessage(event, recent: true), force: true)
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                if batched {
                    // Usually one commit's shared batch message, sent as it is; more when the client fell behind.
                    while let (messages, dropped) = await subscriber.take() {
                        let message =
                            messages.count == 1 && dropped == 0
                                && messages[0].readableBytesView.starts(with: RealtimeSubscriber.batchPrefix.readableBytesView)
                            ? messages[0] : RealtimeSubscriber.batchMessage(messages, dropped: dropped)
                        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: message)))
                    }
                } else {
                    while let messages = await subscriber.next() {
                        for message in messages { try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: message))) }
                    }
                }
            }
            for try await message in inbound.messages(maxSize: 64 * 1024) {
                guard case .text(let text) = message else { continue }
                subscriber.offer(Self.reply(to: text), force: true)
            }
            subscriber.close()
            group.cancelAll()
        }
    }

    /// The answer to a client message: `ping` (or `{"type":"ping"}`) gets `{"type":"pong"}`.
    static func reply(to text: String) -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed == "ping" { return #"{"type":"pong"}"# }
        if let object = try? JSONParser.parse(trimmed), case .object(let fields) = object, fields["type"] == .string("ping") {
            return #"{"type":"pong"}"#
        }
        return #"{"type":"error","error":"unknown message: send \"ping\" or {\"type\":\"ping\"}"}"#
    }
}

extension HTTPField.Name {
    static let upgrade = Self("Upgrade")!
}
