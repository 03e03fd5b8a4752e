import Testing

@testable import App

@Suite("Token buckets")
struct RateLimiterTests {
    @Test("a bucket allows its burst, then refills at its rate")
    func refill() {
        let limiter = RateLimiter(rate: 2, burst: 4)
        let start = ContinuousClock.now
        let first = (0..<5).map { _ in limiter.check("k", now: start).allowed }
        #expect(first == [true, true, true, true, false])
        #expect(limiter.check("k", now: start).retryAfterSeconds == 1)
        #expect(limiter.check("k", now: start + .milliseconds(500)).allowed)
        #expect(!limiter.check("k", now: start + .milliseconds(600)).allowed)
        let later = limiter.check("k", now: start + .seconds(10))
        #expect(later.allowed && later.remaining == 3)
        #expect(limiter.check("other", now: start).remaining == 3)
    }
}
