-- Statistics of each cluster of users: size, average features, and its most common device, country and page.
-- @param cluster_id Int?      Only this cluster
-- @param min_users  Int = 1   Only clusters with at least this many users
-- @column cluster_id                  the cluster
-- @column users                       users in it
-- @column avg_session_duration        average of its users' avg_session_duration, seconds
-- @column avg_total_sessions          average sessions per user
-- @column avg_clicks_per_session      average of its users' avg_clicks_per_session
-- @column top_device                  most common most_used_device
-- @column top_country                 most common country
-- @column top_page                    most common most_visited_page
SELECT cluster_id,
       count(*) AS users,
       round(avg(avg_session_duration)::numeric, 2)::float8 AS avg_session_duration,
       round(avg(total_sessions)::numeric, 2)::float8 AS avg_total_sessions,
       round(avg(avg_clicks_per_session)::numeric, 2)::float8 AS avg_clicks_per_session,
       mode() WITHIN GROUP (ORDER BY most_used_device) AS top_device,
       mode() WITHIN GROUP (ORDER BY country) AS top_country,
       mode() WITHIN GROUP (ORDER BY most_visited_page) AS top_page
FROM user_features
WHERE workspace_id = :workspace_id
  AND cluster_id IS NOT NULL
  AND (:cluster_id IS NULL OR cluster_id = :cluster_id)
GROUP BY cluster_id
HAVING count(*) >= :min_users
ORDER BY cluster_id
