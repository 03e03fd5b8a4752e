import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The `analytics-api` command: `serve` (default), `migrate`, `demo-data`, `create-user`, `workspace`, `token`.
@main
struct AnalyticsAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analytics-api",
        abstract: "Self-hosted real-time event analytics on PostgreSQL.",
        subcommands: [Serve.self, Migrate.self, DemoData.self, CreateUser.self, WorkspaceCommand.self, TokenCommand.self],
        defaultSubcommand: Serve.self
    )
}

/// Options shared by the commands.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("env-file"), help: "Settings file read for variables not set in the environment.")
    var envFile: String = ".env"

    /// Loads the settings, or exits with every problem listed.
    func loadConfig() throws -> AppConfig {
        do {
            return try AppConfig.load(dotEnvPath: envFile)
        } catch let error as AppConfig.Invalid {
            FileHandle.standardError.write(Data("analytics-api: \(error.description)\nSee .env.example for every setting.\n".utf8))
            throw ExitCode(2)
        }
    }

    func makeLogger(_ config: AppConfig) -> Logger {
        LoggingSystem.bootstrap { label in
            var handler = LineLogHandler.standardError(label: label)
            handler.logLevel = config.logLevel
            return handler
        }
        var logger = Logger(label: "analytics-api")
        logger.logLevel = config.logLevel
        return logger
    }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the HTTP server (starts an embedded PostgreSQL when DATABASE_URL is unset).")

    @OptionGroup var common: CommonOptions
    @Option(help: "Address to listen on (overrides HOST).") var host: String?
    @Option(help: "Port to listen on (overrides PORT).") var port: Int?

    func run() async throws {
        limitMallocArenas()
        var config = try common.loadConfig()
        if let host { config.host = host }
        if let port { config.port = port }
        let logger = common.makeLogger(config)
        let app = try await startingUp { try await buildApplication(config, logger: logger) }
        try await app.runService()
    }
}

struct Migrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Apply pending database migrations and exit.")

    @OptionGroup var common: CommonOptions

    func run() async throws {
        var config = try common.loadConfig()
        config.migrateOnStart = true
        let logger = common.makeLogger(config)
        let database = try await startingUp { try await Database.start(config, logger: logger) }
        print("schema version \(database.schemaVersion)")
        await database.shutdown()
    }
}

struct DemoData: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-data",
        abstract: "Generate realistic events (sessions, funnels, returning visitors, devices, sources, some bots) into the database."
    )

    @OptionGroup var common: CommonOptions
    @Option(help: "How many events to generate.") var events: Int = 100_000
    @Option(help: "Days of history they spread over, ending now.") var days: Int = 30
    @Option(help: "Seed: the same seed generates the same events.") var seed: UInt64 = 42

    func validate() throws {
        guard events > 0 else { throw ValidationError("--events must be at least 1") }
        guard (1...3650).contains(days) else { throw ValidationError("--days must be from 1 to 3650") }
    }

    func run() async throws {
        var config = try common.loadConfig()
        config.migrateOnStart = true
        let logger = common.makeLogger(config)
        let database = try await startingUp { try await Database.start(config, logger: logger) }
        let started = ContinuousClock.now
        let total = events
        let written = try await DemoDataLoader.load(
            DemoDataGenerator(events: events, days: days, seed: seed),
            pool: database.pool,
            logger: logger
        ) { written in
            ProgressBar.draw(done: written, total: total, since: started)
        }
        ProgressBar.draw(done: written, total: total, since: started)
        FileHandle.standardError.write(Data("\n".utf8))
        print("\(written) events written")
        await database.shutdown()
    }
}

/// A one-line progress bar on standard error: `[#######.....]  58%  580000/1000000 events  61234/s`.
enum ProgressBar {
    static func draw(done: Int, total: Int, since start: ContinuousClock.Instant) {
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 30
        let filled = Int(fraction * Double(width))
        let elapsed = ContinuousClock.now - start
        let seconds = max(0.001, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        let line = "\r[\(bar)] \(Int(fraction * 100))%  \(done)/\(total) events  \(Int(Double(done) / seconds))/s "
        FileHandle.standardError.write(Data(line.utf8))
    }
}

/// Runs a start-up step; a failure ends the process with the whole reason (libpq's message, the failing
/// migration) on standard error, since only the operator sees it.
func startingUp<Value>(_ step: () async throws -> Value) async throws -> Value {
    do {
        return try await step()
    } catch {
        FileHandle.standardError.write(Data("analytics-api: cannot start: \(String(reflecting: error))\n".utf8))
        throw ExitCode.failure
    }
}

/// glibc gives each thread that allocates its own malloc arena; with the event loops and the libpq thread pool that
/// multiplies resident memory for no speed gain here. Two arenas keep the server small. (`mallopt` is looked up at
/// run time because Swift's Glibc module does not import `malloc.h`.)
func limitMallocArenas() {
    #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let arenaMaxOption: Int32 = -8  // M_ARENA_MAX
        _ = unsafeBitCast(symbol, to: Mallopt.self)(arenaMaxOption, 2)
    #endif
}
