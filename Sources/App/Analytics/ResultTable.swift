import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Postgres

/// Rows with named columns, answered as a JSON array of objects (keys in column order, `null` for NULL) or as CSV
/// (`format=csv`): one shape for every analytics endpoint, so CSV always equals the JSON.
struct ResultTable: ResponseGenerator, Sendable {
    enum Format: String, Sendable {
        case json, csv
    }

    var columns: [String]
    var rows: [[JSONValue]]
    var format: Format = .json

    /// Converts query rows by column type: integers, numbers, booleans, JSON, times (ISO-8601 UTC) and text.
    init(_ result: PostgresRows, format: Format = .json) throws {
        self.columns = result.columns?.names ?? []
        self.format = format
        let types = result.columns?.types ?? []
        self.rows = try result.map { row in
            try (0..<row.count).map { column in try Self.value(row, column: column, type: types[column]) }
        }
    }

    static func value(_ row: PostgresRow, column: Int, type: PostgresType) throws -> JSONValue {
        guard let text = row.text(column) else { return .null }
        switch type {
        case .int2, .int4, .int8: return Int(text).map(JSONValue.int) ?? .string(text)
        case .float4, .float8, .numeric:
            guard let number = Double(text), number.isFinite else { return .null }
            return .double(number)
        case .bool: return .bool(text == "t")
        case .json, .jsonb: return (try? JSONParser.parse(text)) ?? .string(text)
        case .timestamptz, .timestamp:
            return PostgresTimestamp.parse(text).map { .string(PostgresTimestamp.iso8601($0)) } ?? .string(text)
        default: return .string(text)
        }
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        let body: String
        let contentType: String
        switch format {
        case .json:
            body = jsonText
            contentType = "application/json; charset=utf-8"
        case .csv:
            body = csvText
            contentType = "text/csv; charset=utf-8"
        }
        return Response(status: .ok, headers: [.contentType: contentType], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    var jsonText: String {
        var text = "["
        let keys = columns.map { JSONValue.string($0).jsonText }
        for (index, row) in rows.enumerated() {
            if index > 0 { text += "," }
            text += "{"
            for (column, value) in row.enumerated() {
                if column > 0 { text += "," }
                text += keys[column] + ":" + value.jsonText
            }
            text += "}"
        }
        return text + "]"
    }

    var csvText: String {
        func field(_ text: String) -> String {
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var lines = [columns.map(field).joined(separator: ",")]
        for row in rows {
            lines.append(
                row.map { value in
                    switch value {
                    case .null: ""
                    case .string(let text): field(text)
                    case .int(let number): String(number)
                    case .double(let number): String(number)
                    case .bool(let flag): flag ? "true" : "false"
                    case .array, .object: field(value.jsonText)
                    }
                }.joined(separator: ",")
            )
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }
}
