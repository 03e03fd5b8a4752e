import CLibPQ
import Foundation
import Logging
import NIOPosix

/// One libpq connection.
///
/// libpq blocks, so every call runs on the given `NIOThreadPool`, never on an event loop. A connection is
/// used by one task at a time: the pool lends it out exclusively. Results are copied out before the next
/// call, and the `PGconn` is closed (`PQfinish`) when the connection is closed or released.
public final class PostgresConnection: @unchecked Sendable {
    let pointer: OpaquePointer
    let threadPool: NIOThreadPool
    /// The server process serving this connection (`pg_backend_pid()`).
    public let backendPID: Int32
    var closed = false
    /// A statement as prepared: its text and its parameters' types. By types too, because a statement prepared with a
    /// parameter of unknown type (a NULL) would otherwise receive a typed one later.
    struct PreparedKey: Hashable {
        var sql: String
        var types: [Oid]
    }
    /// Statements prepared on this connection (`PQprepare`) and their names. Prepared statements outlive
    /// transactions, committed or not, and end with the connection.
    var preparedNames: [PreparedKey: String] = [:]
    /// Set when the server sent a FATAL message outside a statement (`pg_terminate_backend`, shutdown): the
    /// backend is ending, even while its socket is still open.
    var endedByServer = false

    private init(pointer: OpaquePointer, threadPool: NIOThreadPool) {
        self.pointer = pointer
        self.threadPool = threadPool
        self.backendPID = PQbackendPID(pointer)
        // Server notices (warnings) would go to stderr; statements report errors through results instead. A
        // message that arrives between statements is handed to the notice receiver, FATAL ones included.
        PQsetNoticeReceiver(
            pointer,
            { argument, result in
                guard let argument, let result,
                    let severity = PQresultErrorField(result, Int32(Character("V").asciiValue!)),
                    String(cString: severity) == "FATAL"
                else { return }
                Unmanaged<PostgresConnection>.fromOpaque(argument).takeUnretainedValue().endedByServer = true
            },
            Unmanaged.passUnretained(self).toOpaque()
        )
    }

    deinit {
        if !closed { PQfinish(pointer) }
    }

    /// Opens a connection. Fails with `.connectionFailed` when the server cannot be reached.
    public static func connect(_ configuration: PostgresConfiguration, threadPool: NIOThreadPool) async throws -> PostgresConnection {
        try await threadPool.runIfActive {
            try connectBlocking(configuration, threadPool: threadPool)
        }
    }

    static func connectBlocking(_ configuration: PostgresConfiguration, threadPool: NIOThreadPool) throws(PostgresError) -> PostgresConnection {
        let pairs = configuration.keywordValues
        let keywords = pairs.map { strdup($0.0) } + [nil]
        let values = pairs.map { strdup($0.1) } + [nil]
        defer {
            keywords.forEach { free($0) }
            values.forEach { free($0) }
        }
        let pointer: OpaquePointer? = keywords.map { UnsafePointer($0) }.withUnsafeBufferPointer { keywordBuffer in
            values.map { UnsafePointer($0) }.withUnsafeBufferPointer { valueBuffer in
                PQconnectdbParams(keywordBuffer.baseAddress, valueBuffer.baseAddress, 1)
            }
        }
        guard let pointer else {
            throw PostgresError(.connectionFailed, message: "libpq could not allocate a connection")
        }
        guard PQstatus(pointer) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(pointer)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(pointer)
            throw PostgresError(.connectionFailed, message: message)
        }
        let connection = PostgresConnection(pointer: pointer, threadPool: threadPool)
        // Times come back in UTC and ISO format, whatever the server's defaults.
        _ = try connection.execBlocking(sql: "SET TIME ZONE 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'", binds: nil)
        return connection
    }

    /// Whether libpq considers the connection usable.
    public var isBroken: Bool { closed || endedByServer || PQstatus(pointer) != CONNECTION_OK }

    /// Reads whatever the server has sent without blocking, and reports whether the connection is still alive.
    ///
    /// A backend terminated by the server (`pg_terminate_backend`, restart) is detected here before a
    /// statement is sent to it.
    public func checkAlive() async -> Bool {
        (try? await threadPool.runIfActive { [self] in
            guard !isBroken else { return false }
            // A terminated backend sends a FATAL message, then closes: the first read takes the message
            // (PQisBusy parses it and hands it to the notice receiver), the second one sees the end of the
            // stream if it has come. The message alone is enough: the socket may close a moment later.
            for _ in 0..<2 {
                guard PQconsumeInput(pointer) == 1 else { return false }
                _ = PQisBusy(pointer)
            }
            return !isBroken
        }) ?? false
    }

    /// Runs a statement with bound parameters and returns its rows.
    ///
    /// `prepared`: the statement is prepared on this connection the first time it runs there, and its prepared form
    /// runs from then on, which spares the server parsing it and, once PostgreSQL settles on a generic plan, planning
    /// it. For statements a connection runs often whose best plan does not depend on their values (the event writer's).
    ///
    /// `packed`: the rows are received one at a time (libpq's single-row mode) and packed as they arrive (`PackedRows`),
    /// in under half the memory libpq keeps a whole result in; for results that may be large (a pipe's answer).
    @discardableResult
    public func query(_ query: PostgresQuery, prepared: Bool = false, packed: Bool = false) async throws -> PostgresRows {
        let (sql, binds) = query.render()
        return try await threadPool.runIfActive { [self] in
            try execBlocking(sql: sql, binds: binds, prepared: prepared, packed: packed)
        }
    }

    /// Runs a statement with bound parameters and returns the number of rows it affected (`prepared`: see `query`).
    @discardableResult
    public func execute(_ query: PostgresQuery, prepared: Bool = false) async throws -> Int {
        try await self.query(query, prepared: prepared).affectedRows
    }

    /// Runs a script of one or more statements without parameters (migrations, `SET`, `LISTEN`).
    public func executeScript(unsafeSQL script: String) async throws {
        try await threadPool.runIfActive { [self] in
            _ = try execBlocking(sql: script, binds: nil)
        }
    }

    /// Publishes a notification with `pg_notify` (channel and payload are bound, never spliced).
    public func notify(channel: String, payload: String) async throws {
        try await query("SELECT pg_notify(\(channel), \(payload))")
    }

    /// Closes the connection. Further calls fail.
    public func close() async {
        _ = try? await threadPool.runIfActive { [self] in closeBlocking() }
    }

    func closeBlocking() {
        guard !closed else { return }
        closed = true
        PQfinish(pointer)
    }

    // MARK: Blocking calls (thread pool only)

    /// `PQexecParams` for a statement with parameters (`PQprepare` once and `PQexecPrepared` if `prepared`; their
    /// `PQsend…` forms in single-row mode if `packed`); `PQexec` for a parameterless script (`binds == nil`).
    func execBlocking(sql: String, binds: [PostgresBind]?, prepared: Bool = false, packed: Bool = false) throws(PostgresError) -> PostgresRows {
        guard !closed else { throw PostgresError(.connectionLost, message: "the connection is closed") }
        guard let binds else { return try check(PQexec(pointer, sql)) }
        var values: [UnsafeMutablePointer<CChar>?] = []
        values.reserveCapacity(binds.count)
        defer { values.forEach { free($0) } }
        for (index, bind) in binds.enumerated() {
            guard let text = bind.text else {
                values.append(nil)
                continue
            }
            guard !text.utf8.contains(0) else {
                throw PostgresError(.invalidInput, message: "parameter $\(index + 1) contains a NUL character")
            }
            values.append(strdup(text))
        }
        let types = binds.map { Oid($0.type.rawValue) }
        var name: String?
        if prepared {
            let key = PreparedKey(sql: sql, types: types)
            if let known = preparedNames[key] {
                name = known
            } else {
                let fresh = "analytics_\(preparedNames.count + 1)"
                _ = try types.withUnsafeBufferPointer { typeBuffer throws(PostgresError) in
                    try check(PQprepare(pointer, fresh, sql, Int32(binds.count), typeBuffer.baseAddress))
                }
                preparedNames[key] = fresh
                name = fresh
            }
        }
        let count = Int32(binds.count)
        var result: OpaquePointer?
        var sent: Int32 = 0
        values.map { UnsafePointer($0) }.withUnsafeBufferPointer { valueBuffer in
            types.withUnsafeBufferPointer { typeBuffer in
                let (values, types) = (valueBuffer.baseAddress, typeBuffer.baseAddress)
                switch (name, packed) {
                case (let name?, false): result = PQexecPrepared(pointer, name, count, values, nil, nil, 0)
                case (let name?, true): sent = PQsendQueryPrepared(pointer, name, count, values, nil, nil, 0)
                case (nil, false): result = PQexecParams(pointer, sql, count, types, values, nil, nil, 0)
                case (nil, true): sent = PQsendQueryParams(pointer, sql, count, types, values, nil, nil, 0)
                }
            }
        }
        guard packed else { return try check(result) }
        guard sent == 1 else { throw connectionError() }
        return try collectPacked()
    }

    /// Reads the results of a statement just sent, a row at a time where single-row mode could be set, packing each
    /// row as it arrives. Every result is read (until libpq has none), so the connection is ready for the next
    /// statement whatever happened; the first error is thrown and the rows read before it are dropped.
    func collectPacked() throws(PostgresError) -> PostgresRows {
        _ = PQsetSingleRowMode(pointer)  // when refused, the rows come as one result, packed all the same
        var builder: PackedRows.Builder?
        var columns: PostgresColumns?
        var final: ResultHandle?
        var failure: PostgresError?
        while let result = PQgetResult(pointer) {
            let handle = ResultHandle(result)
            guard failure == nil else { continue }
            let status = PQresultStatus(result)
            switch status {
            case PGRES_SINGLE_TUPLE, PGRES_TUPLES_OK, PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
                let rows = PQntuples(result)
                if rows > 0 && builder == nil {
                    columns = PostgresColumns(result: result)
                    builder = PackedRows.Builder(width: Int(PQnfields(result)))
                }
                do {
                    for row in 0..<rows { try builder?.append(row: row, of: result) }
                } catch {
                    failure = error
                }
                if status != PGRES_SINGLE_TUPLE { final = handle }
            case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
                failure = serverError(result)
            default:
                failure = PostgresError(.protocolViolation, message: "unexpected result status \(status.rawValue)")
            }
        }
        if let failure { throw failure }
        guard let final else { throw connectionError() }
        guard let builder else {
            return PostgresRows(packed: PackedRows.Builder(width: 0).finish(), count: 0, columns: columns, final: final)
        }
        let count = builder.count
        return PostgresRows(packed: builder.finish(), count: count, columns: columns, final: final)
    }

    /// Turns a libpq result into rows or a typed error, taking ownership of it.
    func check(_ result: OpaquePointer?) throws(PostgresError) -> PostgresRows {
        guard let result else { throw connectionError() }
        let handle = ResultHandle(result)
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(handle: handle)
        case PGRES_FATAL_ERROR, PGRES_NONFATAL_ERROR:
            throw serverError(result)
        default:
            throw PostgresError(.protocolViolation, message: "unexpected result status \(PQresultStatus(result).rawValue)")
        }
    }

    func serverError(_ result: OpaquePointer) -> PostgresError {
        func field(_ code: Character) -> String? {
            guard let value = PQresultErrorField(result, Int32(code.asciiValue!)) else { return nil }
            return String(cString: value)
        }
        let code = field("C").map(SQLState.init(rawValue:))
        let message = field("M") ?? String(cString: PQresultErrorMessage(result))
        let kind: PostgresError.Kind = PQstatus(pointer) == CONNECTION_OK ? .server : .connectionLost
        return PostgresError(kind, code: code, message: message, detail: field("D"), hint: field("H"))
    }

    func connectionError() -> PostgresError {
        let message = String(cString: PQerrorMessage(pointer)).trimmingCharacters(in: .whitespacesAndNewlines)
        let kind: PostgresError.Kind = PQstatus(pointer) == CONNECTION_OK ? .protocolViolation : .connectionLost
        return PostgresError(kind, message: message.isEmpty ? "no result from libpq" : message)
    }
}
