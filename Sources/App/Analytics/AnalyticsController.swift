import Foundation
import Hummingbird
import Postgres

/// `GET /api/analytics/*` (seed 004): sessions, ordered funnel, retention cohorts, page metrics, traffic sources,
/// devices and paths.
///
/// Each endpoint validates its parameters before any SQL runs (422 naming each bad one), then runs one query in a
/// read-only transaction with a statement timeout. Definitions: a *visitor* is `COALESCE(user_id, session_id)`;
/// bots are left out unless `include_bots=true`; the window is the last `hours` (or `days`), or `from`/`to`.
struct AnalyticsController: Sendable {
    let pool: PostgresPool
    /// The zone of day and week boundaries when a request gives no `tz` (`DB_TIMEZONE`).
    var defaultTimeZone = "UTC"
    /// Seconds a query may run before it is cancelled (408): `QUERY_TIMEOUT_SECONDS`.
    var queryTimeout = 15

    func addRoutes(to router: RouterGroup<AuthenticatedContext>) {
        router.get("/api/analytics/sessions", use: sessions)
        router.get("/api/analytics/sessions/summary", use: sessionSummary)
        router.get("/api/analytics/funnel", use: funnel)
        router.get("/api/analytics/pages", use: pages)
        router.get("/api/analytics/retention", use: retention)
        router.get("/api/analytics/traffic-sources", use: trafficSources)
        router.get("/api/analytics/devices", use: devices)
        router.get("/api/analytics/paths", use: paths)
    }

    /// Parameters every analytics endpoint takes.
    struct Common {
        var from: Date
        var to: Date
        var includeBots: Bool
        var format: ResultTable.Format
        /// IANA zone for day and week boundaries.
        var timeZone: String
        /// Whose events: the caller's workspace and tenant (also enforced by row-level security).
        var scope: DataScope

        /// The event filter of the window: workspace, time range and bots.
        var filter: PostgresQuery {
            "workspace_id = \(scope.workspaceID) AND time >= \(from) AND time < \(to) AND (\(includeBots) OR NOT is_bot)"
        }
    }

    /// Reads `hours` (or `days`, or `from`/`to`), `tz`, `include_bots` and `format`.
    func common(_ query: inout QueryReader, context: AuthenticatedContext, defaultHours: Int) -> Common {
        var window = query.window(defaultHours: defaultHours)
        if query.string("from") == nil, let days = query.string("days") {
            if let count = Int(days), (1...3650).contains(count) {
                window.from = window.to.addingTimeInterval(-Double(count) * 86_400)
            } else {
                query.fail("days", "must be a whole number from 1 to 3650", type: "int_parsing")
            }
        }
        let timeZone = query.timeZone(default: defaultTimeZone)
        let includeBots = query.bool("include_bots", default: false)
        var format = ResultTable.Format.json
        if let text = query.string("format") {
            if let chosen = ResultTable.Format(rawValue: text.lowercased()) { format = chosen } else { query.fail("format", "must be json or csv") }
        }
        return Common(
            from: window.from,
            to: window.to,
            includeBots: includeBots,
            format: format,
            timeZone: timeZone,
            scope: context.identity.dataScope
        )
    }

    /// Runs one query through the read path of API requests (the caller's rows only, read-only, statement timeout),
    /// with enough memory for the hash aggregates of a month of events, so they do not spill to disk.
    func table(_ query: PostgresQuery, common: Common) async throws -> ResultTable {
        try await pool.withReadAccess(common.scope, timeout: queryTimeout, workMem: "64MB") { connection in
            ResultTable(try await connection.query(query), format: common.format)
        }
    }

    // MARK: Sessions

    /// Per session in the window, newest first: pages, durations, first and last page by time.
    ///
    /// The window's newest events are read first, newest to oldest, through the time index: a session whose first
    /// event among them is newer than the oldest event read has all its window's events there, so its numbers are
    /// exact, and every other session started earlier. When at least `limit` sessions are complete that way, they
    /// are the answer and the rest of the window is never read; otherwise every event of the window is grouped by
    /// session. First and last pages are then read through the session index for the returned sessions only.
    @Sendable func sessions(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24)
        let limit = query.integer("limit", default: 100, range: 1...10_000)
        try query.finish()
        // At least 2,000 events: with a small limit, 50 × limit events often held no whole session, and every
        // session of the window was then grouped (0.6 s for limit=1 at 10M events, against 24 ms for limit=100).
        let probe = max(50 * limit, 2_000)
        let perSession = """
            session_id,
                       coalesce(max(user_id), session_id) AS visitor,
                       count(page)::bigint AS page_count,
                       coalesce(sum(duration), 0)::float8 AS total_duration,
                       min(time) AS started_at,
                       max(time) AS ended_at
            """
        let sessionEvents: PostgresQuery = """
            FROM events e
            WHERE e.workspace_id = \(common.scope.workspaceID) AND e.session_id = s.session_id
              AND e.time >= s.started_at AND e.time <= s.ended_at AND (\(common.includeBots) OR NOT e.is_bot) AND e.page IS NOT NULL
            """
        return try await table(
            """
            WITH probe AS (
                SELECT session_id, user_id, page, duration, time
                FROM events
                WHERE \(common.filter) AND session_id IS NOT NULL
                ORDER BY time DESC
                LIMIT \(probe)
            ),
            bound AS (SELECT count(*) < \(probe) AS everything, min(time) AS oldest FROM probe),
            probed AS (
                SELECT \(unsafeSQL: perSession)
                FROM probe
                GROUP BY session_id
                HAVING (SELECT everything FROM bound) OR min(time) > (SELECT oldest FROM bound)
            ),
            complete AS (SELECT (SELECT everything FROM bound) OR (SELECT count(*) FROM probed) >= \(limit) AS yes),
            s AS (
                SELECT * FROM probed WHERE (SELECT yes FROM complete)
                UNION ALL
                SELECT \(unsafeSQL: perSession)
                FROM events
                WHERE NOT (SELECT yes FROM complete) AND \(common.filter) AND session_id IS NOT NULL
                GROUP BY session_id
                ORDER BY started_at DESC, session_id
                LIMIT \(limit)
            )
            SELECT s.session_id, s.visitor, s.page_count, s.total_duration,
                   (SELECT e.page \(sessionEvents) ORDER BY e.time, e.id LIMIT 1) AS first_page,
                   (SELECT e.page \(sessionEvents) ORDER BY e.time DESC, e.id DESC LIMIT 1) AS last_page,
                   s.started_at, s.ended_at,
                   extract(epoch FROM s.ended_at - s.started_at)::float8 AS duration_seconds
            FROM s
            ORDER BY s.started_at DESC, s.session_id
            """,
            common: common
        )
    }

    /// Sessions in the window: how many, average length and pages, and the share with a single event (bounce rate, %).
    @Sendable func sessionSummary(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24)
        try query.finish()
        return try await table(
            """
            WITH s AS (
                SELECT count(*) AS events, count(page) AS pages, extract(epoch FROM max(time) - min(time)) AS seconds
                FROM events
                WHERE \(common.filter) AND session_id IS NOT NULL
                GROUP BY session_id
            )
            SELECT count(*)::bigint AS sessions,
                   coalesce(round(avg(seconds)::numeric, 2), 0)::float8 AS avg_duration_seconds,
                   coalesce(round(avg(pages)::numeric, 2), 0)::float8 AS avg_page_count,
                   coalesce(round(100.0 * count(*) FILTER (WHERE events = 1) / nullif(count(*), 0), 2), 0)::float8 AS bounce_rate
            FROM s
            """,
            common: common
        )
    }

    // MARK: Funnel

    /// Ordered funnel over `pages` (repeated, 2 to 10 steps): a visitor counts at step k only after reaching steps
    /// 1…k in that order within the window (`within=session`: inside one session).
    @Sendable func funnel(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24 * 7)
        let steps = query.strings("pages")
        if steps.count < 2 || steps.count > 10 {
            query.fail("pages", "give 2 to 10 steps as repeated parameters: pages=/&pages=/pricing&pages=/signup")
        }
        let withinSession: Bool
        switch query.string("within") {
        case nil, "window": withinSession = false
        case "session": withinSession = true
        default:
            withinSession = false
            query.fail("within", "must be window or session")
        }
        try query.finish()

        // Greedy earliest match is exact: taking each step at its first occurrence after the previous one leaves
        // the most room for the steps after it. Each step is one CTE keyed by visitor (and session if asked) that
        // reads only its own page's events, through the page index (migration 0010) and with the planner's
        // statistics for that page; one shared CTE of all step events, filtered per step, was estimated at a few
        // hundred rows whatever its size. Visitors are their numbers (migration 0014): steps sort and join bigints.
        let key = withinSession ? "visitor, session_id" : "visitor"
        // The steps' visitors, of all visitors or of the odd or even visitor numbers.
        func stepCounts(half: Int?) -> PostgresQuery {
            let visitors: PostgresQuery = half.map { "AND visitor_id % 2 = \($0)" } ?? ""
            func stepEvents(_ index: Int) -> PostgresQuery {
                """
                SELECT visitor_id AS visitor, session_id, time, id
                    FROM events
                    WHERE \(common.filter) AND page = \(steps[index]) AND visitor_id IS NOT NULL \(visitors)
                """
            }
            var sql: PostgresQuery = """
                WITH s1 AS (
                    SELECT DISTINCT ON (\(unsafeSQL: key)) \(unsafeSQL: key), time AS t, id AS i
                    FROM (\(stepEvents(0))) e
                    ORDER BY \(unsafeSQL: key), time, id
                )
                """
            for index in 1..<steps.count {
                let joinOn = withinSession ? "e.visitor = p.visitor AND e.session_id = p.session_id" : "e.visitor = p.visitor"
                let columns = withinSession ? "p.visitor, p.session_id" : "p.visitor"
                sql.append(
                    """
                    ,
                    s\(unsafeSQL: String(index + 1)) AS (
                        SELECT DISTINCT ON (\(unsafeSQL: columns)) \(unsafeSQL: columns), e.time AS t, e.id AS i
                        FROM s\(unsafeSQL: String(index)) p
                        JOIN (\(stepEvents(index))) e ON \(unsafeSQL: joinOn) AND (e.time, e.id) > (p.t, p.i)
                        ORDER BY \(unsafeSQL: columns), e.time, e.id
                    )
                    """
                )
            }
            // Within a window each step holds a visitor once; within sessions, once per session.
            let visitorCount = withinSession ? "count(DISTINCT visitor)" : "count(*)"
            let counts = (0..<steps.count).map { index -> PostgresQuery in
                "SELECT \(unsafeSQL: String(index + 1))::bigint AS step, \(unsafeSQL: visitorCount) AS visitors FROM s\(unsafeSQL: String(index + 1))"
            }
            sql.append("\n")
            sql.append(PostgresQuery.joined(counts, separator: " UNION ALL "))
            return sql
        }

        // Where the pool has a connection to spare, the odd and the even visitors are counted at once, on two
        // connections that see one snapshot (each step's page events are read by both, the sorting and joining is
        // split): at a million events over 7 days, in psql, 92–106 → 55–64 ms (each half), at ten million
        // 0.94–1.15 → 0.69–0.99 s. A visitor's number in a filter leaves the planner guessing a two-hundredth of the
        // rows, and it then chose nested loops over each step's index scan (8.6 s): the halves join by hashing or
        // merging only. The counts are added up here and the rates computed in SQL.
        let table = try await pool.withParallelReadAccess(common.scope, connections: 2, timeout: queryTimeout) { connections in
            let split = connections.count >= 2
            let parts = try await connections.query(
                split ? [stepCounts(half: 0), stepCounts(half: 1)] : [stepCounts(half: nil)],
                setup: split ? "SELECT set_config('enable_nestloop', 'off', true)" : nil
            )
            var visitors = [Int](repeating: 0, count: steps.count)
            for part in parts {
                for (step, count) in try part.decode((Int, Int).self) { visitors[step - 1] += count }
            }
            return ResultTable(
                try await connections[0].query(
                    """
                    SELECT step::bigint AS step, page, visitors,
                           coalesce(round(100.0 * visitors / nullif(first_value(visitors) OVER w, 0), 2), 0)::float8 AS conversion_rate,
                           coalesce(round(100.0 * visitors / nullif(lag(visitors, 1, visitors) OVER w, 0), 2), 0)::float8 AS step_conversion_rate,
                           (lag(visitors, 1, visitors) OVER w - visitors)::bigint AS drop_off
                    FROM unnest(\(steps)::text[], \(visitors)::bigint[]) WITH ORDINALITY AS counts(page, visitors, step)
                    WINDOW w AS (ORDER BY step)
                    ORDER BY step
                    """
                ),
                format: common.format
            )
        }
        return table
    }

    // MARK: Pages

    /// Per page: views, unique visitors, average duration, entries, exits, bounce rate (% of sessions that entered
    /// on the page and had exactly one event) and the top 3 referrer domains; most viewed first.
    ///
    /// Each part reads the window's events itself (`e` is not materialized: a month of events held in one
    /// tuplestore spilled to disk, and reading the table again is cheaper). Visitors per page are counted by hashing
    /// page and visitor pairs rather than `count(DISTINCT)`, which sorted every event by page: at 1M events over 30
    /// days, 5.0 s before and 3.4 s after, in psql. The sessions' entries and exits and the top pages are apart,
    /// about half the time each, so they run at once where the pool can lend two connections (over HTTP, one day,
    /// alternating builds, equal bodies: 106–111 → 60–64 ms at 1M events, 0.94–1.01 → 0.55–0.57 s at 10M).
    @Sendable func pages(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24)
        let limit = query.integer("limit", default: 10, range: 1...1000)
        try query.finish()
        let events: PostgresQuery = """
            e AS NOT MATERIALIZED (
                SELECT page, session_id, visitor_id AS visitor, duration, referrer_domain, time, id
                FROM events
                WHERE \(common.filter)
            )
            """
        // Every page's entries, bounces and exits. A session's pages in time order, sorted once: the first is its
        // entry, the last its exit. (An aggregate sorted each way sorted every session twice: this part took 20–30 %
        // longer in psql at 1M; over HTTP the difference was within the machine's noise.)
        let entries: PostgresQuery = """
            s AS (
                SELECT events, pages[1] AS first_page, pages[cardinality(pages)] AS last_page
                FROM (
                    SELECT count(*) AS events, array_agg(page ORDER BY time, id) FILTER (WHERE page IS NOT NULL) AS pages
                    FROM e WHERE session_id IS NOT NULL
                    GROUP BY session_id
                ) sessions
            ),
            entries AS (SELECT first_page AS page, count(*) AS entries, count(*) FILTER (WHERE events = 1) AS bounces FROM s GROUP BY 1),
            exits AS (SELECT last_page AS page, count(*) AS exits FROM s GROUP BY 1)
            """
        // The most viewed pages with their visitors, durations and top referrers.
        let top: PostgresQuery = """
            p AS (
                SELECT page, sum(views) AS views, count(visitor) AS unique_visitors, sum(duration_sum) / nullif(sum(durations), 0) AS avg_duration
                FROM (
                    SELECT page, visitor, count(*) AS views, sum(duration) AS duration_sum, count(duration) AS durations
                    FROM e WHERE page IS NOT NULL
                    GROUP BY page, visitor
                ) per_visitor
                GROUP BY page
                ORDER BY views DESC, page
                LIMIT \(limit)
            ),
            -- Every page's referrers, from the same scan of the window as the rest: asked for the top pages only, the
            -- planner read each page's events through the page index and fetched them from the heap one by one.
            referrers AS (
                SELECT page, referrer_domain, count(*) AS visits,
                       row_number() OVER (PARTITION BY page ORDER BY count(*) DESC, referrer_domain) AS rank
                FROM e WHERE referrer_domain IS NOT NULL AND page IS NOT NULL
                GROUP BY page, referrer_domain
            ),
            top AS (
                SELECT page, json_agg(json_build_object('referrer', referrer_domain, 'visits', visits) ORDER BY rank) AS top_referrers
                FROM referrers WHERE rank <= 3 AND page IN (SELECT page FROM p)
                GROUP BY page
            )
            """
        // Where the pool has a connection to spare, the entries and the top pages are computed at once, on two
        // connections that share one snapshot (else one after the other), and joined by a last statement.
        return try await pool.withParallelReadAccess(common.scope, connections: 2, timeout: queryTimeout) { connections in
            let parts = try await connections.query([
                """
                WITH \(events), \(top)
                SELECT p.page, p.views::bigint, p.unique_visitors::bigint, p.avg_duration::float8, top.top_referrers::text
                FROM p LEFT JOIN top ON top.page = p.page
                """,
                """
                WITH \(events), \(entries)
                SELECT coalesce(entries.page, exits.page) AS page, coalesce(entries.entries, 0)::bigint, coalesce(entries.bounces, 0)::bigint,
                       coalesce(exits.exits, 0)::bigint
                FROM entries FULL JOIN exits ON exits.page = entries.page
                WHERE coalesce(entries.page, exits.page) IS NOT NULL
                """,
            ])
            let topRows = try parts[0].decode((String, Int, Int, Double?, String?).self)
            let pageEntries = try parts[1].decode((String, Int, Int, Int).self)
            let query: PostgresQuery = """
                SELECT b.page, b.views, b.unique_visitors,
                       round(b.avg_duration::numeric, 2)::float8 AS avg_duration,
                       coalesce(round(100.0 * a.bounces / nullif(a.entries, 0), 2), 0)::float8 AS bounce_rate,
                       coalesce(a.entries, 0)::bigint AS entries,
                       coalesce(a.exits, 0)::bigint AS exits,
                       coalesce(b.top_referrers::json, '[]'::json) AS top_referrers
                FROM unnest(\(topRows.map(\.0))::text[], \(topRows.map(\.1))::bigint[], \(topRows.map(\.2))::bigint[],
                            \(topRows.map(\.3))::float8[], \(topRows.map(\.4))::text[])
                    AS b(page, views, unique_visitors, avg_duration, top_referrers)
                LEFT JOIN unnest(\(pageEntries.map(\.0))::text[], \(pageEntries.map(\.1))::bigint[], \(pageEntries.map(\.2))::bigint[],
                                 \(pageEntries.map(\.3))::bigint[])
                    AS a(page, entries, bounces, exits) ON a.page = b.page
                ORDER BY b.views DESC, b.page
                """
            return ResultTable(try await connections[0].query(query), format: common.format)
        }
    }

    // MARK: Retention

    /// Cohorts of visitors by the period (`period=day|week`, default week) of their first event in the window
    /// (`days`, default 30), and for each later period n the share of the cohort active in it. Periods start at local
    /// midnight (Mondays for weeks) in `tz`.
    @Sendable func retention(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 30 * 24)
        let days: Int
        switch query.string("period") {
        case nil, "week": days = 7
        case "day": days = 1
        default:
            days = 7
            query.fail("period", "must be day or week")
        }
        try query.finish()
        let width = PostgresInterval(days == 7 ? "1 week" : "1 day")
        let lastInstant = common.to.addingTimeInterval(-0.000_001)
        // Who was active when: from the visitor-hours the writer keeps (migration 0011) when the zone's local days
        // start on whole UTC hours throughout the window, which is every zone but a few (India, Nepal, …); else from
        // the events themselves.
        let wholeHours = Self.hasWholeHourOffsets(common.timeZone, from: common.from, to: common.to)
        // A window of at most 60 periods fits each visitor's active periods in the bits of one bigint (period n is bit
        // n, counted from the window's first period, and the lowest set bit is the cohort): one row per visitor, then
        // visitors with the same periods counted once before the cells are counted (over 30 days, a few dozen patterns
        // by week; by day 15,000 at 1M events and 89,000 at 10M).
        // The bucket count of [from, to) is at most span / period + 2. From the visitor-hours,
        // `visitor_period_patterns` groups them in visitor order (migrations 0018, 0024: each visitor's periods, then
        // the visitors of each pattern); retention over 30 days at 1M events, in psql: by week
        // 0.54 s (visitor-periods sorted by visitor) → 0.33 s (a hash aggregate of the visitor-hours) → 0.13–0.18 s;
        // by day, where patterns are many (15,000), 0.28–0.37 s expanding each pattern into its periods (26 rows
        // each) → 0.20–0.27 s counting them by byte, equal rows (alternating, six runs each).
        if common.to.timeIntervalSince(common.from) / Double(86_400 * days) + 2 <= 60 {
            // Visitors with the same periods, counted once.
            if wholeHours {
                return try await retentionFromPatterns(common: common, days: days, width: width, lastInstant: lastInstant)
            }
            let visits: PostgresQuery = """
                SELECT periods, count(*) AS visitors
                FROM (
                    SELECT bit_or(1::bigint << (((time AT TIME ZONE \(common.timeZone))::date - (SELECT first_day FROM bounds)) / \(days)::int)) AS periods
                    FROM events
                    WHERE \(common.filter) AND visitor_id IS NOT NULL
                    GROUP BY visitor_id
                ) v
                GROUP BY periods
                """
            let bounds = Self.retentionBounds(common: common, days: days, width: width, lastInstant: lastInstant)
            return try await table("WITH \(bounds), \(Self.retentionActive(visits)), \(Self.retentionCells(days: days))", common: common)
        }
        let activity: PostgresQuery
        if wholeHours {
            activity = """
                SELECT visitor_id AS visitor, active_at AS time
                FROM visitor_activity(\(common.scope.workspaceID), \(common.from), \(common.to), \(common.includeBots))
                """
        } else {
            activity = """
                SELECT visitor_id AS visitor, time
                FROM events
                WHERE \(common.filter) AND visitor_id IS NOT NULL
                """
        }
        // Longer windows: visitor-periods, each visitor's first by a window function.
        return try await table(
            """
            WITH pairs AS (
                -- One row per visitor and active period: far fewer rows than events.
                SELECT visitor, time_bucket(\(width), time, \(common.timeZone)) AS bucket
                FROM (\(activity)) activity
                GROUP BY 1, 2
            ),
            -- Each visitor's cohort is their first period; a cohort's size is its visitors active in period 0.
            active AS (
                SELECT cohort, round(date_part('epoch', bucket - cohort) / \(86_400 * days))::int AS period, count(*) AS retained
                FROM (SELECT min(bucket) OVER (PARTITION BY visitor) AS cohort, bucket FROM pairs) cohorts
                GROUP BY 1, 2
            ),
            periods AS (
                SELECT s.cohort, s.retained AS users, n AS period
                FROM active s,
                     generate_series(0, round(date_part('epoch', time_bucket(\(width), \(lastInstant), \(common.timeZone)) - s.cohort)
                                              / \(86_400 * days))::int) AS n
                WHERE s.period = 0
            )
            SELECT to_char(p.cohort AT TIME ZONE \(common.timeZone), 'YYYY-MM-DD') AS cohort_date,
                   p.period::bigint AS period,
                   p.users::bigint AS users,
                   coalesce(a.retained, 0)::bigint AS retained,
                   round(100.0 * coalesce(a.retained, 0) / p.users, 2)::float8 AS retention_rate
            FROM periods p
            LEFT JOIN active a ON a.cohort = p.cohort AND a.period = p.period
            ORDER BY p.cohort, p.period
            """,
            common: common
        )
    }

    /// Retention over the whole hours' visitor patterns (`visitor_period_patterns`, migrations 0018, 0024). Where the
    /// pool has a connection to spare, the visitors numbered below and from a split point (the median of a sample of
    /// the window's visitor-hours, migration 0026) are counted at once, on two connections that share one snapshot,
    /// and each half's visitors active per cohort and period (`active`, a few hundred rows) added up here; adding up
    /// the patterns instead sent tens of thousands back and forth by day and was slower than one connection. Over
    /// HTTP, alternating builds, equal bodies, 30 days: by week 95–103 → 64–76 ms at a million events, 0.93–1.10 →
    /// 0.59–0.78 s at ten million; by day 138–145 → 89–91 ms and 1.24 → 0.68 s.
    func retentionFromPatterns(common: Common, days: Int, width: PostgresInterval, lastInstant: Date) async throws -> ResultTable {
        let workspace = common.scope.workspaceID
        let bounds = Self.retentionBounds(common: common, days: days, width: width, lastInstant: lastInstant)
        return try await pool.withParallelReadAccess(common.scope, connections: 2, timeout: queryTimeout) { connections in
            var split: Int?
            if connections.count >= 2 {
                split = try await connections[0].query(
                    "SELECT visitor_hours_median_visitor(\(workspace), \(common.from), \(common.to), \(common.includeBots))"
                )[0].decode(Int?.self, at: 0)
            }
            guard let split else {
                let visits: PostgresQuery = """
                    SELECT periods, visitors
                    FROM visitor_period_patterns(\(workspace), \(common.from), \(common.to), \(common.includeBots), \(common.timeZone), \(days)::int)
                    """
                let query: PostgresQuery = "WITH \(bounds), \(Self.retentionActive(visits)), \(Self.retentionCells(days: days))"
                return ResultTable(try await connections[0].query(query), format: common.format)
            }
            // Each half's visitors active in each period by cohort, added up (a few hundred rows at most).
            let halves = [(Int.min, split), (split, Int.max)].map { first, end -> PostgresQuery in
                let visits: PostgresQuery = """
                    SELECT periods, visitors
                    FROM visitor_period_patterns(\(workspace), \(common.from), \(common.to), \(common.includeBots), \(common.timeZone), \(days)::int,
                                                 \(first), \(end))
                    """
                return "WITH \(Self.retentionActive(visits)) SELECT first_bit, bit::bigint, visitors::bigint FROM active"
            }
            var active: [ActiveKey: Int] = [:]
            for half in try await connections.query(halves) {
                for (firstBit, bit, visitors) in try half.decode((Int, Int, Int).self) {
                    active[ActiveKey(firstBit: firstBit, bit: bit), default: 0] += visitors
                }
            }
            let query: PostgresQuery = """
                WITH \(bounds),
                active AS (
                    SELECT first_bit, bit, visitors
                    FROM unnest(\(active.keys.map(\.firstBit))::bigint[], \(active.keys.map(\.bit))::bigint[], \(Array(active.values))::bigint[])
                        AS a(first_bit, bit, visitors)
                ),
                \(Self.retentionCells(days: days))
                """
            return ResultTable(try await connections[0].query(query), format: common.format)
        }
    }

    /// A cohort (its period's bit value) and a period (bit number).
    struct ActiveKey: Hashable {
        var firstBit: Int
        var bit: Int
    }

    /// `bounds`: the local date of the window's first period, and the number of its last.
    static func retentionBounds(common: Common, days: Int, width: PostgresInterval, lastInstant: Date) -> PostgresQuery {
        """
        bounds AS (
            SELECT first_day,
                   ((time_bucket(\(width), \(lastInstant), \(common.timeZone)) AT TIME ZONE \(common.timeZone))::date - first_day)
                   / \(days)::int AS last_period
            FROM (SELECT (time_bucket(\(width), \(common.from), \(common.timeZone)) AT TIME ZONE \(common.timeZone))::date AS first_day) f
        )
        """
    }

    /// `active`: each cohort's visitors active in each period, from `visits`, the patterns of periods (bit n: active
    /// in period n of the window) with their visitors. A pattern's cohort is its lowest set bit, kept as that bit's
    /// value (`first_bit`, `periods & -periods`). The patterns are not expanded into their periods: their visitors
    /// are summed by cohort and the value of each byte of their periods (grouping sets; at most 256 values a byte),
    /// then each value's set bits.
    static func retentionActive(_ visits: PostgresQuery) -> PostgresQuery {
        """
        patterns AS (
            SELECT periods & -periods AS first_bit, periods, visitors
            FROM (\(visits)) p
        ),
        bytes AS (
            SELECT first_bit,
                   CASE GROUPING(b0, b1, b2, b3, b4, b5, b6, b7)
                       WHEN 127 THEN 0 WHEN 191 THEN 1 WHEN 223 THEN 2 WHEN 239 THEN 3 WHEN 247 THEN 4 WHEN 251 THEN 5
                       WHEN 253 THEN 6 ELSE 7
                   END AS byte,
                   coalesce(b0, b1, b2, b3, b4, b5, b6, b7) AS value, sum(visitors) AS visitors
            FROM (
                SELECT first_bit, visitors, periods & 255 AS b0, (periods >> 8) & 255 AS b1, (periods >> 16) & 255 AS b2,
                       (periods >> 24) & 255 AS b3, (periods >> 32) & 255 AS b4, (periods >> 40) & 255 AS b5,
                       (periods >> 48) & 255 AS b6, (periods >> 56) & 255 AS b7
                FROM patterns
            ) p
            GROUP BY GROUPING SETS ((first_bit, b0), (first_bit, b1), (first_bit, b2), (first_bit, b3), (first_bit, b4),
                                    (first_bit, b5), (first_bit, b6), (first_bit, b7))
        ),
        active AS (
            SELECT first_bit, 8 * byte + i AS bit, sum(visitors) AS visitors
            FROM bytes, generate_series(0, 7) AS i
            WHERE value & (1 << i) <> 0
            GROUP BY 1, 2
        )
        """
    }

    /// The cells of every cohort (`active`'s cohorts, numbered once each: as text per pattern, `lowest_set_bit` took
    /// 57 ms of the 89,000 patterns by day at 10M events) and every period, those without a visitor too, from
    /// `bounds` and `active`.
    static func retentionCells(days: Int) -> PostgresQuery {
        """
        cohorts AS (
            SELECT first_bit, lowest_set_bit(first_bit) AS cohort FROM (SELECT DISTINCT first_bit FROM active) c
        ),
        cells AS (
            SELECT c.cohort, n AS period, coalesce(a.visitors, 0) AS retained
            FROM cohorts c
            CROSS JOIN bounds b
            CROSS JOIN generate_series(0, b.last_period - c.cohort) AS n
            LEFT JOIN active a ON a.first_bit = c.first_bit AND a.bit = c.cohort + n
        )
        SELECT to_char(b.first_day + c.cohort * \(days)::int, 'YYYY-MM-DD') AS cohort_date,
               c.period::bigint AS period,
               (first_value(c.retained) OVER w)::bigint AS users,
               c.retained::bigint AS retained,
               round(100.0 * c.retained / nullif(first_value(c.retained) OVER w, 0), 2)::float8 AS retention_rate
        FROM cells c, bounds b
        WINDOW w AS (PARTITION BY c.cohort ORDER BY c.period)
        ORDER BY c.cohort, c.period
        """
    }

    /// Whether `identifier`'s offset from UTC is a whole number of hours at every instant of [from, to).
    static func hasWholeHourOffsets(_ identifier: String, from: Date, to: Date) -> Bool {
        guard let zone = TimeZone(identifier: identifier) else { return false }
        var instant = from
        while true {
            guard zone.secondsFromGMT(for: instant) % 3600 == 0 else { return false }
            guard let next = zone.nextDaylightSavingTimeTransition(after: instant), next < to else { return true }
            instant = next
        }
    }

    // MARK: Sources, devices, paths

    /// Sessions by where they came from (the source and referrer domain of their first event), with visitors and share.
    @Sendable func trafficSources(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        try await sessionsByFirstEvent(request, context: context, dimensions: ["coalesce(source, 'direct') AS source", "referrer_domain"])
    }

    /// Sessions by device type, browser and OS (of their first event), with visitors and share.
    @Sendable func devices(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        try await sessionsByFirstEvent(request, context: context, dimensions: ["device_type", "browser", "os"])
    }

    /// Sessions grouped by columns of their first event, most visits first: `visits` (sessions), `visitors`, `percentage`.
    /// `dimensions` are fixed SQL column expressions of this file, never input. Visitors are counted by hashing
    /// their sessions per group first (`count(DISTINCT)` sorted every session).
    func sessionsByFirstEvent(_ request: Request, context: AuthenticatedContext, dimensions: [String]) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24)
        let limit = query.integer("limit", default: 20, range: 1...1000)
        try query.finish()
        let names = dimensions.map { $0.components(separatedBy: " AS ").last ?? $0 }
        let groups = names.joined(separator: ", ")
        return try await table(
            """
            WITH s AS (
                SELECT DISTINCT ON (session_id) visitor_id AS visitor, \(unsafeSQL: dimensions.joined(separator: ", "))
                FROM events
                WHERE \(common.filter) AND session_id IS NOT NULL
                ORDER BY session_id, time, id
            )
            SELECT \(unsafeSQL: groups), sum(sessions)::bigint AS visits, count(visitor)::bigint AS visitors,
                   round(100.0 * sum(sessions) / sum(sum(sessions)) OVER (), 2)::float8 AS percentage
            FROM (SELECT \(unsafeSQL: groups), visitor, count(*) AS sessions FROM s GROUP BY \(unsafeSQL: groups), visitor) per_visitor
            GROUP BY \(unsafeSQL: groups)
            ORDER BY visits DESC, \(unsafeSQL: names.map { "\($0) NULLS FIRST" }.joined(separator: ", "))
            LIMIT \(limit)
            """,
            common: common
        )
    }

    /// What visitors do next: transitions between consecutive pages within sessions, from `page` or from any page.
    ///
    /// Transitions need each session's events in order, which means sorting the window's events by session. From a
    /// page that few sessions visit, only those sessions' events are read and sorted (the sessions found through the
    /// page index of migration 0010): over 7 days at 1M events, 0.35–0.45 s → 0.15 s for a page with 4 % of the
    /// events, → 0.07 s for one with 1.5 %. From a page most sessions visit, that costs more than it saves (a page
    /// with 14 %: 0.54 s), so a page the planner's statistics count as common reads every session.
    @Sendable func paths(_ request: Request, context: AuthenticatedContext) async throws -> ResultTable {
        var query = QueryReader(request.formParameters)
        let common = common(&query, context: context, defaultHours: 24)
        let page = query.string("page")
        let limit = query.integer("limit", default: 20, range: 1...1000)
        try query.finish()
        // The window's events of the sessions read, in order within each session.
        let events: PostgresQuery
        if let page, try await !isCommonPage(page) {
            // Each session that visited the page, then its events through the session index: a join of the page's
            // sessions with the window's events instead read the whole table when the window was a week.
            events = """
                SELECT v.session_id, e.page, e.time, e.id
                FROM (
                    SELECT DISTINCT session_id FROM events
                    WHERE \(common.filter) AND page = \(page) AND session_id IS NOT NULL
                ) v
                CROSS JOIN LATERAL (
                    SELECT page, time, id FROM events
                    WHERE \(common.filter) AND session_id = v.session_id AND page IS NOT NULL
                ) e
                """
        } else {
            events = """
                SELECT session_id, page, time, id FROM events
                WHERE \(common.filter) AND session_id IS NOT NULL AND page IS NOT NULL
                """
        }
        return try await table(
            """
            WITH steps AS (
                SELECT page AS from_page, lead(page) OVER (PARTITION BY session_id ORDER BY time, id) AS to_page
                FROM (\(events)) e
            )
            SELECT from_page, to_page, count(*)::bigint AS transitions
            FROM steps
            WHERE to_page IS NOT NULL AND (\(page)::text IS NULL OR from_page = \(page))
            GROUP BY from_page, to_page
            ORDER BY transitions DESC, from_page, to_page
            LIMIT \(limit)
            """,
            common: common
        )
    }

    /// Whether the planner's statistics of `events` (kept by ANALYZE, across workspaces) give `page` to at least a
    /// tenth of the events. Without statistics (a new table, or a hypertable never analyzed as a whole) no page is
    /// common. A hypertable's statistics over its chunks are the parent's inherited ones, preferred when both exist.
    func isCommonPage(_ page: String) async throws -> Bool {
        try await pool.query(
            """
            SELECT coalesce((
                SELECT m.frequency
                FROM pg_stats s, unnest(s.most_common_vals::text::text[], s.most_common_freqs) AS m(value, frequency)
                WHERE s.schemaname = current_schema() AND s.tablename = 'events' AND s.attname = 'page' AND m.value = \(page)
                ORDER BY s.inherited DESC
                LIMIT 1
            ), 0) >= 0.1
            """
        )[0].decode(Bool.self, at: 0)
    }
}
