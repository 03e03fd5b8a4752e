import Foundation

/// One row of an ingest body: a JSON object, or a line that is not one (kept raw, for quarantine).
enum IngestRow: Sendable {
    /// An object and its raw line (`nil` for an element of a JSON array: re-encoded only if it is quarantined).
    case object([String: JSONValue], line: String?)
    case invalid(line: String, reason: String)
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
                return [.object(object, line: String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))]
            case .array(let items): return items.map(row(from:))
            default: throw APIError.badRequest("the request body must be a JSON object, a JSON array of objects or NDJSON")
            }
        }
        var rows: [IngestRow] = []
        var parsedAny = false
        for lineBytes in lines {
            let line = String(decoding: lineBytes, as: UTF8.self).trimmingCharacters(in: .whitespaces)
            guard let value = try? JSONParser.parse(lineBytes) else {
                rows.append(.invalid(line: line, reason: "not valid JSON"))
                continue
            }
            parsedAny = true
            if case .object(let object) = value {
                rows.append(.object(object, line: line))
            } else {
                rows.append(.invalid(line: line, reason: "not a JSON object"))
            }
        }
        guard parsedAny else {
            throw APIError.badRequest("the request body is not JSON or NDJSON: send one JSON object per line")
        }
        return rows
    }

    private static func row(from value: JSONValue) -> IngestRow {
        guard case .object(let object) = value else { return .invalid(line: value.jsonText, reason: "not a JSON object") }
        return .object(object, line: nil)
    }
}
