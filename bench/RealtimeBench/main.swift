// realtime-bench: opens N WebSocket clients on /api/realtime/ws, reads for a while, and reports how late events
// arrived: the time each event message is read minus its `received_at` (the server's clock when the request that
// carried it arrived, so the figure includes the commit). Same machine, same clock. Used by bench/realtime. The URL
// may ask for batched messages (`?batch=1`); every event in a batch counts.
//
//     realtime-bench <ws-url> <clients> <seconds> <output.json>
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

let arguments = CommandLine.arguments
guard arguments.count == 5, let clients = Int(arguments[2]), let seconds = Double(arguments[3]) else {
    FileHandle.standardError.write(Data("usage: realtime-bench <ws-url> <clients> <seconds> <output.json>\n".utf8))
    exit(2)
}
let url = arguments[1]
let output = arguments[4]

/// Latencies in buckets of 0.1 ms up to 10 s, plus the counts.
struct Tally: Sendable {
    var buckets = [Int](repeating: 0, count: 100_001)
    var events = 0
    var dropped = 0
    var connected = 0

    mutating func add(_ other: Tally) {
        for index in buckets.indices { buckets[index] += other.buckets[index] }
        events += other.events
        dropped += other.dropped
        connected += other.connected
    }

    func percentile(_ p: Double) -> Double {
        let target = Int((Double(events) * p).rounded(.up))
        var seen = 0
        for (index, count) in buckets.enumerated() {
            seen += count
            if seen >= max(target, 1) { return Double(index) / 10 }
        }
        return 10_000
    }
}

enum Messages {
    static let marker = Array(#""received_at":""#.utf8)
    static let droppedPrefix = Array(#"{"dropped":"#.utf8)

    /// Seconds since UTC midnight of an ISO time `"2026-11-27T20:15:03.123Z…"` (parsed by hand: Foundation is too slow here).
    static func secondsOfDay(_ bytes: ArraySlice<UInt8>) -> Double? {
        func number(_ offset: Int, _ length: Int) -> Int? {
            var value = 0
            for byte in bytes.dropFirst(offset).prefix(length) {
                guard (48...57).contains(byte) else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            return value
        }
        guard let hours = number(11, 2), let minutes = number(14, 2), let secs = number(17, 2) else { return nil }
        var fraction = 0.0
        if bytes.dropFirst(19).first == UInt8(ascii: "."), let millis = number(20, 3) { fraction = Double(millis) / 1000 }
        return Double(hours * 3600 + minutes * 60 + secs) + fraction
    }

    /// Reads one message's bytes (the frames' bytes, not a String: decoding every message would slow the clients).
    /// A message is one event or stats message, or a batch of them (`?batch=1`): every event in it is counted by its
    /// `"received_at"`, and every `{"dropped":n` adds n. `memmem` finds them (the clients share the server's cores).
    static func read(_ bytes: UnsafeRawBufferPointer, into tally: inout Tally) {
        let now = Date().timeIntervalSince1970.truncatingRemainder(dividingBy: 86_400)
        for start in occurrences(marker, in: bytes) {
            guard let sent = secondsOfDay(Array(bytes[start..<min(start + 24, bytes.count)])[...]) else { continue }
            var latency = now - sent
            if latency < -43_200 { latency += 86_400 }
            tally.events += 1
            tally.buckets[min(100_000, max(0, Int(latency * 10_000)))] += 1
        }
        for start in occurrences(droppedPrefix, in: bytes) {
            var count = 0
            var index = start
            while index < bytes.count, (48...57).contains(bytes[index]) {
                count = count * 10 + Int(bytes[index] - 48)
                index += 1
            }
            tally.dropped += count
        }
    }

    /// The offsets just past each occurrence of `needle`.
    static func occurrences(_ needle: [UInt8], in bytes: UnsafeRawBufferPointer) -> [Int] {
        guard let base = bytes.baseAddress else { return [] }
        var found: [Int] = []
        var offset = 0
        needle.withUnsafeBytes { pattern in
            while offset < bytes.count, let hit = memmem(base + offset, bytes.count - offset, pattern.baseAddress, needle.count) {
                offset = base.distance(to: UnsafeRawPointer(hit)) + needle.count
                found.append(offset)
            }
        }
        return found
    }
}

/// glibc's `memmem` (its header declares it only for _GNU_SOURCE, so Swift's Glibc module leaves it out).
@_silgen_name("memmem")
func memmem(_ haystack: UnsafeRawPointer?, _ haystackLength: Int, _ needle: UnsafeRawPointer?, _ needleLength: Int) -> UnsafeMutableRawPointer?

let total = Mutex(Tally())
let logger = Logger(label: "realtime-bench")
await withTaskGroup(of: Void.self) { group in
    for _ in 0..<clients {
        group.addTask {
            do {
                try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 22), logger: logger) { inbound, outbound, _ in
                    var tally = Tally()
                    tally.connected = 1
                    let deadline = Date().addingTimeInterval(seconds)
                    let closer = Task {
                        try await Task.sleep(for: .seconds(seconds))
                        try await outbound.close(.normalClosure, reason: nil)
                    }
                    defer { closer.cancel() }
                    do {
                        // Frames rather than messages: every message here fits one frame.
                        for try await frame in inbound where frame.opcode == .text {
                            frame.data.withUnsafeReadableBytes { Messages.read($0, into: &tally) }
                            if Date() > deadline { break }
                        }
                    } catch {}
                    let result = tally
                    total.withLock { $0.add(result) }
                }
            } catch {
                FileHandle.standardError.write(Data("client failed: \(error)\n".utf8))
            }
        }
    }
}

let tally = total.withLock { $0 }
let report: [String: Any] = [
    "clients": tally.connected, "events": tally.events, "dropped": tally.dropped,
    "p50_ms": tally.percentile(0.5), "p99_ms": tally.percentile(0.99), "max_ms": tally.percentile(1.0),
]
try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]).write(to: URL(fileURLWithPath: output))
print(String(decoding: try JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]), as: UTF8.self))
