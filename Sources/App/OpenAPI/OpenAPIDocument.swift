/// `GET /openapi.json`: every route of the server as one OpenAPI 3.1 document, assembled from the operations each
/// module lists beside its routes.
enum OpenAPIDocument {
    /// Every module's operations, in the order the document shows their tags.
    static var operations: [APIOperation] {
        HealthController<AppRequestContext>.operations + AuthController.operations + TokensController.operations + EventsController.operations
            + AnalyticsController.operations + PipesController.operations + RealtimeController.operations + DocsController.operations
            + MetricsController.operations
    }

    static func build(version: String = "1.0.0") -> JSONValue {
        var paths: [String: [String: JSONValue]] = [:]
        for operation in operations {
            paths[operation.path, default: [:]][operation.method] = operation.document
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "Analytics API",
                "version": .string(version),
                "description": """
                Self-hosted, real-time event analytics on PostgreSQL: ingest events, ask for sessions, funnels, retention, \
                pages, sources and devices, run the workspace's pipes, and watch events arrive live. Errors under /api are \
                {"detail": …} (422 for validation, with a list of issues); under /v0 they are {"error": …}.
                """,
            ],
            "tags": .array(tags.map { ["name": .string($0.name), "description": .string($0.description)] }),
            "paths": .object(paths.mapValues(JSONValue.object)),
            "components": [
                "securitySchemes": [
                    "bearer": [
                        "type": "http",
                        "scheme": "bearer",
                        "description": "A login token from POST /api/auth/login (a JWT), or an API token (at_…) or the ADMIN_TOKEN",
                    ],
                    "token": [
                        "type": "apiKey",
                        "in": "query",
                        "name": "token",
                        "description": "An API token as a query parameter (the /v0 API and the realtime stream)",
                    ],
                ],
                "schemas": .object(schemas),
            ],
        ]
    }

    static let tags: [(name: String, description: String)] = [
        ("operations", "Health, readiness, metrics and this description"),
        ("auth", "Users and login tokens (seed 004)"),
        ("tokens", "API tokens and workspaces"),
        ("events", "Ingesting and reading events"),
        ("analytics", "Sessions, funnels, retention, pages, sources, devices and paths"),
        ("pipes", "The workspace's named SQL queries (seeds 000–003)"),
        ("realtime", "The live dashboard, its stats and the WebSocket stream"),
    ]

    /// Shapes shared by several operations.
    static let schemas: [String: JSONValue] = [
        "Detail": Schema.object([
            "detail": [
                "anyOf": [
                    Schema.string,
                    Schema.array(
                        Schema.object([
                            "loc": Schema.array(["type": ["string", "integer"]]),
                            "msg": Schema.string,
                            "type": Schema.string,
                        ])
                    ),
                ]
            ]
        ]),
        "V0Error": Schema.object(["error": Schema.string]),
        "Event": Schema.object([
            "id": Schema.integer,
            "time": Schema.dateTime,
            "received_at": Schema.dateTime,
            "tenant_id": Schema.nullable("string"),
            "event_id": Schema.nullable("string"),
            "event_type": Schema.string,
            "event_name": Schema.nullable("string"),
            "user_id": Schema.nullable("string"),
            "session_id": Schema.nullable("string"),
            "page": Schema.nullable("string"),
            "url": Schema.nullable("string"),
            "referrer": Schema.nullable("string"),
            "source": Schema.nullable("string"),
            "referrer_domain": Schema.nullable("string"),
            "user_agent": Schema.nullable("string"),
            "browser": Schema.nullable("string"),
            "os": Schema.nullable("string"),
            "device_type": Schema.nullable("string"),
            "is_bot": Schema.boolean,
            "country": Schema.nullable("string"),
            "ip": Schema.nullable("string"),
            "duration": Schema.nullable("number"),
            "clicks": Schema.nullable("integer"),
            "feature": Schema.nullable("string"),
            "properties": ["description": "the event's properties object, or null"],
            "datasource": Schema.string,
        ]),
        "EventInput": [
            "type": "object",
            "description": """
            One event. Every field is optional; `timestamp` (or `time`) defaults to the arrival time and `event_type` to \
            page_view. The user agent is parsed into browser, os and device_type, the referrer into source and \
            referrer_domain. Unknown fields are ignored.
            """,
            "properties": [
                "event_id": ["type": "string", "description": "the client's id: a retry with the same id is stored once"],
                "event_type": Schema.string,
                "event_name": Schema.string,
                "timestamp": ["type": "string", "description": "ISO 8601 or YYYY-MM-DD HH:MM:SS (UTC)"],
                "user_id": Schema.string,
                "session_id": Schema.string,
                "tenant_id": Schema.string,
                "page": Schema.string,
                "url": Schema.string,
                "referrer": Schema.string,
                "user_agent": Schema.string,
                "device_type": Schema.string,
                "browser": Schema.string,
                "os": Schema.string,
                "country": Schema.string,
                "ip": Schema.string,
                "duration": ["type": "number", "description": "seconds"],
                "clicks": Schema.integer,
                "feature": Schema.string,
                "properties": ["type": ["object", "string"], "description": "a JSON object, or a string holding one"],
            ],
        ],
        "IngestSummary": Schema.object(["successful_rows": Schema.integer, "quarantined_rows": Schema.integer]),
        "User": Schema.object([
            "id": Schema.integer,
            "username": Schema.string,
            "email": Schema.string,
            "full_name": Schema.nullable("string"),
            "is_active": Schema.boolean,
            "is_superuser": Schema.boolean,
            "created_at": Schema.dateTime,
        ]),
        "Token": Schema.object(
            [
                "id": ["type": "string", "format": "uuid"],
                "name": Schema.string,
                "token": ["type": "string", "description": "the secret: only in the answer to its creation"],
                "prefix": Schema.string,
                "scopes": Schema.array(Schema.string),
                "workspace_id": Schema.integer,
                "tenant_id": Schema.nullable("string"),
                "expires_at": Schema.nullableDateTime(),
                "created_at": Schema.dateTime,
                "last_used_at": Schema.nullableDateTime(),
            ],
            optional: ["token"]
        ),
        "Workspace": Schema.object(
            [
                "id": Schema.integer,
                "name": Schema.string,
                "templates": Schema.array(Schema.string),
                "created_at": Schema.dateTime,
                "admin_token": ["type": "string", "description": "an admin token of the new workspace: only in the answer to its creation"],
            ],
            optional: ["admin_token"]
        ),
        "RealtimeStats": Schema.object([
            "total_events": Schema.integer,
            "active_sessions": Schema.integer,
            "page_views_last_minute": Schema.integer,
            "events_per_second": Schema.number,
            "avg_duration": Schema.nullable("number"),
            "top_pages": Schema.array(Schema.object(["page": Schema.string, "views": Schema.integer])),
            "per_second": Schema.array(Schema.integer),
            "time": Schema.dateTime,
        ]),
    ]
}
