import Foundation
import HummingbirdBcrypt
import NIOPosix
import Postgres
import Synchronization

/// A user as shown by the API: never with a password hash.
public struct UserAccount: Sendable, Equatable, Encodable {
    public var id: Int
    public var username: String
    public var email: String
    public var fullName: String?
    public var isActive: Bool
    public var isSuperuser: Bool
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case id, username, email
        case fullName = "full_name", isActive = "is_active", isSuperuser = "is_superuser", createdAt = "created_at"
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(username, forKey: .username)
        try container.encode(email, forKey: .email)
        try container.encode(fullName, forKey: .fullName)  // null when absent, not left out
        try container.encode(isActive, forKey: .isActive)
        try container.encode(isSuperuser, forKey: .isSuperuser)
        try container.encode(PostgresTimestamp.iso8601(createdAt), forKey: .createdAt)
    }

    static let selectList = "id, username, email, full_name, is_active, is_superuser, created_at"

    static func decode(_ row: PostgresRow) throws -> UserAccount {
        let (id, username, email, fullName, isActive, isSuperuser, createdAt) = try row.decode(
            (Int, String, String, String?, Bool, Bool, Date).self
        )
        return UserAccount(
            id: id,
            username: username,
            email: email,
            fullName: fullName,
            isActive: isActive,
            isSuperuser: isSuperuser,
            createdAt: createdAt
        )
    }
}

/// A registration as sent to `POST /api/auth/register` (and by `analytics-api create-user`).
public struct Registration: Sendable, Decodable {
    public var username: String?
    public var email: String?
    public var password: String?
    public var fullName: String?

    enum CodingKeys: String, CodingKey {
        case username, email, password
        case fullName = "full_name"
    }

    public init(username: String, email: String, password: String, fullName: String? = nil) {
        self.username = username
        self.email = email
        self.password = password
        self.fullName = fullName
    }

    /// The fields, or every problem with them (422 naming each field).
    func validated() throws(APIError) -> (username: String, email: String, password: String, fullName: String?) {
        var issues: [APIError.ValidationIssue] = []
        func missing(_ field: String) { issues.append(.init(loc: ["body", field], msg: "Field required", type: "missing")) }
        if let username {
            if !(3...50).contains(username.count) || !username.unicodeScalars.allSatisfy(Self.usernameCharacters.contains) {
                issues.append(
                    .init(loc: ["body", "username"], msg: "must be 3 to 50 letters, digits, '.', '_' or '-'", type: "string_pattern_mismatch")
                )
            }
        } else {
            missing("username")
        }
        if let email {
            if !Self.isEmail(email) { issues.append(.init(loc: ["body", "email"], msg: "is not a valid email address", type: "value_error")) }
        } else {
            missing("email")
        }
        if let password {
            if password.count < 8 {
                issues.append(.init(loc: ["body", "password"], msg: "must be at least 8 characters long", type: "string_too_short"))
            } else if password.utf8.count > 72 {
                // bcrypt reads only the first 72 bytes: longer passwords would be silently cut.
                issues.append(.init(loc: ["body", "password"], msg: "must be at most 72 bytes long", type: "string_too_long"))
            }
        } else {
            missing("password")
        }
        if let fullName, fullName.count > 200 {
            issues.append(.init(loc: ["body", "full_name"], msg: "must be at most 200 characters long", type: "string_too_long"))
        }
        guard issues.isEmpty, let username, let email, let password else { throw APIError.validation(issues) }
        let name = fullName?.trimmingCharacters(in: .whitespaces)
        return (username, email, password, name?.isEmpty == false ? name : nil)
    }

    static let usernameCharacters = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    /// `local@domain.tld`: one `@`, no spaces, a dot in the domain, at most 254 characters.
    static func isEmail(_ text: String) -> Bool {
        let parts = text.split(separator: "@", omittingEmptySubsequences: false)
        guard text.count <= 254, parts.count == 2, !parts[0].isEmpty, !text.contains(where: \.isWhitespace) else { return false }
        let domain = parts[1].split(separator: ".", omittingEmptySubsequences: false)
        return domain.count >= 2 && domain.allSatisfy { !$0.isEmpty }
    }
}

/// Users who log in: registration (with the `REGISTRATION` policy; the first user becomes superuser), password
/// checks with bcrypt (on a thread pool, never on an event loop), lookups.
public struct UserDirectory: Sendable {
    let pool: PostgresPool
    let bcryptCost: UInt8
    /// Hashing runs here: bcrypt takes tens to hundreds of milliseconds by design.
    let threadPool: NIOThreadPool

    public init(pool: PostgresPool, bcryptCost: Int, threadPool: NIOThreadPool = .singleton) {
        self.pool = pool
        self.bcryptCost = UInt8(clamping: bcryptCost)
        self.threadPool = threadPool
    }

    /// Who is registering, for the `REGISTRATION` policy.
    public enum Registrar: Sendable {
        /// Someone without a login (or a user who is not a superuser).
        case anonymous
        /// A superuser, who may always add users.
        case superuser
        /// The command line, run by whoever runs the server.
        case operator_
    }

    /// Registers a user. The first user ever is a superuser (and so is any user the command line makes one).
    public func register(
        _ registration: Registration,
        policy: AppConfig.RegistrationPolicy,
        by registrar: Registrar,
        superuser: Bool = false
    ) async throws -> UserAccount {
        let fields = try registration.validated()
        if policy == .closed, case .anonymous = registrar {
            throw APIError.forbidden("registration is closed on this server (REGISTRATION=closed): ask an administrator for an account")
        }
        let hash = try await hashPassword(fields.password)
        return try await pool.withTransaction { connection in
            // One registration at a time, so that exactly one user can be the first.
            try await connection.execute("SELECT pg_advisory_xact_lock(hashtext('analytics_api.users'))")
            let (isFirst, usernameTaken, emailTaken) = try await connection.query(
                """
                SELECT NOT EXISTS (SELECT 1 FROM users),
                       EXISTS (SELECT 1 FROM users WHERE lower(username) = lower(\(fields.username))),
                       EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(\(fields.email)))
                """
            )[0].decode((Bool, Bool, Bool).self)
            if policy == .firstUser, !isFirst, case .anonymous = registrar {
                throw APIError.forbidden(
                    "registration is open only for the first user (REGISTRATION=first-user): ask an administrator for an account"
                )
            }
            if usernameTaken { throw APIError.badRequest("Username already registered") }
            if emailTaken { throw APIError.badRequest("Email already registered") }
            let rows = try await connection.query(
                """
                INSERT INTO users (username, email, full_name, hashed_password, is_superuser)
                VALUES (\(fields.username), \(fields.email), \(fields.fullName), \(hash), \(isFirst || superuser))
                RETURNING \(unsafeSQL: UserAccount.selectList)
                """
            )
            return try UserAccount.decode(rows[0])
        }
    }

    /// The user whose password matches, `nil` otherwise. Takes as long for an unknown user as for a wrong
    /// password, so timing does not tell which usernames exist.
    public func authenticate(username: String, password: String) async throws -> UserAccount? {
        let rows = try await pool.query(
            "SELECT \(unsafeSQL: UserAccount.selectList), hashed_password FROM users WHERE lower(username) = lower(\(username))"
        )
        guard let row = rows.first else {
            _ = try await verifyPassword(password, hash: try await decoyHash())
            return nil
        }
        let hash = try row.decode(String.self, column: "hashed_password")
        guard try await verifyPassword(password, hash: hash) else { return nil }
        return try UserAccount.decode(row)
    }

    public func find(id: Int) async throws -> UserAccount? {
        try await pool.query("SELECT \(unsafeSQL: UserAccount.selectList) FROM users WHERE id = \(id)").first.map(UserAccount.decode)
    }

    public func list() async throws -> [UserAccount] {
        try await pool.query("SELECT \(unsafeSQL: UserAccount.selectList) FROM users ORDER BY id").map(UserAccount.decode)
    }

    func hashPassword(_ password: String) async throws -> String {
        let cost = bcryptCost
        return try await threadPool.runIfActive { Bcrypt.hash(password, cost: cost) }
    }

    func verifyPassword(_ password: String, hash: String) async throws -> Bool {
        try await threadPool.runIfActive { Bcrypt.verify(password, hash: hash) }
    }

    /// A bcrypt hash of a random password at this cost, checked against when the user does not exist.
    func decoyHash() async throws -> String {
        if let hash = Self.decoys.withLock({ $0[bcryptCost] }) { return hash }
        let hash = try await hashPassword(APITokenStore.makeSecret())
        Self.decoys.withLock { $0[bcryptCost] = hash }
        return hash
    }

    private static let decoys = Mutex<[UInt8: String]>([:])
}
