import Foundation
import HTTPTypes
import Hummingbird
import Logging
import Postgres

/// Turns every error into a JSON response with the right status, so clients never see a stack trace, SQL text
/// or data from an error message. Unexpected errors are logged with their detail and answered with a 500 that
/// names the request id.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            let apiError = Self.apiError(for: error, context: context)
            return Self.response(for: apiError, path: request.uri.path)
        }
    }

    /// Maps any error to what the client is told.
    static func apiError(for error: any Error, context: Context) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as HTTPError:
            var headers = error.headers
            headers[.contentType] = nil
            return APIError(error.status, error.body ?? error.status.reasonPhrase, headers: headers)
        case let error as PostgresError where error.isUnavailable:
            context.logger.warning("database unavailable", metadata: ["error": "\(String(reflecting: error))"])
            return .databaseUnavailable
        case let error as PostgresError where error.code == .queryCanceled:
            return APIError(.requestTimeout, "the query took too long and was cancelled; narrow the time window or filters")
        case let error as PostgresError where error.kind == .invalidInput:
            return .badRequest("invalid input: \(error.message)")
        case let error as DecodingError:
            return .badRequest("invalid request body: \(describe(error))")
        default:
            context.logger.error("unhandled error", metadata: ["error": "\(String(reflecting: error))"])
            return APIError(.internalServerError, "internal server error (request id \(context.id))")
        }
    }

    /// The JSON body for an error: `{"error"}` under `/v0`, `{"detail"}` elsewhere.
    static func response(for error: APIError, path: String) -> Response {
        let body: [String: JSONValue]
        var status = error.status
        if path.hasPrefix("/v0/") || path == "/v0" {
            body = ["error": .string(error.message)]
            // The hosted platform answers every bad parameter with 400, and so does /v0 here.
            if status == .unprocessableContent { status = .badRequest }
        } else if !error.issues.isEmpty {
            body = [
                "detail": .array(
                    error.issues.map { issue in
                        .object(["loc": .array(issue.loc.map(JSONValue.string)), "msg": .string(issue.msg), "type": .string(issue.type)])
                    }
                )
            ]
        } else {
            body = ["detail": .string(error.message)]
        }
        var headers = error.headers
        headers[.contentType] = "application/json; charset=utf-8"
        let data = (try? JSONEncoder.api.encode(body)) ?? Data(#"{"detail":"error"}"#.utf8)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Describes a decoding error by the field it concerns, without echoing values.
    static func describe(_ error: DecodingError) -> String {
        func path(_ context: DecodingError.Context) -> String {
            let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
            return keys.isEmpty ? "body" : keys.joined(separator: ".")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let parent = path(context)
            return "field \"\(parent == "body" ? key.stringValue : parent + "." + key.stringValue)\" is required"
        case .typeMismatch(let type, let context):
            return "\(path(context)) must be \(describeType(type))"
        case .valueNotFound(let type, let context):
            return "\(path(context)) must be \(describeType(type)), not null"
        case .dataCorrupted(let context):
            return context.codingPath.isEmpty ? "not valid JSON" : "\(path(context)) is invalid"
        @unknown default:
            return "not valid"
        }
    }

    static func describeType(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int32.Type, is Int64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "true or false"
        default: "a \(type)"
        }
    }
}

extension DecodingError {
    /// What is wrong with a request body, for the client (`password: expected a string`).
    var clientDescription: String { ErrorMiddleware<AppRequestContext>.describe(self) }
}
