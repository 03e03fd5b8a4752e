import Synchronization

/// A small thread-safe memo for pure functions of repeating inputs (user agents, referrer hosts) and for values that
/// never change once known (visitors' numbers).
/// When full it starts over: simpler than LRU, and the hot entries come back at once.
final class BoundedCache<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private let storage = Mutex<[Key: Value]>([:])
    let capacity: Int

    init(capacity: Int) { self.capacity = capacity }

    /// The cached value for `key`, if any.
    func cached(_ key: Key) -> Value? { storage.withLock { $0[key] } }

    /// Stores `value` for `key`.
    func store(_ value: Value, for key: Key) {
        storage.withLock { storage in
            if storage.count >= capacity { storage.removeAll(keepingCapacity: true) }
            storage[key] = value
        }
    }

    /// The cached value for `key`, computing and storing it on a miss.
    func value(for key: Key, compute: () -> Value) -> Value {
        if let hit = cached(key) { return hit }
        let value = compute()
        store(value, for: key)
        return value
    }
}
