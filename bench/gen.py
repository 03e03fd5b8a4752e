#!/usr/bin/env python3
"""Generates benchmark events: the same rows as a TSV for COPY (with the columns the server derives) and as
NDJSON for the HTTP API. Usage: gen.py ROWS TSV_PATH NDJSON_PATH [SEED]"""
import json
import random
import sys
from datetime import datetime, timedelta, timezone

rows, tsv_path, ndjson_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
# Event times spread over the last SPREAD_SECONDS (default 30 days: a backfill; a few minutes: live traffic).
import os
spread = float(os.environ.get("SPREAD_SECONDS", 30 * 86400))
rng = random.Random(int(sys.argv[4]) if len(sys.argv) > 4 else 42)
pages = ["/", "/pricing", "/signup", "/docs", "/blog", "/about", "/features", "/login", "/checkout", "/contact"]
agents = [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "Chrome", "Windows", "desktop"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15", "Safari", "macOS", "desktop"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari", "iOS", "mobile"),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36", "Chrome", "Android", "mobile"),
]
referrers = [("", "direct", ""), ("https://google.com/", "search", "google.com"), ("https://t.co/x", "social", "t.co"), ("https://blog.example.org/", "referral", "blog.example.org")]
now = datetime.now(timezone.utc)

with open(tsv_path, "w") as tsv, open(ndjson_path, "w") as ndjson:
    for index in range(rows):
        agent, browser, os_name, device = rng.choice(agents)
        referrer, source, domain = rng.choice(referrers)
        session = f"s{rng.randrange(rows // 5 + 1)}"
        user = f"u{rng.randrange(rows // 20 + 1)}"
        page = rng.choice(pages)
        duration = round(rng.uniform(1, 300), 1)
        time = now - timedelta(seconds=rng.uniform(0, spread))
        stamp = time.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        tsv.write("\t".join([
            "1", stamp, stamp, "page_view", user, session, page, referrer or "\\N", source, domain or "\\N", agent, browser, os_name,
            device, "f", str(duration), "api",
        ]) + "\n")
        event = {"page": page, "user_agent": agent, "session_id": session, "user_id": user, "duration": duration,
                 "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if referrer:
            event["referrer"] = referrer
        ndjson.write(json.dumps(event, separators=(",", ":")) + "\n")
