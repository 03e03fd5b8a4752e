extension TokensController {
    static let workspaceParameter: JSONValue = .query(
        "workspace",
        Schema.string,
        "a superuser's login token manages this workspace's tokens (default: the default workspace)"
    )

    static let operations: [APIOperation] = [
        APIOperation.post("/v0/tokens", id: "createToken", tag: "tokens", summary: "Create an API token", access: .bearerOrQuery)
            .describing("Needs the workspace's admin token or a superuser. A tenant-bound admin token creates tokens of its own tenant only.")
            .parameters([workspaceParameter])
            .body(
                .body(
                    "the token to create",
                    [
                        "application/json": Schema.object(
                            [
                                "name": ["type": "string", "minLength": 1, "maxLength": 100],
                                "scopes": [
                                    "type": "array",
                                    "minItems": 1,
                                    "items": [
                                        "type": "string",
                                        "pattern": "^(admin|append|read)(:[A-Za-z0-9_]+)?$",
                                        "description": "admin, append, append:<datasource>, read or read:<pipe>",
                                    ],
                                ],
                                "tenant_id": ["type": "string", "minLength": 1, "maxLength": 200],
                                "expires_at": ["type": "string", "description": "ISO 8601 or YYYY-MM-DD HH:MM:SS (UTC), in the future"],
                            ],
                            optional: ["tenant_id", "expires_at"]
                        )
                    ]
                )
            )
            .response(201, .json("the token, with its secret (shown only here)", Schema.ref("Token")))
            .link(from: 201, "revoke", to: "revokeToken", parameters: ["id": "$response.body#/id"])
            .error(404, "the workspace does not exist"),
        APIOperation.get("/v0/tokens", id: "listTokens", tag: "tokens", summary: "The workspace's API tokens, newest first", access: .bearerOrQuery)
            .parameters([workspaceParameter])
            .response(200, .json("the tokens, without secrets", Schema.object(["tokens": Schema.array(Schema.ref("Token"))])))
            .error(404, "the workspace does not exist"),
        APIOperation.delete("/v0/tokens/{id}", id: "revokeToken", tag: "tokens", summary: "Revoke an API token", access: .bearerOrQuery)
            .parameters([.path("id", ["type": "string", "format": "uuid"], "the token's id"), workspaceParameter])
            .response(204, ["description": "revoked: the token gets 401 from now on"])
            .error(404, "no such token in the workspace"),
        APIOperation.post("/v0/workspaces", id: "createWorkspace", tag: "tokens", summary: "Create a workspace (superusers)", access: .bearerOrQuery)
            .body(
                .body(
                    "its name and pipe templates",
                    [
                        "application/json": Schema.object(
                            [
                                "name": ["type": "string", "pattern": "^[a-z0-9_]{1,63}$"],
                                "templates": [
                                    "type": "array",
                                    "uniqueItems": true,
                                    "items": [
                                        "type": "string",
                                        "description": "a pipe template: engagement, product, behavior, sessions or one of PIPES_DIR",
                                    ],
                                ],
                            ],
                            optional: ["templates"]
                        )
                    ]
                )
            )
            .response(201, .json("the workspace, with an admin token (shown only here)", Schema.ref("Workspace")))
            .error(409, "a workspace of that name exists"),
        APIOperation.get("/v0/workspaces", id: "listWorkspaces", tag: "tokens", summary: "Every workspace (superusers)", access: .bearerOrQuery)
            .response(200, .json("the workspaces", Schema.object(["workspaces": Schema.array(Schema.ref("Workspace"))]))),
    ]
}
