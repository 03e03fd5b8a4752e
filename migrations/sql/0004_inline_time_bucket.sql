-- The plain-PostgreSQL time_bucket functions lose STRICT: PostgreSQL only inlines a SQL function into the calling
-- query when it can prove the inlined expression equally strict, which a CASE is not. Called instead of inlined,
-- each row paid a function call: retention over a million events took 4.4 s instead of 0.8 s (EXPLAIN ANALYZE).
-- NULL inputs still give NULL (date_bin and AT TIME ZONE are strict).
CREATE OR REPLACE FUNCTION analytics_bucket_local(bucket_width interval, ts timestamp)
RETURNS timestamp
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT CASE
        WHEN extract(year FROM bucket_width) * 12 + extract(month FROM bucket_width) > 0 THEN
            timestamp '2000-01-01' + make_interval(months => (
                floor(
                    ((extract(year FROM ts) - 2000) * 12 + extract(month FROM ts) - 1)
                    / (extract(year FROM bucket_width) * 12 + extract(month FROM bucket_width))
                ) * (extract(year FROM bucket_width) * 12 + extract(month FROM bucket_width))
            )::int)
        ELSE date_bin(bucket_width, ts, timestamp '2000-01-03')
    END
$$;

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz)
        RETURNS timestamptz
        LANGUAGE sql IMMUTABLE PARALLEL SAFE
        AS 'SELECT analytics_bucket_local(bucket_width, ts AT TIME ZONE ''UTC'') AT TIME ZONE ''UTC''';
        CREATE OR REPLACE FUNCTION time_bucket(bucket_width interval, ts timestamptz, timezone text)
        RETURNS timestamptz
        LANGUAGE sql STABLE PARALLEL SAFE
        AS 'SELECT analytics_bucket_local(bucket_width, ts AT TIME ZONE timezone) AT TIME ZONE timezone';
    END IF;
END
$$;
