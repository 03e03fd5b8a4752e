extension PipesController {
    static let operations: [APIOperation] = [
        APIOperation.get(
            "/v0/pipes",
            id: "listPipes",
            tag: "pipes",
            summary: "The pipes this token may run, with parameters and columns",
            access: .bearerOrQuery
        )
        .response(
            200,
            .json(
                "the pipes, by name",
                Schema.object([
                    "pipes": Schema.array(
                        Schema.object([
                            "name": Schema.string,
                            "template": Schema.string,
                            "description": Schema.string,
                            "endpoint": Schema.string,
                            "writes": ["type": "boolean", "description": "whether running it stores something (assign_clusters)"],
                            "timeout_seconds": [
                                "type": "integer",
                                "description":
                                    "seconds it may run before it is cancelled with 408 (QUERY_TIMEOUT_SECONDS, or its @timeout if longer)",
                            ],
                            "parameters": Schema.array(
                                Schema.object([
                                    "name": Schema.string,
                                    "type": Schema.string,
                                    "required": Schema.boolean,
                                    "default": Schema.nullable("string"),
                                    "description": Schema.string,
                                ])
                            ),
                            "columns": Schema.array(Schema.object(["name": Schema.string, "description": Schema.string])),
                        ])
                    )
                ])
            )
        ),
        APIOperation.get(
            "/v0/pipes/openapi.json",
            id: "pipesOpenAPI",
            tag: "pipes",
            summary: "The workspace's pipes as OpenAPI 3.1",
            access: .bearerOrQuery
        )
        .response(200, .json("an OpenAPI document: one path per pipe and output format", ["type": "object"])),
        APIOperation.get(
            "/v0/pipes/{file}",
            id: "runPipe",
            tag: "pipes",
            summary: "Run a pipe: <name>.json, .csv, .csvwithnames or .ndjson",
            access: .bearerOrQuery
        )
        .describing(
            """
            Each pipe's own parameters are query parameters: GET /v0/pipes lists them, and GET /v0/pipes/openapi.json \
            describes them. Parameters a pipe does not know are ignored. The statistics are read from PostgreSQL.
            """
        )
        .parameters([.path("file", ["type": "string", "pattern": "^[A-Za-z0-9_]+\\.(json|csv|csvwithnames|ndjson)$"], "<pipe>.<format>")])
        .response(
            200,
            .content(
                "the rows",
                [
                    "application/json": Schema.object([
                        "meta": Schema.array(Schema.object(["name": Schema.string, "type": Schema.string])),
                        "data": Schema.array(["type": "object"]),
                        "rows": Schema.integer,
                        "statistics": Schema.object(["elapsed": Schema.number, "rows_read": Schema.integer, "bytes_read": Schema.integer]),
                    ]),
                    "text/csv": ["type": "string", "description": ".csv without a header, .csvwithnames with one"],
                    "application/x-ndjson": ["type": "string", "description": "one JSON object per row"],
                ]
            )
        )
        .error(404, "no such pipe in the workspace, or an unknown format")
        .error(408, "the query took too long"),
    ]
}
