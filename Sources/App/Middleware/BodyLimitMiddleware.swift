import HTTPTypes
import Hummingbird

/// Answers 413 at once when a request announces a body larger than `MAX_BODY_SIZE`, before any of it is read.
/// Handlers that read bodies of unannounced length collect them with the same limit.
struct BodyLimitMiddleware<Context: RequestContext>: RouterMiddleware {
    let maxBodySize: Int

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxBodySize {
            throw APIError(.contentTooLarge, "the request body is \(length) bytes; the limit is \(maxBodySize) bytes (MAX_BODY_SIZE)")
        }
        return try await next(request, context)
    }
}
