extension AnalyticsController {
    /// Window, zone, bots and format: what every analytics endpoint takes.
    static func commonParameters(defaultHours: Int) -> [JSONValue] {
        EventsController.windowParameters(defaultHours: defaultHours) + [
            .query("days", ["type": "integer", "minimum": 1, "maximum": 3650], "the window: the last N days (instead of hours)"),
            .query("format", ["type": "string", "enum": ["json", "csv"], "default": "json"], "csv: the same rows as CSV with a header"),
        ]
    }

    static func limit(_ defaultValue: Int, maximum: Int) -> JSONValue {
        .query("limit", ["type": "integer", "minimum": 1, "maximum": .int(maximum), "default": .int(defaultValue)], "at most this many rows")
    }

    /// 200: a list of rows in JSON, or the same rows as CSV.
    static func rows(_ description: String, _ row: JSONValue) -> JSONValue {
        .content(
            description,
            ["application/json": Schema.array(row), "text/csv": ["type": "string", "description": "the same rows, with a header"]]
        )
    }

    static func operation(_ name: String, id: String, summary: String, defaultHours: Int) -> APIOperation {
        APIOperation.get("/api/analytics/\(name)", id: id, tag: "analytics", summary: summary, access: .bearer)
            .parameters(commonParameters(defaultHours: defaultHours))
            .error(408, "the query took too long: narrow the window")
    }

    /// Sessions grouped by columns of their first event (`sessionsByFirstEvent`), most visits first.
    static func sessionBreakdown(_ name: String, id: String, summary: String, dimensions: KeyValuePairs<String, JSONValue>) -> APIOperation {
        let columns =
            dimensions.map { ($0.key, $0.value) } + [("visits", Schema.integer), ("visitors", Schema.integer), ("percentage", Schema.number)]
        return operation(name, id: id, summary: summary, defaultHours: 24)
            .parameters([limit(20, maximum: 1000)])
            .response(200, rows("most visits first", Schema.object(columns)))
    }

    static let operations: [APIOperation] = [
        operation("sessions", id: "sessions", summary: "Sessions in the window, newest first", defaultHours: 24)
            .describing("first_page and last_page are by event time; duration_seconds runs from the first to the last event.")
            .parameters([limit(100, maximum: 10_000)])
            .response(
                200,
                rows(
                    "one row per session",
                    Schema.object([
                        "session_id": Schema.string,
                        "visitor": ["type": "string", "description": "user_id, or the session id for anonymous visitors"],
                        "page_count": Schema.integer,
                        "total_duration": ["type": "number", "description": "the sum of the events' duration, seconds"],
                        "first_page": Schema.nullable("string"),
                        "last_page": Schema.nullable("string"),
                        "started_at": Schema.dateTime,
                        "ended_at": Schema.dateTime,
                        "duration_seconds": Schema.number,
                    ])
                )
            ),
        operation(
            "sessions/summary",
            id: "sessionSummary",
            summary: "How many sessions, how long, how many pages, how many bounced",
            defaultHours: 24
        )
        .response(
            200,
            rows(
                "one row",
                Schema.object([
                    "sessions": Schema.integer,
                    "avg_duration_seconds": Schema.number,
                    "avg_page_count": Schema.number,
                    "bounce_rate": ["type": "number", "description": "% of sessions with a single event"],
                ])
            )
        ),
        operation("funnel", id: "funnel", summary: "An ordered funnel: visitors who reached each step after the ones before", defaultHours: 24 * 7)
            .parameters(
                [
                    .query(
                        "pages",
                        ["type": "array", "minItems": 2, "maxItems": 10, "items": ["type": "string", "minLength": 1]],
                        "the steps, in order",
                        required: true
                    ),
                    .query("within", ["type": "string", "enum": ["window", "session"], "default": "window"], "session: all steps in one session"),
                ]
            )
            .response(
                200,
                rows(
                    "one row per step",
                    Schema.object([
                        "step": Schema.integer,
                        "page": Schema.string,
                        "visitors": Schema.integer,
                        "conversion_rate": ["type": "number", "description": "% of step 1's visitors"],
                        "step_conversion_rate": ["type": "number", "description": "% of the previous step's visitors"],
                        "drop_off": ["type": "integer", "description": "visitors of the previous step who did not reach this one"],
                    ])
                )
            ),
        operation("pages", id: "pages", summary: "Pages by views: visitors, duration, bounce rate, entries, exits, referrers", defaultHours: 24)
            .parameters([limit(10, maximum: 1000)])
            .response(
                200,
                rows(
                    "one row per page, most viewed first",
                    Schema.object([
                        "page": Schema.string,
                        "views": Schema.integer,
                        "unique_visitors": Schema.integer,
                        "avg_duration": Schema.nullable("number"),
                        "bounce_rate": ["type": "number", "description": "% of the sessions that entered here and had one event"],
                        "entries": Schema.integer,
                        "exits": Schema.integer,
                        "top_referrers": Schema.array(Schema.object(["referrer": Schema.nullable("string"), "visits": Schema.integer])),
                    ])
                )
            ),
        operation("retention", id: "retention", summary: "Retention cohorts by first-seen day or week", defaultHours: 30 * 24)
            .parameters([.query("period", ["type": "string", "enum": ["day", "week"], "default": "week"], "cohort and period length")])
            .response(
                200,
                rows(
                    "one row per cohort and later period",
                    Schema.object([
                        "cohort_date": ["type": "string", "format": "date"],
                        "period": ["type": "integer", "description": "periods after the cohort's first (0 is the cohort itself)"],
                        "users": ["type": "integer", "description": "cohort size"],
                        "retained": Schema.integer,
                        "retention_rate": Schema.number,
                    ])
                )
            ),
        sessionBreakdown(
            "traffic-sources",
            id: "trafficSources",
            summary: "Sessions by where they came from",
            dimensions: [
                "source": ["type": "string", "description": "direct, search, social, email or referral"],
                "referrer_domain": Schema.nullable("string"),
            ]
        ),
        sessionBreakdown(
            "devices",
            id: "devices",
            summary: "Sessions by device type, browser and OS",
            dimensions: ["device_type": Schema.nullable("string"), "browser": Schema.nullable("string"), "os": Schema.nullable("string")]
        ),
        operation("paths", id: "paths", summary: "Which page visitors went to next", defaultHours: 24)
            .parameters([.query("page", Schema.string, "only transitions from this page"), limit(20, maximum: 1000)])
            .response(
                200,
                rows(
                    "most transitions first",
                    Schema.object(["from_page": Schema.string, "to_page": Schema.string, "transitions": Schema.integer])
                )
            ),
    ]
}
