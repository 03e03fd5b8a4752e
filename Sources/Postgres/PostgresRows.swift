import CLibPQ
import Foundation

/// Owns a libpq `PGresult` and clears it when the last reference goes away.
///
/// A completed `PGresult` is read-only, so it may be read from any thread.
final class ResultHandle: @unchecked Sendable {
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { PQclear(pointer) }
}

/// The column names and types of a result.
public struct PostgresColumns: Sendable {
    /// Column names in order.
    public let names: [String]
    /// Column types in order.
    public let types: [PostgresType]
    let indexByName: [String: Int]

    init(result: OpaquePointer) {
        let count = Int(PQnfields(result))
        var names: [String] = []
        var types: [PostgresType] = []
        var indexByName: [String: Int] = [:]
        for column in 0..<count {
            let name = String(cString: PQfname(result, Int32(column)))
            names.append(name)
            types.append(PostgresType(rawValue: PQftype(result, Int32(column))))
            if indexByName[name] == nil { indexByName[name] = column }
        }
        self.names = names
        self.types = types
        self.indexByName = indexByName
    }

    /// The index of the first column called `name`.
    public func index(of name: String) -> Int? { indexByName[name] }
}

/// The values of rows received one at a time (libpq's single-row mode), packed as they arrive: each page of
/// `rowsPerPage` rows keeps its values' bytes one after another and, per value, where it ends. libpq keeps a whole
/// result as a pointer and a length per value beside the values themselves: answering 494,000 rows of seven short
/// columns (every user's features at ten million events) raised the server's peak memory by 80 MB that way and by
/// 32 MB packed.
final class PackedRows: Sendable {
    static let rowsPerPage = 1_024
    /// A value's end has this bit set when the value is NULL (its start is the previous value's end).
    static let nullBit: UInt32 = 1 << 31

    struct Page: Sendable {
        var bytes: [UInt8]
        /// Per value, row by row: where it ends in `bytes`, with `nullBit` for NULL.
        var ends: [UInt32]
    }

    let pages: [Page]
    let width: Int

    private init(pages: [Page], width: Int) {
        self.pages = pages
        self.width = width
    }

    /// The bytes of a value, or nil for NULL.
    func withValue<Result>(row: Int, column: Int, _ body: (UnsafeBufferPointer<UInt8>?) -> Result) -> Result {
        let page = pages[row / Self.rowsPerPage]
        let slot = (row % Self.rowsPerPage) * width + column
        let end = page.ends[slot]
        if end & Self.nullBit != 0 { return body(nil) }
        let start = slot == 0 ? 0 : Int(page.ends[slot - 1] & ~Self.nullBit)
        return page.bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[start..<Int(end)])) }
    }

    /// Collects rows as they arrive.
    struct Builder {
        let width: Int
        private var pages: [Page] = []
        private var current = Page(bytes: [], ends: [])
        private(set) var count = 0

        init(width: Int) { self.width = width }

        /// Appends row `row` of `result`.
        mutating func append(row: Int32, of result: OpaquePointer) throws(PostgresError) {
            if count > 0 && count % PackedRows.rowsPerPage == 0 { closePage() }
            for column in 0..<Int32(width) {
                if PQgetisnull(result, row, column) == 1 {
                    current.ends.append(UInt32(current.bytes.count) | PackedRows.nullBit)
                    continue
                }
                let length = Int(PQgetlength(result, row, column))
                guard current.bytes.count + length < Int(PackedRows.nullBit) else {
                    throw PostgresError(.decoding, message: "a page of \(PackedRows.rowsPerPage) rows holds 2 GB or more")
                }
                PQgetvalue(result, row, column)!.withMemoryRebound(to: UInt8.self, capacity: length) {
                    current.bytes.append(contentsOf: UnsafeBufferPointer(start: $0, count: length))
                }
                current.ends.append(UInt32(current.bytes.count))
            }
            count += 1
        }

        /// A full page keeps its exact size: arrays grow by doubling, and a page's spare capacity would stay.
        private mutating func closePage() {
            pages.append(Page(bytes: Self.exact(current.bytes), ends: Self.exact(current.ends)))
            current = Page(bytes: [], ends: [])
        }

        private static func exact<Element>(_ array: [Element]) -> [Element] {
            [Element](unsafeUninitializedCapacity: array.count) { buffer, count in
                count = buffer.initialize(fromContentsOf: array)
            }
        }

        consuming func finish() -> PackedRows {
            if count > pages.count * PackedRows.rowsPerPage || pages.isEmpty { closePage() }
            return PackedRows(pages: pages, width: width)
        }
    }
}

/// Where the rows of a result are kept.
enum RowStorage: Sendable {
    /// libpq's result.
    case result(ResultHandle)
    /// Packed as they arrived.
    case packed(PackedRows)
}

/// The rows a statement returned, read lazily from the libpq result (or from rows packed as they arrived, see
/// `PostgresConnection.query(_:prepared:packed:)`).
public struct PostgresRows: Sendable, RandomAccessCollection {
    let storage: RowStorage
    /// Columns of the result (empty for statements that return no rows).
    public let columns: PostgresColumns?
    /// Rows affected (for INSERT, UPDATE, DELETE, COPY) or returned (for SELECT).
    public let affectedRows: Int
    public let count: Int

    init(handle: ResultHandle) {
        self.storage = .result(handle)
        let result = handle.pointer
        self.count = Int(PQntuples(result))
        self.columns = PQnfields(result) > 0 ? PostgresColumns(result: result) : nil
        self.affectedRows = Self.affectedRows(result) ?? count
    }

    /// Rows packed as they arrived; `final` is the result that ended them (its command tag and, where no row came,
    /// its columns).
    init(packed: PackedRows, count: Int, columns: PostgresColumns?, final: ResultHandle) {
        self.storage = .packed(packed)
        self.count = count
        self.columns = columns ?? (PQnfields(final.pointer) > 0 ? PostgresColumns(result: final.pointer) : nil)
        self.affectedRows = Self.affectedRows(final.pointer) ?? count
    }

    private static func affectedRows(_ result: OpaquePointer) -> Int? {
        Int(String(cString: PQcmdTuples(result)))
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { count }

    public subscript(position: Int) -> PostgresRow {
        PostgresRow(storage: storage, columns: columns!, index: position)
    }

    /// Decodes each row as a `Decodable` type whose coding keys are column names.
    public func decode<Value: Decodable>(as type: Value.Type) throws -> [Value] {
        try map { try $0.decode(as: type) }
    }

    /// Decodes each row as a tuple of column values, in column order.
    public func decode<each Column: PostgresDecodable>(_ types: (repeat each Column).Type) throws -> [(repeat each Column)] {
        try map { try $0.decode(types) }
    }
}

/// One row of a result.
public struct PostgresRow: Sendable {
    let storage: RowStorage
    /// The result's columns.
    public let columns: PostgresColumns
    let index: Int

    /// Number of columns.
    public var count: Int { columns.names.count }

    /// Whether the value in `column` is NULL.
    public func isNull(_ column: Int) -> Bool {
        switch storage {
        case .result(let handle): PQgetisnull(handle.pointer, Int32(index), Int32(column)) == 1
        case .packed(let rows): rows.withValue(row: index, column: column) { $0 == nil }
        }
    }

    /// The raw text of a value, or `nil` for NULL.
    public func text(_ column: Int) -> String? {
        switch storage {
        case .result(let handle):
            if isNull(column) { return nil }
            let length = Int(PQgetlength(handle.pointer, Int32(index), Int32(column)))
            let pointer = PQgetvalue(handle.pointer, Int32(index), Int32(column))!
            return pointer.withMemoryRebound(to: UInt8.self, capacity: length) {
                String(decoding: UnsafeBufferPointer(start: $0, count: length), as: UTF8.self)
            }
        case .packed(let rows):
            return rows.withValue(row: index, column: column) { bytes in bytes.map { String(decoding: $0, as: UTF8.self) } }
        }
    }

    /// Decodes the value at a column index.
    public func decode<Value: PostgresDecodable>(_ type: Value.Type, at column: Int) throws(PostgresError) -> Value {
        guard column < count else {
            throw PostgresError(.decoding, message: "column \(column) does not exist (the row has \(count))")
        }
        return try decodeValue(type, column: column)
    }

    /// Decodes the value of the column called `name`.
    public func decode<Value: PostgresDecodable>(_ type: Value.Type, column name: String) throws(PostgresError) -> Value {
        guard let column = columns.index(of: name) else {
            throw PostgresError(.decoding, message: "column \"\(name)\" is not in the result")
        }
        return try decodeValue(type, column: column)
    }

    /// Decodes the row as a tuple of column values, in column order.
    public func decode<each Column: PostgresDecodable>(_ types: (repeat each Column).Type) throws(PostgresError) -> (repeat each Column) {
        var column = 0
        func next<Value: PostgresDecodable>(_ type: Value.Type) throws(PostgresError) -> Value {
            defer { column += 1 }
            return try decode(type, at: column)
        }
        return (repeat try next((each Column).self))
    }

    /// Decodes the row as a `Decodable` type whose coding keys are column names.
    public func decode<Value: Decodable>(as type: Value.Type) throws -> Value {
        try Value(from: PostgresRowDecoder(row: self))
    }

    func decodeValue<Value: PostgresDecodable>(_ type: Value.Type, column: Int) throws(PostgresError) -> Value {
        let postgresType = columns.types[column]
        guard let text = text(column) else {
            if let optional = Value.self as? any OptionalDecodable.Type {
                return optional.nullValue as! Value
            }
            throw decodingError(column: column, swiftType: Value.self, reason: "the value is NULL")
        }
        do {
            return try Value(postgresText: text, type: postgresType)
        } catch {
            throw decodingError(column: column, swiftType: Value.self, reason: error.reason)
        }
    }

    func decodingError(column: Int, swiftType: Any.Type, reason: String) -> PostgresError {
        PostgresError(
            .decoding,
            message: "cannot decode column \"\(columns.names[column])\" of type \(columns.types[column]) as \(swiftType): \(reason)"
        )
    }
}

/// Lets the row decoder produce `nil` for NULL columns decoded as optionals.
protocol OptionalDecodable {
    static var nullValue: Self { get }
}

extension Optional: OptionalDecodable {
    static var nullValue: Self { nil }
}

extension Optional: PostgresDecodable where Wrapped: PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        self = try Wrapped(postgresText: text, type: type)
    }
}

/// A `Decoder` over one row: keys are column names; JSON columns decode nested `Decodable` values.
struct PostgresRowDecoder: Decoder {
    let row: PostgresRow
    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        KeyedDecodingContainer(Container(row: row))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        throw PostgresError(.decoding, message: "rows decode into keyed types (structs), not arrays")
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        throw PostgresError(.decoding, message: "rows decode into keyed types (structs), not single values")
    }

    struct Container<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let row: PostgresRow
        var codingPath: [any CodingKey] { [] }
        var allKeys: [Key] { row.columns.names.compactMap { Key(stringValue: $0) } }

        func contains(_ key: Key) -> Bool { row.columns.index(of: key.stringValue) != nil }

        func column(_ key: Key) throws -> Int {
            guard let column = row.columns.index(of: key.stringValue) else {
                throw PostgresError(.decoding, message: "column \"\(key.stringValue)\" is not in the result")
            }
            return column
        }

        func decodeNil(forKey key: Key) throws -> Bool { row.isNull(try column(key)) }

        func decode(_ type: Bool.Type, forKey key: Key) throws -> Bool { try row.decodeValue(type, column: column(key)) }
        func decode(_ type: String.Type, forKey key: Key) throws -> String { try row.decodeValue(type, column: column(key)) }
        func decode(_ type: Double.Type, forKey key: Key) throws -> Double { try row.decodeValue(type, column: column(key)) }
        func decode(_ type: Float.Type, forKey key: Key) throws -> Float {
            Float(try row.decodeValue(Double.self, column: column(key)))
        }
        func decode(_ type: Int.Type, forKey key: Key) throws -> Int { try row.decodeValue(type, column: column(key)) }
        func decode(_ type: Int32.Type, forKey key: Key) throws -> Int32 { try row.decodeValue(type, column: column(key)) }
        func decode(_ type: Int64.Type, forKey key: Key) throws -> Int64 { try row.decodeValue(type, column: column(key)) }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
            let column = try column(key)
            if let decodable = type as? any PostgresDecodable.Type {
                return try row.decodeValue(decodable, column: column) as! T
            }
            let columnType = row.columns.types[column]
            guard columnType == .json || columnType == .jsonb, let text = row.text(column) else {
                throw row.decodingError(column: column, swiftType: type, reason: "only json and jsonb columns decode into nested types")
            }
            do {
                return try JSONDecoder().decode(type, from: Data(text.utf8))
            } catch {
                throw row.decodingError(column: column, swiftType: type, reason: "JSON does not match: \(error)")
            }
        }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
            throw PostgresError(.decoding, message: "nested containers are not supported; decode a json column instead")
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
            throw PostgresError(.decoding, message: "nested containers are not supported; decode a json column instead")
        }

        func superDecoder() throws -> any Decoder { PostgresRowDecoder(row: row) }
        func superDecoder(forKey key: Key) throws -> any Decoder { PostgresRowDecoder(row: row) }
    }
}
