import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A context that knows the client's address.
public protocol ClientAddressContext: RequestContext {
    /// The peer of the connection (a proxy, when there is one in front).
    var remoteAddress: SocketAddress? { get }
    /// Whether `X-Forwarded-For` names the client (`TRUST_FORWARDED_FOR`).
    var trustForwardedFor: Bool { get }
}

extension ClientAddressContext {
    /// The client's IP: the first `X-Forwarded-For` entry when trusted and present, else the connection's peer.
    public func clientIP(_ request: Request) -> String? {
        if trustForwardedFor, let forwarded = request.headers[.xForwardedFor]?.split(separator: ",").first {
            let ip = forwarded.trimmingCharacters(in: .whitespaces)
            if !ip.isEmpty { return ip }
        }
        return remoteAddress?.ipAddress
    }
}

/// The request context used by every route: Hummingbird's core context, the client's address, and who the
/// request comes from when it carries a credential (see `AuthenticationMiddleware` and `AuthenticatedContext`).
public struct AppRequestContext: IdentifiedRequestContext, RemoteAddressRequestContext, ClientAddressContext {
    public var coreContext: CoreRequestContextStorage
    /// The peer of the connection (a proxy, when there is one in front).
    public let remoteAddress: SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// JSON with ISO-8601 dates and unescaped slashes (`"/pricing"`, not `"\/pricing"`).
    public var responseEncoder: JSONEncoder { JSONEncoder.api }

    /// Whether `X-Forwarded-For` names the client (`TRUST_FORWARDED_FOR`); set by the router's middleware.
    public var trustForwardedFor = false

    /// Who sent the request, when it carried a valid credential; set by `AuthenticationMiddleware`.
    public var identity: Identity?
}

extension HTTPField.Name {
    static let xForwardedFor = Self("X-Forwarded-For")!
}

extension JSONEncoder {
    /// The encoder of every JSON response.
    static var api: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

/// Records on the context whether `X-Forwarded-For` is trusted.
struct ProxyMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext
    let trustForwardedFor: Bool

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        context.trustForwardedFor = trustForwardedFor
        return try await next(request, context)
    }
}
