-- Retention and `user_retention` count visitors by the pattern of their active periods: `visitor_periods` (0018, 0023)
-- gives one row per visitor, which they group by its bits. It joined the visitors of the window's whole hours (from the
-- visitor-hours, in visitor order) with those of its partial hours at the two ends (from the events, a few hundred to a
-- few thousand visitors) in a full join: every visitor of the window (1.1 million at ten million events over 30 days)
-- was looked up in the hash of the few. `visitor_period_patterns` returns the patterns with their visitors instead, so
-- no visitor needs a lookup: each visitor of the whole hours counts once for its pattern, and each visitor of the
-- partial hours moves from its whole-hours pattern to that pattern with the partial hours' periods added (-1 for the
-- one, +1 for the other; a visitor without whole hours has only the +1). A partial-hours visitor's whole hours are read
-- for it alone, through the visitor index, as an aggregate (asked for as a plain sub-select, the planner grouped every
-- visitor of the window a second time and joined them). Patterns that no visitor is left in are not returned. In psql,
-- equal rows (windows by day and week, in UTC, Europe/Berlin, Asia/Tokyo and America/New_York, cut inside hours at
-- either end or both, bots in and out): by week over 30 days 1.00 → 0.88 s at ten million events, 90–102 → 85–92 ms at
-- a million; over HTTP, retention 1.01 → 0.88 s and `user_retention` 1.34 → 1.08 s at ten million, 96 → 92 and 140 →
-- 126 ms at a million (with the pipe's own change before this one).
--
-- The two parts are functions of their own, which `visitor_periods` now joins as before (same rows; callers of it,
-- such as custom pipes, are unchanged): `visitor_hour_periods`, the whole hours as 0023 reads them (converted by the
-- zone's offset where it does not change in the window), and `visitor_edge_periods`, the partial hours from the
-- events. Single SELECTs, which the planner inlines into the calling query (row-level security applies as on the
-- tables).
CREATE FUNCTION visitor_hour_periods(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                     zone text, period_days integer)
RETURNS TABLE (visitor_id bigint, periods bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT v.visitor_id,
           bit_or(1::bigint << (((CASE WHEN (SELECT bool_and((w.hour AT TIME ZONE zone) = (w.hour AT TIME ZONE o.offset_at_start))
                                             FROM (SELECT (from_time AT TIME ZONE zone) - (from_time AT TIME ZONE 'UTC') AS offset_at_start) o,
                                                  generate_series(date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00'),
                                                                  date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00'),
                                                                  interval '1 hour') AS w(hour))
                                     THEN v.hour AT TIME ZONE (SELECT (from_time AT TIME ZONE zone) - (from_time AT TIME ZONE 'UTC'))
                                     ELSE v.hour AT TIME ZONE zone
                                END)::date
                                 - (SELECT (time_bucket(make_interval(days => period_days), from_time, zone) AT TIME ZONE zone)::date))
                                / period_days)) AS periods
    FROM (
        SELECT vh.visitor_id, vh.hour
        FROM visitor_hours vh
        WHERE vh.workspace_id = workspace
          AND vh.hour > date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00')
          AND vh.hour < date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00')
          AND (include_bots OR NOT vh.is_bot)
        ORDER BY vh.visitor_id
    ) v
    GROUP BY v.visitor_id
$$;

CREATE FUNCTION visitor_edge_periods(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                     zone text, period_days integer)
RETURNS TABLE (visitor_id bigint, periods bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT ev.visitor_id,
           bit_or(1::bigint << (((ev.time AT TIME ZONE zone)::date
                                 - (SELECT (time_bucket(make_interval(days => period_days), from_time, zone) AT TIME ZONE zone)::date))
                                / period_days)) AS periods
    FROM events ev
    WHERE ev.workspace_id = workspace
      AND ev.time >= from_time AND ev.time < to_time
      AND (include_bots OR NOT ev.is_bot)
      AND (ev.time < date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00') + interval '1 hour'
           OR ev.time >= date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00'))
      AND ev.visitor_id IS NOT NULL
    GROUP BY ev.visitor_id
$$;

CREATE OR REPLACE FUNCTION visitor_periods(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                           zone text, period_days integer)
RETURNS TABLE (visitor_id bigint, periods bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(h.visitor_id, e.visitor_id), coalesce(h.periods, 0) | coalesce(e.periods, 0)
    FROM visitor_hour_periods(workspace, from_time, to_time, include_bots, zone, period_days) h
    FULL JOIN visitor_edge_periods(workspace, from_time, to_time, include_bots, zone, period_days) e ON e.visitor_id = h.visitor_id
$$;

-- The patterns of active periods of `visitor_periods`' visitors, with how many visitors have each.
CREATE FUNCTION visitor_period_patterns(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                        zone text, period_days integer)
RETURNS TABLE (periods bigint, visitors bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT p.periods, sum(p.visitors)::bigint
    FROM (
        SELECT h.periods, 1 AS visitors
        FROM visitor_hour_periods(workspace, from_time, to_time, include_bots, zone, period_days) h
        UNION ALL
        SELECT moved.periods, moved.visitors
        FROM visitor_edge_periods(workspace, from_time, to_time, include_bots, zone, period_days) e
        CROSS JOIN LATERAL (
            SELECT bit_or(h.periods) AS periods
            FROM visitor_hour_periods(workspace, from_time, to_time, include_bots, zone, period_days) h
            WHERE h.visitor_id = e.visitor_id
        ) h
        CROSS JOIN LATERAL (VALUES (h.periods, -1), (coalesce(h.periods, 0) | e.periods, 1)) AS moved(periods, visitors)
        WHERE moved.periods IS NOT NULL
    ) p
    GROUP BY p.periods
    HAVING sum(p.visitors) > 0
$$;
