import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// A stored event as the API shows it (see `jsonText`).
struct EventResponse: ResponseGenerator {
    let event: StoredEvent

    init(_ event: StoredEvent) { self.event = event }

    /// The event as `jsonText` writes it, with `status`. (JSONEncoder took a fifth of the server's CPU under
    /// single-event ingest: perf, 64 clients.)
    func response(status: HTTPResponse.Status) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(string: Self.jsonText(event)))
        )
    }

    func response(from request: Request, context: some RequestContext) throws -> Response { response(status: .ok) }

    /// The columns `decode` reads, in a `SELECT`.
    static let selectList = """
        SELECT id, workspace_id, tenant_id, time, received_at, event_id, event_type, event_name, user_id, session_id, page, url,
               referrer, source, referrer_domain, user_agent, browser, os, device_type, is_bot, country, ip, duration, clicks,
               feature, properties::text AS properties, datasource
        """

    static func decode(_ row: PostgresRow) throws -> StoredEvent {
        func text(_ name: String) throws -> String? { try row.decode(String?.self, column: name) }
        let record = EventRecord(
            workspaceID: try row.decode(Int.self, column: "workspace_id"),
            tenantID: try text("tenant_id"),
            time: try row.decode(Date.self, column: "time"),
            receivedAt: try row.decode(Date.self, column: "received_at"),
            eventID: try text("event_id"),
            eventType: try row.decode(String.self, column: "event_type"),
            eventName: try text("event_name"),
            userID: try text("user_id"),
            sessionID: try text("session_id"),
            page: try text("page"),
            url: try text("url"),
            referrer: try text("referrer"),
            source: try text("source"),
            referrerDomain: try text("referrer_domain"),
            userAgent: try text("user_agent"),
            browser: try text("browser"),
            os: try text("os"),
            deviceType: try text("device_type"),
            isBot: try row.decode(Bool.self, column: "is_bot"),
            country: try text("country"),
            ip: try text("ip"),
            duration: try row.decode(Double?.self, column: "duration"),
            clicks: try row.decode(Int?.self, column: "clicks"),
            feature: try text("feature"),
            properties: try text("properties"),
            datasource: try row.decode(String?.self, column: "datasource") ?? Datasource.api.rawValue
        )
        return StoredEvent(id: try row.decode(Int.self, column: "id"), record: record)
    }

    /// The event as a JSON object: every column but the workspace, `null` for absent values, times in ISO-8601 UTC.
    /// Written by hand, for the REST answers and the realtime stream alike (which writes every stored event once):
    /// JSONEncoder costs several times as much. `properties` is stored as JSON text and goes in as it is.
    static func jsonText(_ event: StoredEvent) -> String {
        let record = event.record
        var text = "{\"id\":\(event.id)"
        text.reserveCapacity(640)
        func field(_ name: String, _ value: String?) {
            text += ",\"" + name + "\":"
            if let value { JSONValue.writeString(value, to: &text) } else { text += "null" }
        }
        func number(_ value: Double?) -> String {
            guard let value, value.isFinite else { return "null" }
            return value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : "\(value)"
        }
        field("time", PostgresTimestamp.iso8601(record.time))
        field("received_at", PostgresTimestamp.iso8601(record.receivedAt))
        field("tenant_id", record.tenantID)
        field("event_id", record.eventID)
        field("event_type", record.eventType)
        field("event_name", record.eventName)
        field("user_id", record.userID)
        field("session_id", record.sessionID)
        field("page", record.page)
        field("url", record.url)
        field("referrer", record.referrer)
        field("source", record.source)
        field("referrer_domain", record.referrerDomain)
        field("user_agent", record.userAgent)
        field("browser", record.browser)
        field("os", record.os)
        field("device_type", record.deviceType)
        text += ",\"is_bot\":" + (record.isBot ? "true" : "false")
        field("country", record.country)
        field("ip", record.ip)
        text += ",\"duration\":" + number(record.duration)
        text += ",\"clicks\":" + (record.clicks.map(String.init) ?? "null")
        field("feature", record.feature)
        text += ",\"properties\":" + (record.properties ?? "null")
        field("datasource", record.datasource)
        return text + "}"
    }
}
