-- What pipes need beyond reading.
--
-- assign_clusters (seed 002) stores each user's cluster: the reader roles may update cluster_id and last_updated
-- of user_features, under the same row-level security as their reads.
DO $$
DECLARE
    role_name text;
BEGIN
    FOREACH role_name IN ARRAY ARRAY['analytics_reader', 'analytics_tenant_reader'] LOOP
        EXECUTE format('GRANT UPDATE (cluster_id, last_updated) ON user_features TO %I', role_name);
    END LOOP;
END
$$;

CREATE POLICY workspace_writer ON user_features FOR UPDATE TO analytics_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint)
    WITH CHECK (workspace_id = current_setting('app.workspace_id')::bigint);
CREATE POLICY tenant_writer ON user_features FOR UPDATE TO analytics_tenant_reader
    USING (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'))
    WITH CHECK (workspace_id = current_setting('app.workspace_id')::bigint AND tenant_id = current_setting('app.tenant_id'));

-- The squared distances of a user (x1, x2, x3) to each centre of pg_temp.kmeans_centres, in cluster order, as SQL
-- expressions with the centres' coordinates written out: "(x1 - (c1)) ^ 2 + …, …" (see below).
CREATE FUNCTION analytics_kmeans_distances() RETURNS text
LANGUAGE plpgsql
AS $$
BEGIN
    RETURN (
        SELECT string_agg(format('(x1 - (%s)) ^ 2 + (x2 - (%s)) ^ 2 + (x3 - (%s)) ^ 2', c.x1, c.x2, c.x3), ', ' ORDER BY c.cluster)
        FROM pg_temp.kmeans_centres c
    );
END
$$;

-- k-means over the users of a workspace (those the caller may see), on the standardised features
-- avg_session_duration, total_sessions and avg_clicks_per_session (z-scores; a missing value is the average, 0).
-- Deterministic: the first centre is the user nearest the average, each next centre the user farthest from the
-- centres chosen so far (ties broken by user_id); then Lloyd iterations until the centres stop moving (by less
-- than 0.0001 standard deviations) or max_iterations; each user then goes to its nearest centre. Clusters are renumbered 1..k by size (largest first, ties by centre), stored in
-- user_features.cluster_id, and returned with each user's distance to its centre.
-- SECURITY INVOKER (the default): row-level security applies to what it reads and updates.
CREATE FUNCTION analytics_assign_clusters(workspace bigint, k integer, only_country text, max_iterations integer)
RETURNS TABLE (
    user_id text,
    cluster_id integer,
    distance double precision,
    avg_session_duration double precision,
    total_sessions integer,
    avg_clicks_per_session double precision,
    country text
)
LANGUAGE plpgsql
-- JIT compilation costs more than each of these statements takes (a tenth of a second each, EXPLAIN ANALYZE).
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    points bigint;
    shift double precision;
    distances text;
    iteration integer := 0;
BEGIN
    DROP TABLE IF EXISTS pg_temp.kmeans_points;
    DROP TABLE IF EXISTS pg_temp.kmeans_centres;
    DROP TABLE IF EXISTS pg_temp.kmeans_next;
    CREATE TEMP TABLE kmeans_points ON COMMIT DROP AS
    WITH f AS (
        SELECT uf.user_id,
               uf.avg_session_duration AS a, uf.total_sessions::float8 AS b, uf.avg_clicks_per_session AS c
        FROM user_features uf
        WHERE uf.workspace_id = workspace AND (only_country IS NULL OR uf.country = only_country)
    ), s AS (
        SELECT avg(a) AS ma, coalesce(nullif(stddev_pop(a), 0), 1) AS sa,
               avg(b) AS mb, coalesce(nullif(stddev_pop(b), 0), 1) AS sb,
               avg(c) AS mc, coalesce(nullif(stddev_pop(c), 0), 1) AS sc
        FROM f
    )
    SELECT f.user_id,
           coalesce((f.a - s.ma) / s.sa, 0) AS x1,
           coalesce((f.b - s.mb) / s.sb, 0) AS x2,
           coalesce((f.c - s.mc) / s.sc, 0) AS x3,
           0 AS cluster
    FROM f CROSS JOIN s;
    ANALYZE kmeans_points;
    SELECT count(*) INTO points FROM kmeans_points;
    IF points = 0 THEN
        RETURN;
    END IF;
    k := least(k, points);

    -- Distances to the centres are spelled out as one expression per centre, with the centres' coordinates as
    -- literals (analytics_kmeans_distances()), so that a pass over the users computes every distance and the
    -- nearest centre (array_position of the least distance: the lowest-numbered on ties) without a subquery per
    -- user; that made an iteration over 50,000 users 0.37 s (EXPLAIN ANALYZE).
    CREATE TEMP TABLE kmeans_centres (cluster integer PRIMARY KEY, x1 float8, x2 float8, x3 float8) ON COMMIT DROP;
    INSERT INTO kmeans_centres
    SELECT 1, p.x1, p.x2, p.x3 FROM kmeans_points p ORDER BY p.x1 * p.x1 + p.x2 * p.x2 + p.x3 * p.x3, p.user_id LIMIT 1;
    FOR next_centre IN 2..k LOOP
        distances := analytics_kmeans_distances();
        EXECUTE format(
            'INSERT INTO kmeans_centres SELECT %s, x1, x2, x3 FROM kmeans_points ORDER BY least(%s) DESC, user_id LIMIT 1',
            next_centre, distances
        );
    END LOOP;

    -- Lloyd iterations: assign every user to its nearest centre and move each centre to the mean of its users, in
    -- one pass over the users, until no centre moves by 0.0001 standard deviations or more, or max_iterations.
    CREATE TEMP TABLE kmeans_next (cluster integer PRIMARY KEY, x1 float8, x2 float8, x3 float8) ON COMMIT DROP;
    LOOP
        iteration := iteration + 1;
        distances := analytics_kmeans_distances();
        DELETE FROM kmeans_next;
        EXECUTE format(
            'INSERT INTO kmeans_next SELECT cluster, avg(x1), avg(x2), avg(x3) '
            'FROM (SELECT x1, x2, x3, array_position(ARRAY[%1$s], least(%1$s)) AS cluster FROM kmeans_points) a GROUP BY cluster',
            distances
        );
        SELECT coalesce(max(abs(c.x1 - n.x1) + abs(c.x2 - n.x2) + abs(c.x3 - n.x3)), 0) INTO shift
        FROM kmeans_centres c JOIN kmeans_next n ON n.cluster = c.cluster;
        -- A centre that lost all its users stays where it was.
        UPDATE kmeans_centres c SET x1 = n.x1, x2 = n.x2, x3 = n.x3 FROM kmeans_next n WHERE c.cluster = n.cluster;
        EXIT WHEN shift < 1e-4 OR iteration >= max_iterations;
    END LOOP;
    distances := analytics_kmeans_distances();
    EXECUTE format('UPDATE kmeans_points SET cluster = array_position(ARRAY[%1$s], least(%1$s))', distances);

    RETURN QUERY
    WITH sizes AS (
        SELECT c.cluster, row_number() OVER (ORDER BY count(p.user_id) DESC, c.x1, c.x2, c.x3, c.cluster)::integer AS number
        FROM kmeans_centres c LEFT JOIN kmeans_points p ON p.cluster = c.cluster
        GROUP BY c.cluster
    ), assigned AS (
        UPDATE user_features uf
        SET cluster_id = s.number, last_updated = now()
        FROM kmeans_points p JOIN sizes s ON s.cluster = p.cluster
        WHERE uf.workspace_id = workspace AND uf.user_id = p.user_id
        RETURNING uf.user_id, uf.cluster_id, uf.avg_session_duration, uf.total_sessions, uf.avg_clicks_per_session, uf.country
    )
    SELECT a.user_id, a.cluster_id,
           sqrt((p.x1 - c.x1) ^ 2 + (p.x2 - c.x2) ^ 2 + (p.x3 - c.x3) ^ 2),
           a.avg_session_duration, a.total_sessions, a.avg_clicks_per_session, a.country
    FROM assigned a
    JOIN kmeans_points p ON p.user_id = a.user_id
    JOIN kmeans_centres c ON c.cluster = p.cluster;
END
$$;
