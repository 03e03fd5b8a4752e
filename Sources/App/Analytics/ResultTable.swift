import CMalloc
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOPosix
import Postgres
import Synchronization

/// Rows with named columns, answered as a JSON array of objects (keys in column order, `null` for NULL) or as CSV
/// (`format=csv`): one shape for every analytics endpoint, so CSV always equals the JSON.
struct ResultTable: ResponseGenerator, Sendable {
    enum Format: String, Sendable {
        case json, csv
    }

    var columns: [String]
    /// Column types as the hosted platform names them (`Int64`, `Float64`, `String`, `DateTime`, `Array(String)`…).
    var types: [String]
    var format: Format = .json
    /// The query's rows and column types, converted one row at a time as they are written: an answer then holds
    /// libpq's copy of its rows only, where converting them all first held that and the converted rows together.
    private let result: PostgresRows
    private let resultTypes: [PostgresType]
    /// Columns added after the first (`insertColumns`): each one's value of a row of the query.
    private var inserted: [@Sendable (Int) -> JSONValue] = []
    /// The order rows are written in, as rows of the query (`reorder`); nil for the query's own.
    private var order: [Int]?

    /// The rows of `result`, converted by column type as they are written: integers, numbers, booleans, JSON, times
    /// (ISO-8601 UTC), arrays and text.
    init(_ result: PostgresRows, format: Format = .json) {
        self.columns = result.columns?.names ?? []
        self.format = format
        let types = result.columns?.types ?? []
        self.types = types.map(Self.typeName)
        self.result = result
        self.resultTypes = types
    }

    /// How many rows.
    var count: Int { result.count }

    /// The value of the query's column `column` in its row `row`.
    func value(row: Int, column: Int) -> JSONValue {
        Self.value(result[row], column: column, type: resultTypes[column])
    }

    /// Adds columns after the first, each computing its value of a row of the query as the row is written
    /// (`assign_clusters`' cluster and distance, from its k-means result): growing every row's cells would copy them
    /// all, and even a column of values holds 24 bytes a row (24 MB for 494,000 users' two columns).
    mutating func insertColumns(_ added: [(name: String, type: String, value: @Sendable (Int) -> JSONValue)]) {
        precondition(!columns.isEmpty, "columns go after a first column")
        columns.insert(contentsOf: added.map(\.name), at: 1)
        types.insert(contentsOf: added.map(\.type), at: 1)
        inserted.insert(contentsOf: added.map(\.value), at: 0)
    }

    /// Writes the rows in `order` (rows of the query, each once).
    mutating func reorder(_ order: [Int]) {
        precondition(order.count == count, "every row once")
        self.order = order
    }

    /// Row `index` of the answer as values.
    private func cells(_ index: Int) -> [JSONValue] {
        let source = order?[index] ?? index
        let row = result[source]
        var cells: [JSONValue] = []
        cells.reserveCapacity(resultTypes.count + inserted.count)
        for column in resultTypes.indices {
            cells.append(Self.value(row, column: column, type: resultTypes[column]))
            if column == 0 { for value in inserted { cells.append(value(source)) } }
        }
        return cells
    }

    static func value(_ row: PostgresRow, column: Int, type: PostgresType) -> JSONValue {
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
        switch format {
        case .json: Response(status: .ok, headers: [.contentType: "application/json; charset=utf-8"], body: body(.json))
        case .csv: Response(status: .ok, headers: [.contentType: "text/csv; charset=utf-8"], body: body(.csv(header: true)))
        }
    }

    /// How rows are written as text.
    enum RowText: Sendable {
        /// A JSON array of objects.
        case json
        /// One JSON object per line.
        case ndjson
        /// RFC 4180 CSV, with or without a first line of column names.
        case csv(header: Bool)
    }

    /// Rows written per chunk of a response body.
    static let chunkRows = 1_000

    /// A response body: `prefix`, the rows as `text`, then `suffix`. An answer of at most `chunkRows` rows is one
    /// buffer, sent with its length. A longer one is written and sent `chunkRows` rows at a time (chunked transfer
    /// encoding), each chunk once the connection has taken the previous one, so the server never holds the whole
    /// text: `assign_clusters` answers every user (494,000 rows at ten million events), and text built in one buffer
    /// grows by doubling, so a 150 MB answer held up to three times that while it was copied.
    func body(_ text: RowText, prefix: String = "", suffix: String = "") -> ResponseBody {
        let keys = columns.map { JSONValue.string($0).jsonText + ":" }
        var first = ByteBufferText()
        first.write(prefix)
        writeStart(text, to: &first)
        let count = count
        guard count > Self.chunkRows else {
            writeRows(0..<count, text, keys: keys, to: &first)
            writeEnd(text, to: &first)
            first.write(suffix)
            return ResponseBody(byteBuffer: first.buffer)
        }
        let pending = Pending(self)
        return ResponseBody { [first] writer in
            var chunk = first
            var start = 0
            while start < count {
                let end = min(start + Self.chunkRows, count)
                pending.table.withLock { table in
                    guard let table else { return }
                    table.writeRows(start..<end, text, keys: keys, to: &chunk)
                    if end == count {
                        table.writeEnd(text, to: &chunk)
                        chunk.write(suffix)
                    }
                }
                try await writer.write(chunk.buffer)
                chunk = ByteBufferText()
                start = end
            }
            try await writer.finish(nil)
            // The rows go now, not when the connection lets the body go; a long answer's memory is then handed back
            // to the system (glibc keeps freed memory for reuse: the server stayed at 224 MB after assign_clusters
            // answered 494,000 users, away from its 50 MB at rest).
            pending.table.withLock { $0 = nil }
            if count >= Self.trimRows { try? await NIOThreadPool.singleton.runIfActive { Memory.returnFreed() } }
        }
    }

    /// Answers of at least this many rows hand their freed memory back to the system once written.
    static let trimRows = 50_000

    /// The table a streamed answer writes, let go once written.
    private final class Pending: Sendable {
        let table: Mutex<ResultTable?>
        init(_ table: ResultTable) { self.table = Mutex(table) }
    }

    private func writeStart(_ text: RowText, to target: inout some TextOutputStream) {
        switch text {
        case .json: target.write("[")
        case .ndjson, .csv(header: false): break
        case .csv(header: true): target.write(columns.map(Self.csvField).joined(separator: ",") + "\r\n")
        }
    }

    private func writeEnd(_ text: RowText, to target: inout some TextOutputStream) {
        if case .json = text { target.write("]") }
    }

    /// Rows `range` (a JSON row after the first starts with its comma). Responses write straight into their buffer:
    /// a pipe's tens of thousands of rows used to be built as a string, copied into the document's string, then
    /// into the buffer.
    private func writeRows(_ range: Range<Int>, _ text: RowText, keys: [String], to target: inout some TextOutputStream) {
        for index in range {
            let row = cells(index)
            switch text {
            case .json:
                target.write(index > 0 ? ",{" : "{")
                writeFields(row, keys: keys, to: &target)
                target.write("}")
            case .ndjson:
                target.write("{")
                writeFields(row, keys: keys, to: &target)
                target.write("}\n")
            case .csv:
                for (column, value) in row.enumerated() {
                    if column > 0 { target.write(",") }
                    switch value {
                    case .null: break
                    case .string(let text): target.write(Self.csvField(text))
                    case .int(let number): target.write(String(number))
                    case .double(let number): target.write(String(number))
                    case .bool(let flag): target.write(flag ? "true" : "false")
                    case .array, .object: target.write(Self.csvField(value.jsonText))
                    }
                }
                target.write("\r\n")
            }
        }
    }

    private func writeFields(_ row: [JSONValue], keys: [String], to target: inout some TextOutputStream) {
        for (column, value) in row.enumerated() {
            if column > 0 { target.write(",") }
            target.write(keys[column])
            value.write(to: &target)
        }
    }

    /// A CSV field, quoted when it holds a comma, a quote or a line break.
    private static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

/// A `ByteBuffer` that text is written into, for response bodies.
struct ByteBufferText: TextOutputStream {
    var buffer = ByteBuffer()

    mutating func write(_ string: String) { buffer.writeString(string) }
}

/// The process's heap.
enum Memory {
    /// Hands the heap's free memory back to the system (glibc's `malloc_trim`), where the allocator would keep it
    /// for reuse: after a long answer, so that the server's resident size falls back.
    static func returnFreed() {
        #if os(Linux)
            _ = malloc_trim(0)
        #endif
    }
}
