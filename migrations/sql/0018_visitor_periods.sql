-- Each visitor's active periods in a window, as the bits of one bigint: what retention (`/api/analytics/retention`)
-- and the `user_retention` pipe group. Both grouped every visitor-hour of the window (`visitor_activity`, 0011) by
-- visitor in a hash aggregate, with the minimum period beside the bits: at a million events, 113,000 visitors from
-- 237,000 visitor-hours over 30 days, most of their time.
--
-- `visitor_hours_by_visitor` holds the visitor-hours in visitor order, so that they are grouped as the index gives
-- them (an index-only scan with `is_bot` and `tenant_id` in the index, for both roles' row-level security; the
-- table is never updated, so the heap is not visited once vacuumed). The writer inserts into one more index, about
-- one entry per four events of the benchmark's traffic.
CREATE INDEX visitor_hours_by_visitor ON visitor_hours (workspace_id, visitor_id, hour) INCLUDE (is_bot, tenant_id);

-- The lowest and highest set bit of `bits` (0 to 63; NULL when none is set): a visitor's first and last period in
-- `visitor_periods`' bits. Single expressions, which the planner inlines.
CREATE FUNCTION lowest_set_bit(bits bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT nullif(position('1' IN reverse(bits::bit(64)::text)), 0) - 1 $$;

CREATE FUNCTION highest_set_bit(bits bigint) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 64 - nullif(position('1' IN bits::bit(64)::text), 0) $$;

-- The visitors active in [from_time, to_time), one row each, with `periods`: bit n set when the visitor was active in
-- period n of the window, periods being `period_days` local days long in `zone` and period 0 the one holding
-- from_time (`time_bucket`'s, so weeks start on Mondays). The lowest set bit is the visitor's first period
-- (`lowest_set_bit`, above).
--
-- As `visitor_activity` (0011, 0014), whose window bounds it repeats (a change to one belongs in both): the whole
-- hours of the window from the visitor-hours, the partial hours at its two ends from the events, so it is exact for
-- any window when `zone`'s offset from UTC is a whole number of hours throughout the window (callers read the
-- events themselves for the other zones). The two are grouped apart and joined (the ends hold a few hundred
-- visitors): grouping `visitor_activity`'s union took a hash aggregate, or, asked for in visitor order, a sort of
-- every row (165 against 105–130 ms at a million events). The visitor-hours are asked for in visitor order (ORDER
-- BY in a sub-select): where a workspace holds most of the table, the planner otherwise reads the table and groups
-- it in a hash aggregate, which it costs lower but takes 1.6 times as long. A window must have at most 63 periods
-- (callers check). Period 0's first day is computed once (a sub-select), not per row.
-- A single SELECT: the planner inlines it into the calling query, which runs with the caller's rights (row-level
-- security applies).
--
-- At a million events over 30 days, in psql, equal rows: retention by week 220–330 → 130–180 ms, by day (Berlin)
-- 380–610 → 290–410 ms; `user_retention` 320–385 → 230–300 ms (two workspaces), 320–360 → 200–260 ms (one).
CREATE FUNCTION visitor_periods(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean,
                                zone text, period_days integer)
RETURNS TABLE (visitor_id bigint, periods bigint)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT coalesce(h.visitor_id, e.visitor_id), coalesce(h.periods, 0) | coalesce(e.periods, 0)
    FROM (
        SELECT v.visitor_id,
               bit_or(1::bigint << (((v.hour AT TIME ZONE zone)::date
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
    ) h
    FULL JOIN (
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
    ) e ON e.visitor_id = h.visitor_id
$$;
