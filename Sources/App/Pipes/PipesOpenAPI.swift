import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /v0/pipes/openapi.json`: the workspace's pipes as an OpenAPI 3.1 document, made from the same definitions
/// that run them (parameters with their types, bounds, defaults and descriptions; the response shapes).
enum PipesOpenAPI {
    struct Document {
        var value: JSONValue

        func response() -> Response {
            Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: value.jsonText))
            )
        }
    }

    static func document(for pipes: [PipeDefinition]) -> Document {
        var paths: [String: JSONValue] = [:]
        for pipe in pipes {
            for format in PipesController.OutputFormat.allCases {
                paths["/v0/pipes/\(pipe.name).\(format.rawValue)"] = .object(["get": operation(pipe, format: format)])
            }
        }
        let error: JSONValue = .object([
            "type": "object",
            "required": .array(["error"]),
            "properties": .object(["error": .object(["type": "string"])]),
        ])
        return Document(
            value: .object([
                "openapi": "3.1.0",
                "info": .object([
                    "title": "Analytics API pipes",
                    "version": "1.0.0",
                    "description": "The pipes of this workspace: named SQL queries with typed parameters.",
                ]),
                "paths": .object(paths),
                "components": .object([
                    "securitySchemes": .object([
                        "bearer": .object(["type": "http", "scheme": "bearer", "description": "An API token (read or read:<pipe>) or a login token"]),
                        "token": .object(["type": "apiKey", "in": "query", "name": "token"]),
                    ]),
                    "schemas": .object(["Error": error]),
                ]),
                "security": .array([.object(["bearer": .array([])]), .object(["token": .array([])])]),
            ])
        )
    }

    static func operation(_ pipe: PipeDefinition, format: PipesController.OutputFormat) -> JSONValue {
        let row: JSONValue = .object([
            "type": "object",
            "properties": .object(
                Dictionary(
                    pipe.columns.map { ($0.name, JSONValue.object(["description": .string($0.description)])) },
                    uniquingKeysWith: { first, _ in first }
                )
            ),
        ])
        let content: JSONValue
        switch format {
        case .json:
            content = .object([
                "application/json": .object([
                    "schema": .object([
                        "type": "object",
                        "required": .array(["meta", "data", "rows", "statistics"]),
                        "properties": .object([
                            "meta": .object([
                                "type": "array",
                                "items": .object([
                                    "type": "object",
                                    "properties": .object(["name": .object(["type": "string"]), "type": .object(["type": "string"])]),
                                ]),
                            ]),
                            "data": .object(["type": "array", "items": row]),
                            "rows": .object(["type": "integer"]),
                            "statistics": .object([
                                "type": "object",
                                "properties": .object([
                                    "elapsed": .object(["type": "number", "description": "seconds the server took"]),
                                    "rows_read": .object(["type": "integer"]),
                                    "bytes_read": .object(["type": "integer"]),
                                ]),
                            ]),
                        ]),
                    ])
                ])
            ])
        case .ndjson:
            content = .object(["application/x-ndjson": .object(["schema": .object(["type": "string"])])])
        case .csv, .csvwithnames:
            content = .object(["text/csv": .object(["schema": .object(["type": "string"])])])
        }
        let errorContent: JSONValue = .object(["application/json": .object(["schema": .object(["$ref": "#/components/schemas/Error"])])])
        return .object([
            "operationId": .string("\(pipe.name)_\(format.rawValue)"),
            "summary": .string(pipe.description),
            "tags": .array([.string(pipe.template)]),
            "parameters": .array(pipe.parameters.map(parameter)),
            "responses": .object([
                "200": .object(["description": "the pipe's rows", "content": content]),
                "400": .object(["description": "a parameter is missing or not valid", "content": errorContent]),
                "401": .object(["description": "no valid token", "content": errorContent]),
                "403": .object(["description": "the token may not read this pipe", "content": errorContent]),
                "408": .object(["description": "the query took too long", "content": errorContent]),
            ]),
        ])
    }

    static func parameter(_ parameter: PipeParameter) -> JSONValue {
        var schema: [String: JSONValue]
        switch parameter.kind {
        case .string: schema = ["type": "string"]
        case .int(let range):
            schema = ["type": "integer"]
            if let range {
                schema["minimum"] = .int(range.lowerBound)
                schema["maximum"] = .int(range.upperBound)
            }
        case .float: schema = ["type": "number"]
        case .bool: schema = ["type": "boolean"]
        case .dateTime: schema = ["type": "string", "description": "YYYY-MM-DD HH:MM:SS or ISO 8601, UTC"]
        case .date: schema = ["type": "string", "format": "date"]
        case .interval: schema = ["type": "string", "pattern": "^[0-9]+ (second|minute|hour|day|week|month|year)s?$"]
        case .enumeration(let words): schema = ["type": "string", "enum": .array(words.map(JSONValue.string))]
        case .stringArray: schema = ["type": "array", "items": .object(["type": "string"])]
        }
        if let defaultValue = parameter.defaultValue {
            switch parameter.kind {
            case .int: schema["default"] = Int(defaultValue).map(JSONValue.int) ?? .string(defaultValue)
            case .bool: schema["default"] = .bool(defaultValue == "true")
            case .float: schema["default"] = Double(defaultValue).map(JSONValue.double) ?? .string(defaultValue)
            case .stringArray: schema["default"] = .array(defaultValue.split(separator: ",").map { .string(String($0)) })
            default: schema["default"] = .string(defaultValue)
            }
        }
        var object: [String: JSONValue] = [
            "name": .string(parameter.name),
            "in": "query",
            "required": .bool(parameter.required),
            "schema": .object(schema),
        ]
        if !parameter.description.isEmpty { object["description"] = .string(parameter.description) }
        if case .stringArray = parameter.kind {
            object["style"] = "form"
            object["explode"] = .bool(true)
        }
        return .object(object)
    }
}
