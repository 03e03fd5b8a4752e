import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /openapi.json`, `GET /docs` (Swagger UI for browsers, the document for everyone else) and `GET /redoc`.
///
/// The two UI pages load their JavaScript from the jsDelivr CDN, as FastAPI's do, and say so; offline, they show a
/// link to `/openapi.json` instead.
struct DocsController: Sendable {
    /// The document's text, made once at start-up.
    let documentText: String

    init(document: JSONValue = OpenAPIDocument.build()) {
        documentText = document.jsonText
    }

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("/openapi.json") { _, _ in documentResponse }
        router.get("/docs") { request, _ in
            Self.wantsHTML(request) ? Self.page(Self.swaggerPage) : documentResponse
        }
        router.get("/redoc") { _, _ in Self.page(Self.redocPage) }
    }

    var documentResponse: Response {
        Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: documentText)))
    }

    /// Browsers ask for `text/html` first; curl sends `*/*` and gets the document.
    static func wantsHTML(_ request: Request) -> Bool {
        request.headers[values: .accept].contains { $0.lowercased().contains("text/html") }
    }

    static func page(_ html: String) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    /// Shown until the UI script has loaded, and kept if it cannot be.
    static let offlineNote = """
        <p id="offline">This page loads its viewer from the jsDelivr CDN. If it stays empty, you are offline or the CDN is \
        blocked: read the API description at <a href="/openapi.json">/openapi.json</a>.</p>
        """

    /// A page that loads a viewer from the CDN and starts it once it is there (the offline note stays otherwise).
    static func viewerPage(title: String, head: String = "", container: String, script: String, global: String, start: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>Analytics API — \(title)</title>
        \(head)
        </head>
        <body>
        \(offlineNote)
        <div id="\(container)"></div>
        <script src="\(script)"></script>
        <script>
        if (window.\(global)) {
          document.getElementById("offline").remove();
          \(start)
        }
        </script>
        </body>
        </html>
        """
    }

    static let swaggerPage = viewerPage(
        title: "Swagger UI",
        head: #"<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">"#,
        container: "swagger-ui",
        script: "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js",
        global: "SwaggerUIBundle",
        start: ##"SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true, persistAuthorization: true });"##
    )

    static let redocPage = viewerPage(
        title: "ReDoc",
        container: "redoc",
        script: "https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js",
        global: "Redoc",
        start: #"Redoc.init("/openapi.json", {}, document.getElementById("redoc"));"#
    )
}

extension DocsController {
    static let operations: [APIOperation] = [
        APIOperation.get("/openapi.json", id: "openapi", tag: "operations", summary: "This document (OpenAPI 3.1)", access: .anonymous)
            .response(200, .json("the document", ["type": "object"]))
            .withoutDatabase(),
        APIOperation.get(
            "/docs",
            id: "docs",
            tag: "operations",
            summary: "Swagger UI for browsers; this document for everyone else",
            access: .anonymous
        )
        .describing("Requests that accept text/html get Swagger UI (loaded from the jsDelivr CDN); others get the OpenAPI JSON.")
        .response(200, .content("Swagger UI or the document", ["text/html": Schema.string, "application/json": ["type": "object"]]))
        .withoutDatabase(),
        APIOperation.get("/redoc", id: "redoc", tag: "operations", summary: "ReDoc (loaded from the jsDelivr CDN)", access: .anonymous)
            .response(200, .content("the page", ["text/html": Schema.string]))
            .withoutDatabase(),
    ]
}
