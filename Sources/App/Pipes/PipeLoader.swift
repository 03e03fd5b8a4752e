import Foundation

/// Reads pipe files (`<folder>/<template>/<name>.sql`) and checks them, so that a typo stops start-up with its
/// path and line instead of reaching a user.
public enum PipeLoader {
    /// A pipe file that cannot be used, with where and why.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        public var path: String
        public var line: Int
        public var message: String
        public var description: String { "\(path):\(line): \(message)" }
    }

    /// Every template in `directory`: each subfolder is a template, each `.sql` file in it a pipe.
    public static func loadTemplates(from directory: URL) throws -> [String: [PipeDefinition]] {
        let manager = FileManager.default
        var templates: [String: [PipeDefinition]] = [:]
        let folders = try manager.contentsOfDirectory(at: directory, includingPropertiesForKeys: [.isDirectoryKey])
        for folder in folders.sorted(by: { $0.lastPathComponent < $1.lastPathComponent }) {
            guard (try? folder.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true else { continue }
            let template = folder.lastPathComponent
            let files = try manager.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "sql" }
                .sorted { $0.lastPathComponent < $1.lastPathComponent }
            templates[template] = try files.map { file in
                let text = try String(contentsOf: file, encoding: .utf8)
                return try parse(text, name: file.deletingPathExtension().lastPathComponent, template: template, path: file.path)
            }
        }
        return templates
    }

    /// Parses one pipe file.
    public static func parse(_ text: String, name: String, template: String, path: String) throws(Invalid) -> PipeDefinition {
        func fail(_ line: Int, _ message: String) -> Invalid { Invalid(path: path, line: line, message: message) }
        guard TokenScope.isName(name) else {
            throw fail(1, "the file name must be the pipe's name: lower-case letters, digits and underscores")
        }
        let lines = text.components(separatedBy: "\n")
        var description: [String] = []
        var parameters: [PipeParameter] = []
        var columns: [(name: String, description: String)] = []
        var writes = false
        var kmeans: (step: KMeansStep, line: Int)?
        var timeout: Int?
        var bodyStart = lines.count
        var seenDirective = false
        for (index, rawLine) in lines.enumerated() {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            guard line.hasPrefix("--") else {
                if line.isEmpty { continue }
                bodyStart = index
                break
            }
            let comment = line.dropFirst(2).trimmingCharacters(in: .whitespaces)
            if comment.hasPrefix("@param ") {
                seenDirective = true
                let parameter = try parseParameter(String(comment.dropFirst(7)), line: index + 1, path: path)
                if parameters.contains(where: { $0.name == parameter.name }) {
                    throw fail(index + 1, "parameter \(parameter.name) is declared twice")
                }
                if PipeDefinition.implicitParameters[parameter.name] != nil {
                    throw fail(index + 1, ":\(parameter.name) is set by the server (the caller's workspace) and cannot be declared")
                }
                parameters.append(parameter)
            } else if comment.hasPrefix("@column ") {
                seenDirective = true
                let parts = comment.dropFirst(8).trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 1)
                guard let column = parts.first else { throw fail(index + 1, "@column needs a name") }
                columns.append((String(column), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : ""))
            } else if comment == "@writes" {
                seenDirective = true
                writes = true
            } else if comment == "@kmeans" || comment.hasPrefix("@kmeans ") {
                seenDirective = true
                let features = comment.dropFirst(7).split(separator: " ").map(String.init)
                guard !features.isEmpty else { throw fail(index + 1, "@kmeans needs the feature columns: @kmeans column column …") }
                kmeans = (KMeansStep(features: features), index + 1)
            } else if comment == "@timeout" || comment.hasPrefix("@timeout ") {
                seenDirective = true
                guard timeout == nil else { throw fail(index + 1, "@timeout is given twice") }
                guard let seconds = Int(comment.dropFirst(8).trimmingCharacters(in: .whitespaces)), (1...86_400).contains(seconds) else {
                    throw fail(index + 1, "@timeout needs whole seconds from 1 to 86400: @timeout 300")
                }
                timeout = seconds
            } else if comment.hasPrefix("@") {
                throw fail(
                    index + 1,
                    "unknown directive \(comment.split(separator: " ").first ?? ""): use @param, @column, @writes, @kmeans or @timeout"
                )
            } else if !seenDirective, !comment.isEmpty {
                description.append(comment)
            }
        }
        guard bodyStart < lines.count else { throw fail(lines.count, "the file has a header but no SQL") }
        let body = lines[bodyStart...].joined(separator: "\n")
        let (segments, placeholders) = try split(body, firstLine: bodyStart + 1, path: path)
        for (placeholder, line) in placeholders
        where !parameters.contains(where: { $0.name == placeholder }) && PipeDefinition.implicitParameters[placeholder] == nil {
            throw fail(line, "the SQL uses :\(placeholder), which is not declared: add -- @param \(placeholder) <Type>")
        }
        if let (_, line) = kmeans {
            guard writes else { throw fail(line, "@kmeans stores cluster ids: the pipe needs @writes") }
            for name in KMeansStep.parameters {
                switch parameters.first(where: { $0.name == name })?.kind {
                case .int?: continue
                case nil where name != "k": continue
                default: throw fail(line, "@kmeans needs the parameter \(name) declared as Int")
                }
            }
        }
        for parameter in parameters
        where !placeholders.contains(where: { $0.name == parameter.name }) && !(kmeans != nil && KMeansStep.parameters.contains(parameter.name)) {
            throw fail(1, "parameter \(parameter.name) is declared but the SQL never uses :\(parameter.name)")
        }
        return PipeDefinition(
            name: name,
            template: template,
            description: description.joined(separator: " "),
            parameters: parameters,
            columns: columns,
            writes: writes,
            kmeans: kmeans?.step,
            timeout: timeout,
            path: path,
            segments: segments,
            placeholders: placeholders.map(\.name)
        )
    }

    /// `name Type[?] [= default] [description]`; a default with spaces is quoted: `= '1 hour'`.
    static func parseParameter(_ text: String, line: Int, path: String) throws(Invalid) -> PipeParameter {
        func fail(_ message: String) -> Invalid { Invalid(path: path, line: line, message: message) }
        var rest = Substring(text).drop(while: { $0 == " " })
        func word() -> String {
            let taken = rest.prefix(while: { $0 != " " })
            rest = rest.dropFirst(taken.count).drop(while: { $0 == " " })
            return String(taken)
        }
        let name = word()
        guard TokenScope.isName(name) else { throw fail("@param needs a name of lower-case letters, digits and underscores, not \"\(name)\"") }
        var typeText = word()
        let optional = typeText.hasSuffix("?")
        if optional { typeText.removeLast() }
        guard let kind = PipeParameter.Kind.parse(typeText) else {
            throw fail(
                "unknown type \"\(typeText)\" for \(name): use String, Int, Int(low..high), Float, Bool, DateTime, Date, Interval, Enum(a|b), String[]"
            )
        }
        var defaultValue: String?
        if rest.hasPrefix("=") {
            rest = rest.dropFirst().drop(while: { $0 == " " })
            if rest.hasPrefix("'") {
                let body = rest.dropFirst()
                guard let end = body.firstIndex(of: "'") else { throw fail("the default of \(name) has no closing quote") }
                defaultValue = String(body[..<end])
                rest = body[body.index(after: end)...].drop(while: { $0 == " " })
            } else {
                defaultValue = word()
            }
        }
        var parameter = PipeParameter(name: name, kind: kind, optional: optional, defaultValue: nil, description: String(rest))
        if let defaultValue {
            if case .stringArray = kind {
                parameter.defaultValue = defaultValue
            } else {
                switch parameter.convert(defaultValue) {
                case .success: parameter.defaultValue = defaultValue
                case .failure(let error): throw fail("the default \(error.message)")
                }
            }
        }
        return parameter
    }

    /// Splits SQL at its `:name` placeholders, leaving alone `::` casts and anything inside quotes or comments.
    static func split(_ sql: String, firstLine: Int, path: String) throws(Invalid) -> (segments: [String], placeholders: [(name: String, line: Int)])
    {
        let characters = Array(sql)
        var segments: [String] = []
        var placeholders: [(name: String, line: Int)] = []
        var current = ""
        var index = 0
        var line = firstLine
        func isNameStart(_ character: Character) -> Bool { character == "_" || ("a"..."z").contains(character) }
        func isNameCharacter(_ character: Character) -> Bool { isNameStart(character) || ("0"..."9").contains(character) }
        while index < characters.count {
            let character = characters[index]
            let next = index + 1 < characters.count ? characters[index + 1] : nil
            if character == "\n" { line += 1 }
            switch character {
            case "'", "\"":
                // A quoted string or identifier: copied as is ('' and "" escape their quote).
                let start = index
                index += 1
                while index < characters.count {
                    if characters[index] == "\n" { line += 1 }
                    if characters[index] == character {
                        if index + 1 < characters.count, characters[index + 1] == character {
                            index += 2
                            continue
                        }
                        break
                    }
                    index += 1
                }
                guard index < characters.count else {
                    throw Invalid(path: path, line: line, message: "a quote \(character) is not closed")
                }
                current += String(characters[start...index])
                index += 1
            case "-" where next == "-":
                while index < characters.count, characters[index] != "\n" {
                    current.append(characters[index])
                    index += 1
                }
            case "/" where next == "*":
                let start = index
                index += 2
                while index + 1 < characters.count, !(characters[index] == "*" && characters[index + 1] == "/") {
                    if characters[index] == "\n" { line += 1 }
                    index += 1
                }
                index = min(index + 2, characters.count)
                current += String(characters[start..<index])
            case ":" where next == ":":
                current += "::"
                index += 2
            case ":" where next.map(isNameStart) == true:
                var end = index + 1
                while end < characters.count, isNameCharacter(characters[end]) { end += 1 }
                segments.append(current)
                current = ""
                placeholders.append((String(characters[(index + 1)..<end]), line))
                index = end
            default:
                current.append(character)
                index += 1
            }
        }
        segments.append(current)
        return (segments, placeholders)
    }
}
