/// Whether `condition` holds within `timeout`, checked every 20 ms: for tests that wait on something happening
/// elsewhere (another connection, a server's background task) rather than sleeping for a guessed time.
public func eventually(_ timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        guard ContinuousClock.now < deadline else { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
    return true
}
