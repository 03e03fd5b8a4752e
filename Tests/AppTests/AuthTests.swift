import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Postgres
import PostgresTestSupport
import Testing

@testable import App

/// Registers a user and returns the response's status and body.
@discardableResult
func register(
    _ client: any TestClientProtocol,
    _ username: String,
    email: String? = nil,
    password: String = "secure123",
    headers: HTTPFields = [:]
) async throws -> (HTTPResponse.Status, [String: JSONValue]) {
    let body =
        #"{"username": "\#(username)", "email": "\#(email ?? username + "@example.com")", "password": "\#(password)", "full_name": "Data Analyst"}"#
    return try await client.execute(uri: "/api/auth/register", method: .post, headers: headers, body: ByteBuffer(text: body)) { response in
        (response.status, (try? response.json()) ?? [:])
    }
}

/// Logs in with JSON and returns the access token.
func login(_ client: any TestClientProtocol, _ username: String, password: String = "secure123") async throws -> String {
    try await client.execute(
        uri: "/api/auth/login",
        method: .post,
        body: ByteBuffer(text: #"{"username": "\#(username)", "password": "\#(password)"}"#)
    ) { response in
        #expect(response.status == .ok, "\(String(buffer: response.body))")
        guard case .string(let token)? = try response.json()["access_token"] else { return "" }
        return token
    }
}

/// A JWT made by hand, signed (or not) as an attacker would.
func forgedJWT(header: String, payload: String, sign: ((Data) -> Data)?) -> String {
    let encodedHeader = Data(header.utf8).base64URLEncodedString
    let encodedPayload = Data(payload.utf8).base64URLEncodedString
    let signature = sign.map { $0(Data("\(encodedHeader).\(encodedPayload)".utf8)).base64URLEncodedString } ?? ""
    return "\(encodedHeader).\(encodedPayload).\(signature)"
}

/// The `SECRET_KEY` of test applications.
let testSecret = String(repeating: "k", count: 32)

@Suite("Users, login tokens, API tokens, workspaces and tenants")
struct AuthTests {
    @Test("seed 004: register → login (JSON and form) → me; the first user is the superuser and no password is shown")
    func seedFlow() async throws {
        try await withTestApp { client, _ in
            let seedBody = """
                {
                    "username": "analyst",
                    "email": "analyst@example.com",
                    "password": "secure123",
                    "full_name": "Data Analyst"
                  }
                """
            try await client.execute(uri: "/api/auth/register", method: .post, body: ByteBuffer(text: seedBody)) { response in
                #expect(response.status == .created)
                let user = try response.json()
                #expect(user["username"] == "analyst")
                #expect(user["email"] == "analyst@example.com")
                #expect(user["full_name"] == "Data Analyst")
                #expect(user["is_superuser"] == .bool(true))
                #expect(user["is_active"] == .bool(true))
                #expect(Set(user.keys) == ["id", "username", "email", "full_name", "is_active", "is_superuser", "created_at"])
                #expect(!String(buffer: response.body).contains("secure123"))
            }
            let seedLogin = """
                {
                    "username": "analyst",
                    "password": "secure123"
                  }
                """
            let token = try await client.execute(uri: "/api/auth/login", method: .post, body: ByteBuffer(text: seedLogin)) { response in
                #expect(response.status == .ok)
                let body = try response.json()
                #expect(body["token_type"] == "bearer")
                guard case .string(let token)? = body["access_token"] else { throw TestFailure("no access_token") }
                return token
            }
            try await client.execute(uri: "/api/auth/me", method: .get, headers: bearer(token)) { response in
                #expect(response.status == .ok)
                let json1 = try response.json()
                #expect(json1["username"] == "analyst")
            }
            // The OAuth2 password flow's form, as FastAPI clients send it.
            try await client.execute(
                uri: "/api/auth/login",
                method: .post,
                headers: [.contentType: "application/x-www-form-urlencoded"],
                body: ByteBuffer(text: "grant_type=password&username=analyst&password=secure123")
            ) { response in
                #expect(response.status == .ok)
                let json2 = try response.json()
                #expect(json2["token_type"] == "bearer")
            }
            // The second user is not a superuser, and only superusers list users.
            let (status, second) = try await register(client, "viewer")
            #expect(status == .created)
            #expect(second["is_superuser"] == .bool(false))
            let viewer = try await login(client, "viewer")
            try await client.execute(uri: "/api/auth/users", method: .get, headers: bearer(viewer)) { #expect($0.status == .forbidden) }
            try await client.execute(uri: "/api/auth/users", method: .get, headers: bearer(token)) { response in
                #expect(response.status == .ok)
                let users = try response.json([[String: JSONValue]].self)
                #expect(users.map { $0["username"] } == ["analyst", "viewer"])
                #expect(!String(buffer: response.body).contains("hashed_password"))
            }
            try await client.execute(uri: "/api/auth/me", method: .get) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
            }
        }
    }

    @Test("duplicate and invalid registrations are refused with the field named; passwords are stored as bcrypt hashes")
    func invalidRegistrations() async throws {
        try await withTestApp { client, pool in
            #expect(try await register(client, "analyst").0 == .created)
            let (status, body) = try await register(client, "analyst", email: "other@example.com")
            #expect(status == .badRequest)
            #expect(body["detail"] == "Username already registered")
            let (emailStatus, emailBody) = try await register(client, "another", email: "ANALYST@example.com")
            #expect(emailStatus == .badRequest)
            #expect(emailBody["detail"] == "Email already registered")

            for (username, email, password, field) in [
                ("ok_name", "not-an-email", "secure123", "email"),
                ("ok_name", "ok@example.com", "short", "password"),
                ("no spaces!", "ok@example.com", "secure123", "username"),
                ("x", "ok@example.com", "secure123", "username"),
            ] {
                let (status, body) = try await register(client, username, email: email, password: password)
                #expect(status == .unprocessableContent, "\(field)")
                guard case .array(let issues)? = body["detail"], case .object(let issue)? = issues.first else {
                    Issue.record("no issue list for \(field)")
                    continue
                }
                #expect(issue["loc"] == .array(["body", .string(field)]))
            }
            try await client.execute(uri: "/api/auth/register", method: .post, body: ByteBuffer(text: #"{"username": 5}"#)) {
                #expect($0.status == .unprocessableContent)
            }
            let hash = try await pool.query("SELECT hashed_password FROM users WHERE username = 'analyst'")[0].decode(String.self, at: 0)
            #expect(hash.hasPrefix("$2b$"))
            #expect(!hash.contains("secure123"))
        }
    }

    @Test("wrong credentials get 401 with WWW-Authenticate; an inactive user gets 400; failed logins are rate-limited")
    func loginFailures() async throws {
        try await withTestApp(["LOGIN_RATE_LIMIT": "2"]) { client, pool in
            try await register(client, "analyst")
            try await register(client, "sleeper")
            try await pool.execute("UPDATE users SET is_active = false WHERE username = 'sleeper'")
            let wrong = ByteBuffer(text: #"{"username": "analyst", "password": "wrong-password"}"#)
            try await client.execute(uri: "/api/auth/login", method: .post, body: wrong) { response in
                #expect(response.status == .unauthorized)
                #expect(response.headers[.wwwAuthenticate] == "Bearer")
                let json3 = try response.json()
                #expect(json3["detail"] == "Incorrect username or password")
            }
            try await client.execute(
                uri: "/api/auth/login",
                method: .post,
                body: ByteBuffer(text: #"{"username": "nobody", "password": "secure123"}"#)
            ) { #expect($0.status == .unauthorized) }
            try await client.execute(
                uri: "/api/auth/login",
                method: .post,
                body: ByteBuffer(text: #"{"username": "sleeper", "password": "secure123"}"#)
            ) { response in
                #expect(response.status == .badRequest)
                let json4 = try response.json()
                #expect(json4["detail"] == "Inactive user")
            }
            // Two a minute with bursts of four, per username and per IP: this IP has failed twice above; two more
            // failures pass, then 429, even for the right password.
            var statuses: [HTTPResponse.Status] = []
            for _ in 0..<3 {
                try await client.execute(uri: "/api/auth/login", method: .post, body: wrong) { statuses.append($0.status) }
            }
            #expect(statuses == [.unauthorized, .unauthorized, .tooManyRequests])
            try await client.execute(
                uri: "/api/auth/login",
                method: .post,
                body: ByteBuffer(text: #"{"username": "analyst", "password": "secure123"}"#)
            ) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] != nil)
            }
        }
    }

    @Test("forged, tampered, expired and wrong-algorithm login tokens all get 401")
    func jwtAttacks() async throws {
        try await withTestApp { client, _ in
            try await register(client, "analyst")
            let valid = try await login(client, "analyst")
            try await client.execute(uri: "/api/auth/me", method: .get, headers: bearer(valid)) { #expect($0.status == .ok) }

            let now = Int(Date().timeIntervalSince1970)
            let claims = #"{"sub": "1", "iat": \#(now), "exp": \#(now + 600)}"#
            let hs256 = { (data: Data) in Data(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: Data(testSecret.utf8)))) }
            let hs512 = { (data: Data) in Data(HMAC<SHA512>.authenticationCode(for: data, using: SymmetricKey(data: Data(testSecret.utf8)))) }
            let otherKey = { (data: Data) in
                Data(HMAC<SHA256>.authenticationCode(for: data, using: SymmetricKey(data: Data(String(repeating: "x", count: 32).utf8))))
            }
            // The control: a hand-made token with the right key and algorithm is accepted, so the refusals below are
            // about what each one changes.
            let handMade = forgedJWT(header: #"{"alg": "HS256", "typ": "JWT"}"#, payload: claims, sign: hs256)
            try await client.execute(uri: "/api/auth/me", method: .get, headers: bearer(handMade)) { #expect($0.status == .ok) }

            let parts = valid.split(separator: ".").map(String.init)
            let attacks: [(String, String)] = [
                ("alg none", forgedJWT(header: #"{"alg": "none", "typ": "JWT"}"#, payload: claims, sign: nil)),
                ("alg None", forgedJWT(header: #"{"alg": "None", "typ": "JWT"}"#, payload: claims, sign: nil)),
                ("HS512 with the right key", forgedJWT(header: #"{"alg": "HS512", "typ": "JWT"}"#, payload: claims, sign: hs512)),
                ("HS256 header, HS512 signature", forgedJWT(header: #"{"alg": "HS256", "typ": "JWT"}"#, payload: claims, sign: hs512)),
                ("RS256 header", forgedJWT(header: #"{"alg": "RS256", "typ": "JWT"}"#, payload: claims, sign: hs256)),
                ("another key", forgedJWT(header: #"{"alg": "HS256", "typ": "JWT"}"#, payload: claims, sign: otherKey)),
                (
                    "expired",
                    forgedJWT(
                        header: #"{"alg": "HS256", "typ": "JWT"}"#,
                        payload: #"{"sub": "1", "iat": \#(now - 7200), "exp": \#(now - 3600)}"#,
                        sign: hs256
                    )
                ),
                ("no exp", forgedJWT(header: #"{"alg": "HS256", "typ": "JWT"}"#, payload: #"{"sub": "1", "iat": \#(now)}"#, sign: hs256)),
                (
                    "unknown user",
                    forgedJWT(
                        header: #"{"alg": "HS256", "typ": "JWT"}"#,
                        payload: #"{"sub": "999", "iat": \#(now), "exp": \#(now + 600)}"#,
                        sign: hs256
                    )
                ),
                (
                    "tampered payload",
                    parts[0] + "." + Data(#"{"sub": "2", "iat": \#(now), "exp": \#(now + 600)}"#.utf8).base64URLEncodedString + "." + parts[2]
                ),
                ("no signature", parts[0] + "." + parts[1] + "."),
                ("garbage", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln"),
            ]
            for (name, token) in attacks {
                try await client.execute(uri: "/api/auth/me", method: .get, headers: bearer(token)) { response in
                    #expect(response.status == .unauthorized, "\(name)")
                    #expect(response.headers[.wwwAuthenticate] == "Bearer", "\(name)")
                }
            }
        }
    }

    @Test("REGISTRATION=first-user admits only the first user (and a superuser's additions); closed admits nobody")
    func registrationPolicies() async throws {
        try await withTestApp(["REGISTRATION": "first-user"]) { client, _ in
            #expect(try await register(client, "founder").0 == .created)
            let (status, body) = try await register(client, "stranger")
            #expect(status == .forbidden)
            #expect(body["detail"] != nil)
            let founder = try await login(client, "founder")
            let (added, user) = try await register(client, "colleague", headers: bearer(founder))
            #expect(added == .created)
            #expect(user["is_superuser"] == .bool(false))
        }
        try await withTestApp(["REGISTRATION": "closed"]) { client, pool in
            let (status, _) = try await register(client, "anyone")
            #expect(status == .forbidden)
            let users = try await pool.query("SELECT count(*) FROM users")[0].decode(Int.self, at: 0)
            #expect(users == 0)
        }
    }

    @Test("API tokens: shown once, stored hashed, scoped, listed without secrets, revocable and expiring")
    func apiTokens() async throws {
        try await withTestApp { client, pool in
            func createToken(_ body: String, auth: HTTPFields = adminAuth) async throws -> (HTTPResponse.Status, [String: JSONValue]) {
                try await client.execute(uri: "/v0/tokens", method: .post, headers: auth, body: ByteBuffer(text: body)) { response in
                    (response.status, (try? response.json()) ?? [:])
                }
            }
            func secret(_ body: [String: JSONValue]) -> String {
                if case .string(let token)? = body["token"] { return token }
                return ""
            }
            let (created, reader) = try await createToken(#"{"name": "dashboard", "scopes": ["read"]}"#)
            #expect(created == .created)
            let readToken = secret(reader)
            #expect(readToken.hasPrefix("ak_") && readToken.count == 46)
            #expect(reader["scopes"] == .array(["read"]))
            #expect(reader["tenant_id"] == .null)
            let appendToken = secret(try await createToken(#"{"name": "collector", "scopes": ["append"]}"#).1)
            let userEventsToken = secret(try await createToken(#"{"name": "narrow", "scopes": ["append:user_events"]}"#).1)

            // Never stored in clear: no column of any row contains a secret; the hash is SHA-256 of it.
            let stored = try await pool.query("SELECT t::text FROM api_tokens t").map { try $0.decode(String.self, at: 0) }
            #expect(stored.count == 3)
            for token in [readToken, appendToken, userEventsToken] {
                #expect(!stored.contains { $0.contains(token) || $0.contains(String(token.dropFirst(11))) })
            }
            let hashed = try await pool.query(
                "SELECT count(*) FROM api_tokens WHERE token_hash = sha256(convert_to(\(readToken), 'UTF8'))"
            )[0].decode(Int.self, at: 0)
            #expect(hashed == 1)

            let event = ByteBuffer(text: #"{"event_type": "click", "user_id": "u1", "session_id": "s1", "timestamp": "2024-01-01 00:00:00"}"#)
            // append: ingests, cannot read.
            try await client.execute(uri: "/v0/events?name=user_events&token=\(appendToken)", method: .post, body: event) {
                #expect($0.status == .accepted)
            }
            try await client.execute(uri: "/api/events/", method: .post, headers: bearer(appendToken), body: event) { #expect($0.status == .created) }
            try await client.execute(uri: "/api/analytics/sessions", method: .get, headers: bearer(appendToken)) { response in
                #expect(response.status == .forbidden)
                #expect(String(buffer: response.body).contains("read"))
            }
            // read: reads, cannot ingest.
            try await client.execute(uri: "/api/analytics/sessions", method: .get, headers: bearer(readToken)) { #expect($0.status == .ok) }
            try await client.execute(uri: "/v0/events?name=user_events&token=\(readToken)", method: .post, body: event) { response in
                #expect(response.status == .forbidden)
                let json5 = try response.json()
                #expect(json5["error"] != nil)
            }
            try await client.execute(uri: "/api/events/", method: .post, headers: bearer(readToken), body: event) { #expect($0.status == .forbidden) }
            // append:user_events: only that datasource.
            try await client.execute(uri: "/v0/events?name=user_events", method: .post, headers: bearer(userEventsToken), body: event) {
                #expect($0.status == .accepted)
            }
            try await client.execute(uri: "/v0/events?name=events", method: .post, headers: bearer(userEventsToken), body: event) {
                #expect($0.status == .forbidden)
            }
            // Only admins manage tokens or read the quarantine.
            #expect(try await createToken(#"{"name": "x", "scopes": ["read"]}"#, auth: bearer(readToken)).0 == .forbidden)
            try await client.execute(uri: "/v0/datasources/user_events_quarantine", method: .get, headers: bearer(appendToken)) {
                #expect($0.status == .forbidden)
            }

            // Listed without secrets, newest first, with when each was last used.
            let listed = try await client.execute(uri: "/v0/tokens", method: .get, headers: adminAuth) { response in
                #expect(response.status == .ok)
                let text = String(buffer: response.body)
                #expect(!text.contains(readToken) && !text.contains(appendToken))
                guard case .array(let tokens)? = try response.json()["tokens"] else { return [[String: JSONValue]]() }
                return tokens.compactMap { if case .object(let object) = $0 { object } else { nil } }
            }
            #expect(listed.map { $0["name"] } == ["narrow", "collector", "dashboard"])
            #expect(listed.allSatisfy { $0["token"] == nil })
            #expect(listed.first { $0["name"] == "dashboard" }?["last_used_at"] != .null)

            // Bad requests name what is wrong.
            for body in [
                #"{"name": "x", "scopes": ["write"]}"#, #"{"name": "x", "scopes": []}"#, #"{"scopes": ["read"]}"#,
                #"{"name": "x", "scopes": ["append:nowhere"]}"#, #"{"name": "x", "scopes": ["read"], "expires_at": "yesterday"}"#,
                #"{"name": "x", "scopes": ["read"], "expires_at": "2001-01-01 00:00:00"}"#, "not json",
            ] {
                let (status, error) = try await createToken(body)
                #expect(status == .badRequest, "\(body)")
                #expect(error["error"] != nil, "\(body)")
            }

            // Revoked: 204, then 401; revoking again or an unknown id: 404.
            guard case .string(let readID)? = reader["id"] else { throw TestFailure("no id") }
            try await client.execute(uri: "/v0/tokens/\(readID)", method: .delete, headers: adminAuth) { #expect($0.status == .noContent) }
            try await client.execute(uri: "/api/analytics/sessions", method: .get, headers: bearer(readToken)) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/v0/tokens/\(readID)", method: .delete, headers: adminAuth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/v0/tokens/not-a-uuid", method: .delete, headers: adminAuth) { #expect($0.status == .notFound) }

            // Expired tokens are refused.
            let (_, soon) = try await createToken(#"{"name": "soon", "scopes": ["read"], "expires_at": "2999-01-01T00:00:00Z"}"#)
            #expect(soon["expires_at"] == "2999-01-01T00:00:00Z")
            try await pool.execute("UPDATE api_tokens SET expires_at = now() - interval '1 second' WHERE name = 'soon'")
            try await client.execute(uri: "/api/analytics/sessions", method: .get, headers: bearer(secret(soon))) {
                #expect($0.status == .unauthorized)
            }
            // Unknown tokens too, under /v0 with {"error"}.
            try await client.execute(uri: "/v0/tokens?token=ak_unknown", method: .get) { response in
                #expect(response.status == .unauthorized)
                let json6 = try response.json()
                #expect(json6["error"] != nil)
            }
            try await client.execute(uri: "/v0/tokens", method: .get) { #expect($0.status == .unauthorized) }

            // A tenant's admin manages only its tenant's tokens: it lists them alone and cannot revoke another's.
            let tenantAdmin = secret(try await createToken(#"{"name": "t-admin", "scopes": ["admin"], "tenant_id": "t9"}"#).1)
            let (_, t9Reader) = try await createToken(#"{"name": "t9 reader", "scopes": ["read"]}"#, auth: bearer(tenantAdmin))
            #expect(t9Reader["tenant_id"] == "t9")
            let tenantListed = try await client.execute(uri: "/v0/tokens", method: .get, headers: bearer(tenantAdmin)) { response in
                guard case .array(let tokens)? = try response.json()["tokens"] else { return [JSONValue]() }
                return tokens
            }
            #expect(tenantListed.count == 2)
            guard case .object(let appendInfo)? = listed.first(where: { $0["name"] == "collector" }).map(JSONValue.object),
                case .string(let appendID)? = appendInfo["id"]
            else { throw TestFailure("no collector id") }
            try await client.execute(uri: "/v0/tokens/\(appendID)", method: .delete, headers: bearer(tenantAdmin)) {
                #expect($0.status == .notFound)
            }
            try await client.execute(uri: "/v0/events?name=user_events&token=\(appendToken)", method: .post, body: event) {
                #expect($0.status == .accepted)
            }
        }
    }

    @Test("workspaces: a superuser creates them; each has its own events and tokens; names and templates are checked")
    func workspaces() async throws {
        try await withTestApp { client, _ in
            try await register(client, "root")
            try await register(client, "viewer")
            let root = try await login(client, "root")
            let viewer = try await login(client, "viewer")
            func create(_ body: String, auth: HTTPFields) async throws -> (HTTPResponse.Status, [String: JSONValue]) {
                try await client.execute(uri: "/v0/workspaces", method: .post, headers: auth, body: ByteBuffer(text: body)) { response in
                    (response.status, (try? response.json()) ?? [:])
                }
            }
            let (status, shop) = try await create(#"{"name": "shop", "templates": ["product"]}"#, auth: bearer(root))
            #expect(status == .created)
            #expect(shop["name"] == "shop")
            #expect(shop["templates"] == .array(["product"]))
            guard case .string(let shopAdmin)? = shop["admin_token"] else { throw TestFailure("no admin_token") }
            #expect(try await create(#"{"name": "shop", "templates": []}"#, auth: bearer(root)).0 == .conflict)
            #expect(try await create(#"{"name": "Bad Name", "templates": []}"#, auth: bearer(root)).0 == .badRequest)
            let (collision, message) = try await create(#"{"name": "both", "templates": ["engagement", "product"]}"#, auth: bearer(root))
            #expect(collision == .badRequest)
            #expect((message["error"].flatMap { if case .string(let text) = $0 { text } else { nil } } ?? "").contains("active_users"))
            #expect(try await create(#"{"name": "odd", "templates": ["nope"]}"#, auth: bearer(root)).0 == .badRequest)
            #expect(try await create(#"{"name": "mine", "templates": []}"#, auth: bearer(viewer)).0 == .forbidden)
            #expect(try await create(#"{"name": "mine", "templates": []}"#, auth: adminAuth).0 == .forbidden)
            try await client.execute(uri: "/v0/workspaces", method: .get, headers: bearer(root)) { response in
                let text = String(buffer: response.body)
                #expect(text.contains("\"default\"") && text.contains("\"shop\""))
                #expect(!text.contains(shopAdmin))
            }

            // Events sent with the shop's token land in the shop; the default workspace does not see them, and the
            // shop's token does not see the default workspace's.
            let shopEvent = ByteBuffer(text: #"{"session_id": "shop-session", "page": "/cart"}"#)
            let defaultEvent = ByteBuffer(text: #"{"session_id": "default-session", "page": "/"}"#)
            try await client.execute(uri: "/v0/events?name=user_events&wait=true&token=\(shopAdmin)", method: .post, body: shopEvent) {
                #expect($0.status == .ok)
            }
            try await client.execute(uri: "/api/events/", method: .post, body: defaultEvent) { #expect($0.status == .created) }
            let shopSessions = try await rows(client, "/api/analytics/sessions", headers: bearer(shopAdmin))
            #expect(shopSessions.map { $0["session_id"] } == ["shop-session"])
            let defaultSessions = try await rows(client, "/api/analytics/sessions", headers: adminAuth)
            #expect(defaultSessions.map { $0["session_id"] } == ["default-session"])
            let userSessions = try await rows(client, "/api/analytics/sessions", headers: bearer(viewer))
            #expect(userSessions.map { $0["session_id"] } == ["default-session"])
            // Tokens belong to their workspace: the shop's admin lists only the shop's tokens.
            try await client.execute(uri: "/v0/tokens", method: .get, headers: bearer(shopAdmin)) { response in
                guard case .array(let tokens)? = try response.json()["tokens"] else { throw TestFailure("no tokens") }
                #expect(tokens.count == 1)
            }
        }
    }

    @Test("a tenant-bound token sees only its tenant, even through raw SQL on the shared read path and whatever it asks")
    func tenantIsolation() async throws {
        try await withTestApp { client, pool in
            let events = [
                #"{"tenant_id": "t1", "session_id": "a", "page": "/", "timestamp": "2024-03-01 10:00:00"}"#,
                #"{"tenant_id": "t1", "session_id": "a", "page": "/pricing", "timestamp": "2024-03-01 10:01:00"}"#,
                #"{"tenant_id": "t2", "session_id": "b", "page": "/", "timestamp": "2024-03-01 11:00:00"}"#,
                #"{"session_id": "c", "page": "/", "timestamp": "2024-03-01 12:00:00"}"#,
            ].joined(separator: "\n")
            try await client.execute(uri: "/api/events/batch", method: .post, body: ByteBuffer(text: events)) { #expect($0.status == .ok) }
            let tenantToken = try await client.execute(
                uri: "/v0/tokens",
                method: .post,
                headers: adminAuth,
                body: ByteBuffer(text: #"{"name": "tenant one", "scopes": ["read", "append"], "tenant_id": "t1"}"#)
            ) { response in
                #expect(response.status == .created)
                let json7 = try response.json()
                #expect(json7["tenant_id"] == "t1")
                guard case .string(let token)? = try response.json()["token"] else { throw TestFailure("no token") }
                return token
            }
            let window = "from=2024-03-01T00:00:00Z&to=2024-03-02T00:00:00Z"
            let sessions = try await rows(client, "/api/analytics/sessions?\(window)", headers: bearer(tenantToken))
            #expect(sessions.map { $0["session_id"] } == ["a"])
            // Asking for another tenant changes nothing (the parameter is not even one the endpoint takes).
            let pages = try await rows(client, "/api/analytics/pages?\(window)&tenant_id=t2", headers: bearer(tenantToken))
            #expect(pages.map { $0["page"] } == ["/", "/pricing"] || pages.map { $0["page"] } == ["/pricing", "/"])
            #expect(pages.map { $0["views"] } == [1, 1])
            let everyone = try await rows(client, "/api/analytics/sessions?\(window)", headers: adminAuth)
            #expect(everyone.count == 3)

            // Its events are its tenant's; a row naming another tenant is quarantined.
            let mixed = #"{"session_id": "d", "page": "/x"}"# + "\n" + #"{"session_id": "e", "page": "/y", "tenant_id": "t2"}"#
            try await client.execute(uri: "/v0/events?name=user_events&token=\(tenantToken)", method: .post, body: ByteBuffer(text: mixed)) {
                response in
                let json8 = try response.json()
                #expect(json8["successful_rows"] == 1)
                let json9 = try response.json()
                #expect(json9["quarantined_rows"] == 1)
            }
            #expect(try await pool.query("SELECT tenant_id FROM events WHERE session_id = 'd'")[0].decode(String?.self, at: 0) == "t1")

            // The read path itself: a raw SELECT * with no filter, for the token's identity, sees only tenant t1.
            let identity = try #require(try await APITokenStore(pool: pool).grant(for: tenantToken))
            let scope = Identity.token(identity).dataScope
            #expect(scope == DataScope(workspaceID: Workspace.defaultID, tenantID: "t1"))
            let seen = try await pool.withReadAccess(scope, timeout: 15) { connection in
                try await connection.query("SELECT tenant_id, session_id FROM events").decode((String?, String?).self)
            }
            #expect(seen.count == 3)
            #expect(seen.allSatisfy { $0.0 == "t1" })
            // A read split over two connections: each part sees the same rows, and runs without parallel workers
            // (the parts already share the cores); a single read keeps the server's setting. (A pool lends a second
            // connection only while under half of it is in use: this test's pool of two never does.)
            let wide = PostgresPool(
                configuration: pool.configuration,
                options: .init(size: 4),
                threadPool: TestDatabase.threadPool,
                logger: TestDatabase.logger
            )
            let part: PostgresQuery = """
                SELECT count(*) FILTER (WHERE tenant_id = 't1'), count(*), current_setting('max_parallel_workers_per_gather')
                FROM events
                """
            let split = try await wide.withParallelReadAccess(scope, connections: 2, timeout: 15) { connections in
                let parts = try await connections.query([part, part])
                return (connections.count, try parts.map { try $0.decode((Int, Int, String).self) })
            }
            await wide.close()
            #expect(split.0 == 2)
            #expect(split.1.flatMap { $0 }.map { "\($0.0) \($0.1) \($0.2)" } == ["3 3 0", "3 3 0"])
            let setting: PostgresQuery = "SELECT current_setting('max_parallel_workers_per_gather')"
            let serverSetting = try await pool.query(setting)[0].decode(String.self, at: 0)
            let single = try await pool.withReadAccess(scope, timeout: 15) { connection in
                try await connection.query(setting)[0].decode(String.self, at: 0)
            }
            let lone = try await pool.withParallelReadAccess(scope, connections: 1, timeout: 15) { connections in
                try await connections[0].query(setting)[0].decode(String.self, at: 0)
            }
            #expect(single == serverSetting && lone == serverSetting && serverSetting != "0")
            // The whole workspace without a tenant; nothing of another workspace.
            let all = try await pool.withReadAccess(DataScope(workspaceID: Workspace.defaultID), timeout: 15) { connection in
                try await connection.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
            }
            #expect(all == 5)
            let otherWorkspace = try await pool.withReadAccess(DataScope(workspaceID: 999), timeout: 15) { connection in
                try await connection.query("SELECT count(*) FROM events")[0].decode(Int.self, at: 0)
            }
            #expect(otherWorkspace == 0)
            // Quarantined rows have no tenant: the workspace sees the one above, a tenant sees none.
            let quarantined = try await pool.withReadAccess(DataScope(workspaceID: Workspace.defaultID), timeout: 15) { connection in
                try await connection.query("SELECT count(*) FROM quarantine")[0].decode(Int.self, at: 0)
            }
            let quarantinedForTenant = try await pool.withReadAccess(scope, timeout: 15) { connection in
                try await connection.query("SELECT count(*) FROM quarantine")[0].decode(Int.self, at: 0)
            }
            #expect(quarantined == 1 && quarantinedForTenant == 0)
            // The reader role cannot see users or tokens, nor write.
            await #expect(throws: PostgresError.self) {
                try await pool.withReadAccess(scope, timeout: 15) { connection in try await connection.query("SELECT count(*) FROM api_tokens") }
            }
            await #expect(throws: PostgresError.self) {
                try await pool.withReadAccess(scope, timeout: 15) { connection in
                    try await connection.execute("UPDATE events SET tenant_id = 't1'")
                }
            }
            #expect(try await pool.query("SELECT count(*) FROM events WHERE tenant_id = 't2'")[0].decode(Int.self, at: 0) == 1)
        }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
