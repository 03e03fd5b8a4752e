#!/usr/bin/env python3
"""Checks analytics endpoints and pipes against plain SQL over the raw events (bench/oracle runs it).

Each check asks the server over HTTP and computes the same answer from `events` alone, with the definitions of
SPEC and the issues written as simply as SQL allows (a funnel is walked in Python), none of the server's rollups,
functions or indexes involved: where an optimisation of the server's SQL went wrong, the two differ. Windows are
fixed (`from`/`to`) where the endpoint takes them; a pipe whose window ends now is asked for one that holds every
event loaded, as its start would move between the server's read and this one (at ten million events a 30-day
window's first day differed by the 49 events of the seconds between them).

Environment: BASE_URL and TOKEN (a token that reads the default workspace), and libpq's PGHOST, PGPORT, PGUSER,
PGDATABASE for `psql`. Exits 1 when a check differs.
"""

import csv
import io
import json
import os
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone

BASE_URL = os.environ.get("BASE_URL", "http://127.0.0.1:8099")
TOKEN = os.environ["TOKEN"]


def http(path, **params):
    query = urllib.parse.urlencode(params, doseq=True)
    request = urllib.request.Request(f"{BASE_URL}{path}?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=600) as response:
        body = json.load(response)
    return body["data"] if isinstance(body, dict) else body


def sql(text):
    # Plain hash joins and room in memory: the checks join CTEs whose sizes the planner cannot estimate.
    settings = "SET work_mem = '256MB'; SET jit = off; SET enable_nestloop = off;"
    out = subprocess.run(["psql", "-qtAX", "-v", "ON_ERROR_STOP=1", "-c", settings, "-c", text], check=True, capture_output=True,
                         text=True)
    return out.stdout


def sql_json(text):
    """The rows of `text` as JSON objects, in its order."""
    return json.loads(sql(f"SELECT coalesce(json_agg(r), '[]') FROM ({text}) r").strip() or "[]")


def normal(value):
    """Times to milliseconds (the server's JSON precision), numbers to two decimals."""
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] in "T ":
        moment = datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    if isinstance(value, float):
        return round(value, 2)
    return value


failures = 0


def compare(name, got, expected):
    """Prints whether the server's rows `got` hold `expected`, row by row, in each of `expected`'s columns."""
    global failures
    problems = []
    if len(got) != len(expected):
        problems.append(f"{len(got)} rows, expected {len(expected)}")
    for index, (row, want) in enumerate(zip(got, expected)):
        for column, value in want.items():
            if normal(row.get(column)) != normal(value):
                problems.append(f"row {index} {column}: {row.get(column)!r}, expected {value!r}")
    print(f"{'FAIL' if problems else 'ok  '} {name} ({len(expected)} rows)")
    for problem in problems[:5]:
        print(f"       {problem}")
    failures += bool(problems)


span = sql_json("SELECT min(time) AS first, max(time) AS last FROM events WHERE workspace_id = 1")[0]
last = datetime.fromisoformat(span["last"])
day = (last - timedelta(days=10)).replace(hour=0, minute=0, second=0, microsecond=0)
iso = lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%SZ")
week = (iso(day - timedelta(days=7)), iso(day))
people = "workspace_id = 1 AND NOT is_bot"

# Funnel: a visitor reaches step k only after steps 1..k in that order (greedy earliest match is exact).
steps = ["/", "/pricing", "/signup", "/checkout"]
rows = list(csv.reader(io.StringIO(sql(
    f"""COPY (SELECT coalesce(user_id, session_id), session_id, page, time, id FROM events
              WHERE {people} AND time >= '{week[0]}' AND time < '{week[1]}' AND page = ANY(ARRAY{steps})
                AND coalesce(user_id, session_id) IS NOT NULL ORDER BY time, id) TO STDOUT WITH CSV"""))))
for within in ["window", "session"]:
    reached = [set() for _ in steps]
    progress = {}
    for visitor, session, page, _, _ in rows:
        key = visitor if within == "window" else (visitor, session)
        if within == "session" and not session:
            continue
        step = progress.get(key, 0)
        if step < len(steps) and page == steps[step]:
            reached[step].add(visitor)
            progress[key] = step + 1
    expected = [{"step": n + 1, "page": page, "visitors": len(reached[n])} for n, page in enumerate(steps)]
    compare(f"funnel within={within}", http("/api/analytics/funnel", pages=steps, within=within, **{"from": week[0], "to": week[1]}),
            expected)

# Pages: views, visitors, durations, entries and exits by time order, bounce rate of entries, top referrers.
compare("pages", http("/api/analytics/pages", limit=20, **{"from": week[0], "to": week[1]}), sql_json(f"""
    WITH e AS (SELECT * FROM events WHERE {people} AND time >= '{week[0]}' AND time < '{week[1]}'),
    s AS (SELECT count(*) AS n, array_agg(page ORDER BY time, id) FILTER (WHERE page IS NOT NULL) AS ps
          FROM e WHERE session_id IS NOT NULL GROUP BY session_id),
    entries AS (SELECT ps[1] AS page, count(*) AS entries, count(*) FILTER (WHERE n = 1) AS bounces FROM s GROUP BY 1),
    exits AS (SELECT ps[cardinality(ps)] AS page, count(*) AS exits FROM s GROUP BY 1)
    SELECT p.page, count(*) AS views, count(DISTINCT coalesce(p.user_id, p.session_id)) AS unique_visitors,
           round(avg(p.duration)::numeric, 2)::float8 AS avg_duration,
           coalesce(round(100.0 * min(n.bounces) / nullif(min(n.entries), 0), 2), 0)::float8 AS bounce_rate,
           coalesce(min(n.entries), 0) AS entries, coalesce(min(x.exits), 0) AS exits
    FROM e p LEFT JOIN entries n USING (page) LEFT JOIN exits x USING (page)
    WHERE p.page IS NOT NULL GROUP BY p.page ORDER BY views DESC, p.page LIMIT 20"""))

# Sessions: newest first, first and last page by time.
for name, window, limit in [("sessions, a day", (iso(day), iso(day + timedelta(days=1))), 300),
                            ("sessions, all", (span["first"], iso(last + timedelta(seconds=1))), 1000)]:
    compare(name, http("/api/analytics/sessions", limit=limit, **{"from": window[0], "to": window[1]}), sql_json(f"""
        SELECT session_id, count(page) AS page_count, sum(duration) AS total_duration,
               (array_agg(page ORDER BY time, id))[1] AS first_page, (array_agg(page ORDER BY time DESC, id DESC))[1] AS last_page,
               min(time) AS started_at, max(time) AS ended_at, extract(epoch FROM max(time) - min(time))::float8 AS duration_seconds
        FROM events WHERE {people} AND session_id IS NOT NULL AND time >= '{window[0]}' AND time < '{window[1]}'
        GROUP BY session_id ORDER BY started_at DESC, session_id LIMIT {limit}"""))

# Retention cohorts: first period of each visitor in the window, local periods in the zone.
for zone, start, end, period in [("America/New_York", day - timedelta(days=14, hours=-5), day + timedelta(hours=5), "day"),
                                 ("Asia/Kolkata", day - timedelta(days=14, minutes=-47), day - timedelta(hours=5), "day"),
                                 ("Europe/Berlin", datetime.fromisoformat(span["first"]) + timedelta(hours=3), last, "week")]:
    bucket = f"(time AT TIME ZONE '{zone}')::date" if period == "day" else f"date_trunc('week', time AT TIME ZONE '{zone}')::date"
    size = 1 if period == "day" else 7
    compare(f"retention {period} {zone}",
            http("/api/analytics/retention", period=period, tz=zone, **{"from": iso(start), "to": iso(end)}), sql_json(f"""
        WITH d AS (SELECT DISTINCT coalesce(user_id, session_id) AS v, {bucket} AS p FROM events
                   WHERE {people} AND time >= '{iso(start)}' AND time < '{iso(end)}' AND coalesce(user_id, session_id) IS NOT NULL),
        c AS (SELECT v, min(p) AS cohort FROM d GROUP BY v),
        sizes AS (SELECT cohort, count(*) AS users FROM c GROUP BY cohort),
        kept AS (SELECT c.cohort, (d.p - c.cohort) / {size} AS n, count(*) AS retained FROM c JOIN d USING (v) GROUP BY 1, 2)
        SELECT s.cohort::text AS cohort_date, g.n AS period, s.users, coalesce(k.retained, 0) AS retained,
               round(100.0 * coalesce(k.retained, 0) / s.users, 2)::float8 AS retention_rate
        FROM sizes s CROSS JOIN generate_series(0, 60) AS g(n) LEFT JOIN kept k ON k.cohort = s.cohort AND k.n = g.n
        WHERE s.cohort + g.n * {size} <= (SELECT max(p) FROM d)
        ORDER BY 1, 2"""))

# user_retention (pipe): per UTC day, active visitors, new in the window, returning, back later; over 45 days (each
# visitor's days as bits) and 90 days (grouped days), both holding every event of the 30 days loaded.
for lookback in ["45 day", "90 day"]:
    compare(f"pipe user_retention lookback_days={lookback}", http("/v0/pipes/user_retention.json", lookback_days=lookback), sql_json(f"""
        WITH d AS (SELECT DISTINCT coalesce(user_id, session_id) AS v, (time AT TIME ZONE 'UTC')::date AS day FROM events
                   WHERE {people} AND coalesce(user_id, session_id) IS NOT NULL),
        s AS (SELECT v, min(day) AS f, max(day) AS l FROM d GROUP BY v)
        SELECT (day AT TIME ZONE 'UTC') AS day, count(*) AS active_users, count(*) FILTER (WHERE day = f) AS new_users,
               count(*) FILTER (WHERE day > f) AS returning_users,
               round(100.0 * count(*) FILTER (WHERE day > f) / count(*), 2)::float8 AS returning_rate,
               count(*) FILTER (WHERE day < l) AS returned_later
        FROM d JOIN s USING (v) GROUP BY day ORDER BY day"""))

# aggregate_user_features (pipe): per user over a window holding every event, with and without a country and bots.
for country, bots in [(None, False), ("US", False), (None, True), ("DE", True)]:
    params = {"include_bots": str(bots).lower()} | ({"country": country} if country else {})
    flag = "true" if bots else "false"
    chosen = f"WHERE lc.country = '{country}'" if country else ""
    compare(f"pipe aggregate_user_features {params}", http("/v0/pipes/aggregate_user_features.json", **params), sql_json(f"""
        WITH b AS (SELECT user_id, session_id, time, page, device_type, country, duration,
                          coalesce(clicks, CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks
                   FROM events WHERE workspace_id = 1 AND user_id IS NOT NULL AND ({flag} OR NOT is_bot)),
        s AS (SELECT user_id, session_id, count(*) AS n, coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS d,
                     sum(clicks) AS c FROM b GROUP BY 1, 2),
        u AS (SELECT user_id, count(session_id) AS total_sessions, avg(d) FILTER (WHERE session_id IS NOT NULL) AS ad,
                     avg(c) FILTER (WHERE session_id IS NOT NULL) AS ac, sum(n)::bigint AS total_events FROM s GROUP BY 1),
        lc AS (SELECT DISTINCT ON (user_id) user_id, country FROM b WHERE country IS NOT NULL ORDER BY user_id, time DESC, country),
        pd AS (SELECT user_id, mode() WITHIN GROUP (ORDER BY page) AS page, mode() WITHIN GROUP (ORDER BY device_type) AS device,
                      min(time) AS first_seen, max(time) AS last_seen FROM b GROUP BY user_id)
        SELECT u.user_id, u.total_sessions, round(u.ad::numeric, 2)::float8 AS avg_session_duration,
               round(u.ac::numeric, 2)::float8 AS avg_clicks_per_session, u.total_events, pd.page AS most_visited_page,
               pd.device AS most_used_device, lc.country, pd.first_seen, pd.last_seen
        FROM u LEFT JOIN lc USING (user_id) JOIN pd USING (user_id) {chosen}
        ORDER BY u.total_sessions DESC, u.total_events DESC, u.user_id LIMIT 1000"""))

# tenant_activity_summary (pipe): per tenant, over all time and over a week.
for name, window in [("all time", None), ("a week", (week[0].replace("T", " ")[:19], week[1].replace("T", " ")[:19]))]:
    params = {"from_date": window[0], "to_date": window[1]} if window else {}
    bounds = f"AND time >= '{window[0]}+00' AND time <= '{window[1]}+00'" if window else ""
    compare(f"pipe tenant_activity_summary, {name}", http("/v0/pipes/tenant_activity_summary.json", **params), sql_json(f"""
        WITH e AS (SELECT * FROM events WHERE {people} AND tenant_id IS NOT NULL {bounds}),
        s AS (SELECT tenant_id, avg(d) AS d FROM (
                  SELECT tenant_id, coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS d
                  FROM e WHERE session_id IS NOT NULL GROUP BY tenant_id, session_id) x GROUP BY 1)
        SELECT e.tenant_id, count(DISTINCT session_id) AS sessions, count(DISTINCT coalesce(user_id, session_id)) AS users,
               count(*) AS events, count(*) FILTER (WHERE event_type IN ('page_view', 'pageview')) AS page_views,
               round(min(s.d)::numeric, 2)::float8 AS avg_session_duration, min(time) AS first_activity, max(time) AS last_activity
        FROM e LEFT JOIN s USING (tenant_id) GROUP BY e.tenant_id ORDER BY events DESC, e.tenant_id LIMIT 50"""))

# active_users (engagement pipe): visitors, sessions and events per day, over a window holding every event.
compare("pipe active_users by day", http("/v0/pipes/active_users.json", time_range="90 day", time_frame="day"), sql_json(f"""
    SELECT date_trunc('day', time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS period,
           count(DISTINCT coalesce(user_id, session_id)) AS active_users, count(DISTINCT session_id) AS sessions, count(*) AS events
    FROM events WHERE {people} GROUP BY 1 ORDER BY 1"""))

print("all checks agree" if not failures else f"{failures} checks differ")
sys.exit(1 if failures else 0)
