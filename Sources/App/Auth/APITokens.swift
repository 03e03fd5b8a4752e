import Crypto
import Foundation
import Postgres

/// A stored API token as listed (never with its secret).
public struct APITokenInfo: Sendable, Equatable {
    public var id: UUID
    public var workspaceID: Int
    public var name: String
    /// The first characters of the secret, to recognise a token in a listing.
    public var prefix: String
    public var scopes: [String]
    public var tenantID: String?
    public var expiresAt: Date?
    public var createdAt: Date
    public var lastUsedAt: Date?
}

/// API tokens: random 32-byte secrets with the readable prefix `ak_`, of which only a SHA-256 hash is stored.
///
/// Lookups are remembered for a few seconds, so a token used on every request costs one query per few seconds;
/// a revocation on this server takes effect at once, on other servers within that time.
public final class APITokenStore: Sendable {
    static let secretPrefix = "ak_"
    /// Characters of the secret kept in clear to recognise it (`ak_` and 8 more).
    static let visiblePrefixLength = 11

    let pool: PostgresPool
    private let cache: ExpiringCache<String, CachedToken?>

    private struct CachedToken: Sendable {
        var grant: TokenGrant
        var expiresAt: Date?
    }

    public init(pool: PostgresPool, cacheTTL: Duration = .seconds(5)) {
        self.pool = pool
        cache = ExpiringCache(ttl: cacheTTL)
    }

    /// A new random secret: `ak_` and 43 base64url characters (32 random bytes).
    static func makeSecret() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        return secretPrefix + Data(bytes).base64URLEncodedString
    }

    /// The stored form of a secret: SHA-256, hex.
    static func hash(_ secret: String) -> String {
        SHA256.hash(data: Data(secret.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Creates a token and returns it with its secret, which is not stored and cannot be shown again.
    public func create(
        workspaceID: Int,
        name: String,
        scopes: [TokenScope],
        tenantID: String? = nil,
        expiresAt: Date? = nil
    ) async throws -> (info: APITokenInfo, secret: String) {
        let secret = Self.makeSecret()
        let rows = try await pool.query(
            """
            INSERT INTO api_tokens (workspace_id, name, token_hash, token_prefix, scopes, tenant_id, expires_at)
            VALUES (\(workspaceID), \(name), decode(\(Self.hash(secret)), 'hex'), \(String(secret.prefix(Self.visiblePrefixLength))),
                    \(scopes.map(\.description)), \(tenantID), \(expiresAt))
            RETURNING \(unsafeSQL: Self.selectList)
            """
        )
        guard let row = rows.first else { throw PostgresError(.protocolViolation, message: "INSERT … RETURNING gave no row") }
        return (try Self.decode(row), secret)
    }

    static let selectList = "id, workspace_id, name, token_prefix, scopes, tenant_id, expires_at, created_at, last_used_at"

    static func decode(_ row: PostgresRow) throws -> APITokenInfo {
        let (id, workspaceID, name, prefix, scopes, tenantID, expiresAt, createdAt, lastUsedAt) = try row.decode(
            (UUID, Int, String, String, [String], String?, Date?, Date, Date?).self
        )
        return APITokenInfo(
            id: id,
            workspaceID: workspaceID,
            name: name,
            prefix: prefix,
            scopes: scopes,
            tenantID: tenantID,
            expiresAt: expiresAt,
            createdAt: createdAt,
            lastUsedAt: lastUsedAt
        )
    }

    /// The workspace's tokens that are not revoked, newest first; with `tenantID`, only that tenant's.
    public func list(workspaceID: Int, tenantID: String? = nil) async throws -> [APITokenInfo] {
        try await pool.query(
            """
            SELECT \(unsafeSQL: Self.selectList) FROM api_tokens
            WHERE workspace_id = \(workspaceID) AND revoked_at IS NULL AND (\(tenantID)::text IS NULL OR tenant_id = \(tenantID))
            ORDER BY created_at DESC, id
            """
        ).map(Self.decode)
    }

    /// Revokes a token of the workspace (of that tenant, with `tenantID`); false when it has no such token (or it
    /// was already revoked).
    public func revoke(id: UUID, workspaceID: Int, tenantID: String? = nil) async throws -> Bool {
        let revoked = try await pool.execute(
            """
            UPDATE api_tokens SET revoked_at = now()
            WHERE id = \(id) AND workspace_id = \(workspaceID) AND revoked_at IS NULL
              AND (\(tenantID)::text IS NULL OR tenant_id = \(tenantID))
            """
        )
        cache.removeAll { $0?.grant.id == id }
        return revoked > 0
    }

    /// What a secret grants, or `nil` when it is unknown, revoked or expired. Marks the token as used (at most
    /// once a minute).
    func grant(for secret: String) async throws -> TokenGrant? {
        let key = Self.hash(secret)
        let cached: CachedToken?
        if let hit = cache.value(for: key) {
            cached = hit
        } else {
            let rows = try await pool.query(
                """
                WITH found AS (
                    SELECT id, workspace_id, name, scopes, tenant_id, expires_at, last_used_at FROM api_tokens
                    WHERE token_hash = decode(\(key), 'hex') AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
                ), touched AS (
                    UPDATE api_tokens SET last_used_at = now() FROM found
                    WHERE api_tokens.id = found.id AND (found.last_used_at IS NULL OR found.last_used_at < now() - interval '1 minute')
                )
                SELECT id, workspace_id, name, scopes, tenant_id, expires_at FROM found
                """
            )
            cached = try rows.first.map { row in
                let (id, workspaceID, name, scopes, tenantID, expiresAt) = try row.decode((UUID, Int, String, [String], String?, Date?).self)
                let grant = TokenGrant(id: id, name: name, workspaceID: workspaceID, scopes: scopes.compactMap(TokenScope.init), tenantID: tenantID)
                return CachedToken(grant: grant, expiresAt: expiresAt)
            }
            cache.store(cached, for: key)
        }
        guard let cached else { return nil }
        if let expiresAt = cached.expiresAt, expiresAt <= Date() { return nil }
        return cached.grant
    }
}
