/// One route as the API document describes it. Each module lists its routes' operations beside its `addRoutes`
/// (`static let operations`); `OpenAPIDocument` assembles them, and a test checks them against the routers' own
/// route tables in both directions, so the document cannot drift from what the server serves.
struct APIOperation: Sendable {
    /// Who may call it, which decides its security requirement and its 401/403 answers.
    enum Access: Sendable {
        /// Needs no credential and uses none (a credential that is sent must still be valid).
        case anonymous
        /// Works without a credential; a credential that is sent must be valid.
        case optional
        /// Needs `Authorization: Bearer` (a login token or an API token).
        case bearer
        /// Needs a token, in `Authorization: Bearer` or `?token=` (the `/v0` API).
        case bearerOrQuery
    }

    var method: String
    var path: String
    var id: String
    var tag: String
    var summary: String
    var description: String?
    var access: Access
    var parameters: [JSONValue] = []
    var requestBody: JSONValue?
    /// Successful answers and the errors particular to this route, by status code.
    var responses: [Int: JSONValue]
    /// Whether it reads the database (and so may answer 503 while the database is down).
    var usesDatabase = true

    static func get(_ path: String, id: String, tag: String, summary: String, access: Access) -> APIOperation {
        APIOperation(method: "get", path: path, id: id, tag: tag, summary: summary, access: access, responses: [:])
    }

    static func post(_ path: String, id: String, tag: String, summary: String, access: Access) -> APIOperation {
        APIOperation(method: "post", path: path, id: id, tag: tag, summary: summary, access: access, responses: [:])
    }

    static func delete(_ path: String, id: String, tag: String, summary: String, access: Access) -> APIOperation {
        APIOperation(method: "delete", path: path, id: id, tag: tag, summary: summary, access: access, responses: [:])
    }

    func describing(_ text: String) -> APIOperation { with { $0.description = text } }
    func parameters(_ list: [JSONValue]) -> APIOperation { with { $0.parameters += list } }
    func body(_ requestBody: JSONValue) -> APIOperation { with { $0.requestBody = requestBody } }
    func response(_ status: Int, _ response: JSONValue) -> APIOperation { with { $0.responses[status] = response } }
    /// An error answer particular to this route, in the error shape of its API (`errorSchema`).
    func error(_ status: Int, _ description: String) -> APIOperation { response(status, .json(description, errorSchema)) }
    func withoutDatabase() -> APIOperation { with { $0.usesDatabase = false } }

    /// An OpenAPI link: what a response gives that another operation takes (`$response.body#/id`).
    func link(from status: Int, _ name: String, to operationID: String, parameters: [String: JSONValue]) -> APIOperation {
        with {
            guard case .object(var response)? = $0.responses[status] else { return }
            var links: [String: JSONValue] = [:]
            if case .object(let existing)? = response["links"] { links = existing }
            links[name] = ["operationId": .string(operationID), "parameters": .object(parameters)]
            response["links"] = .object(links)
            $0.responses[status] = .object(response)
        }
    }

    private func with(_ change: (inout APIOperation) -> Void) -> APIOperation {
        var copy = self
        change(&copy)
        return copy
    }

    /// Errors under `/v0` are `{"error"}`; everywhere else `{"detail"}` (SPEC section 4).
    var errorSchema: JSONValue { path.hasPrefix("/v0/") ? Schema.ref("V0Error") : Schema.ref("Detail") }

    /// The operation object: its own responses plus the errors every route of its kind can give.
    var document: JSONValue {
        var all = responses
        func add(_ status: Int, _ description: String) {
            if all[status] == nil { all[status] = .json(description, errorSchema) }
        }
        switch access {
        case .anonymous, .optional: add(401, "a credential was sent and it is not valid")
        case .bearer, .bearerOrQuery:
            add(401, "no credential, or one that is not valid")
            add(403, "the credential lacks the permission this route needs")
        }
        let takesInput = !parameters.isEmpty || requestBody != nil
        if takesInput {
            if path.hasPrefix("/v0/") { add(400, "a parameter or the body is not valid") } else { add(422, "a parameter or the body is not valid") }
        }
        if requestBody != nil { add(413, "the body is larger than MAX_BODY_SIZE") }
        add(429, "too many requests from this client or token (RATE_LIMIT_PER_IP, RATE_LIMIT_PER_TOKEN)")
        if usesDatabase { add(503, "the database is unavailable; retry later") }

        var object: [String: JSONValue] = [
            "operationId": .string(id),
            "tags": [.string(tag)],
            "summary": .string(summary),
            "responses": .object(Dictionary(uniqueKeysWithValues: all.map { (String($0.key), $0.value) })),
        ]
        if let description { object["description"] = .string(description) }
        if !parameters.isEmpty { object["parameters"] = .array(parameters) }
        if let requestBody { object["requestBody"] = requestBody }
        switch access {
        case .anonymous: object["security"] = []
        case .optional: object["security"] = [["bearer": []], [:]]
        case .bearer: object["security"] = [["bearer": []]]
        case .bearerOrQuery: object["security"] = [["bearer": []], ["token": []]]
        }
        return .object(object)
    }
}

/// JSON Schema pieces, so that the operations read like the shapes they describe.
enum Schema {
    static let string: JSONValue = ["type": "string"]
    static let integer: JSONValue = ["type": "integer"]
    static let number: JSONValue = ["type": "number"]
    static let boolean: JSONValue = ["type": "boolean"]
    static let dateTime: JSONValue = ["type": "string", "format": "date-time"]

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }
    static func array(_ items: JSONValue) -> JSONValue { ["type": "array", "items": items] }
    static func nullable(_ type: String) -> JSONValue { ["type": [.string(type), "null"]] }
    static func nullableDateTime() -> JSONValue { ["type": ["string", "null"], "format": "date-time"] }
    static func enumeration(_ words: [String]) -> JSONValue { ["type": "string", "enum": .array(words.map(JSONValue.string))] }

    /// An object whose listed properties are all present (`null` where they have no value).
    static func object(_ properties: KeyValuePairs<String, JSONValue>, optional: Set<String> = []) -> JSONValue {
        object(properties.map { ($0.key, $0.value) }, optional: optional)
    }

    static func object(_ properties: [(String, JSONValue)], optional: Set<String> = []) -> JSONValue {
        [
            "type": "object",
            "required": .array(properties.map(\.0).filter { !optional.contains($0) }.map(JSONValue.string)),
            "properties": .object(Dictionary(uniqueKeysWithValues: properties)),
        ]
    }
}

/// Parameters and bodies.
extension JSONValue {
    static func query(_ name: String, _ schema: JSONValue, _ description: String, required: Bool = false) -> JSONValue {
        var fields: [String: JSONValue] = ["name": .string(name), "in": "query", "required": .bool(required), "schema": schema]
        fields["description"] = .string(description)
        if case .object(let schemaFields) = schema, schemaFields["type"] == "array" {
            // Repeated: pages=/a&pages=/b.
            fields["style"] = "form"
            fields["explode"] = true
        }
        return .object(fields)
    }

    static func path(_ name: String, _ schema: JSONValue, _ description: String) -> JSONValue {
        ["name": .string(name), "in": "path", "required": true, "schema": schema, "description": .string(description)]
    }

    /// A response with a JSON body.
    static func json(_ description: String, _ schema: JSONValue) -> JSONValue {
        ["description": .string(description), "content": ["application/json": ["schema": schema]]]
    }

    /// A response with bodies of several media types.
    static func content(_ description: String, _ types: KeyValuePairs<String, JSONValue>) -> JSONValue {
        [
            "description": .string(description),
            "content": .object(Dictionary(uniqueKeysWithValues: types.map { ($0.key, ["schema": $0.value]) })),
        ]
    }

    /// A request body.
    static func body(_ description: String, _ types: KeyValuePairs<String, JSONValue>, required: Bool = true) -> JSONValue {
        [
            "description": .string(description),
            "required": .bool(required),
            "content": .object(Dictionary(uniqueKeysWithValues: types.map { ($0.key, ["schema": $0.value]) })),
        ]
    }
}
