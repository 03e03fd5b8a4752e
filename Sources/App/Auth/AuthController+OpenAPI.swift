extension AuthController {
    static let credentials = Schema.object(["username": ["type": "string", "minLength": 1], "password": ["type": "string", "minLength": 1]])

    static let operations: [APIOperation] = [
        APIOperation.post("/api/auth/register", id: "register", tag: "auth", summary: "Register a user", access: .optional)
            .describing(
                """
                The first user ever registered is a superuser. REGISTRATION decides who else may register: open (anyone), \
                first-user or closed (a superuser's login token only).
                """
            )
            .body(
                .body(
                    "the new user",
                    [
                        "application/json": Schema.object(
                            [
                                "username": ["type": "string", "pattern": "^[A-Za-z0-9._-]{3,50}$"],
                                "email": ["type": "string", "format": "email", "maxLength": 254],
                                "password": ["type": "string", "minLength": 8, "description": "8 characters to 72 bytes"],
                                "full_name": ["type": ["string", "null"], "maxLength": 200],
                            ],
                            optional: ["full_name"]
                        )
                    ]
                )
            )
            .response(201, .json("the user (never its password hash)", Schema.ref("User")))
            .error(400, "the username or email is taken")
            .error(403, "registration is closed to this caller (REGISTRATION)"),
        APIOperation.post(
            "/api/auth/login",
            id: "login",
            tag: "auth",
            summary: "Log in: a login token for a username and password",
            access: .anonymous
        )
        .describing("JSON, or the OAuth2 password form (application/x-www-form-urlencoded). Failed logins are rate limited (LOGIN_RATE_LIMIT).")
        .body(
            .body(
                "the credentials",
                [
                    "application/json": credentials,
                    "application/x-www-form-urlencoded": credentials,
                ]
            )
        )
        .response(
            200,
            .json(
                "a login token",
                Schema.object([
                    "access_token": Schema.string,
                    "token_type": Schema.enumeration(["bearer"]),
                    "expires_in": ["type": "integer", "description": "seconds"],
                ])
            )
        )
        .error(400, "the user is inactive")
        .error(401, "wrong username or password"),
        APIOperation.get("/api/auth/me", id: "me", tag: "auth", summary: "The logged-in user", access: .bearer)
            .response(200, .json("the user", Schema.ref("User"))),
        APIOperation.get("/api/auth/users", id: "listUsers", tag: "auth", summary: "Every user (superusers only)", access: .bearer)
            .response(200, .json("the users", Schema.array(Schema.ref("User")))),
    ]
}
