import HTTPTypes
import Hummingbird
import Logging

/// Logs one line per request (method, route, path, status, duration, request id), counts it in `/metrics`, and
/// returns the request id in `X-Request-Id`.
struct RequestLoggingMiddleware<Context: RequestContext>: RouterMiddleware {
    var metrics: AppMetrics?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        var response = try await next(request, context)
        let elapsed = ContinuousClock.now - start
        let milliseconds = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        response.headers[.requestID] = context.id
        let level: Logger.Level = response.status.code >= 500 ? .error : (request.uri.path == "/health" ? .debug : .info)
        context.logger.log(
            level: level,
            "request",
            metadata: [
                "method": "\(request.method)",
                "route": "\(context.endpointPath ?? "-")",
                "path": "\(request.uri.path)",
                "status": "\(response.status.code)",
                "duration_ms": "\((milliseconds * 100).rounded() / 100)",
            ]
        )
        // By route, never by raw path, so that the number of series stays bounded.
        metrics?.recordRequest(
            method: "\(request.method)",
            route: context.endpointPath ?? "unmatched",
            status: Int(response.status.code),
            duration: elapsed
        )
        return response
    }
}

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
}
