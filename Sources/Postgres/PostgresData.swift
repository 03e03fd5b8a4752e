import Foundation

/// A PostgreSQL type, identified by its OID.
public struct PostgresType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let unknown = PostgresType(rawValue: 0)
    public static let bool = PostgresType(rawValue: 16)
    public static let bytea = PostgresType(rawValue: 17)
    public static let name = PostgresType(rawValue: 19)
    public static let int8 = PostgresType(rawValue: 20)
    public static let int2 = PostgresType(rawValue: 21)
    public static let int4 = PostgresType(rawValue: 23)
    public static let text = PostgresType(rawValue: 25)
    public static let oid = PostgresType(rawValue: 26)
    public static let json = PostgresType(rawValue: 114)
    public static let float4 = PostgresType(rawValue: 700)
    public static let float8 = PostgresType(rawValue: 701)
    public static let bpchar = PostgresType(rawValue: 1042)
    public static let varchar = PostgresType(rawValue: 1043)
    public static let date = PostgresType(rawValue: 1082)
    public static let timestamp = PostgresType(rawValue: 1114)
    public static let timestamptz = PostgresType(rawValue: 1184)
    public static let interval = PostgresType(rawValue: 1186)
    public static let numeric = PostgresType(rawValue: 1700)
    public static let uuid = PostgresType(rawValue: 2950)
    public static let jsonb = PostgresType(rawValue: 3802)
    public static let boolArray = PostgresType(rawValue: 1000)
    public static let textArray = PostgresType(rawValue: 1009)
    public static let int8Array = PostgresType(rawValue: 1016)
    public static let float8Array = PostgresType(rawValue: 1022)

    public var description: String {
        switch self {
        case .bool: "boolean"
        case .bytea: "bytea"
        case .name: "name"
        case .int8: "bigint"
        case .int2: "smallint"
        case .int4: "integer"
        case .text: "text"
        case .oid: "oid"
        case .json: "json"
        case .float4: "real"
        case .float8: "double precision"
        case .bpchar: "character"
        case .varchar: "character varying"
        case .date: "date"
        case .timestamp: "timestamp"
        case .timestamptz: "timestamptz"
        case .interval: "interval"
        case .numeric: "numeric"
        case .uuid: "uuid"
        case .jsonb: "jsonb"
        case .boolArray: "boolean[]"
        case .textArray: "text[]"
        case .int8Array: "bigint[]"
        case .float8Array: "double precision[]"
        case .unknown: "unknown"
        default: "oid \(rawValue)"
        }
    }

    var isInteger: Bool { self == .int2 || self == .int4 || self == .int8 || self == .oid }
}

/// A Swift value that can be sent to PostgreSQL as a bound parameter (in text format).
public protocol PostgresEncodable: Sendable {
    /// The PostgreSQL type the parameter is declared as.
    static var postgresType: PostgresType { get }
    /// The value in PostgreSQL's text input format.
    var postgresText: String { get }
}

/// The reason a value could not be decoded; the row adds the column and the types.
public struct PostgresDecodingFailure: Error, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
}

/// A Swift value that can be read from a PostgreSQL column (in text format).
public protocol PostgresDecodable {
    /// Decodes `text`, the text output of a value of PostgreSQL type `type`.
    init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure)
}

/// A type that is both encodable and decodable.
public typealias PostgresCodable = PostgresEncodable & PostgresDecodable

extension String: PostgresCodable {
    public static var postgresType: PostgresType { .text }
    public var postgresText: String { self }
    public init(postgresText text: String, type: PostgresType) { self = text }
}

extension Substring: PostgresEncodable {
    public static var postgresType: PostgresType { .text }
    public var postgresText: String { String(self) }
}

extension Int: PostgresCodable {
    public static var postgresType: PostgresType { .int8 }
    public var postgresText: String { String(self) }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        if let value = Int(text) {
            self = value
        } else if type == .numeric || type == .float8 || type == .float4, let double = Double(text), double.rounded() == double,
            let value = Int(exactly: double)
        {
            self = value
        } else {
            throw PostgresDecodingFailure("not an integer")
        }
    }
}

extension Int64: PostgresCodable {
    public static var postgresType: PostgresType { .int8 }
    public var postgresText: String { String(self) }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        self = Int64(try Int(postgresText: text, type: type))
    }
}

extension Int32: PostgresCodable {
    public static var postgresType: PostgresType { .int4 }
    public var postgresText: String { String(self) }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        guard let value = Int32(exactly: try Int(postgresText: text, type: type)) else {
            throw PostgresDecodingFailure("integer out of range")
        }
        self = value
    }
}

extension Double: PostgresCodable {
    public static var postgresType: PostgresType { .float8 }
    public var postgresText: String {
        if isNaN { return "NaN" }
        if isInfinite { return self > 0 ? "Infinity" : "-Infinity" }
        return String(self)
    }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        guard let value = Double(text) else { throw PostgresDecodingFailure("not a number") }
        self = value
    }
}

extension Bool: PostgresCodable {
    public static var postgresType: PostgresType { .bool }
    public var postgresText: String { self ? "t" : "f" }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        switch text {
        case "t", "true": self = true
        case "f", "false": self = false
        default: throw PostgresDecodingFailure("not a boolean")
        }
    }
}

extension UUID: PostgresCodable {
    public static var postgresType: PostgresType { .uuid }
    public var postgresText: String { uuidString.lowercased() }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        guard let value = UUID(uuidString: text) else { throw PostgresDecodingFailure("not a UUID") }
        self = value
    }
}

extension Date: PostgresCodable {
    public static var postgresType: PostgresType { .timestamptz }
    public var postgresText: String { PostgresTimestamp.format(self) }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        guard let value = PostgresTimestamp.parse(text) else { throw PostgresDecodingFailure("not a timestamp") }
        self = value
    }
}

extension Optional: PostgresEncodable where Wrapped: PostgresEncodable {
    public static var postgresType: PostgresType { Wrapped.postgresType }
    /// Only used when the value is present; `nil` is bound as SQL NULL.
    public var postgresText: String { self?.postgresText ?? "" }
}

/// Arrays are sent as PostgreSQL array literals (`text[]`, `bigint[]`, `double precision[]`, `boolean[]`); a `nil`
/// element of an array of optionals is sent as NULL.
extension Array: PostgresEncodable where Element: PostgresArrayElement {
    public static var postgresType: PostgresType { Element.postgresArrayType }
    /// Every element quoted, with its quotes and backslashes escaped. Built as UTF-8 bytes (a byte of a multi-byte
    /// character is never an ASCII quote or backslash): appending character by character to a String took a quarter of
    /// `demo-data`'s own CPU time, as the writer binds its rollups' rows as arrays (a million events: 13.1 → 10.9–11.2 s
    /// of user time).
    public var postgresText: String {
        let quote = UInt8(ascii: "\""), backslash = UInt8(ascii: "\\")
        var bytes: [UInt8] = [UInt8(ascii: "{")]
        bytes.reserveCapacity(2 + count * 12)
        for (index, element) in enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            guard let elementText = element.postgresArrayElementText else {
                bytes.append(contentsOf: "NULL".utf8)
                continue
            }
            bytes.append(quote)
            for byte in elementText.utf8 {
                if byte == quote || byte == backslash { bytes.append(backslash) }
                bytes.append(byte)
            }
            bytes.append(quote)
        }
        bytes.append(UInt8(ascii: "}"))
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension Array: PostgresDecodable where Element: PostgresArrayElement & PostgresDecodable {
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        self = try PostgresArrayLiteral.parse(text).map { (item: String?) throws(PostgresDecodingFailure) -> Element in
            guard let item else { throw PostgresDecodingFailure("array contains NULL") }
            return try Element(postgresText: item, type: .unknown)
        }
    }
}

/// An element type for one-dimensional arrays.
public protocol PostgresArrayElement: PostgresEncodable {
    static var postgresArrayType: PostgresType { get }
    /// The element's text in an array literal; nil sends NULL.
    var postgresArrayElementText: String? { get }
}

extension PostgresArrayElement {
    public var postgresArrayElementText: String? { postgresText }
}

extension String: PostgresArrayElement { public static var postgresArrayType: PostgresType { .textArray } }
extension Bool: PostgresArrayElement { public static var postgresArrayType: PostgresType { .boolArray } }
extension Optional: PostgresArrayElement where Wrapped: PostgresArrayElement {
    public static var postgresArrayType: PostgresType { Wrapped.postgresArrayType }
    public var postgresArrayElementText: String? { self?.postgresArrayElementText }
}
extension Int: PostgresArrayElement { public static var postgresArrayType: PostgresType { .int8Array } }
extension Double: PostgresArrayElement { public static var postgresArrayType: PostgresType { .float8Array } }

/// A JSON value stored in a `jsonb` column, encoded and decoded with Foundation's JSON coders.
public struct PostgresJSON<Value: Codable & Sendable>: PostgresCodable {
    public var value: Value
    public init(_ value: Value) { self.value = value }

    public static var postgresType: PostgresType { .jsonb }
    public var postgresText: String {
        let data = (try? JSONEncoder().encode(value)) ?? Data("null".utf8)
        return String(decoding: data, as: UTF8.self)
    }
    public init(postgresText text: String, type: PostgresType) throws(PostgresDecodingFailure) {
        do {
            value = try JSONDecoder().decode(Value.self, from: Data(text.utf8))
        } catch {
            throw PostgresDecodingFailure("JSON does not match: \(error)")
        }
    }
}

/// Raw JSON text for a `jsonb` parameter or column, passed through unchanged.
public struct PostgresJSONText: PostgresCodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public static var postgresType: PostgresType { .jsonb }
    public var postgresText: String { text }
    public init(postgresText text: String, type: PostgresType) { self.text = text }
}

/// An interval in PostgreSQL's input syntax (`1 hour`, `7 day`), bound as an `interval`.
///
/// Bound as text and cast (`$1::interval`), it stays an expression in the plan: interval input is only stable, so
/// the planner neither folds the cast nor what is computed from it, and `time_bucket`'s calendar arithmetic ran for
/// every row. A parameter of type `interval` is a constant to the planner.
public struct PostgresInterval: PostgresCodable, Hashable {
    public var text: String
    public init(_ text: String) { self.text = text }
    public static var postgresType: PostgresType { .interval }
    public var postgresText: String { text }
    public init(postgresText text: String, type: PostgresType) { self.text = text }
}

/// Parses one-dimensional PostgreSQL array literals such as `{a,"b c",NULL}`.
/// PostgreSQL's text form of one-dimensional arrays: `{a,"b c",NULL}`.
public enum PostgresArrayLiteral {
    /// The items of an array literal; `nil` for NULL.
    public static func parse(_ text: String) throws(PostgresDecodingFailure) -> [String?] {
        var scalars = text.unicodeScalars[...]
        guard scalars.first == "{", scalars.last == "}" else { throw PostgresDecodingFailure("not an array") }
        scalars = scalars.dropFirst().dropLast()
        var items: [String?] = []
        guard !scalars.isEmpty else { return items }
        var current = String.UnicodeScalarView()
        var quoted = false
        var wasQuoted = false
        var iterator = scalars.makeIterator()
        func finish() {
            let value = String(current)
            items.append(!wasQuoted && value == "NULL" ? nil : value)
            current = String.UnicodeScalarView()
            wasQuoted = false
        }
        while let scalar = iterator.next() {
            if quoted {
                if scalar == "\\" {
                    if let next = iterator.next() { current.append(next) }
                } else if scalar == "\"" {
                    quoted = false
                } else {
                    current.append(scalar)
                }
            } else if scalar == "\"" {
                quoted = true
                wasQuoted = true
            } else if scalar == "," {
                finish()
            } else if scalar == "{" || scalar == "}" {
                throw PostgresDecodingFailure("multi-dimensional arrays are not supported")
            } else {
                current.append(scalar)
            }
        }
        finish()
        return items
    }
}

/// Fast conversion between `Date` and PostgreSQL's ISO timestamp text (`2024-05-01 12:30:00.25+00`).
public enum PostgresTimestamp {
    /// Formats a date as UTC timestamptz text with microsecond precision.
    public static func format(_ date: Date) -> String { format(date, iso: false) }

    /// `format`'s text, or with `iso` the ISO-8601 form: `T` between date and time, milliseconds (the first three
    /// digits of the microseconds) when there is a fraction, and `Z`.
    static func format(_ date: Date, iso: Bool) -> String {
        let interval = date.timeIntervalSince1970
        guard interval.isFinite else { return interval > 0 ? "infinity" : "-infinity" }
        var micros = Int64((interval * 1_000_000).rounded(.toNearestOrEven))
        var seconds = micros / 1_000_000
        micros %= 1_000_000
        if micros < 0 {
            micros += 1_000_000
            seconds -= 1
        }
        // Civil date from days since the epoch (Howard Hinnant's algorithm), written digit by digit: this runs for
        // every stored event, so it avoids the C library and string interpolation.
        let days = Int(seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400)
        let secondOfDay = Int(seconds) - days * 86_400
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        guard (0...9999).contains(year) else {
            return String(format: iso ? "%04d-01-01T00:00:00Z" : "%04d-01-01 00:00:00+00", max(0, min(year, 9999)))
        }

        var bytes = [UInt8](repeating: 0, count: micros != 0 ? 29 : 22)
        func put(_ value: Int, at offset: Int, width: Int) {
            var value = value
            for position in stride(from: offset + width - 1, through: offset, by: -1) {
                bytes[position] = UInt8(48 + value % 10)
                value /= 10
            }
        }
        put(year, at: 0, width: 4)
        bytes[4] = 45
        put(month, at: 5, width: 2)
        bytes[7] = 45
        put(day, at: 8, width: 2)
        bytes[10] = iso ? 84 : 32
        put(secondOfDay / 3600, at: 11, width: 2)
        bytes[13] = 58
        put(secondOfDay / 60 % 60, at: 14, width: 2)
        bytes[16] = 58
        put(secondOfDay % 60, at: 17, width: 2)
        var end = 19
        if micros != 0 {
            bytes[19] = 46
            put(iso ? Int(micros) / 1000 : Int(micros), at: 20, width: iso ? 3 : 6)
            end = iso ? 23 : 26
        }
        if iso {
            bytes[end] = 90
            return String(decoding: bytes[..<(end + 1)], as: UTF8.self)
        }
        bytes[end] = 43
        bytes[end + 1] = 48
        bytes[end + 2] = 48
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Formats a date as ISO-8601 UTC with milliseconds when it has a fraction: `2024-05-01T12:30:00Z`, `…:00.250Z`.
    public static func iso8601(_ date: Date) -> String { format(date, iso: true) }

    /// Parses `YYYY-MM-DD[ HH:MM:SS[.ffffff]][(+|-)HH[:MM[:SS]]]`; a value without offset is UTC.
    public static func parse(_ text: String) -> Date? {
        switch text {
        case "infinity": return .distantFuture
        case "-infinity": return .distantPast
        default: break
        }
        let bytes = Array(text.utf8)
        var index = 0
        func number(_ count: Int) -> Int? {
            guard index + count <= bytes.count else { return nil }
            var value = 0
            for offset in 0..<count {
                let byte = bytes[index + offset]
                guard byte >= 48, byte <= 57 else { return nil }
                value = value * 10 + Int(byte - 48)
            }
            index += count
            return value
        }
        func expect(_ byte: UInt8) -> Bool {
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }
        guard let year = number(4), expect(45), let month = number(2), expect(45), let day = number(2) else { return nil }
        var hour = 0, minute = 0, second = 0
        var fraction = 0.0
        if index < bytes.count, bytes[index] == 32 || bytes[index] == 84 {
            index += 1
            guard let h = number(2), expect(58), let m = number(2), expect(58), let s = number(2) else { return nil }
            (hour, minute, second) = (h, m, s)
            if expect(46) {
                var scale = 0.1
                while index < bytes.count, bytes[index] >= 48, bytes[index] <= 57 {
                    fraction += Double(bytes[index] - 48) * scale
                    scale /= 10
                    index += 1
                }
            }
        }
        var offset = 0
        if index < bytes.count {
            let sign: Int
            switch bytes[index] {
            case 43: sign = 1
            case 45: sign = -1
            case 90:
                index += 1
                sign = 0
            default: return nil
            }
            if sign != 0 {
                index += 1
                guard let hours = number(2) else { return nil }
                var minutes = 0, seconds = 0
                if expect(58) {
                    guard let m = number(2) else { return nil }
                    minutes = m
                    if expect(58) {
                        guard let s = number(2) else { return nil }
                        seconds = s
                    }
                } else if let m = number(2) {
                    minutes = m
                }
                offset = sign * (hours * 3600 + minutes * 60 + seconds)
            }
        }
        guard index == bytes.count, (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else {
            return nil
        }
        let days = daysSinceEpoch(year: year, month: month, day: day)
        let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }

    /// Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysSinceEpoch(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }
}
