import Foundation

/// Who made a request: a logged-in user (JWT) or an API token.
public enum Identity: Sendable, Equatable {
    case user(AuthenticatedUser)
    case token(TokenGrant)

    /// The workspace the request acts on: the token's own, or `default` for users.
    public var workspaceID: Int {
        switch self {
        case .user: Workspace.defaultID
        case .token(let grant): grant.workspaceID
        }
    }

    /// Whose rows this identity's reads may see (enforced by PostgreSQL, see `withReadAccess`).
    public var dataScope: DataScope {
        switch self {
        case .user: DataScope(workspaceID: Workspace.defaultID)
        case .token(let grant): DataScope(workspaceID: grant.workspaceID, tenantID: grant.tenantID)
        }
    }

    /// Whether this identity may do `permission` in its workspace.
    ///
    /// A superuser may do anything; other users may read (analytics and pipes) of the default workspace. A token
    /// may do what one of its scopes allows: `admin` everything, `append` any ingest and `append:<datasource>` that
    /// one, `read` analytics and every pipe and `read:<pipe>` that pipe only.
    public func allows(_ permission: Permission) -> Bool {
        switch self {
        case .user(let user):
            if user.isSuperuser { return true }
            switch permission {
            case .readAnalytics, .readPipe: return true
            case .admin, .append: return false
            }
        case .token(let grant):
            return grant.scopes.contains { $0.allows(permission) }
        }
    }

    /// A short description for messages: `user "ana"`, `token "dashboard"`.
    var label: String {
        switch self {
        case .user(let user): "user \"\(user.username)\""
        case .token(let grant): "token \"\(grant.name)\""
        }
    }
}

/// What a request needs to be allowed.
public enum Permission: Sendable, Equatable, CustomStringConvertible {
    /// Manage the workspace: tokens, quarantine.
    case admin
    /// Ingest into a datasource.
    case append(datasource: String)
    /// Read the analytics endpoints (`/api/analytics/*`, `/api/events` reads).
    case readAnalytics
    /// Run one pipe.
    case readPipe(String)

    public var description: String {
        switch self {
        case .admin: "admin"
        case .append(let datasource): "append:\(datasource)"
        case .readAnalytics: "read"
        case .readPipe(let pipe): "read:\(pipe)"
        }
    }
}

/// A user who presented a valid login token.
public struct AuthenticatedUser: Sendable, Equatable {
    public var id: Int
    public var username: String
    public var isSuperuser: Bool
}

/// What an API token grants.
public struct TokenGrant: Sendable, Equatable {
    /// `nil` for the `ADMIN_TOKEN` setting, which is not stored.
    public var id: UUID?
    public var name: String
    public var workspaceID: Int
    public var scopes: [TokenScope]
    public var tenantID: String?
}

/// One scope of an API token: `admin`, `append`, `append:<datasource>`, `read` or `read:<pipe>`.
public enum TokenScope: Sendable, Hashable, CustomStringConvertible {
    case admin
    case append(datasource: String?)
    case read(pipe: String?)

    /// Parses a scope as written in requests and on the command line; `nil` when it is not one.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        let target = parts.count == 2 ? parts[1] : nil
        if let target, !Self.isName(target) { return nil }
        switch parts[0] {
        case "admin" where target == nil: self = .admin
        case "append": self = .append(datasource: target)
        case "read": self = .read(pipe: target)
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .admin: "admin"
        case .append(let datasource): datasource.map { "append:\($0)" } ?? "append"
        case .read(let pipe): pipe.map { "read:\($0)" } ?? "read"
        }
    }

    func allows(_ permission: Permission) -> Bool {
        switch (self, permission) {
        case (.admin, _): true
        case (.append(nil), .append): true
        case (.append(let scoped?), .append(let datasource)): scoped == datasource
        case (.read(nil), .readAnalytics), (.read(nil), .readPipe): true
        case (.read(let scoped?), .readPipe(let pipe)): scoped == pipe
        default: false
        }
    }

    /// Datasource and pipe names: lower-case letters, digits and underscores.
    static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 63 && text.utf8.allSatisfy { ($0 >= 97 && $0 <= 122) || ($0 >= 48 && $0 <= 57) || $0 == 95 }
    }
}
