import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Postgres

/// Turns the credential of a request into an `Identity`: a user's login JWT, a stored API token, or the
/// `ADMIN_TOKEN` setting (an admin token of the default workspace that is not stored).
public final class Authenticator: Sendable {
    let loginTokens: LoginTokens
    let tokens: APITokenStore
    let users: UserDirectory
    let adminToken: String?
    /// Users are looked up at most once per few seconds; a deactivated user is refused within that time.
    private let userCache = ExpiringCache<Int, AuthenticatedUser?>(ttl: .seconds(5))

    init(loginTokens: LoginTokens, tokens: APITokenStore, users: UserDirectory, adminToken: String?) {
        self.loginTokens = loginTokens
        self.tokens = tokens
        self.users = users
        self.adminToken = adminToken
    }

    /// The identity of `credential`, or 401.
    func identify(_ credential: String) async throws -> Identity {
        if let adminToken, Self.constantTimeEqual(credential, adminToken) {
            return .token(TokenGrant(id: nil, name: "ADMIN_TOKEN", workspaceID: Workspace.defaultID, scopes: [.admin], tenantID: nil))
        }
        if LoginTokens.looksLikeJWT(credential) {
            guard let userID = await loginTokens.verify(credential) else {
                throw APIError.unauthorized("Could not validate credentials: the login token is invalid or expired")
            }
            guard let user = try await activeUser(id: userID) else {
                throw APIError.unauthorized("Could not validate credentials: the user no longer exists or is inactive")
            }
            return .user(user)
        }
        if credential.hasPrefix(APITokenStore.secretPrefix), let grant = try await tokens.grant(for: credential) {
            return .token(grant)
        }
        throw APIError.unauthorized("invalid token: it is unknown, revoked or expired")
    }

    private func activeUser(id: Int) async throws -> AuthenticatedUser? {
        if let cached = userCache.value(for: id) { return cached }
        let user = try await users.find(id: id).flatMap { account in
            account.isActive ? AuthenticatedUser(id: account.id, username: account.username, isSuperuser: account.isSuperuser) : nil
        }
        userCache.store(user, for: id)
        return user
    }

    /// The credential a request carries: `Authorization: Bearer <token>`, or `?token=` where clients cannot set
    /// headers (`/v0`, as the hosted platform's clients send it, and the realtime WebSocket).
    static func credential(in request: Request) -> String? {
        if let header = request.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" {
                let token = parts[1].trimmingCharacters(in: .whitespaces)
                if !token.isEmpty { return token }
            }
        }
        let path = request.uri.path
        if path.hasPrefix("/v0/") || path.hasPrefix("/api/realtime"), let token = request.formParameters["token"], !token.isEmpty {
            return String(token)
        }
        return nil
    }

    /// Compares without an early exit, so timing does not reveal how much of a guess was right.
    static func constantTimeEqual(_ lhs: String, _ rhs: String) -> Bool {
        let left = Array(lhs.utf8)
        let right = Array(rhs.utf8)
        var difference = UInt8(left.count == right.count ? 0 : 1)
        for index in 0..<max(left.count, right.count) {
            difference |= (index < left.count ? left[index] : 0) ^ (index < right.count ? right[index] : 0)
        }
        return difference == 0
    }
}

/// A request context that carries the identity `AuthenticationMiddleware` resolved.
public protocol IdentifiedRequestContext: RequestContext {
    /// Who sent the request, when it carried a valid credential.
    var identity: Identity? { get set }
}

/// Resolves the request's credential, when it has one, into `context.identity`. A credential that is not valid
/// is refused with 401 on every route, even one that allows anonymous requests. Routes that need an identity
/// are mounted on a group of `AuthenticatedContext`, which cannot be created without one.
struct AuthenticationMiddleware<Context: IdentifiedRequestContext>: RouterMiddleware {
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let credential = Authenticator.credential(in: request) else { return try await next(request, context) }
        var context = context
        context.identity = try await authenticator.identify(credential)
        return try await next(request, context)
    }
}

/// The context of routes that need an identity: having one is a compile-time fact for their handlers.
public struct AuthenticatedContext: ChildRequestContext, ClientAddressContext {
    public typealias ParentContext = AppRequestContext
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    public let trustForwardedFor: Bool
    public let identity: Identity

    public init(context: AppRequestContext) throws {
        guard let identity = context.identity else {
            throw APIError.unauthorized("Not authenticated: send Authorization: Bearer <token> (under /v0, ?token=<token> works too)")
        }
        coreContext = context.coreContext
        remoteAddress = context.remoteAddress
        trustForwardedFor = context.trustForwardedFor
        self.identity = identity
    }

    public var responseEncoder: JSONEncoder { JSONEncoder.api }

    /// 403 unless the identity allows `permission`.
    func require(_ permission: Permission) throws(APIError) {
        guard identity.allows(permission) else {
            throw APIError.forbidden("Not enough permissions: \(identity.label) lacks the scope \(permission)")
        }
    }

    /// 403 unless the identity is a superuser.
    func requireSuperuser() throws(APIError) -> AuthenticatedUser {
        guard case .user(let user) = identity, user.isSuperuser else {
            throw APIError.forbidden("Not enough permissions: this needs a superuser's login token")
        }
        return user
    }
}

/// Checks one permission for every route of a group.
struct RequirePermission: RouterMiddleware {
    typealias Context = AuthenticatedContext
    let permission: Permission

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        try context.require(permission)
        return try await next(request, context)
    }
}
