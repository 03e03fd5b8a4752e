import Foundation
import Postgres

/// One event ready to be stored: validated, normalised and enriched. Its fields are the columns of `events`.
public struct EventRecord: Sendable, Equatable {
    public var workspaceID: Int
    public var tenantID: String?
    public var time: Date
    public var receivedAt: Date
    public var eventID: String?
    public var eventType: String
    public var eventName: String?
    public var userID: String?
    public var sessionID: String?
    public var page: String?
    public var url: String?
    public var referrer: String?
    public var source: String?
    public var referrerDomain: String?
    public var userAgent: String?
    public var browser: String?
    public var os: String?
    public var deviceType: String?
    public var isBot: Bool
    public var country: String?
    public var ip: String?
    public var duration: Double?
    public var clicks: Int?
    public var feature: String?
    /// JSON text of the properties object.
    public var properties: String?
    public var datasource: String

    /// The `events` columns written by COPY, in the order of `copyValues`.
    static let copyColumns = [
        "workspace_id", "tenant_id", "time", "received_at", "event_id", "event_type", "event_name", "user_id", "session_id", "page",
        "url", "referrer", "source", "referrer_domain", "user_agent", "browser", "os", "device_type", "is_bot", "country", "ip",
        "duration", "clicks", "feature", "properties", "datasource",
    ]

    /// The values of `copyColumns` in PostgreSQL's text format.
    var copyValues: [String?] {
        [
            String(workspaceID), tenantID, PostgresTimestamp.format(time), PostgresTimestamp.format(receivedAt), eventID, eventType,
            eventName, userID, sessionID, page, url, referrer, source, referrerDomain, userAgent, browser, os, deviceType,
            isBot ? "t" : "f", country, ip, duration.map(\.postgresText), clicks.map(String.init), feature, properties, datasource,
        ]
    }
}
