import Foundation
import JWTKit

/// Issues and checks users' login tokens: JWTs signed with HS256 and `SECRET_KEY`, carrying `sub` (the user id),
/// `iat` and `exp`.
///
/// Only HS256 is accepted. The header's `alg` is checked before anything else, because the key collection picks
/// its key without comparing the token's algorithm to it: `none`, other HMAC sizes and asymmetric algorithms are
/// all refused, as are bad signatures, expired tokens and tokens from the future.
struct LoginTokens: Sendable {
    struct Payload: JWTPayload {
        var sub: SubjectClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim

        func verify(using algorithm: some JWTAlgorithm) async throws {
            try exp.verifyNotExpired()
            // A token issued more than a minute from now was not issued by this server's clock.
            if iat.value > Date().addingTimeInterval(60) { throw IssuedInTheFuture() }
        }
    }

    struct IssuedInTheFuture: Error {}

    private let keys: JWTKeyCollection
    let lifetime: TimeInterval

    /// `secret` must be at least 32 bytes (checked with the settings).
    init(secret: String, lifetimeMinutes: Int) async {
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        lifetime = TimeInterval(lifetimeMinutes) * 60
    }

    /// A signed token for user `userID`, valid for `ACCESS_TOKEN_EXPIRE_MINUTES`.
    func issue(userID: Int, now: Date = Date()) async throws -> String {
        let payload = Payload(sub: .init(value: String(userID)), iat: .init(value: now), exp: .init(value: now.addingTimeInterval(lifetime)))
        return try await keys.sign(payload)
    }

    /// The user id of a valid token, or `nil` for any token that is not one this server issued and still honours.
    func verify(_ token: String) async -> Int? {
        guard Self.headerAlgorithm(of: token) == "HS256" else { return nil }
        guard let payload = try? await keys.verify(token, as: Payload.self) else { return nil }
        return Int(payload.sub.value)
    }

    /// Whether `token` has the shape of a JWT (three base64url parts), as opposed to an API token.
    static func looksLikeJWT(_ token: String) -> Bool {
        token.utf8.count(where: { $0 == UInt8(ascii: ".") }) == 2 && token.hasPrefix("eyJ")
    }

    /// The `alg` of a JWT's header, read without trusting anything else in the token.
    static func headerAlgorithm(of token: String) -> String? {
        guard let header = token.split(separator: ".", omittingEmptySubsequences: false).first,
            let data = Data(base64URLEncoded: String(header)),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object["alg"] as? String
    }
}

extension Data {
    /// Decodes base64url without padding (RFC 4648 §5), as used in JWTs.
    init?(base64URLEncoded text: String) {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.utf8.count % 4) % 4)
        self.init(base64Encoded: base64)
    }

    /// Base64url without padding.
    var base64URLEncodedString: String {
        base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
