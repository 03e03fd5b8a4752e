extension RealtimeController {
    /// What the dashboard passes on to its stream, and the stream's own filters.
    static let streamParameters: [JSONValue] = [
        .query("token", Schema.string, "a read token, instead of Authorization (the dashboard passes it on to its stream)"),
        .query("event_type", Schema.string, "only events of this type"),
        .query("page", Schema.string, "only events of this page"),
    ]

    static let operations: [APIOperation] = [
        APIOperation.get(
            "/api/realtime",
            id: "dashboard",
            tag: "realtime",
            summary: "The live dashboard (one HTML page, works offline)",
            access: .anonymous
        )
        .parameters(streamParameters)
        .response(200, .content("the page", ["text/html": Schema.string]))
        .withoutDatabase(),
        APIOperation.get(
            "/api/realtime/stats",
            id: "realtimeStats",
            tag: "realtime",
            summary: "Live numbers of the caller's scope",
            access: .optional
        )
        .describing("Anonymous callers see the default workspace when REALTIME_ANONYMOUS is true (the default).")
        .parameters([.query("token", Schema.string, "a read token, instead of Authorization")])
        .response(200, .json("the numbers of now", Schema.ref("RealtimeStats")))
        .error(403, "the token cannot read"),
        APIOperation.get(
            "/api/realtime/ws",
            id: "realtimeStream",
            tag: "realtime",
            summary: "WebSocket: each committed event, and stats every second",
            access: .optional
        )
        .describing(
            """
            Connect with a WebSocket client. Messages: {"type": "stats", …} first and then every second; the scope's \
            latest events with "recent": true; then {"type": "event", "event": {…}} per committed event, with \
            "dropped": n when a slow client missed n messages. Send "ping" for {"type": "pong"}. A plain GET gets 426.
            """
        )
        .parameters(
            streamParameters + [
                .query("batch", Schema.boolean, #"true: everything waiting in one {"type": "batch", "messages": […]} message"#)
            ]
        )
        .response(101, ["description": "switching to the WebSocket protocol"])
        .error(403, "the token cannot read")
        .error(426, "not a WebSocket upgrade"),
    ]
}
