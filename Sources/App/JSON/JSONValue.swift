/// Any JSON value, for bodies whose shape is not a fixed type (properties, error bodies, pipe rows).
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([JSONValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}

extension JSONValue {
    /// Compact JSON text, keys sorted (for stable quarantine lines and stored properties).
    public var jsonText: String {
        var text = ""
        write(to: &text)
        return text
    }

    /// Writes the compact JSON text to `target` (a `String`, or a response's `ByteBufferText`).
    func write(to target: inout some TextOutputStream) {
        switch self {
        case .null: target.write("null")
        case .bool(let value): target.write(value ? "true" : "false")
        case .int(let value): target.write(String(value))
        case .double(let value): target.write(value.isFinite ? "\(value)" : "null")
        case .string(let value): Self.writeString(value, to: &target)
        case .array(let values):
            target.write("[")
            for (index, value) in values.enumerated() {
                if index > 0 { target.write(",") }
                value.write(to: &target)
            }
            target.write("]")
        case .object(let object):
            target.write("{")
            for (index, key) in object.keys.sorted().enumerated() {
                if index > 0 { target.write(",") }
                Self.writeString(key, to: &target)
                target.write(":")
                object[key]!.write(to: &target)
            }
            target.write("}")
        }
    }

    /// A JSON string literal: the text in quotes, escaped where JSON needs it (most texts need nothing).
    static func writeString(_ value: String, to target: inout some TextOutputStream) {
        target.write("\"")
        guard value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) else {
            target.write(value)
            target.write("\"")
            return
        }
        var text = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    text.unicodeScalars.append(scalar)
                }
            }
        }
        target.write(text)
        target.write("\"")
    }
}

/// Literals, for documents built in code (`["type": "object"]`) and for tests.
extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByArrayLiteral,
    ExpressibleByDictionaryLiteral, ExpressibleByBooleanLiteral
{
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(Dictionary(elements, uniquingKeysWith: { $1 })) }
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}
