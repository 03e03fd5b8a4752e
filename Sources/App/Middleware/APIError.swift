import Foundation
import HTTPTypes
import Hummingbird

/// An error answered to the client with a status and a message meant for them.
///
/// The body's shape depends on the API it comes from (see `ErrorMiddleware`): `{"detail": "…"}` under `/api`
/// and elsewhere, `{"error": "…"}` under `/v0`; validation failures under `/api` list their fields as
/// `{"detail": [{"loc": […], "msg": "…", "type": "…"}]}`.
public struct APIError: Error, Sendable {
    /// One invalid input: where it is (`["query", "hours"]`), what is wrong, and a machine-readable kind.
    public struct ValidationIssue: Codable, Sendable, Equatable {
        public var loc: [String]
        public var msg: String
        public var type: String

        public init(loc: [String], msg: String, type: String = "value_error") {
            self.loc = loc
            self.msg = msg
            self.type = type
        }
    }

    public var status: HTTPResponse.Status
    public var message: String
    public var issues: [ValidationIssue]
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, _ message: String, issues: [ValidationIssue] = [], headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.issues = issues
        self.headers = headers
    }

    public static func badRequest(_ message: String) -> APIError { APIError(.badRequest, message) }
    public static func notFound(_ message: String = "Not Found") -> APIError { APIError(.notFound, message) }
    public static func unauthorized(_ message: String = "Not authenticated") -> APIError {
        APIError(.unauthorized, message, headers: [.wwwAuthenticate: "Bearer"])
    }
    public static func forbidden(_ message: String = "Not enough permissions") -> APIError { APIError(.forbidden, message) }

    /// 422 with one issue per invalid input.
    public static func validation(_ issues: [ValidationIssue]) -> APIError {
        APIError(.unprocessableContent, issues.map { "\($0.loc.joined(separator: ".")): \($0.msg)" }.joined(separator: "; "), issues: issues)
    }

    /// 503: the database cannot be reached now.
    public static let databaseUnavailable = APIError(
        .serviceUnavailable,
        "the database is unavailable; try again shortly",
        headers: [.retryAfter: "5"]
    )
}
