-- Behaviour features of each user computed from their events: the inputs of clustering (compare them with the
-- stored user_features rows, which clients send or assign_clusters updates).
-- @param since        Interval = '90 day'      Events of this window, ending now
-- @param country      String?                  Only users in this country
-- @param limit        Int(1..100000) = 1000    Users to return, most sessions first
-- @param include_bots Bool = false             Count bots and crawlers too
-- @column user_id                 the user
-- @column total_sessions          distinct sessions
-- @column avg_session_duration    average session duration in seconds (sum of event durations, else first to last event)
-- @column avg_clicks_per_session  clicks (the events' clicks, else one per click event) per session
-- @column total_events            events
-- @column most_visited_page       the page with the most events (ties: alphabetical)
-- @column most_used_device        the device type with the most events
-- @column country                 the country of the latest event that names one
-- @column first_seen              earliest event
-- @column last_seen               latest event
WITH base AS (
    SELECT user_id, session_id, time, page, device_type, country, duration,
           coalesce(clicks, CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks
    FROM events
    WHERE workspace_id = :workspace_id
      AND user_id IS NOT NULL
      AND time >= now() - :since AND time <= now()
      AND (:include_bots OR NOT is_bot)
),
sessions AS (
    SELECT user_id, session_id,
           coalesce(sum(duration), extract(epoch FROM max(time) - min(time))) AS duration,
           sum(clicks) AS clicks
    FROM base WHERE session_id IS NOT NULL
    GROUP BY user_id, session_id
),
per_user AS (
    SELECT user_id, count(*) AS total_sessions, avg(duration) AS avg_session_duration, avg(clicks) AS avg_clicks_per_session
    FROM sessions GROUP BY user_id
),
totals AS (
    SELECT user_id, count(*) AS total_events, min(time) AS first_seen, max(time) AS last_seen,
           mode() WITHIN GROUP (ORDER BY page) FILTER (WHERE page IS NOT NULL) AS most_visited_page,
           mode() WITHIN GROUP (ORDER BY device_type) FILTER (WHERE device_type IS NOT NULL) AS most_used_device,
           (array_agg(country ORDER BY time DESC) FILTER (WHERE country IS NOT NULL))[1] AS country
    FROM base GROUP BY user_id
)
SELECT t.user_id,
       coalesce(p.total_sessions, 0) AS total_sessions,
       round(p.avg_session_duration::numeric, 2)::float8 AS avg_session_duration,
       round(p.avg_clicks_per_session::numeric, 2)::float8 AS avg_clicks_per_session,
       t.total_events, t.most_visited_page, t.most_used_device, t.country, t.first_seen, t.last_seen
FROM totals t
LEFT JOIN per_user p ON p.user_id = t.user_id
WHERE :country IS NULL OR t.country = :country
ORDER BY total_sessions DESC, t.total_events DESC, t.user_id
LIMIT :limit
