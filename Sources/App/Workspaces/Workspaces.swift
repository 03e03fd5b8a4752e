import Foundation
import HTTPTypes
import Postgres

/// The workspaces every server has.
public enum Workspace {
    /// `default`, created by the first migration; `/api` requests without a token act on it.
    public static let defaultID = 1
    public static let defaultName = "default"
}

/// A workspace as listed (no secrets).
public struct WorkspaceInfo: Sendable, Equatable {
    public var id: Int
    public var name: String
    public var templates: [String]
    public var createdAt: Date
}

/// The pipe sets a workspace can enable (SPEC section 6): each is named after the seed project it serves.
///
/// The pipes themselves are SQL files (the pipes issue); this table names them so that workspaces can refuse
/// templates whose pipe names collide before those files exist.
public enum PipeTemplate: String, Sendable, CaseIterable {
    case engagement, product, behavior, sessions

    public var pipeNames: [String] {
        switch self {
        case .engagement: ["event_breakdown", "realtime_traffic", "session_duration", "active_users", "user_retention"]
        case .product: ["feature_usage", "user_session_details", "active_users"]
        case .behavior: ["aggregate_user_features", "user_session_timeline", "get_user_patterns", "get_cluster_stats", "assign_clusters"]
        case .sessions: ["get_active_sessions", "tenant_activity_summary", "get_session_details"]
        }
    }

    /// The templates named, or a message saying which names are unknown or which pipes collide.
    public static func parse(_ names: [String]) -> Result<[PipeTemplate], TemplateError> {
        var templates: [PipeTemplate] = []
        for name in names {
            guard let template = PipeTemplate(rawValue: name) else {
                return .failure(
                    TemplateError(message: "unknown template \"\(name)\" (known: \(allCases.map(\.rawValue).joined(separator: ", ")))")
                )
            }
            if !templates.contains(template) { templates.append(template) }
        }
        var owner: [String: PipeTemplate] = [:]
        for template in templates {
            for pipe in template.pipeNames {
                if let other = owner[pipe] {
                    return .failure(
                        TemplateError(
                            message: "templates \(other.rawValue) and \(template.rawValue) both define the pipe \(pipe): "
                                + "enable them in separate workspaces"
                        )
                    )
                }
                owner[pipe] = template
            }
        }
        return .success(templates)
    }

    public struct TemplateError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}

/// Creates and lists workspaces.
public struct WorkspaceDirectory: Sendable {
    let pool: PostgresPool
    let tokens: APITokenStore

    public init(pool: PostgresPool, tokens: APITokenStore) {
        self.pool = pool
        self.tokens = tokens
    }

    /// Names: 1 to 63 lower-case letters, digits and underscores.
    public static func isValidName(_ name: String) -> Bool { TokenScope.isName(name) }

    /// Creates a workspace with its templates and an admin token (whose secret is returned once).
    public func create(name: String, templates: [String]) async throws -> (workspace: WorkspaceInfo, adminToken: String) {
        guard Self.isValidName(name) else {
            throw APIError.badRequest("invalid workspace name \"\(name)\": use 1 to 63 lower-case letters, digits and underscores")
        }
        let parsed: [PipeTemplate]
        switch PipeTemplate.parse(templates) {
        case .success(let templates): parsed = templates
        case .failure(let error): throw APIError.badRequest(error.message)
        }
        let rows: PostgresRows
        do {
            rows = try await pool.query(
                """
                INSERT INTO workspaces (name, templates) VALUES (\(name), \(parsed.map(\.rawValue)))
                RETURNING id, name, templates, created_at
                """
            )
        } catch let error as PostgresError where error.code == .uniqueViolation {
            throw APIError(.conflict, "a workspace named \"\(name)\" already exists")
        }
        let workspace = try Self.decode(rows[0])
        let token = try await tokens.create(workspaceID: workspace.id, name: "admin", scopes: [.admin])
        return (workspace, token.secret)
    }

    public func list() async throws -> [WorkspaceInfo] {
        try await pool.query("SELECT id, name, templates, created_at FROM workspaces ORDER BY id").map(Self.decode)
    }

    public func find(name: String) async throws -> WorkspaceInfo? {
        try await pool.query("SELECT id, name, templates, created_at FROM workspaces WHERE name = \(name)").first.map(Self.decode)
    }

    static func decode(_ row: PostgresRow) throws -> WorkspaceInfo {
        let (id, name, templates, createdAt) = try row.decode((Int, String, [String], Date).self)
        return WorkspaceInfo(id: id, name: name, templates: templates, createdAt: createdAt)
    }
}
