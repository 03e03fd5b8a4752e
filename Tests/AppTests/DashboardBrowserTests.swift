import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSClient
import HummingbirdWSTesting
import Logging
import NIOCore
import Testing

@testable import App

/// Headless Chromium (Debian's `chromium`, which `.ci/run` installs) driven over the DevTools protocol.
final class HeadlessChromium: Sendable {
    let process: ChildProcess
    let profile: URL
    let devToolsPort: Int
    /// The browser's DevTools WebSocket path (`/devtools/browser/…`).
    let browserPath: String

    /// Starts Chromium on `url` and waits for its DevTools port.
    init(url: String) async throws {
        let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        guard let binary = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            throw TestFailure("no Chromium found (\(candidates.joined(separator: ", "))): install the Debian package chromium, as .ci/run does")
        }
        profile = FileManager.default.temporaryDirectory.appendingPathComponent("analytics-api-chromium-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        process = try ChildProcess(
            binary,
            [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--remote-debugging-port=0", "--remote-allow-origins=*", "--user-data-dir=\(profile.path)",
                "--window-size=1280,1000", url,
            ]
        )
        // Chromium writes the port it chose to DevToolsActivePort in the profile.
        let file = profile.appendingPathComponent("DevToolsActivePort")
        let deadline = ContinuousClock.now + .seconds(30)
        var lines: [Substring] = []
        while lines.count < 2, ContinuousClock.now < deadline {
            if let text = try? String(contentsOf: file, encoding: .utf8) { lines = text.split(separator: "\n") }
            if lines.count < 2 { try await Task.sleep(for: .milliseconds(100)) }
        }
        guard lines.count >= 2, let port = Int(lines[0]) else {
            await process.stop()
            throw TestFailure("Chromium did not open its DevTools port")
        }
        devToolsPort = port
        browserPath = String(lines[1])
    }

    var browserSocketURL: String { "ws://127.0.0.1:\(devToolsPort)\(browserPath)" }

    /// Ends the browser and its helper processes, and removes its profile.
    func stop() async {
        await process.stop()
        try? FileManager.default.removeItem(at: profile)
    }
}

/// Sends DevTools commands over one WebSocket and reads their results.
final class DevToolsSession: @unchecked Sendable {
    private var iterator: WebSocketInboundMessageStream.AsyncIterator
    let outbound: WebSocketOutboundWriter
    private var nextID = 0
    /// The attached page's session, once `attachToPage` ran; commands then go to the page.
    private var sessionID: String?

    init(_ inbound: WebSocketInboundStream, _ outbound: WebSocketOutboundWriter) {
        iterator = inbound.messages(maxSize: 1 << 26).makeAsyncIterator()
        self.outbound = outbound
    }

    /// Runs a command and returns its `result`.
    func send(_ method: String, _ params: [String: JSONValue] = [:]) async throws -> [String: JSONValue] {
        nextID += 1
        let id = nextID
        var fields: [String: JSONValue] = ["id": .int(id), "method": .string(method), "params": .object(params)]
        if let sessionID { fields["sessionId"] = .string(sessionID) }
        let command: JSONValue = .object(fields)
        try await outbound.write(.text(String(decoding: try JSONEncoder().encode(command), as: UTF8.self)))
        while let message = try await iterator.next() {
            guard case .text(let text) = message, case .object(let reply) = try JSONParser.parse(text), reply["id"] == .int(id) else { continue }
            if let error = reply["error"] { throw TestFailure("\(method) failed: \(error)") }
            guard case .object(let result)? = reply["result"] else { return [:] }
            return result
        }
        throw TestFailure("DevTools closed the connection")
    }

    /// Attaches to the browser's first page: later commands go to it.
    func attachToPage() async throws {
        let targets = try await send("Target.getTargets")
        guard case .array(let infos)? = targets["targetInfos"] else { throw TestFailure("no targets") }
        for case .object(let info) in infos where info["type"] == "page" {
            guard let targetID = info["targetId"] else { continue }
            let attached = try await send("Target.attachToTarget", ["targetId": targetID, "flatten": true])
            guard case .string(let session)? = attached["sessionId"] else { throw TestFailure("not attached") }
            sessionID = session
            return
        }
        throw TestFailure("no page target")
    }

    /// The value of a JavaScript expression in the page.
    func evaluate(_ expression: String) async throws -> JSONValue {
        let result = try await send("Runtime.evaluate", ["expression": .string(expression), "returnByValue": true])
        guard case .object(let value)? = result["result"] else { return .null }
        return value["value"] ?? .null
    }

    /// Evaluates `expression` until `accept` takes its value (or `timeout` passes); returns the last value.
    func waitFor(_ expression: String, timeout: Duration = .seconds(20), _ accept: (JSONValue) -> Bool) async throws -> JSONValue {
        let deadline = ContinuousClock.now + timeout
        var value = try await evaluate(expression)
        while !accept(value), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            value = try await evaluate(expression)
        }
        return value
    }
}

@Suite("The realtime dashboard in a real browser")
struct DashboardBrowserTests {
    @Test("headless Chromium shows the server's numbers and events as they are ingested; a screenshot is saved")
    func dashboardShowsLiveEvents() async throws {
        try await withTestApp(["PORT": "0"], testingSetup: .live) { client, _ in
            let port = try #require(client.port)
            try await postBatch(client, [pageView("/pricing", session: "s1"), pageView("/docs", session: "s2")])
            let chromium = try await HeadlessChromium(url: "http://127.0.0.1:\(port)/api/realtime/")
            // DevTools replies are awaited without a time limit of their own: a browser that stops answering is
            // stopped after two minutes, which closes its socket and so ends the wait (and the test, failed).
            let watchdog = Task {
                try await Task.sleep(for: .seconds(120))
                await chromium.stop()
            }
            defer { watchdog.cancel() }
            do {
                try await showsLiveEvents(chromium, client)
            } catch {
                await chromium.stop()
                throw error
            }
            await chromium.stop()
        }
    }

    func showsLiveEvents(_ chromium: HeadlessChromium, _ client: any TestClientProtocol) async throws {
        // Screenshots come in one large frame.
        try await WebSocketClient.connect(
            url: chromium.browserSocketURL,
            configuration: .init(maxFrameSize: 1 << 26),
            logger: Logger(label: "devtools")
        ) { inbound, outbound, _ in
            let page = DevToolsSession(inbound, outbound)
            try await page.attachToPage()
            _ = try await page.send("Runtime.enable")
            let status = try await page.waitFor("document.getElementById('status-text').textContent") { $0 == "live" }
            #expect(status == "live")
            // The greeting: the stored events and the stats, from the server.
            let before = try await page.waitFor("document.getElementById('total-events').textContent") { $0 == "2" }
            #expect(before == "2")
            // Live: an event stored now appears as a fresh row, and the total follows.
            try await postBatch(client, [pageView("/live-arrival", session: "s3", extra: #", "country": "DE""#)])
            let fresh = try await page.waitFor(
                "[...document.querySelectorAll('#events tr.fresh td.page')].map(td => td.textContent).join('|')"
            ) { $0 == "/live-arrival" }
            #expect(fresh == "/live-arrival")
            let total = try await page.waitFor("document.getElementById('total-events').textContent") { $0 == "3" }
            #expect(total == "3")
            let pages = try await page.evaluate("[...document.querySelectorAll('#events td.page')].map(td => td.textContent).join('|')")
            #expect(pages == "/live-arrival|/docs|/pricing")
            let topPages = try await page.waitFor("[...document.querySelectorAll('#top-pages .page')].map(s => s.textContent).sort().join('|')") {
                $0 == "/docs|/live-arrival|/pricing"
            }
            #expect(topPages == "/docs|/live-arrival|/pricing")
            let chart = try await page.evaluate("document.getElementById('line').getAttribute('d').length > 10")
            #expect(chart == true)

            let shot = try await page.send("Page.captureScreenshot", ["format": "png"])
            guard case .string(let base64)? = shot["data"], let png = Data(base64Encoded: base64) else { throw TestFailure("no screenshot") }
            let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent(".build/test-output")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            let file = folder.appendingPathComponent("realtime-dashboard.png")
            try png.write(to: file)
            #expect(png.count > 10_000)
            print("dashboard screenshot: \(file.path)")
            try await outbound.close(.normalClosure, reason: nil)
        }
    }
}
