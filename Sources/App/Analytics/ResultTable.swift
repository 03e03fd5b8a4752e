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
    /// Column types as the hosted platform names them (`Int64`, `Float64`, `String`, `DateTime`, `Array(String)`…).
    var types: [String]
    var rows: [[JSONValue]]
    var format: Format = .json

    /// Converts query rows by column type: integers, numbers, booleans, JSON, times (ISO-8601 UTC), arrays and text.
    init(_ result: PostgresRows, format: Format = .json) throws {
        self.columns = result.columns?.names ?? []
        self.format = format
        let types = result.columns?.types ?? []
        self.types = types.map(Self.typeName)
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
        case .textArray, .int8Array, .float8Array, PostgresType(rawValue: 1007), PostgresType(rawValue: 1015):
            guard let items = try? PostgresArrayLiteral.parse(text) else { return .string(text) }
            let numeric = type != .textArray && type != PostgresType(rawValue: 1015)
            return .array(
                items.map { item in
                    guard let item else { return .null }
                    if numeric, let number = Double(item) { return Int(item).map(JSONValue.int) ?? .double(number) }
                    return .string(item)
                }
            )
        default: return .string(text)
        }
    }

    /// The hosted platform's (ClickHouse's) name of a column type.
    static func typeName(_ type: PostgresType) -> String {
        switch type {
        case .int2: "Int16"
        case .int4: "Int32"
        case .int8: "Int64"
        case .float4: "Float32"
        case .float8, .numeric: "Float64"
        case .bool: "Bool"
        case .timestamptz, .timestamp: "DateTime"
        case .date: "Date"
        case .json, .jsonb: "JSON"
        case .uuid: "UUID"
        case .textArray, PostgresType(rawValue: 1015): "Array(String)"
        case .int8Array: "Array(Int64)"
        case PostgresType(rawValue: 1007): "Array(Int32)"
        case .float8Array: "Array(Float64)"
        default: "String"
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

    /// One JSON object per line.
    var ndjsonText: String {
        let keys = columns.map { JSONValue.string($0).jsonText }
        var text = ""
        for row in rows {
            text += "{"
            for (column, value) in row.enumerated() {
                if column > 0 { text += "," }
                text += keys[column] + ":" + value.jsonText
            }
            text += "}\n"
        }
        return text
    }

    var csvText: String { csvText(header: true) }

    /// RFC 4180 CSV, with or without a first line of column names.
    func csvText(header: Bool) -> String {
        func field(_ text: String) -> String {
            guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
            return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        }
        var lines = header ? [columns.map(field).joined(separator: ",")] : []
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
        return lines.isEmpty ? "" : lines.joined(separator: "\r\n") + "\r\n"
    }
}
