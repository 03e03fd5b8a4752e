-- Stored user features (user_features) with their cluster, filtered by cluster, country and activity.
-- @param cluster_id   Int?                  Only this cluster
-- @param country      String?               Only this country
-- @param min_sessions Int = 0               Only users with at least this many sessions
-- @param limit        Int(1..10000) = 100   Users to return, most sessions first
-- @column user_id                 the user
-- @column cluster_id              its cluster (null until assigned)
-- @column total_sessions          sessions
-- @column avg_session_duration    seconds
-- @column avg_clicks_per_session  clicks per session
-- @column most_visited_page       page
-- @column most_used_device        device type
-- @column country                 country
-- @column last_updated            when the features were last written
SELECT user_id, cluster_id, total_sessions, avg_session_duration, avg_clicks_per_session,
       most_visited_page, most_used_device, country, last_updated
FROM user_features
WHERE workspace_id = :workspace_id
  AND (:cluster_id IS NULL OR cluster_id = :cluster_id)
  AND (:country IS NULL OR country = :country)
  AND coalesce(total_sessions, 0) >= :min_sessions
ORDER BY total_sessions DESC NULLS LAST, user_id
LIMIT :limit
