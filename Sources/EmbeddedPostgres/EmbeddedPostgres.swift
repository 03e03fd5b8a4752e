import Foundation
import Logging
import NIOPosix
import Postgres
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A private PostgreSQL server started from the machine's own server binaries (`initdb`, `pg_ctl`).
///
/// The folder holds the cluster (`pgdata/`), its log (`postgres.log`), a generated password for loopback
/// connections (`password`) and the Unix socket. The cluster is created on first start and reused afterwards;
/// a server already running on the folder (left by a process that was killed) is reused too. PostgreSQL
/// refuses to run as root, so when the process runs as root the server runs as the `postgres` system user,
/// which then owns the folder.
public struct EmbeddedPostgres: Sendable {
    /// Settings for the embedded server.
    public struct Options: Sendable {
        /// The folder that holds the cluster, its log and its socket.
        public var directory: String
        /// The database to create and connect to.
        public var database: String
        /// False trades crash safety for speed (no fsync): for test clusters only.
        public var durable: Bool
        /// `max_connections` of the server.
        public var maxConnections: Int
        /// A folder with `initdb` and `pg_ctl`, to use instead of searching for them.
        public var binDirectory: String?

        public init(directory: String, database: String = "analytics", durable: Bool = true, maxConnections: Int = 100, binDirectory: String? = nil) {
            self.directory = directory
            self.database = database
            self.durable = durable
            self.maxConnections = maxConnections
            self.binDirectory = binDirectory
        }
    }

    /// Why the embedded server could not start.
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public var description: String
        init(_ description: String) { self.description = description }
    }

    public let options: Options
    let logger: Logger

    public init(options: Options, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    /// The absolute folder actually used (see `start()` for when it differs from `options.directory`).
    var directory: String { absolutePath(options.directory) }
    var dataDirectory: String { directory + "/pgdata" }

    /// Starts the server (creating the cluster on first use), creates the database if needed and returns how to reach it.
    public func start() async throws -> PostgresConfiguration {
        try await startOrReuse().configuration
    }

    /// Like `start()`, and says whether this call started the server (false: one was already running on the folder,
    /// for example another `analytics-api` process's, which the caller must then leave running).
    public func startOrReuse() async throws -> (configuration: PostgresConfiguration, startedHere: Bool) {
        let binaries = try Self.findBinaries(preferred: options.binDirectory)
        let user = try ServerUser.current()
        try prepareDirectory(for: user)

        if !FileManager.default.fileExists(atPath: dataDirectory + "/PG_VERSION") {
            try initialize(binaries: binaries, user: user)
        }
        let port: Int
        var startedHere = false
        if let running = runningPort(binaries: binaries, user: user) {
            logger.info("reusing the embedded PostgreSQL already running", metadata: ["directory": "\(directory)", "port": "\(running)"])
            port = running
        } else {
            // Keep the port of the last run when it is still free, so the server's address stays the same.
            let portFile = directory + "/port"
            let previous = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap {
                Int($0.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            port = try Self.freePort(preferring: previous)
            try? String(port).write(toFile: portFile, atomically: true, encoding: .utf8)
            try run(
                binaries.pgCtl,
                ["-D", dataDirectory, "-l", directory + "/postgres.log", "-w", "-t", "60", "-o", "-p \(port)", "start"],
                as: user,
                what: "pg_ctl start (see \(directory)/postgres.log)"
            )
            logger.info("started embedded PostgreSQL", metadata: ["directory": "\(directory)", "port": "\(port)"])
            startedHere = true
        }
        let server = try connectionConfiguration(port: port)
        try await Self.createDatabaseIfMissing(options.database, on: server)
        return (server.with(database: options.database), startedHere)
    }

    /// Stops the server (fast shutdown: open sessions are ended, committed data is kept).
    public func stop() throws {
        let binaries = try Self.findBinaries(preferred: options.binDirectory)
        let user = try ServerUser.current()
        try run(binaries.pgCtl, ["-D", dataDirectory, "-m", "fast", "-w", "stop"], as: user, what: "pg_ctl stop")
        logger.info("stopped embedded PostgreSQL", metadata: ["directory": "\(directory)"])
    }

    /// Creates `database` on the server unless it exists.
    public static func createDatabaseIfMissing(_ database: String, on server: PostgresConfiguration) async throws {
        let threadPool = NIOThreadPool.singleton
        let connection = try await PostgresConnection.connect(server.with(database: "postgres"), threadPool: threadPool)
        do {
            let exists = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(database)").count > 0
            if !exists {
                try await connection.executeScript(unsafeSQL: "CREATE DATABASE \(PostgresIdentifier.quote(database))")
            }
        } catch let error as PostgresError where error.code == SQLState(rawValue: "42P04") {
            // Created concurrently by another process: fine.
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
    }

    // MARK: Steps

    func prepareDirectory(for user: ServerUser) throws {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw Failure("cannot create the embedded database folder \(directory): \(error.localizedDescription)")
        }
        guard let owner = user.switchTo else { return }
        chown(directory, owner.uid, owner.gid)
        chmod(directory, 0o700)
        // The server user must be able to reach the folder through every parent.
        guard (try? run("/usr/bin/test", ["-w", directory], as: user, what: "access check")) != nil else {
            throw Failure(
                "the embedded database folder \(directory) is not reachable by the '\(owner.name)' user, "
                    + "which runs PostgreSQL because this process runs as root: choose a folder under /tmp or /var/lib "
                    + "with EMBEDDED_POSTGRES_DIR, or set DATABASE_URL"
            )
        }
    }

    func initialize(binaries: Binaries, user: ServerUser) throws {
        logger.info("creating the embedded PostgreSQL cluster", metadata: ["directory": "\(dataDirectory)"])
        let passwordFile = directory + "/password"
        let password = (0..<24).map { _ in "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789".randomElement()! }
        try String(password).write(toFile: passwordFile, atomically: true, encoding: .utf8)
        chmod(passwordFile, 0o600)
        if let owner = user.switchTo { chown(passwordFile, owner.uid, owner.gid) }
        var arguments = [
            "-D", dataDirectory, "-U", "postgres", "--encoding=UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--pwfile=\(passwordFile)",
        ]
        if !options.durable { arguments.append("--no-sync") }
        try run(binaries.initdb, arguments, as: user, what: "initdb")

        var settings = [
            "# Written by analytics-api for its embedded server.",
            "listen_addresses = '127.0.0.1'",
            "unix_socket_directories = '\(directory.replacingOccurrences(of: "'", with: "''"))'",
            "unix_socket_permissions = 0700",
            "max_connections = \(options.maxConnections)",
            "timezone = 'UTC'",
            "log_timezone = 'UTC'",
        ]
        if !options.durable {
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        }
        let configuration = dataDirectory + "/postgresql.conf"
        guard let handle = FileHandle(forWritingAtPath: configuration) else {
            throw Failure("cannot write \(configuration)")
        }
        handle.seekToEndOfFile()
        handle.write(Data(("\n" + settings.joined(separator: "\n") + "\n").utf8))
        handle.closeFile()
    }

    /// The port of a server already running on the data folder, if there is one.
    func runningPort(binaries: Binaries, user: ServerUser) -> Int? {
        guard (try? run(binaries.pgCtl, ["-D", dataDirectory, "status"], as: user, what: "pg_ctl status")) != nil,
            let pidFile = try? String(contentsOfFile: dataDirectory + "/postmaster.pid", encoding: .utf8)
        else { return nil }
        // postmaster.pid: pid, data folder, start time, port, socket folder, ...
        let lines = pidFile.split(separator: "\n", omittingEmptySubsequences: false)
        return lines.count > 3 ? Int(lines[3].trimmingCharacters(in: .whitespaces)) : nil
    }

    func connectionConfiguration(port: Int) throws -> PostgresConfiguration {
        func quoted(_ value: String) -> String {
            "'" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
        }
        // A Unix socket path is limited to 107 bytes; past that, use loopback with the generated password.
        if (directory + "/.s.PGSQL.\(port)").utf8.count < 100 {
            return try PostgresConfiguration("host=\(quoted(directory)) port=\(port) user=postgres")
        }
        let password = (try? String(contentsOfFile: directory + "/password", encoding: .utf8)) ?? ""
        return try PostgresConfiguration("host=127.0.0.1 port=\(port) user=postgres password=\(quoted(password))")
    }

    // MARK: Binaries and processes

    /// Paths of the server programs used.
    public struct Binaries: Sendable {
        public var initdb: String
        public var pgCtl: String
    }

    /// Finds `initdb` and `pg_ctl`: in `preferred`, on PATH, in `pg_config --bindir`, or under `/usr/lib/postgresql/*/bin`.
    static func findBinaries(preferred: String?) throws -> Binaries {
        try findBinaries(in: candidateFolders(preferred: preferred))
    }

    /// The folders searched for server binaries, in order.
    public static func candidateFolders(preferred: String?) -> [String] {
        var candidates: [String] = []
        if let preferred { candidates.append(preferred) }
        candidates += (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
        if let bindir = try? capture("pg_config", ["--bindir"]) { candidates.append(bindir) }
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        candidates += versions.sorted { (Int($0) ?? 0) > (Int($1) ?? 0) }.map { "/usr/lib/postgresql/\($0)/bin" }
        return candidates
    }

    /// The first folder holding both `initdb` and `pg_ctl`.
    public static func findBinaries(in folders: [String]) throws -> Binaries {
        for folder in folders {
            let initdb = folder + "/initdb"
            let pgCtl = folder + "/pg_ctl"
            if FileManager.default.isExecutableFile(atPath: initdb), FileManager.default.isExecutableFile(atPath: pgCtl) {
                return Binaries(initdb: initdb, pgCtl: pgCtl)
            }
        }
        throw Failure(
            "no PostgreSQL server binaries (initdb, pg_ctl) were found on PATH, through pg_config or under /usr/lib/postgresql. "
                + "Install them (Debian/Ubuntu: apt-get install postgresql) or set DATABASE_URL to an existing server."
        )
    }

    /// A free TCP port on loopback: `preferred` when it is free, otherwise one the system picks.
    static func freePort(preferring preferred: Int? = nil) throws -> Int {
        if let preferred, let port = try? bindLoopback(port: preferred) { return port }
        return try bindLoopback(port: 0)
    }

    /// Binds a loopback socket to `port` (0: any) and returns the bound port; the socket is closed again.
    static func bindLoopback(port: Int) throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw Failure("cannot create a socket to find a free port") }
        defer { close(descriptor) }
        // PostgreSQL binds with SO_REUSEADDR too, so connections in TIME_WAIT do not make its port look taken.
        var reuse: Int32 = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(descriptor, pointer, length) == 0 && getsockname(descriptor, pointer, &length) == 0
            }
        }
        guard bound else { throw Failure("cannot find a free port on 127.0.0.1") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a program (as the server user when this process is root) and fails with its output when it fails.
    @discardableResult
    func run(_ executable: String, _ arguments: [String], as user: ServerUser, what: String) throws -> String {
        var executable = executable
        var arguments = arguments
        if let owner = user.switchTo {
            arguments = ["-u", owner.name, "--", executable] + arguments
            executable = ServerUser.runuser
        }
        let (status, output) = try Self.launch(executable, arguments)
        guard status == 0 else {
            throw Failure("\(what) failed (exit status \(status)): \(output.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return output
    }

    static func capture(_ program: String, _ arguments: [String]) throws -> String {
        let (status, output) = try launch("/usr/bin/env", [program] + arguments)
        guard status == 0 else { throw Failure("\(program) failed") }
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a program to completion and returns its exit status and combined output.
    ///
    /// Uses `posix_spawn` rather than Foundation's `Process`, so that it also works from an `atexit` handler.
    static func launch(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        // A server started by pg_ctl keeps every descriptor it inherits open for its whole life. So each pipe is
        // close-on-exec, and pipes are made and handed to children one launch at a time: a launch running at the
        // same time never passes our pipe on to its server, which would keep us waiting for the end of output.
        let (spawned, pid, readEnd) = spawnLock.withLock { _ -> (Int32, pid_t, Int32) in
            var pipeDescriptors: [Int32] = [0, 0]
            guard pipe(&pipeDescriptors) == 0 else { return (errno, 0, -1) }
            let (readEnd, writeEnd) = (pipeDescriptors[0], pipeDescriptors[1])
            _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 1)
            posix_spawn_file_actions_adddup2(&actions, writeEnd, 2)
            // Nor any other descriptor of ours: sockets of a server in this process (NIO's are not close-on-exec)
            // would stay open in PostgreSQL's processes, so closing a connection here would never reach its peer.
            markCloseOnExec()
            let argv = ([executable] + arguments).map { strdup($0) } + [nil]
            defer { argv.forEach { free($0) } }
            var pid = pid_t()
            let spawned = posix_spawn(&pid, executable, &actions, nil, argv, environ)
            close(writeEnd)
            if spawned != 0 { close(readEnd) }
            return (spawned, pid, readEnd)
        }
        guard spawned == 0 else {
            throw Failure("cannot run \(executable): \(String(cString: strerror(spawned)))")
        }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(readEnd, &chunk, chunk.count)
            if count > 0 {
                output += chunk[0..<count]
            } else if count < 0, errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(readEnd)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
        // WIFEXITED / WEXITSTATUS by hand: the macros are not imported.
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, String(decoding: output, as: UTF8.self))
    }
}

/// Marks every open descriptor above 2 close-on-exec (listed from /proc/self/fd where there is one).
private func markCloseOnExec() {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
    for name in names {
        guard let descriptor = Int32(name), descriptor > 2 else { continue }
        let flags = fcntl(descriptor, F_GETFD)
        if flags >= 0, flags & FD_CLOEXEC == 0 { _ = fcntl(descriptor, F_SETFD, flags | FD_CLOEXEC) }
    }
}

/// Serialises making pipes and spawning children (see `EmbeddedPostgres.launch`).
private let spawnLock = Mutex(())

/// Who runs the server: this process's user, or the `postgres` system user when this process is root.
struct ServerUser {
    struct Account {
        var name: String
        var uid: uid_t
        var gid: gid_t
    }

    /// The account to switch to, or `nil` to run as this process's user.
    var switchTo: Account?

    static let runuser =
        ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"].first {
            FileManager.default.isExecutableFile(atPath: $0)
        } ?? "/usr/sbin/runuser"

    static func current() throws -> ServerUser {
        guard geteuid() == 0 else { return ServerUser(switchTo: nil) }
        guard let entry = getpwnam("postgres") else {
            throw EmbeddedPostgres.Failure(
                "PostgreSQL refuses to run as root and there is no 'postgres' user to run it as: "
                    + "create one (useradd --system postgres), run as another user, or set DATABASE_URL"
            )
        }
        guard FileManager.default.isExecutableFile(atPath: runuser) else {
            throw EmbeddedPostgres.Failure("running the embedded PostgreSQL as root needs runuser (Debian package util-linux)")
        }
        return ServerUser(switchTo: Account(name: "postgres", uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid))
    }
}

/// Makes a path absolute against the current folder and removes `.` and `..` parts.
func absolutePath(_ path: String) -> String {
    let base = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    return URL(fileURLWithPath: base).standardizedFileURL.path
}
