import Foundation
import PostgresTestSupport
import Synchronization
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A program the tests run (Chromium, a validator), in a process group of its own, with its output going to a file.
///
/// Not Foundation's `Process`: its `waitUntilExit()` spins a run loop for the child's exit to be delivered to, and
/// on a test's thread (not the main one) on a busy machine that delivery can be missed, blocking the thread for good;
/// and a child started from a thread that blocks SIGTERM (the test process's worker threads do) inherits the blocked
/// signal, so `terminate()` may never end it. Either would hold the test run until CI's time ran out. Here signals
/// are reset in the child, and the test waits by polling `waitpid` between async sleeps, for a bounded time.
final class ChildProcess: Sendable {
    let pid: pid_t
    /// Where the program's standard output and error go.
    let outputPath: String
    private let stopped = Mutex(false)

    /// Starts `executable` (an absolute path) with `arguments`; its input is /dev/null, it inherits no descriptor
    /// but the output file.
    init(_ executable: String, _ arguments: [String], outputPath: String = "/dev/null") throws {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nor any other descriptor of ours: sockets of the servers under test, kept open in the child, would never
        // close for their peers.
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
            throw TestFailure("posix_spawn_file_actions_addclosefrom_np (glibc 2.34 or later) is needed")
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A group of its own, so that stopping it reaches the processes it starts too.
        posix_spawnattr_setpgroup(&attributes, 0)
        // Signals as a program expects them: none blocked, none ignored (a test server ignores SIGTERM, say, to
        // watch for it, and an ignored signal stays ignored across exec).
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard spawned == 0 else { throw TestFailure("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        self.pid = pid
        self.outputPath = outputPath
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np`, which Swift's Glibc module does not declare.
    private static let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? =
        dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
            unsafeBitCast($0, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
        }

    /// Runs a program to its end (at most `timeout`) and returns its exit status and output.
    static func run(
        _ executable: String,
        _ arguments: [String],
        timeout: Duration = .seconds(120)
    ) async throws -> (
        status: Int32, output: String
    ) {
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let child = try ChildProcess(executable, arguments, outputPath: outputPath)
        guard let status = await child.exitStatus(within: timeout) else {
            await child.stop()
            throw TestFailure("\(executable) did not finish within \(timeout)")
        }
        return (status, (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "")
    }

    /// The exit status once the program has ended (128 + the signal if a signal ended it), or nil if it is still
    /// running after `timeout`.
    func exitStatus(within timeout: Duration) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while true {
            var status: Int32 = 0
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid {
                let signal = status & 0x7f
                return signal == 0 ? (status >> 8) & 0xff : 128 + signal
            }
            // Already reaped, or never ours: nothing more to wait for.
            if reaped < 0 { return -1 }
            guard ContinuousClock.now < deadline else { return nil }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Asks the program's process group to end (SIGTERM); after `grace`, kills it (SIGKILL) and reaps it. Once: later
    /// calls return at once.
    func stop(grace: Duration = .seconds(10)) async {
        guard
            stopped.withLock({ stopped in
                defer { stopped = true }
                return !stopped
            })
        else { return }
        kill(-pid, SIGTERM)
        if await exitStatus(within: grace) == nil {
            kill(-pid, SIGKILL)
            _ = await exitStatus(within: .seconds(30))
        }
        // What the leader left behind in its group (a browser's helpers) goes too.
        kill(-pid, SIGKILL)
    }
}

@Suite("Child processes of the tests")
struct ChildProcessTests {
    @Test("a program's exit status and output; one past its time is stopped, with what it started")
    func statusOutputAndStop() async throws {
        let (status, output) = try await ChildProcess.run("/bin/sh", ["-c", "echo out; echo err >&2; exit 3"])
        #expect(status == 3)
        #expect(output == "out\nerr\n")
        // Signals are as a program expects them, whatever this process ignores or blocks.
        #expect(try await ChildProcess.run("/bin/sh", ["-c", "kill -TERM $$"]).status == 128 + SIGTERM)
        await #expect(throws: TestFailure.self) { try await ChildProcess.run("/bin/sleep", ["300"], timeout: .milliseconds(200)) }

        // A shell that ignores SIGTERM, with a child of its own: both are gone once it is stopped.
        let outputPath = FileManager.default.temporaryDirectory.appendingPathComponent("child-\(UUID().uuidString).out").path
        defer { try? FileManager.default.removeItem(atPath: outputPath) }
        let shell = try ChildProcess("/bin/sh", ["-c", "trap '' TERM; sleep 300 & echo $!; wait"], outputPath: outputPath)
        var sleeper: pid_t?
        let deadline = ContinuousClock.now + .seconds(10)
        while sleeper == nil, ContinuousClock.now < deadline {
            sleeper = (try? String(contentsOfFile: outputPath, encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            if sleeper == nil { try await Task.sleep(for: .milliseconds(50)) }
        }
        let child = try #require(sleeper)
        #expect(await shell.exitStatus(within: .milliseconds(300)) == nil)
        await shell.stop(grace: .milliseconds(300))
        #expect(await shell.exitStatus(within: .zero) == -1, "reaped")
        // Gone, or a zombie waiting for init to reap it, once the SIGKILL sent to its group has been acted on (a
        // killed process ends when it next runs, which on a busy machine is a moment after kill() returns).
        #expect(
            try await eventually(.seconds(10)) {
                let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8)
                let state = stat?.split(separator: ")").last?.split(separator: " ").first
                return state == nil || state == "Z"
            }
        )
    }
}
