extension RealtimeController {
    static let operations: [APIOperation] = [
        APIOperation.get(
            "/api/realtime",
            id: "dashboard",
            tag: "realtime",
            summary: "The live dashboard (one HTML page, works offline)",
            access: .anonymous
        )
        .parameters(
            [
                .query("token", Schema.string, "a read token, passed on to the stream"),
                .query("event_type", Schema.string, "show only events of this type"),
                .query("page", Schema.string, "show only events of this page"),
            ]
        )
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
        .response(403, .json("the token cannot read", Schema.ref("Detail"))),
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
            [
                .query("token", Schema.string, "a read token, instead of Authorization"),
                .query("event_type", Schema.string, "only events of this type"),
                .query("page", Schema.string, "only events of this page"),
                .query("batch", Schema.boolean, #"true: everything waiting in one {"type": "batch", "messages": […]} message"#),
            ]
        )
        .response(101, ["description": "switching to the WebSocket protocol"])
        .response(403, .json("the token cannot read", Schema.ref("Detail")))
        .response(426, .json("not a WebSocket upgrade", Schema.ref("Detail"))),
    ]
}
