-- Active users per day (UTC), counting events of one type (pageview unless asked otherwise).
-- @param start_date   DateTime?                Events from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param end_date     DateTime?                Events until this time, inclusive
-- @param event_type   String = pageview        Only events of this type
-- @param include_bots Bool = false             Count bots and crawlers too
-- @column day           the day (UTC)
-- @column active_users  distinct visitors (user_id, else session_id) with such an event that day
-- @column events        such events that day
--
-- The days wholly inside the range are read from what the writer keeps (migration 0016): each day's visitors of the
-- type from `visitor_days`, in (type, day, visitor) order from its index alone, and its events from `event_counts`.
-- The days cut by a given start or end are counted from their events in the range (two days at most). All time, its
-- default, took 0.97 s at a million events and 15 s at ten million when it grouped every event of the type; 71 ms
-- and 0.43 s this way (bench/RESULTS.md), so it no longer needs a longer timeout than other queries.
WITH range AS (
    -- The first and last whole days (a start after midnight, or an end before the next one, cuts its day), and the
    -- times between which the range is read from the rollups.
    SELECT first_day, last_day,
           first_day::timestamp AT TIME ZONE 'UTC' AS whole_from,
           greatest(first_day, last_day + 1)::timestamp AT TIME ZONE 'UTC' AS whole_to
    FROM (
        SELECT CASE WHEN :start_date IS NULL THEN date '-infinity'
                    ELSE ((:start_date - interval '1 microsecond') AT TIME ZONE 'UTC')::date + 1 END AS first_day,
               CASE WHEN :end_date IS NULL THEN date 'infinity'
                    ELSE ((:end_date + interval '1 microsecond') AT TIME ZONE 'UTC')::date - 1 END AS last_day
    ) days
),
visitors AS (
    SELECT d.day, count(DISTINCT d.visitor_id) AS active_users
    FROM visitor_days d
    WHERE d.workspace_id = :workspace_id
      AND d.event_type = :event_type
      AND d.day >= (SELECT first_day FROM range) AND d.day <= (SELECT last_day FROM range)
      AND (:include_bots OR NOT d.is_bot)
    GROUP BY d.day
),
counted AS (
    SELECT c.day, sum(c.events) AS events
    FROM event_counts c
    WHERE c.workspace_id = :workspace_id
      AND c.event_type = :event_type
      AND c.day >= (SELECT first_day FROM range) AND c.day <= (SELECT last_day FROM range)
      AND (:include_bots OR NOT c.is_bot)
    GROUP BY c.day
),
-- The events of the cut days: from the start to the first whole day, and from after the last one to the end.
cut AS (
    SELECT e.time, e.visitor_id
    FROM events e
    WHERE :start_date IS NOT NULL
      AND e.workspace_id = :workspace_id
      AND e.event_type = :event_type
      AND e.time >= :start_date AND e.time < (SELECT whole_from FROM range)
      AND (:end_date IS NULL OR e.time <= :end_date)
      AND (:include_bots OR NOT e.is_bot)
    UNION ALL
    SELECT e.time, e.visitor_id
    FROM events e
    WHERE :end_date IS NOT NULL
      AND e.workspace_id = :workspace_id
      AND e.event_type = :event_type
      AND e.time >= (SELECT whole_to FROM range) AND e.time <= :end_date
      AND (:start_date IS NULL OR e.time >= :start_date)
      AND (:include_bots OR NOT e.is_bot)
)
SELECT day::timestamp AT TIME ZONE 'UTC' AS day, active_users, events
FROM (
    SELECT c.day, coalesce(v.active_users, 0) AS active_users, c.events::bigint AS events
    FROM counted c
    LEFT JOIN visitors v USING (day)
    UNION ALL
    SELECT (time AT TIME ZONE 'UTC')::date, count(DISTINCT visitor_id), count(*)
    FROM cut
    GROUP BY 1
) days
ORDER BY day
