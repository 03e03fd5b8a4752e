import Foundation
import HTTPTypes
import Hummingbird

/// Authentication of the `/v0` API until scoped API tokens exist: the `ADMIN_TOKEN` setting is the one valid token,
/// an admin token of the default workspace. Tokens come as `Authorization: Bearer <token>` or `?token=`.
struct V0Authenticator: Sendable {
    /// What a request needs the token to allow.
    enum Scope: Sendable {
        case admin, append, read
    }

    let adminToken: String?

    /// The workspace the request acts on, or 401 when the token is missing or not valid.
    func authenticate(_ request: Request, scope: Scope) throws(APIError) -> Int {
        guard let token = Self.token(in: request) else {
            throw APIError.unauthorized("missing token: send Authorization: Bearer <token> or ?token=<token>")
        }
        guard let adminToken else {
            throw APIError.unauthorized("no API token is valid yet: set ADMIN_TOKEN on the server")
        }
        guard Self.constantTimeEqual(token, adminToken) else {
            throw APIError.unauthorized("invalid token")
        }
        return Workspace.defaultID
    }

    static func token(in request: Request) -> String? {
        if let header = request.headers[.authorization], header.lowercased().hasPrefix("bearer ") {
            let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces)
            if !token.isEmpty { return token }
        }
        if let token = request.uri.queryParameters["token"], !token.isEmpty { return String(token) }
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
