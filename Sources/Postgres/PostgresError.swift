/// A five-character SQLSTATE code, as reported by the server.
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// The two-character class of the code (`23` for integrity constraint violations, `08` for connection errors).
    public var errorClass: String { String(rawValue.prefix(2)) }
    public var description: String { rawValue }

    public static let uniqueViolation = SQLState(rawValue: "23505")
    public static let foreignKeyViolation = SQLState(rawValue: "23503")
    public static let notNullViolation = SQLState(rawValue: "23502")
    public static let checkViolation = SQLState(rawValue: "23514")
    public static let invalidTextRepresentation = SQLState(rawValue: "22P02")
    public static let characterNotInRepertoire = SQLState(rawValue: "22021")
    public static let undefinedTable = SQLState(rawValue: "42P01")
    public static let undefinedFunction = SQLState(rawValue: "42883")
    public static let syntaxError = SQLState(rawValue: "42601")
    public static let insufficientPrivilege = SQLState(rawValue: "42501")
    public static let queryCanceled = SQLState(rawValue: "57014")
    public static let adminShutdown = SQLState(rawValue: "57P01")
    public static let crashShutdown = SQLState(rawValue: "57P02")
    public static let cannotConnectNow = SQLState(rawValue: "57P03")
    public static let readOnlySQLTransaction = SQLState(rawValue: "25006")
    public static let serializationFailure = SQLState(rawValue: "40001")
    public static let deadlockDetected = SQLState(rawValue: "40P01")

    /// A readable name for the codes this project handles; `nil` for the others.
    public var name: String? {
        switch self {
        case .uniqueViolation: "unique_violation"
        case .foreignKeyViolation: "foreign_key_violation"
        case .notNullViolation: "not_null_violation"
        case .checkViolation: "check_violation"
        case .invalidTextRepresentation: "invalid_text_representation"
        case .characterNotInRepertoire: "character_not_in_repertoire"
        case .undefinedTable: "undefined_table"
        case .undefinedFunction: "undefined_function"
        case .syntaxError: "syntax_error"
        case .insufficientPrivilege: "insufficient_privilege"
        case .queryCanceled: "query_canceled"
        case .adminShutdown: "admin_shutdown"
        case .crashShutdown: "crash_shutdown"
        case .cannotConnectNow: "cannot_connect_now"
        case .readOnlySQLTransaction: "read_only_sql_transaction"
        case .serializationFailure: "serialization_failure"
        case .deadlockDetected: "deadlock_detected"
        default: nil
        }
    }
}

/// An error from the PostgreSQL layer.
///
/// `description` names only the kind of failure and its SQLSTATE: it never contains SQL text or data,
/// so it is safe to show to a client. `debugDescription` (`String(reflecting:)`) adds the server's
/// message, detail and hint, for logs.
public struct PostgresError: Error, Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    /// What went wrong, broadly.
    public enum Kind: Sendable, Hashable {
        /// The server rejected a statement; `code` holds its SQLSTATE.
        case server
        /// A connection could not be opened.
        case connectionFailed
        /// An open connection broke (server restarted, backend terminated, network gone).
        case connectionLost
        /// No connection became free in time.
        case poolTimeout
        /// The pool has been shut down.
        case poolClosed
        /// A value could not be decoded into the requested Swift type.
        case decoding
        /// A value cannot be sent to PostgreSQL (for example a string containing NUL).
        case invalidInput
        /// libpq answered something this layer did not expect.
        case protocolViolation
    }

    public var kind: Kind
    /// The SQLSTATE code, for server errors (and for connection errors the server reported).
    public var code: SQLState?
    /// The primary message. May contain data: log it, do not show it to clients.
    public var message: String
    /// The server's detail line, if any. May contain data.
    public var detail: String?
    /// The server's hint, if any.
    public var hint: String?

    public init(_ kind: Kind, code: SQLState? = nil, message: String, detail: String? = nil, hint: String? = nil) {
        self.kind = kind
        self.code = code
        self.message = message
        self.detail = detail
        self.hint = hint
    }

    /// True when the database cannot be reached right now: callers should answer 503 and try again later.
    public var isUnavailable: Bool {
        switch kind {
        case .connectionFailed, .connectionLost, .poolTimeout, .poolClosed:
            return true
        case .server:
            guard let code else { return false }
            return code.errorClass == "08" || code == .adminShutdown || code == .crashShutdown || code == .cannotConnectNow
        case .decoding, .invalidInput, .protocolViolation:
            return false
        }
    }

    public var description: String {
        switch kind {
        case .server:
            let code = self.code?.rawValue ?? "?????"
            if let name = self.code?.name { return "PostgreSQL error \(code) (\(name))" }
            return "PostgreSQL error \(code)"
        case .connectionFailed: return "PostgreSQL is unavailable: connection failed"
        case .connectionLost: return "PostgreSQL is unavailable: connection lost"
        case .poolTimeout: return "PostgreSQL is unavailable: no connection became free in time"
        case .poolClosed: return "PostgreSQL connection pool is closed"
        case .decoding: return "PostgreSQL value could not be decoded"
        case .invalidInput: return "value cannot be sent to PostgreSQL"
        case .protocolViolation: return "unexpected answer from libpq"
        }
    }

    public var debugDescription: String {
        var text = "\(description): \(message)"
        if let detail { text += " DETAIL: \(detail)" }
        if let hint { text += " HINT: \(hint)" }
        return text
    }
}
