import Foundation
import HTTPTypes
import Hummingbird
import Postgres

/// A stored event as the API shows it: every column, with `null` for absent values, times in ISO-8601 UTC.
struct EventResponse: ResponseEncodable {
    let event: StoredEvent

    init(_ event: StoredEvent) { self.event = event }

    /// The event as `jsonText` writes it (the encoder's object, tested equal), with `status`. JSONEncoder took a fifth
    /// of the server's CPU under single-event ingest (perf, 64 clients).
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

    enum CodingKeys: String, CodingKey {
        case id, time, page, url, referrer, source, browser, os, country, ip, duration, clicks, feature, properties, datasource
        case tenantID = "tenant_id", receivedAt = "received_at", eventID = "event_id", eventType = "event_type"
        case eventName = "event_name", userID = "user_id", sessionID = "session_id", referrerDomain = "referrer_domain"
        case userAgent = "user_agent", deviceType = "device_type", isBot = "is_bot"
    }

    func encode(to encoder: any Encoder) throws {
        let record = event.record
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(event.id, forKey: .id)
        try container.encode(PostgresTimestamp.iso8601(record.time), forKey: .time)
        try container.encode(PostgresTimestamp.iso8601(record.receivedAt), forKey: .receivedAt)
        try container.encode(record.tenantID, forKey: .tenantID)
        try container.encode(record.eventID, forKey: .eventID)
        try container.encode(record.eventType, forKey: .eventType)
        try container.encode(record.eventName, forKey: .eventName)
        try container.encode(record.userID, forKey: .userID)
        try container.encode(record.sessionID, forKey: .sessionID)
        try container.encode(record.page, forKey: .page)
        try container.encode(record.url, forKey: .url)
        try container.encode(record.referrer, forKey: .referrer)
        try container.encode(record.source, forKey: .source)
        try container.encode(record.referrerDomain, forKey: .referrerDomain)
        try container.encode(record.userAgent, forKey: .userAgent)
        try container.encode(record.browser, forKey: .browser)
        try container.encode(record.os, forKey: .os)
        try container.encode(record.deviceType, forKey: .deviceType)
        try container.encode(record.isBot, forKey: .isBot)
        try container.encode(record.country, forKey: .country)
        try container.encode(record.ip, forKey: .ip)
        try container.encode(record.duration, forKey: .duration)
        try container.encode(record.clicks, forKey: .clicks)
        try container.encode(record.feature, forKey: .feature)
        let properties = try record.properties.map { try JSONDecoder().decode(JSONValue.self, from: Data($0.utf8)) }
        try container.encode(properties, forKey: .properties)
        try container.encode(record.datasource, forKey: .datasource)
    }

    /// The object `encode(to:)` writes, written by hand: the realtime hub writes every stored event once, and
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
