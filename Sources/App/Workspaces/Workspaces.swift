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

/// Creates and lists workspaces.
public struct WorkspaceDirectory: Sendable {
    let pool: PostgresPool
    let tokens: APITokenStore
    /// The templates a workspace may enable.
    let catalog: PipeCatalog

    public init(pool: PostgresPool, tokens: APITokenStore, catalog: PipeCatalog) {
        self.pool = pool
        self.tokens = tokens
        self.catalog = catalog
    }

    /// Names: 1 to 63 lower-case letters, digits and underscores.
    public static func isValidName(_ name: String) -> Bool { TokenScope.isName(name) }

    /// Creates a workspace with its templates and an admin token (whose secret is returned once).
    public func create(name: String, templates: [String]) async throws -> (workspace: WorkspaceInfo, adminToken: String) {
        guard Self.isValidName(name) else {
            throw APIError.badRequest("invalid workspace name \"\(name)\": use 1 to 63 lower-case letters, digits and underscores")
        }
        let parsed: [String]
        switch catalog.validate(templates) {
        case .success(let templates): parsed = templates
        case .failure(let error): throw APIError.badRequest(error.message)
        }
        let rows: PostgresRows
        do {
            rows = try await pool.query(
                """
                INSERT INTO workspaces (name, templates) VALUES (\(name), \(parsed))
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

    public func find(id: Int) async throws -> WorkspaceInfo? {
        try await pool.query("SELECT id, name, templates, created_at FROM workspaces WHERE id = \(id)").first.map(Self.decode)
    }

    public func find(name: String) async throws -> WorkspaceInfo? {
        try await pool.query("SELECT id, name, templates, created_at FROM workspaces WHERE name = \(name)").first.map(Self.decode)
    }

    static func decode(_ row: PostgresRow) throws -> WorkspaceInfo {
        let (id, name, templates, createdAt) = try row.decode((Int, String, [String], Date).self)
        return WorkspaceInfo(id: id, name: name, templates: templates, createdAt: createdAt)
    }
}
