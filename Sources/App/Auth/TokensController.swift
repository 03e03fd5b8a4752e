import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOFoundationCompat
import Postgres

/// `/v0/tokens` and `/v0/workspaces`: API tokens of a workspace (its admin token, or a superuser's login token
/// for the default workspace or the one named by `?workspace=`) and workspaces (superusers).
struct TokensController: Sendable {
    let tokens: APITokenStore
    let workspaces: WorkspaceDirectory

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.post("/v0/tokens", use: create)
        group.get("/v0/tokens", use: list)
        group.delete("/v0/tokens/{id}", use: revoke)
        group.post("/v0/workspaces", use: createWorkspace)
        group.get("/v0/workspaces", use: listWorkspaces)
    }

    // MARK: Tokens

    struct TokenJSON: Encodable, Sendable {
        var info: APITokenInfo
        /// Only in the answer to its creation.
        var secret: String?

        enum CodingKeys: String, CodingKey {
            case id, name, token, prefix, scopes, workspace_id, tenant_id, expires_at, created_at, last_used_at
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(info.id.uuidString.lowercased(), forKey: .id)
            try container.encode(info.name, forKey: .name)
            if let secret { try container.encode(secret, forKey: .token) }
            try container.encode(info.prefix, forKey: .prefix)
            try container.encode(info.scopes, forKey: .scopes)
            try container.encode(info.workspaceID, forKey: .workspace_id)
            try container.encode(info.tenantID, forKey: .tenant_id)
            try container.encode(info.expiresAt.map(PostgresTimestamp.iso8601), forKey: .expires_at)
            try container.encode(PostgresTimestamp.iso8601(info.createdAt), forKey: .created_at)
            try container.encode(info.lastUsedAt.map(PostgresTimestamp.iso8601), forKey: .last_used_at)
        }
    }

    struct TokenList: ResponseEncodable {
        var tokens: [TokenJSON]
    }

    /// The workspace whose tokens a request manages, with the tenant the caller is bound to (if any).
    func managedWorkspace(_ request: Request, context: AuthenticatedContext) async throws -> (id: Int, tenantID: String?) {
        switch context.identity {
        case .user(let user):
            guard user.isSuperuser else {
                throw APIError.forbidden("Not enough permissions: managing tokens needs the workspace's admin token or a superuser")
            }
            guard let name = request.formParameters["workspace"].map(String.init) else { return (Workspace.defaultID, nil) }
            guard let workspace = try await workspaces.find(name: name) else { throw APIError.notFound("workspace \"\(name)\" does not exist") }
            return (workspace.id, nil)
        case .token(let grant):
            try context.require(.admin)
            if let name = request.formParameters["workspace"], name != "", let workspace = try await workspaces.find(name: String(name)),
                workspace.id != grant.workspaceID
            {
                throw APIError.forbidden("this token belongs to another workspace")
            }
            return (grant.workspaceID, grant.tenantID)
        }
    }

    /// `POST /v0/tokens` `{"name", "scopes", "tenant_id"?, "expires_at"?}` → 201 with the secret (shown only here).
    @Sendable func create(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let (workspaceID, callerTenant) = try await managedWorkspace(request, context: context)
        var request = request
        let data = Data(buffer: try await request.collectBody(upTo: 64 * 1024))
        let spec = try TokenSpec.parse(data)
        var tenantID = spec.tenantID
        if let callerTenant {
            // A tenant-bound admin hands out only tokens of its own tenant.
            if let tenantID, tenantID != callerTenant { throw APIError.forbidden("this token may only create tokens of tenant \(callerTenant)") }
            tenantID = callerTenant
        }
        let created = try await tokens.create(
            workspaceID: workspaceID,
            name: spec.name,
            scopes: spec.scopes,
            tenantID: tenantID,
            expiresAt: spec.expiresAt
        )
        return try JSONResponse(TokenJSON(info: created.info, secret: created.secret)).response(status: .created)
    }

    /// `GET /v0/tokens` → `{"tokens": [...]}` without secrets, newest first.
    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> TokenList {
        let (workspaceID, callerTenant) = try await managedWorkspace(request, context: context)
        let listed = try await tokens.list(workspaceID: workspaceID, tenantID: callerTenant)
        return TokenList(tokens: listed.map { TokenJSON(info: $0, secret: nil) })
    }

    /// `DELETE /v0/tokens/{id}` → 204; the token gets 401 from then on. Unknown id → 404.
    @Sendable func revoke(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let (workspaceID, callerTenant) = try await managedWorkspace(request, context: context)
        let text = context.parameters.get("id") ?? ""
        guard let id = UUID(uuidString: text) else { throw APIError.notFound("token \(text) not found") }
        guard try await tokens.revoke(id: id, workspaceID: workspaceID, tenantID: callerTenant) else {
            throw APIError.notFound("token \(text) not found")
        }
        return Response(status: .noContent)
    }

    // MARK: Workspaces

    struct WorkspaceJSON: Encodable, Sendable {
        var info: WorkspaceInfo
        var adminToken: String?

        enum CodingKeys: String, CodingKey {
            case id, name, templates, created_at, admin_token
        }

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(info.id, forKey: .id)
            try container.encode(info.name, forKey: .name)
            try container.encode(info.templates, forKey: .templates)
            try container.encode(PostgresTimestamp.iso8601(info.createdAt), forKey: .created_at)
            if let adminToken { try container.encode(adminToken, forKey: .admin_token) }
        }
    }

    struct WorkspaceList: ResponseEncodable {
        var workspaces: [WorkspaceJSON]
    }

    struct WorkspaceRequest: Decodable {
        var name: String?
        var templates: [String]?
    }

    /// `POST /v0/workspaces` (superuser) `{"name", "templates"}` → 201 `{"id", "name", "templates", "admin_token"}`.
    @Sendable func createWorkspace(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        _ = try context.requireSuperuser()
        var request = request
        let data = Data(buffer: try await request.collectBody(upTo: 64 * 1024))
        let body: WorkspaceRequest
        do {
            body = try JSONDecoder().decode(WorkspaceRequest.self, from: data)
        } catch let error as DecodingError {
            throw APIError.badRequest("send {\"name\": \"…\", \"templates\": [\"…\"]}: \(error.clientDescription)")
        }
        guard let name = body.name else { throw APIError.badRequest("name is required") }
        let created = try await workspaces.create(name: name, templates: body.templates ?? [])
        return try JSONResponse(WorkspaceJSON(info: created.workspace, adminToken: created.adminToken)).response(status: .created)
    }

    /// `GET /v0/workspaces` (superuser) → `{"workspaces": [...]}`.
    @Sendable func listWorkspaces(_ request: Request, context: AuthenticatedContext) async throws -> WorkspaceList {
        _ = try context.requireSuperuser()
        return WorkspaceList(workspaces: try await workspaces.list().map { WorkspaceJSON(info: $0, adminToken: nil) })
    }
}

/// A token to create, as sent to `POST /v0/tokens` (and given to `analytics-api token create`).
public struct TokenSpec: Sendable {
    public var name: String
    public var scopes: [TokenScope]
    public var tenantID: String?
    public var expiresAt: Date?

    private struct Body: Decodable {
        var name: String?
        var scopes: [String]?
        var tenant_id: String?
        var expires_at: String?
    }

    static func parse(_ data: Data) throws(APIError) -> TokenSpec {
        let body: Body
        do {
            body = try JSONDecoder().decode(Body.self, from: data)
        } catch let error as DecodingError {
            throw APIError.badRequest("send {\"name\": \"…\", \"scopes\": [\"read\"]}: \(error.clientDescription)")
        } catch {
            throw APIError.badRequest("the body is not JSON")
        }
        guard let name = body.name?.trimmingCharacters(in: .whitespaces), !name.isEmpty, name.count <= 100 else {
            throw APIError.badRequest("name is required (1 to 100 characters)")
        }
        return try make(name: name, scopes: body.scopes ?? [], tenantID: body.tenant_id, expiresAt: body.expires_at)
    }

    /// Checks scopes (`admin`, `append[:datasource]`, `read[:pipe]`), tenant and expiry.
    public static func make(name: String, scopes: [String], tenantID: String?, expiresAt: String?) throws(APIError) -> TokenSpec {
        guard !scopes.isEmpty else {
            throw APIError.badRequest("scopes is required: a list of admin, append, append:<datasource>, read, read:<pipe>")
        }
        var parsed: [TokenScope] = []
        for text in scopes {
            guard let scope = TokenScope(text) else {
                throw APIError.badRequest("unknown scope \"\(text)\": use admin, append, append:<datasource>, read or read:<pipe>")
            }
            if case .append(let datasource?) = scope, Datasource(rawValue: datasource) == nil {
                throw APIError.badRequest(
                    "unknown datasource in scope \"\(text)\" (known: \(Datasource.allCases.map(\.rawValue).joined(separator: ", ")))"
                )
            }
            if !parsed.contains(scope) { parsed.append(scope) }
        }
        if let tenantID, tenantID.isEmpty || tenantID.count > 200 { throw APIError.badRequest("tenant_id must be 1 to 200 characters") }
        var expiry: Date?
        if let expiresAt {
            guard let date = PostgresTimestamp.parse(expiresAt) else {
                throw APIError.badRequest("expires_at \"\(expiresAt)\" is not a time (ISO 8601 or YYYY-MM-DD HH:MM:SS, UTC)")
            }
            guard date > Date() else { throw APIError.badRequest("expires_at is in the past") }
            expiry = date
        }
        return TokenSpec(name: name, scopes: parsed, tenantID: tenantID, expiresAt: expiry)
    }
}
