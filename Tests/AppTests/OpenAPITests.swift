import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import PostgresTestSupport
import Testing

@testable import App

@Suite("OpenAPI: the document, its parity with the routers, Swagger UI and ReDoc")
struct OpenAPITests {
    @Test("every route the routers serve is in /openapi.json, and every documented operation is served")
    func parity() async throws {
        let database = try await TestDatabase.create()
        let config = try testConfig(database: database)
        let started = try await Database.start(config, logger: TestDatabase.logger)
        let parts = try await ApplicationParts(config: config, database: started, logger: TestDatabase.logger)
        await started.shutdown()

        let documented = Set(OpenAPIDocument.operations.map { "\($0.method.uppercased()) \($0.path)" })
        #expect(parts.routes.subtracting(documented).sorted() == [], "served but not documented")
        #expect(documented.subtracting(parts.routes).sorted() == [], "documented but not served")
        #expect(parts.routes.count > 30)
        // operationIds are unique, and every path parameter is declared.
        #expect(Set(OpenAPIDocument.operations.map(\.id)).count == OpenAPIDocument.operations.count)
    }

    @Test("/openapi.json is valid OpenAPI 3.1; /docs gives browsers Swagger UI and everyone else the JSON; /redoc")
    func documentAndPages() async throws {
        try await withTestApp { client in
            let document = try await client.execute(uri: "/openapi.json", method: .get) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                return String(buffer: response.body)
            }
            #expect(try await validateOpenAPI(document) == "")
            let parsed = try JSONDecoder().decode(JSONValue.self, from: Data(document.utf8))
            guard case .object(let root) = parsed, case .object(let paths)? = root["paths"] else { throw TestFailure("no paths") }
            #expect(root["openapi"] == "3.1.0")
            // The seed's calls are there, with their parameters' bounds.
            guard case .object(let funnel)? = paths["/api/analytics/funnel"], case .object(let get)? = funnel["get"],
                case .array(let parameters)? = get["parameters"]
            else { throw TestFailure("no funnel") }
            #expect(parameters.contains { $0.field("name") == "pages" && $0.field("required") == true })
            #expect(get["security"] == [["bearer": []]])

            // curl sends Accept: */* and gets the document, as FastAPI's users expect.
            try await client.execute(uri: "/docs", method: .get, headers: [.accept: "*/*"]) { response in
                #expect(response.headers[.contentType]?.hasPrefix("application/json") == true)
                #expect(String(buffer: response.body) == document)
            }
            let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            try await client.execute(uri: "/docs", method: .get, headers: [.accept: browser]) { response in
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                let html = String(buffer: response.body)
                #expect(html.contains("swagger-ui-bundle.js"))
                #expect(html.contains(#"url: "/openapi.json""#))
                #expect(html.contains(#"<a href="/openapi.json">"#))
            }
            try await client.execute(uri: "/redoc", method: .get) { response in
                #expect(response.headers[.contentType]?.hasPrefix("text/html") == true)
                let html = String(buffer: response.body)
                #expect(html.contains("redoc.standalone.js"))
                #expect(html.contains(#"<a href="/openapi.json">"#))
            }
        }
    }
}

extension JSONValue {
    /// A field of an object, or nil.
    func field(_ name: String) -> JSONValue? {
        guard case .object(let object) = self else { return nil }
        return object[name]
    }
}
