import App
import Foundation
import Testing

@Suite("Settings")
struct ConfigTests {
    @Test("defaults apply when nothing is set")
    func defaults() throws {
        let config = try AppConfig(values: [:])
        #expect(config.databaseURL == nil)
        #expect(config.port == 8002)
        #expect(config.host == "127.0.0.1")
        #expect(config.accessTokenExpireMinutes == 30)
        #expect(config.registration == .open)
        #expect(config.maxBodySize == 10 * 1024 * 1024)
        #expect(config.secretKeyIsEphemeral)
        #expect(config.secretKey.utf8.count >= 32)
        #expect(config.embeddedPostgresDirectory == "./.data/postgres")
        #expect(config.queryTimeout == 15)
    }

    @Test("bad settings fail together, each with its variable named")
    func invalidSettings() {
        do {
            _ = try AppConfig(values: [
                "PORT": "eighty", "SECRET_KEY": "short", "REGISTRATION": "maybe", "DB_TIMEZONE": "Mars/Olympus",
                "MAX_BODY_SIZE": "-3", "DB_POOL_SIZE": "0", "QUERY_TIMEOUT_SECONDS": "0",
            ])
            Issue.record("expected invalid settings")
        } catch let error as AppConfig.Invalid {
            let text = error.description
            for name in ["PORT", "SECRET_KEY", "REGISTRATION", "DB_TIMEZONE", "MAX_BODY_SIZE", "DB_POOL_SIZE", "QUERY_TIMEOUT_SECONDS"] {
                #expect(text.contains(name), "\(name) is not named in: \(text)")
            }
            #expect(error.problems.count == 7)
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("sizes take units and the registration policy takes its three words")
    func parsing() throws {
        let config = try AppConfig(values: ["MAX_BODY_SIZE": "512KB", "REGISTRATION": "first-user", "LOG_LEVEL": "debug", "PORT": "9000"])
        #expect(config.maxBodySize == 512 * 1024)
        #expect(config.registration == .firstUser)
        #expect(config.logLevel == .debug)
        #expect(config.port == 9000)
    }

    @Test(".env files fill in what the environment does not set")
    func dotEnv() throws {
        let path = "/tmp/analytics-api-test-\(UInt32.random(in: 0 ... .max)).env"
        try """
        # a comment
        export PORT=9100
        SECRET_KEY="0123456789abcdef0123456789abcdef"
        DATABASE_URL='postgresql+psycopg://time-user:time-pw@db_service:5432/timescaledb'
        REGISTRATION=closed # trailing comment
        """.write(toFile: path, atomically: true, encoding: .utf8)
        let config = try AppConfig.load(environment: ["PORT": "9200"], dotEnvPath: path)
        #expect(config.port == 9200)
        #expect(config.secretKey == "0123456789abcdef0123456789abcdef")
        #expect(!config.secretKeyIsEphemeral)
        #expect(config.databaseURL == "postgresql+psycopg://time-user:time-pw@db_service:5432/timescaledb")
        #expect(config.registration == .closed)
    }

    /// The repository's root, from this file's place in it.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func file(_ name: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
    }

    @Test(".env.example, the README, compose.yaml and the Dockerfile agree with the settings the server reads")
    func settingsAreDocumented() throws {
        let read = try AppConfig(values: [:]).settingNames
        #expect(read.count > 20)
        // .env.example lists exactly the variables read, each with a valid value (its default).
        let example = try Self.file(".env.example")
        let listed = example.split(separator: "\n").compactMap { line -> String? in
            guard !line.hasPrefix("#"), let equals = line.firstIndex(of: "=") else { return nil }
            return String(line[..<equals])
        }
        #expect(Set(listed) == Set(read))
        #expect(listed.count == Set(listed).count, "a variable is listed twice")
        _ = try AppConfig.load(environment: [:], dotEnvPath: Self.root.appendingPathComponent(".env.example").path)
        // The README's configuration table names each of them.
        let readme = try Self.file("README.md")
        for name in read { #expect(readme.contains("`\(name)`"), "README does not document \(name)") }
        // compose passes .env on to the app, and sets only what is the container's own.
        let compose = try Self.file("compose.yaml")
        #expect(compose.contains("env_file:") && compose.contains("path: .env") && compose.contains("required: false"))
        #expect(compose.contains("HOST: 0.0.0.0") && compose.contains("PORT: 8002") && compose.contains("DATABASE_URL: postgresql://"))
        #expect(compose.contains("image: timescale/timescaledb"))
        // The image runs as a user of its own, listens where compose expects, and checks /ready.
        let dockerfile = try Self.file("Dockerfile")
        #expect(dockerfile.contains("USER analytics") && dockerfile.contains("useradd --system"))
        #expect(dockerfile.contains("EXPOSE 8002") && dockerfile.contains("PORT=8002"))
        #expect(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("/ready"))
    }
}
