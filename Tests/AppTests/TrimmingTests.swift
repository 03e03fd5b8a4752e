import Foundation
import Testing

@testable import App

@Suite("String trimming")
struct TrimmingTests {
    @Test("trimmingSpaces trims what Foundation's whitespace set trims, and only that")
    func sameAsFoundation() {
        for text in [" a ", "\t2024-01-01 10:00:00 ", "\u{00A0}x\u{2003}", "", "   ", "a b", "\n x \n", "ü ", "plain"] {
            #expect(text.trimmingSpaces == text.trimmingCharacters(in: .whitespaces), "\(text.debugDescription)")
        }
    }
}
