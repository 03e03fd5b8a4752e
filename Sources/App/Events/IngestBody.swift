import Foundation

/// One row of an ingest body: a JSON object, or a line that is not one (kept raw, for quarantine).
enum IngestRow: Sendable {
    /// Where a row's original text is, for quarantine.
    enum Line: Sendable {
        /// The bytes of its line (or of the whole body).
        case raw(ArraySlice<UInt8>)
        /// An element of a JSON array: re-encoded from the object.
        case reencoded
    }

    case object([String: JSONValue], line: Line)
    case invalid(line: String, reason: String)

    /// The text kept in quarantine for an object row.
    static func text(of object: [String: JSONValue], line: Line) -> String {
        switch line {
        case .raw(let bytes): String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        case .reencoded: JSONValue.object(object).jsonText
        }
    }
}

/// Splits an ingest body into rows: one JSON object (pretty-printed over several lines is fine), a JSON array of
/// objects, or NDJSON (one object per line; blank lines are skipped). A body in which nothing is JSON is rejected.
enum IngestBody {
    static func rows(from data: Data) throws(APIError) -> [IngestRow] {
        let bytes = [UInt8](data)
        let lines = bytes.split(whereSeparator: { $0 == 0x0A || $0 == 0x0D }).filter { line in
            line.contains { $0 != 0x20 && $0 != 0x09 }
        }
        guard !lines.isEmpty else { throw APIError.badRequest("the request body is empty: send a JSON object, a JSON array or NDJSON") }
        // A body that starts with `[`, or does not parse line by line, may be one value over several lines.
        let firstLine = lines[0]
        let startsArray = firstLine.first { $0 != 0x20 && $0 != 0x09 } == UInt8(ascii: "[")
        if lines.count == 1 || startsArray || (try? JSONParser.parse(firstLine)) == nil,
            let whole = try? JSONParser.parse(bytes)
        {
            switch whole {
            case .object(let object):
                return [.object(object, line: .raw(bytes[...]))]
            case .array(let items): return items.map(row(from:))
            default: throw APIError.badRequest("the request body must be a JSON object, a JSON array of objects or NDJSON")
            }
        }
        var rows: [IngestRow] = []
        var parsedAny = false
        // The raw text of a line is only made when the row is quarantined.
        func text(_ line: ArraySlice<UInt8>) -> String {
            String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
        }
        for lineBytes in lines {
            guard let value = try? JSONParser.parse(lineBytes) else {
                rows.append(.invalid(line: text(lineBytes), reason: "not valid JSON"))
                continue
            }
            parsedAny = true
            if case .object(let object) = value {
                rows.append(.object(object, line: .raw(lineBytes)))
            } else {
                rows.append(.invalid(line: text(lineBytes), reason: "not a JSON object"))
            }
        }
        guard parsedAny else {
            throw APIError.badRequest("the request body is not JSON or NDJSON: send one JSON object per line")
        }
        return rows
    }

    private static func row(from value: JSONValue) -> IngestRow {
        guard case .object(let object) = value else { return .invalid(line: value.jsonText, reason: "not a JSON object") }
        return .object(object, line: .reencoded)
    }
}
