extension HealthController {
    static var operations: [APIOperation] {
        [
            APIOperation.get("/health", id: "health", tag: "operations", summary: "The process is up", access: .anonymous)
                .response(200, .json("always, while the process runs", Schema.object(["status": Schema.enumeration(["ok"])])))
                .withoutDatabase(),
            APIOperation.get("/ready", id: "ready", tag: "operations", summary: "The database answers and its schema is migrated", access: .anonymous)
                .describing("503 while the database is down or its schema is older than this server needs.")
                .response(
                    200,
                    .json(
                        "ready to serve",
                        Schema.object([
                            "status": Schema.enumeration(["ready"]),
                            "database": Schema.enumeration(["ok"]),
                            "migration": ["type": "integer", "description": "the schema version applied"],
                        ])
                    )
                ),
        ]
    }
}
