-- `visitor_period_patterns` (0024) for the visitors numbered from `first_visitor` up to, not including, `end_visitor`:
-- the retention endpoint counts the visitors below and above a split point at once, on two connections that share
-- one snapshot, and adds the two halves' patterns up (each visitor is in one range, so the sums are the whole
-- window's). The ranges reach the reads: the whole hours' visitor range is a condition of the visitor index scan
-- (each half reads its part of it, where a filter on a visitor's number leaves the planner guessing and every half
-- reading the whole index: in psql at a million events, halves by odd and even numbers took 121–172 ms each against
-- 100–158 ms for the whole; halves by range 55–91 ms), and the partial hours' range filters their events. The body
-- is 0024's, with the two ranges added; the six-argument function is unchanged (`user_retention` reads it).
CREATE FUNCTION visitor_period_patterns(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                        zone text, period_days integer, first_visitor bigint, end_visitor bigint)
RETURNS TABLE (periods bigint, visitors bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT p.periods, sum(p.visitors)::bigint
    FROM (
        SELECT h.periods, 1 AS visitors
        FROM visitor_hour_periods(workspace, from_time, to_time, include_bots, zone, period_days) h
        WHERE h.visitor_id >= first_visitor AND h.visitor_id < end_visitor
        UNION ALL
        SELECT moved.periods, moved.visitors
        FROM visitor_edge_periods(workspace, from_time, to_time, include_bots, zone, period_days) e
        CROSS JOIN LATERAL (
            SELECT bit_or(h.periods) AS periods
            FROM visitor_hour_periods(workspace, from_time, to_time, include_bots, zone, period_days) h
            WHERE h.visitor_id = e.visitor_id
        ) h
        CROSS JOIN LATERAL (VALUES (h.periods, -1), (coalesce(h.periods, 0) | e.periods, 1)) AS moved(periods, visitors)
        WHERE moved.periods IS NOT NULL AND e.visitor_id >= first_visitor AND e.visitor_id < end_visitor
    ) p
    GROUP BY p.periods
    HAVING sum(p.visitors) > 0
$$;

-- The visitor number that splits the visitor-hours of a window in two about equal halves: the median number of a
-- sample of about a hundred of the table's pages (all of a smaller table), whole pages at random (`SYSTEM`); NULL
-- when the sample holds no visitor-hour of the window. In psql at ten million events, five samples' medians were
-- within 8 % of the exact one (370,293), in 4–9 ms; exactly, it took a read of the whole window.
CREATE FUNCTION visitor_hours_median_visitor(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY vh.visitor_id)
    FROM visitor_hours vh TABLESAMPLE SYSTEM (least(100, 100 * 100 * current_setting('block_size')::numeric / greatest(pg_relation_size('visitor_hours'), 1)))
    WHERE vh.workspace_id = workspace
      AND vh.hour > date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00')
      AND vh.hour < date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00')
      AND (include_bots OR NOT vh.is_bot)
$$;
