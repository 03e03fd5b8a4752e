import App
import Logging
import Synchronization
import Testing

@Suite("Log lines")
struct LoggingTests {
    final class Lines: Sendable {
        let written = Mutex<[String]>([])
        var all: [String] { written.withLock { $0 } }
    }

    func logger(_ lines: Lines, provider: Logger.MetadataProvider? = nil) -> Logger {
        var logger = Logger(label: "analytics-api") { label in
            LineLogHandler(label: label, metadataProvider: provider) { line in lines.written.withLock { $0.append(line) } }
        }
        logger.logLevel = .info
        return logger
    }

    @Test("a line holds time, level, label, the metadata sorted (the entry's over the logger's), source and message")
    func format() throws {
        let lines = Lines()
        var logger = logger(lines, provider: Logger.MetadataProvider { ["from_provider": "p", "b": "provided"] })
        logger[metadataKey: "b"] = "2"
        logger[metadataKey: "a"] = "1"
        logger.debug("below the level")
        logger.info("request", metadata: ["b": "3", "c": "x y"])
        logger.warning("no entry metadata")
        #expect(lines.all.count == 2)
        let first = try #require(lines.all.first)
        let match = try #require(first.wholeMatch(of: /(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}) (.*)\n/))
        #expect(match.2 == "info analytics-api: a=1 b=3 c=x y from_provider=p [AppTests] request")
        #expect(lines.all.last?.hasSuffix(" warning analytics-api: a=1 b=provided from_provider=p [AppTests] no entry metadata\n") == true)
    }

    @Test("metadata set on a copy of a logger stays on the copy")
    func valueSemantics() {
        let lines = Lines()
        var original = logger(lines)
        original[metadataKey: "request"] = "1"
        var copy = original
        copy[metadataKey: "request"] = "2"
        copy[metadataKey: "extra"] = "e"
        original.info("first")
        copy.info("second")
        #expect(
            lines.all.map { $0.split(separator: " ", maxSplits: 1)[1] } == [
                "info analytics-api: request=1 [AppTests] first\n", "info analytics-api: extra=e request=2 [AppTests] second\n",
            ]
        )
    }
}
