import Synchronization

/// Remembers values for a short time, so that a credential presented on every request is looked up in the
/// database at most once per `ttl` (and on every server of a cluster, a revocation takes effect within `ttl`).
final class ExpiringCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry {
        var value: Value
        var expires: ContinuousClock.Instant
    }

    private let storage = Mutex<[Key: Entry]>([:])
    let ttl: Duration
    let capacity: Int

    init(ttl: Duration, capacity: Int = 10_000) {
        self.ttl = ttl
        self.capacity = capacity
    }

    /// The remembered value, or `nil` when there is none or it has expired.
    func value(for key: Key, now: ContinuousClock.Instant = .now) -> Value? {
        storage.withLock { storage in
            guard let entry = storage[key] else { return nil }
            if entry.expires <= now {
                storage[key] = nil
                return nil
            }
            return entry.value
        }
    }

    func store(_ value: Value, for key: Key, now: ContinuousClock.Instant = .now) {
        storage.withLock { storage in
            if storage.count >= capacity { storage = storage.filter { $0.value.expires > now } }
            if storage.count >= capacity { storage.removeAll(keepingCapacity: true) }
            storage[key] = Entry(value: value, expires: now + ttl)
        }
    }

    /// Forgets the entries whose value matches (a revoked token, a deactivated user).
    func removeAll(where matches: (Value) -> Bool) {
        storage.withLock { storage in storage = storage.filter { !matches($0.value.value) } }
    }
}
