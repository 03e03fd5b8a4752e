import Foundation

/// The live dashboard (`GET /api/realtime/`): `dashboard.html`, one self-contained page shipped with the binary. It
/// loads no external scripts, styles or fonts, so it works offline; it connects to `/api/realtime/ws` on its own
/// host (passing on its `token`, `event_type` and `page` query parameters), shows only what the server sends, and
/// reconnects with backoff.
enum RealtimeDashboard {
    struct Missing: Error, CustomStringConvertible {
        var description: String { "the dashboard page (dashboard.html) is missing from the App resources bundle" }
    }

    /// The page, read from the resources bundle.
    static func load() throws -> String {
        guard let url = Bundle.module.url(forResource: "dashboard", withExtension: "html") else { throw Missing() }
        return try String(contentsOf: url, encoding: .utf8)
    }
}
