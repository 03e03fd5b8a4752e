import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import HummingbirdWSTesting
import Testing

@testable import App

@Suite("Metrics: GET /metrics in Prometheus's text format")
struct MetricsTests {
    @Test("after traffic, /metrics counts requests by route and status, ingest outcomes, writer batches, pool and WebSocket clients")
    func scrape() async throws {
        try await withTestApp(["PORT": "0"], testingSetup: .live) { client, _ in
            // 3 good rows, one of them a retry of an earlier event_id, and 1 bad row.
            try await postBatch(client, [#"{"page": "/a", "event_id": "e1"}"#])
            try await client.execute(
                uri: "/api/events/batch",
                method: .post,
                body: ByteBuffer(text: #"[{"page": "/a", "event_id": "e1"}, {"page": "/b"}, {"page": "/c", "duration": "long"}]"#)
            ) { #expect($0.status == .ok) }
            for _ in 0..<3 {
                try await client.execute(uri: "/api/analytics/pages", method: .get, headers: adminAuth) { #expect($0.status == .ok) }
            }
            try await client.execute(uri: "/api/analytics/pages", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/events/12345", method: .get, headers: adminAuth) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/no/such/path", method: .get) { #expect($0.status == .notFound) }

            try await client.ws("/api/realtime/ws") { inbound, outbound, _ in
                let socket = SocketReader(inbound, outbound)
                _ = try await socket.receive { $0.contains { $0["type"] == "stats" } }
                let text = try await client.execute(uri: "/metrics", method: .get) { response in
                    #expect(response.status == .ok)
                    #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
                    return String(buffer: response.body)
                }
                let series = MetricsText(text)
                #expect(series[#"analytics_http_requests_total{method="GET",route="/api/analytics/pages",status="200"}"#] == 3)
                #expect(series[#"analytics_http_requests_total{method="GET",route="/api/analytics/pages",status="401"}"#] == 1)
                #expect(series[#"analytics_http_requests_total{method="GET",route="/api/events/{id}",status="404"}"#] == 1)
                // Series are by route, never by raw path.
                #expect(!text.contains("/no/such/path") && !text.contains("/api/events/12345"))
                #expect(series[#"analytics_http_request_duration_seconds_count{method="GET",route="/api/analytics/pages"}"#] == 4)
                #expect((series[#"analytics_http_request_duration_seconds_sum{method="GET",route="/api/analytics/pages"}"#] ?? 0) > 0)
                #expect(series[#"analytics_ingest_rows_total{result="accepted"}"#] == 2)
                #expect(series[#"analytics_ingest_rows_total{result="deduplicated"}"#] == 1)
                #expect(series[#"analytics_ingest_rows_total{result="quarantined"}"#] == 1)
                // Two writer transactions at least (the two posts cannot share one): 1 row, then 2.
                let batches = series["analytics_writer_batch_rows_count"] ?? 0
                #expect(batches >= 2)
                #expect(series["analytics_writer_batch_rows_sum"] == 3)
                #expect(series["analytics_writer_commit_seconds_count"] == batches)
                #expect((series[#"analytics_db_pool_connections{state="open"}"#] ?? 0) >= 1)
                #expect(series[#"analytics_db_pool_connections{state="in_use"}"#] != nil)
                #expect(series["analytics_db_pool_waiting_requests"] == 0)
                #expect(series["analytics_realtime_clients"] == 1)
                #expect(series["analytics_realtime_dropped_messages_total"] == 0)
                try await outbound.close(.normalClosure, reason: nil)
            }
        }
    }
}

/// Sample lines of the Prometheus text format, by series (`name{labels}`).
struct MetricsText {
    var values: [String: Double] = [:]

    init(_ text: String) {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
    }

    subscript(series: String) -> Double? { values[series] }
}
