import App
import ArgumentParser
import Foundation
import Hummingbird
import Logging

#if canImport(Glibc)
    import Glibc
#endif

/// The `analytics-api` command: `serve` (default) and `migrate`.
@main
struct AnalyticsAPI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "analytics-api",
        abstract: "Self-hosted real-time event analytics on PostgreSQL.",
        subcommands: [Serve.self, Migrate.self],
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
            var handler = StreamLogHandler.standardError(label: label)
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
