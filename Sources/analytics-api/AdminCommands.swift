import App
import ArgumentParser
import Foundation
import Logging
import Postgres

/// Runs `body` against the configured database (migrated first), then closes it. A refusal the API would answer
/// with a 4xx (a taken name, an unknown scope) ends the command with its message and exit code 1.
func withDatabase(_ common: CommonOptions, _ body: (Database, AppConfig) async throws -> Void) async throws {
    var config = try common.loadConfig()
    config.migrateOnStart = true
    // The default info logs would drown the command's own output.
    if config.logLevel == .info { config.logLevel = .warning }
    let logger = common.makeLogger(config)
    let database = try await startingUp { try await Database.start(config, logger: logger) }
    do {
        try await body(database, config)
        await database.shutdown()
    } catch let error as APIError {
        await database.shutdown()
        FileHandle.standardError.write(Data("analytics-api: \(error.message)\n".utf8))
        throw ExitCode.failure
    } catch {
        await database.shutdown()
        throw error
    }
}

/// The workspace named `name`, or a failure naming it.
func workspaceID(named name: String, in database: Database) async throws -> Int {
    let rows = try await database.pool.query("SELECT id FROM workspaces WHERE name = \(name)")
    guard let workspace = try rows.first.map({ try $0.decode(Int.self, at: 0) }) else {
        throw APIError.notFound("workspace \"\(name)\" does not exist (list them with: analytics-api workspace list)")
    }
    return workspace
}

struct CreateUser: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create-user",
        abstract: "Create a user who can log in (whatever REGISTRATION says). The password is read from standard input."
    )

    @OptionGroup var common: CommonOptions
    @Option(help: "Login name: 3 to 50 letters, digits, '.', '_' or '-'.") var username: String
    @Option(help: "Email address.") var email: String
    @Option(name: .customLong("full-name"), help: "Display name.") var fullName: String?
    @Flag(help: "Make the user a superuser (manages users, workspaces and tokens).") var superuser = false

    func run() async throws {
        FileHandle.standardError.write(Data("password (at least 8 characters): ".utf8))
        guard let password = readLine(strippingNewline: true), !password.isEmpty else {
            throw ValidationError("no password on standard input (for example: echo \"$PASSWORD\" | analytics-api create-user …)")
        }
        try await withDatabase(common) { database, config in
            let users = UserDirectory(pool: database.pool, bcryptCost: config.bcryptCost)
            let account = try await users.register(
                Registration(username: username, email: email, password: password, fullName: fullName),
                policy: config.registration,
                by: .operator_,
                superuser: superuser
            )
            print("user \(account.username) created (id \(account.id)\(account.isSuperuser ? ", superuser" : ""))")
        }
    }
}

struct WorkspaceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "workspace",
        abstract: "Create and list workspaces; rebuild one's rollups (visitor-hours and -days, event counts, session totals).",
        subcommands: [Create.self, List.self, RebuildRollups.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a workspace with pipe templates; prints its admin token (shown only once)."
        )

        @OptionGroup var common: CommonOptions
        @Argument(help: "Name: 1 to 63 lower-case letters, digits and underscores.") var name: String
        @Option(
            name: .customLong("template"),
            help: "Pipe templates, comma-separated or repeated: engagement, product, behavior, sessions (or those of PIPES_DIR)."
        )
        var templates: [String] = []

        func run() async throws {
            let names = templates.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            try await withDatabase(common) { database, config in
                let directory = WorkspaceDirectory(
                    pool: database.pool,
                    tokens: APITokenStore(pool: database.pool),
                    catalog: try PipeCatalog.load(from: config.pipesDirectory)
                )
                let created = try await directory.create(name: name, templates: names)
                print(
                    "workspace \(created.workspace.name) created (id \(created.workspace.id), templates: \(created.workspace.templates.joined(separator: ", ")))"
                )
                print("admin token (shown only now): \(created.adminToken)")
            }
        }
    }

    struct RebuildRollups: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rebuild-rollups",
            abstract:
                "Rebuild a workspace's visitor-hours, visitor-days, event counts and session totals (what retention, active users, the tenant activity summary and assign_clusters read) from its events, after events were written around the server.",
            aliases: ["rebuild-visitor-hours"]
        )
        @OptionGroup var common: CommonOptions
        @Argument(help: "The workspace's name.") var name: String

        func run() async throws {
            try await withDatabase(common) { database, _ in
                let workspace = try await workspaceID(named: name, in: database)
                let rebuilt = try await Rollups(pool: database.pool).rebuild(workspaceID: workspace)
                print(
                    "workspace \(name): \(rebuilt.visitorHours) visitor-hours, \(rebuilt.visitorDays) visitor-days, \(rebuilt.sessionTotals) session totals"
                )
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List workspaces.")
        @OptionGroup var common: CommonOptions

        func run() async throws {
            try await withDatabase(common) { database, config in
                let directory = WorkspaceDirectory(
                    pool: database.pool,
                    tokens: APITokenStore(pool: database.pool),
                    catalog: try PipeCatalog.load(from: config.pipesDirectory)
                )
                for workspace in try await directory.list() {
                    print("\(workspace.id)\t\(workspace.name)\t\(workspace.templates.joined(separator: ","))")
                }
            }
        }
    }
}

struct TokenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Create, list and revoke API tokens.",
        subcommands: [Create.self, List.self, Revoke.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an API token; prints its secret (shown only once).")

        @OptionGroup var common: CommonOptions
        @Option(help: "Workspace name.") var workspace: String = "default"
        @Option(help: "A name to recognise the token by.") var name: String = "cli"
        @Option(
            name: .customLong("scope"),
            help: "admin, append, append:<datasource>, read or read:<pipe>; comma-separated or repeated."
        )
        var scopes: [String] = []
        @Option(help: "Bind the token to a tenant: it then sees and sends only that tenant's rows.") var tenant: String?
        @Option(help: "Expiry time (ISO 8601 or YYYY-MM-DD HH:MM:SS, UTC).") var expires: String?

        func run() async throws {
            let scopeNames = scopes.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
            try await withDatabase(common) { database, _ in
                let spec = try TokenSpec.make(name: name, scopes: scopeNames, tenantID: tenant, expiresAt: expires)
                let id = try await workspaceID(named: workspace, in: database)
                let created = try await APITokenStore(pool: database.pool).create(
                    workspaceID: id,
                    name: spec.name,
                    scopes: spec.scopes,
                    tenantID: spec.tenantID,
                    expiresAt: spec.expiresAt
                )
                FileHandle.standardError.write(
                    Data("token \(created.info.id.uuidString.lowercased()) created; its secret is shown only now:\n".utf8)
                )
                print(created.secret)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List a workspace's tokens (never their secrets).")
        @OptionGroup var common: CommonOptions
        @Option(help: "Workspace name.") var workspace: String = "default"

        func run() async throws {
            try await withDatabase(common) { database, _ in
                let id = try await workspaceID(named: workspace, in: database)
                for token in try await APITokenStore(pool: database.pool).list(workspaceID: id) {
                    let expires = token.expiresAt.map { "expires " + PostgresTimestamp.iso8601($0) } ?? "no expiry"
                    print(
                        "\(token.id.uuidString.lowercased())\t\(token.prefix)…\t\(token.name)\t\(token.scopes.joined(separator: ","))\t"
                            + "\(token.tenantID.map { "tenant " + $0 } ?? "all tenants")\t\(expires)"
                    )
                }
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: it is refused from then on.")
        @OptionGroup var common: CommonOptions
        @Option(help: "Workspace name.") var workspace: String = "default"
        @Argument(help: "The token's id (from token list).") var id: String

        func run() async throws {
            try await withDatabase(common) { database, _ in
                let workspaceID = try await workspaceID(named: workspace, in: database)
                guard let uuid = UUID(uuidString: id), try await APITokenStore(pool: database.pool).revoke(id: uuid, workspaceID: workspaceID)
                else {
                    throw APIError.notFound("workspace \(workspace) has no token \(id)")
                }
                print("token \(id) revoked")
            }
        }
    }
}
