import Foundation
import Testing

@testable import App

@Suite("JSON parser")
struct JSONParserTests {
    @Test("parses every JSON kind, escapes and numbers")
    func valid() throws {
        let text =
            #"{"s": "a\"b\\c\/d\n\t\u00e9\ud83c\udf89", "i": -42, "d": 45.5, "e": 1e3, "t": true, "f": false, "n": null, "a": [1, [2], {}], "o": {"k": "v"}, "big": 123456789012345678901234567890}"#
        let value = try JSONParser.parse(text)
        #expect(
            value
                == .object([
                    "s": .string("a\"b\\c/d\n\té🎉"), "i": .int(-42), "d": .double(45.5), "e": .double(1000), "t": .bool(true), "f": .bool(false),
                    "n": .null, "a": .array([.int(1), .array([.int(2)]), .object([:])]), "o": .object(["k": .string("v")]),
                    "big": .double(1.2345678901234568e29),
                ])
        )
        // The same as Foundation's reading (which makes 1e3 an integer, where this parser keeps exponents as
        // doubles), and the serialised form reads back the same.
        guard case .object(var fromFoundation) = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)),
            case .object(var fromParser) = value
        else { throw JSONParser.Failure(message: "not objects", offset: 0) }
        fromFoundation["e"] = nil
        fromParser["e"] = nil
        #expect(fromFoundation == fromParser)
        #expect(try JSONParser.parse(value.jsonText) == value)
        #expect(try JSONParser.parse("  [ ]  ") == .array([]))
        #expect(try JSONParser.parse("0") == .int(0))
    }

    @Test(
        "rejects what is not JSON",
        arguments: [
            "", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "\"unterminated", "tru", "01", "1.", "-", "{'a': 1}", "\"tab\tin string\"", "[1] x",
            "\"\\ud800\"", "nul",
        ]
    )
    func invalid(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    @Test("deeply nested input is refused instead of exhausting the stack")
    func depth() {
        let text = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }
}
