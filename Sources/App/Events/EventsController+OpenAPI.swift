extension EventsController {
    /// The time window every reading endpoint takes.
    static func windowParameters(defaultHours: Int) -> [JSONValue] {
        [
            .query("hours", ["type": "integer", "minimum": 1, "maximum": 87_600, "default": .int(defaultHours)], "the window: the last N hours"),
            .query("from", Schema.string, "start of the window instead (ISO 8601 or YYYY-MM-DD HH:MM:SS, UTC)"),
            .query("to", Schema.string, "end of the window (default: now)"),
            .query("tz", ["type": "string", "default": "UTC"], "IANA time zone of bucket and day boundaries (default DB_TIMEZONE)"),
            .query("include_bots", ["type": "boolean", "default": false], "count events of bots too"),
        ]
    }

    static let ingestBody: JSONValue = .body(
        "a JSON array of events, or NDJSON (one event per line)",
        [
            "application/json": Schema.array(Schema.ref("EventInput")),
            "application/x-ndjson": ["type": "string", "description": "one JSON event per line"],
        ]
    )

    static let operations: [APIOperation] = [
        APIOperation.post("/api/events", id: "createEvent", tag: "events", summary: "Store one event", access: .optional)
            .describing(
                """
                Anonymous posts go to the default workspace unless REQUIRE_INGEST_TOKEN is set; a token's posts go to its \
                workspace and tenant. Answered once the event is committed.
                """
            )
            .body(.body("one event", ["application/json": Schema.ref("EventInput")]))
            .response(201, .json("the stored event", Schema.ref("Event")))
            .response(200, .json("an event with this event_id was stored before: that event", Schema.ref("Event")))
            .error(400, "the body is not one JSON object")
            .error(403, "the token may not append to the api datasource")
            .error(409, "an event with this event_id is being stored; retry"),
        APIOperation.post("/api/events/batch", id: "createEvents", tag: "events", summary: "Store many events", access: .optional)
            .describing(
                "Valid rows are stored even when others are not; those are quarantined with their error (GET /v0/datasources/api_quarantine)."
            )
            .body(ingestBody)
            .response(200, .json("how many rows were stored and quarantined", Schema.ref("IngestSummary")))
            .error(400, "the body is neither JSON nor NDJSON")
            .error(403, "the token may not append to the api datasource"),
        APIOperation.get("/api/events", id: "eventCounts", tag: "events", summary: "Event counts per time bucket, page and OS", access: .bearer)
            .parameters(
                [
                    .query("duration", ["type": "string", "default": "1 hour"], "bucket width: 5 minute, 1 hour, 1 day, 1 week…"),
                    .query("pages", Schema.array(Schema.string), "only these pages (repeat the parameter)"),
                    .query("limit", ["type": "integer", "minimum": 1, "maximum": 10_000, "default": 1000], "at most this many rows"),
                ] + windowParameters(defaultHours: 24)
            )
            .response(
                200,
                .json(
                    "newest bucket first",
                    Schema.array(
                        Schema.object([
                            "bucket": Schema.dateTime,
                            "page": Schema.nullable("string"),
                            "os": Schema.nullable("string"),
                            "count": Schema.integer,
                            "avg_duration": Schema.nullable("number"),
                        ])
                    )
                )
            ),
        APIOperation.get("/api/events/{id}", id: "getEvent", tag: "events", summary: "One stored event", access: .bearer)
            .parameters([.path("id", Schema.integer, "the event's id")])
            .response(200, .json("the event", Schema.ref("Event")))
            .error(404, "no such event in the caller's workspace and tenant"),
        APIOperation.post(
            "/v0/events",
            id: "ingest",
            tag: "events",
            summary: "Ingest into a datasource (NDJSON or one JSON object)",
            access: .bearerOrQuery
        )
        .describing("user_features rows are upserted per user; the other datasources store events.")
        .parameters(
            [
                .query("name", Schema.enumeration(Datasource.ingestible.map(\.rawValue)), "the datasource", required: true),
                .query("wait", Schema.boolean, "answer 200 rather than 202 (the rows are committed either way)"),
            ]
        )
        .body(
            .body(
                "NDJSON (one row per line), a JSON array or one JSON object",
                [
                    "application/x-ndjson": ["type": "string"],
                    "application/json": ["anyOf": [Schema.ref("EventInput"), Schema.array(Schema.ref("EventInput"))]],
                ]
            )
        )
        .response(202, .json("rows stored and quarantined", Schema.ref("IngestSummary")))
        .response(200, .json("rows stored and quarantined (wait=true)", Schema.ref("IngestSummary")))
        .error(404, "no such datasource"),
        APIOperation.get(
            "/v0/datasources/{name}",
            id: "quarantine",
            tag: "events",
            summary: "A datasource's quarantined rows (admin)",
            access: .bearerOrQuery
        )
        .parameters(
            [
                .path("name", Schema.enumeration(Datasource.allCases.map { "\($0.rawValue)_quarantine" }), "<datasource>_quarantine"),
                .query("limit", ["type": "integer", "minimum": 1, "maximum": 10_000, "default": 100], "at most this many rows"),
            ]
        )
        .response(
            200,
            .json(
                "newest first",
                Schema.object([
                    "data": Schema.array(Schema.object(["received_at": Schema.dateTime, "error": Schema.string, "line": Schema.string])),
                    "rows": Schema.integer,
                ])
            )
        )
        .error(404, "no such datasource"),
    ]
}
