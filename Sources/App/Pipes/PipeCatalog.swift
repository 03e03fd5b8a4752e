import Foundation
import Pipes

/// Every pipe template the server knows (the bundled `pipes/` folder, or `PIPES_DIR`), checked at start-up.
public struct PipeCatalog: Sendable {
    /// Template name → its pipes.
    public let templates: [String: [PipeDefinition]]

    public init(templates: [String: [PipeDefinition]]) {
        self.templates = templates
    }

    /// Loads `directory`, or the bundled templates; a broken file stops here with its path and line.
    public static func load(from directory: String? = nil) throws -> PipeCatalog {
        let url: URL
        if let directory {
            url = URL(fileURLWithPath: directory, isDirectory: true)
        } else {
            guard let bundled = BundledPipes.directory else {
                throw PipeLoader.Invalid(path: "pipes", line: 0, message: "the bundled pipes are missing")
            }
            url = bundled
        }
        return PipeCatalog(templates: try PipeLoader.loadTemplates(from: url))
    }

    /// The pipes of a workspace's templates, by name.
    public func pipes(of templateNames: [String]) -> [String: PipeDefinition] {
        var pipes: [String: PipeDefinition] = [:]
        for name in templateNames {
            for pipe in templates[name] ?? [] where pipes[pipe.name] == nil { pipes[pipe.name] = pipe }
        }
        return pipes
    }

    /// The templates named, without repeats, or a message naming an unknown template or a colliding pipe.
    public func validate(_ names: [String]) -> Result<[String], TemplateError> {
        var chosen: [String] = []
        for name in names where !chosen.contains(name) {
            guard templates[name] != nil else {
                return .failure(TemplateError(message: "unknown template \"\(name)\" (known: \(templates.keys.sorted().joined(separator: ", ")))"))
            }
            chosen.append(name)
        }
        var owner: [String: String] = [:]
        for template in chosen {
            for pipe in templates[template] ?? [] {
                if let other = owner[pipe.name] {
                    return .failure(
                        TemplateError(
                            message: "templates \(other) and \(template) both define the pipe \(pipe.name): enable them in separate workspaces"
                        )
                    )
                }
                owner[pipe.name] = template
            }
        }
        return .success(chosen)
    }

    public struct TemplateError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }
}
