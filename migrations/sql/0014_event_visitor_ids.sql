-- Each event carries its visitor's number (`visitors.id`, migration 0011), so queries that count or match visitors
-- (`coalesce(user_id, session_id)`) sort and hash bigints instead of text: the funnel's steps, unique visitors of
-- pages, features, devices and sources, the tenant summary's users, active users. The writer numbers a batch's
-- visitors before it copies the batch (it did so just after), and writes the numbers with the events.
--
-- Upgrading numbers the existing events' visitors and rewrites every row of `events` once (an UPDATE): minutes and
-- twice the table's disk space until (auto)vacuum reclaims the old rows, at tens of millions of events (README,
-- Production).
ALTER TABLE events ADD COLUMN visitor_id bigint;

INSERT INTO visitors (workspace_id, visitor)
SELECT workspace_id, coalesce(user_id, session_id)
FROM events
WHERE coalesce(user_id, session_id) IS NOT NULL
GROUP BY 1, 2
ORDER BY min(time)
ON CONFLICT DO NOTHING;

UPDATE events e
SET visitor_id = v.id
FROM visitors v
WHERE v.workspace_id = e.workspace_id AND v.visitor = coalesce(e.user_id, e.session_id);

-- Events written around the writer (SQL or COPY straight into `events`) are numbered by a trigger after they are
-- stored, numbering a new visitor; so is an event whose user or session changes. The writer's rows carry their
-- numbers, and the triggers' conditions skip them without calling a function. The insert trigger runs after the
-- row is stored, not before: a BEFORE row trigger makes COPY insert row by row instead of in batches, which cost
-- the writer's COPY and a plain one a tenth to a quarter of their speed (bench/run, 2026-12-02). SECURITY
-- DEFINER: whoever may write events may number their visitors.
CREATE FUNCTION visitor_number(workspace bigint, key text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
DECLARE
    number bigint;
BEGIN
    IF key IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO visitors (workspace_id, visitor) VALUES (workspace, key) ON CONFLICT DO NOTHING;
    SELECT v.id INTO number FROM visitors v WHERE v.workspace_id = workspace AND v.visitor = key;
    RETURN number;
END
$$;

CREATE FUNCTION events_number_stored_visitor() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
BEGIN
    UPDATE events SET visitor_id = visitor_number(NEW.workspace_id, coalesce(NEW.user_id, NEW.session_id))
    WHERE workspace_id = NEW.workspace_id AND time = NEW.time AND id = NEW.id;
    RETURN NULL;
END
$$;

CREATE FUNCTION events_renumber_visitor() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT
AS $$
BEGIN
    NEW.visitor_id := visitor_number(NEW.workspace_id, coalesce(NEW.user_id, NEW.session_id));
    RETURN NEW;
END
$$;

CREATE TRIGGER events_number_visitor AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.visitor_id IS NULL AND coalesce(NEW.user_id, NEW.session_id) IS NOT NULL)
    EXECUTE FUNCTION events_number_stored_visitor();

CREATE TRIGGER events_renumber_visitor BEFORE UPDATE OF workspace_id, user_id, session_id ON events
    FOR EACH ROW WHEN (
        NEW.workspace_id IS DISTINCT FROM OLD.workspace_id
        OR NEW.user_id IS DISTINCT FROM OLD.user_id
        OR NEW.session_id IS DISTINCT FROM OLD.session_id
    )
    EXECUTE FUNCTION events_renumber_visitor();

-- The funnel's and the feature pipe's covering indexes (0010, 0012) carry the number instead of the user: every
-- query that read `user_id` from them read it for the visitor.
DROP INDEX events_page_idx;
CREATE INDEX events_page_idx ON events (workspace_id, page, time) INCLUDE (id, visitor_id, session_id, is_bot, tenant_id)
    WHERE page IS NOT NULL;

DROP INDEX events_feature_usage_idx;
CREATE INDEX events_feature_usage_idx ON events (workspace_id, feature, time)
    INCLUDE (visitor_id, session_id, is_bot, tenant_id)
    WHERE feature IS NOT NULL;

-- visitor_activity (0011) reads the numbers of the window's partial hours' events from the events themselves, where
-- it looked each one up in `visitors`.
CREATE OR REPLACE FUNCTION visitor_activity(workspace bigint, from_time timestamptz, to_time timestamptz, include_bots boolean)
RETURNS TABLE (visitor_id bigint, active_at timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT h.visitor_id, h.hour
    FROM visitor_hours h
    WHERE h.workspace_id = workspace
      AND h.hour > date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00')
      AND h.hour < date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00')
      AND (include_bots OR NOT h.is_bot)
    UNION ALL
    SELECT e.visitor_id, e.time
    FROM events e
    WHERE e.workspace_id = workspace
      AND e.time >= from_time AND e.time < to_time
      AND (include_bots OR NOT e.is_bot)
      AND (e.time < date_bin('1 hour', from_time, timestamptz '2000-01-01 00:00+00') + interval '1 hour' OR e.time >= date_bin('1 hour', to_time, timestamptz '2000-01-01 00:00+00'))
      AND e.visitor_id IS NOT NULL
$$;
