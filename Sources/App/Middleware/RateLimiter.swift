import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// Token buckets keyed by client IP or API token: each key may make `burst` requests at once and `rate` per
/// second after that. Answers 429 with `Retry-After` and `X-RateLimit-*` headers when a bucket is empty.
final class RateLimiter: Sendable {
    /// Requests per second refilled into each bucket.
    let rate: Double
    /// Bucket capacity: requests allowed at once.
    let burst: Int
    private let buckets = Mutex<[String: Bucket]>([:])

    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    /// What a check decided, with the numbers for the response headers.
    struct Decision {
        var allowed: Bool
        var remaining: Int
        /// Seconds until the bucket is full again.
        var resetSeconds: Int
        /// Seconds until one request is allowed again (when refused).
        var retryAfterSeconds: Int
    }

    init(rate: Double, burst: Int) {
        self.rate = rate
        self.burst = max(1, burst)
    }

    /// Takes one token from `key`'s bucket if it has one (with `consume: false`, only tells whether it has one).
    func check(_ key: String, consume: Bool = true, now: ContinuousClock.Instant = .now) -> Decision {
        buckets.withLock { buckets in
            if buckets.count > 100_000 { prune(&buckets, now: now) }
            var bucket = buckets[key] ?? Bucket(tokens: Double(burst), updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(Double(burst), bucket.tokens + seconds * rate)
            bucket.updated = now
            let allowed = bucket.tokens >= 1
            if allowed, consume { bucket.tokens -= 1 }
            buckets[key] = bucket
            return Decision(
                allowed: allowed,
                remaining: Int(bucket.tokens.rounded(.down)),
                resetSeconds: Int(((Double(burst) - bucket.tokens) / rate).rounded(.up)),
                retryAfterSeconds: max(1, Int(((1 - bucket.tokens) / rate).rounded(.up)))
            )
        }
    }

    /// Forgets buckets that have refilled completely (they behave like new ones).
    private func prune(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        let full = Duration.seconds(Double(burst) / rate)
        buckets = buckets.filter { now - $0.value.updated < full }
    }
}

/// Applies the per-IP and per-token limits to ingest requests (`POST /api/events…` and `POST /v0/events`).
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = AppRequestContext

    let perIP: RateLimiter?
    let perToken: RateLimiter?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard request.method == .post, path.hasPrefix("/api/events") || path.hasPrefix("/v0/events") else {
            return try await next(request, context)
        }
        var decisions: [(RateLimiter, RateLimiter.Decision)] = []
        if let perToken, let token = Authenticator.credential(in: request) {
            decisions.append((perToken, perToken.check("token:" + token)))
        }
        if let perIP {
            decisions.append((perIP, perIP.check("ip:" + (context.clientIP(request) ?? "unknown"))))
        }
        // The tightest limit is the one reported.
        guard let (limiter, decision) = decisions.min(by: { ($0.1.allowed ? 1 : 0, $0.1.remaining) < ($1.1.allowed ? 1 : 0, $1.1.remaining) }) else {
            return try await next(request, context)
        }
        var headers: HTTPFields = [
            .rateLimitLimit: String(limiter.burst),
            .rateLimitRemaining: String(decision.remaining),
            .rateLimitReset: String(decision.resetSeconds),
        ]
        guard decision.allowed else {
            headers[.retryAfter] = String(decision.retryAfterSeconds)
            throw APIError(.tooManyRequests, "rate limit exceeded: retry in \(decision.retryAfterSeconds) s", headers: headers)
        }
        var response = try await next(request, context)
        response.headers.append(contentsOf: headers)
        return response
    }
}

extension HTTPField.Name {
    static let rateLimitLimit = Self("X-RateLimit-Limit")!
    static let rateLimitRemaining = Self("X-RateLimit-Remaining")!
    static let rateLimitReset = Self("X-RateLimit-Reset")!
}
