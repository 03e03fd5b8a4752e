import Foundation

/// One row of an ingest body: a JSON object, or a line that is not one (kept raw, for quarantine).
enum IngestRow: Sendable {
    case object([String: JSONValue], line: String)
    case invalid(line: String, reason: String)
}

/// Splits an ingest body into rows: one JSON object (pretty-printed over several lines is fine), a JSON array of
/// objects, or NDJSON (one object per line; blank lines are skipped). A body in which nothing is JSON is rejected.
enum IngestBody {
    static func rows(from data: Data) throws(APIError) -> [IngestRow] {
        let text = String(decoding: data, as: UTF8.self)
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { throw APIError.badRequest("the request body is empty: send a JSON object, a JSON array or NDJSON") }
        let decoder = JSONDecoder()
        if let whole = try? decoder.decode(JSONValue.self, from: Data(trimmed.utf8)) {
            switch whole {
            case .object(let object): return [.object(object, line: trimmed)]
            case .array(let items): return items.map { row(from: $0, encoder: JSONEncoder()) }
            default: throw APIError.badRequest("the request body must be a JSON object, a JSON array of objects or NDJSON")
            }
        }
        var rows: [IngestRow] = []
        var parsedAny = false
        for line in trimmed.split(whereSeparator: \.isNewline) {
            let line = line.trimmingCharacters(in: .whitespaces)
            guard !line.isEmpty else { continue }
            guard let value = try? decoder.decode(JSONValue.self, from: Data(line.utf8)) else {
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

    private static func row(from value: JSONValue, encoder: JSONEncoder) -> IngestRow {
        let line = (try? encoder.encode(value)).map { String(decoding: $0, as: UTF8.self) } ?? ""
        guard case .object(let object) = value else { return .invalid(line: line, reason: "not a JSON object") }
        return .object(object, line: line)
    }
}
