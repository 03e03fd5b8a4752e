import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat

/// `/api/auth/*` (seed 004): registration, login (JSON or the OAuth2 password form), the current user, and the
/// list of users for superusers.
struct AuthController: Sendable {
    let users: UserDirectory
    let loginTokens: LoginTokens
    let registration: AppConfig.RegistrationPolicy
    /// Failed logins allowed per username and per client IP (`LOGIN_RATE_LIMIT` a minute); nil: no limit.
    let failedLogins: RateLimiter?

    func addRoutes(to router: Router<AppRequestContext>, authenticated: RouterGroup<AuthenticatedContext>) {
        router.post("/api/auth/register", use: register)
        router.post("/api/auth/login", use: login)
        authenticated.get("/api/auth/me", use: me)
        authenticated.get("/api/auth/users", use: list)
    }

    /// `POST /api/auth/register` → 201 with the user. A superuser's login token may register users whatever the
    /// `REGISTRATION` policy says.
    @Sendable func register(_ request: Request, context: AppRequestContext) async throws -> Response {
        var request = request
        let data = Data(buffer: try await request.collectBody(upTo: 64 * 1024))
        let body: Registration
        do {
            body = try JSONDecoder().decode(Registration.self, from: data)
        } catch let error as DecodingError {
            throw APIError.validation([.init(loc: ["body"], msg: error.clientDescription, type: "json_invalid")])
        }
        let registrar: UserDirectory.Registrar
        if case .user(let user)? = context.identity, user.isSuperuser { registrar = .superuser } else { registrar = .anonymous }
        let account = try await users.register(body, policy: registration, by: registrar)
        return try account.response(status: .created)
    }

    struct LoginRequest: Decodable {
        var username: String?
        var password: String?
    }

    struct LoginResponse: ResponseEncodable {
        var accessToken: String
        var tokenType = "bearer"
        var expiresIn: Int

        enum CodingKeys: String, CodingKey {
            case accessToken = "access_token", tokenType = "token_type", expiresIn = "expires_in"
        }
    }

    /// `POST /api/auth/login` with `{"username", "password"}` or `username=…&password=…` (form-encoded) →
    /// `{"access_token", "token_type": "bearer"}`. Wrong credentials: 401; an inactive user: 400; too many
    /// failures for the username or from the IP: 429.
    @Sendable func login(_ request: Request, context: AppRequestContext) async throws -> LoginResponse {
        var request = request
        let data = Data(buffer: try await request.collectBody(upTo: 64 * 1024))
        let credentials = try Self.parseLogin(data, contentType: request.headers[.contentType])
        guard let username = credentials.username, !username.isEmpty, let password = credentials.password, !password.isEmpty else {
            var issues: [APIError.ValidationIssue] = []
            if credentials.username?.isEmpty ?? true { issues.append(.init(loc: ["body", "username"], msg: "Field required", type: "missing")) }
            if credentials.password?.isEmpty ?? true { issues.append(.init(loc: ["body", "password"], msg: "Field required", type: "missing")) }
            throw APIError.validation(issues)
        }
        let keys = ["user:" + username.lowercased(), "ip:" + (context.clientIP(request) ?? "unknown")]
        if let failedLogins {
            for key in keys {
                let decision = failedLogins.check(key, consume: false)
                if !decision.allowed {
                    throw APIError(
                        .tooManyRequests,
                        "too many failed logins: retry in \(decision.retryAfterSeconds) s",
                        headers: [.retryAfter: String(decision.retryAfterSeconds)]
                    )
                }
            }
        }
        guard let account = try await users.authenticate(username: username, password: password) else {
            if let failedLogins { for key in keys { _ = failedLogins.check(key) } }
            throw APIError.unauthorized("Incorrect username or password")
        }
        guard account.isActive else { throw APIError.badRequest("Inactive user") }
        let token = try await loginTokens.issue(userID: account.id)
        return LoginResponse(accessToken: token, expiresIn: Int(loginTokens.lifetime))
    }

    /// JSON, or the OAuth2 password flow's form (`grant_type=password&username=…&password=…`).
    static func parseLogin(_ data: Data, contentType: String?) throws -> LoginRequest {
        let isForm = contentType?.lowercased().hasPrefix("application/x-www-form-urlencoded") ?? false
        let trimmed = data.drop(while: { $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }
        )
        // curl -d sends JSON labelled as a form: what the body looks like decides.
        if trimmed.first == UInt8(ascii: "{") || !isForm {
            do {
                return try JSONDecoder().decode(LoginRequest.self, from: data)
            } catch let error as DecodingError {
                throw APIError.validation([.init(loc: ["body"], msg: error.clientDescription, type: "json_invalid")])
            }
        }
        do {
            return try URLEncodedFormDecoder().decode(LoginRequest.self, from: String(decoding: data, as: UTF8.self))
        } catch {
            throw APIError.validation([.init(loc: ["body"], msg: "is not a valid form (username=…&password=…)", type: "value_error")])
        }
    }

    /// `GET /api/auth/me`: the logged-in user.
    @Sendable func me(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        guard case .user(let user) = context.identity else {
            throw APIError.forbidden("this is an API token, not a user's login token: /api/auth/me describes users")
        }
        guard let account = try await users.find(id: user.id) else { throw APIError.unauthorized("the user no longer exists") }
        return try account.response(status: .ok)
    }

    /// `GET /api/auth/users` (superuser): every user.
    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        _ = try context.requireSuperuser()
        return try JSONResponse(try await users.list()).response(status: .ok)
    }
}

/// Any encodable value as a JSON response.
struct JSONResponse<Value: Encodable & Sendable>: ResponseEncodable {
    var value: Value
    init(_ value: Value) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

extension UserAccount: ResponseEncodable {}
