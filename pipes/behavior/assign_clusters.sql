-- Clusters users by behaviour with k-means and stores each user's cluster_id in user_features.
-- Features: avg_session_duration, total_sessions and avg_clicks_per_session of user_features, standardised
-- (z-scores; a missing value counts as the average). Deterministic: the first centre is the user nearest the
-- average, each next one the user farthest from the centres chosen (ties by user_id); then Lloyd iterations until
-- no user changes cluster (at most max_iterations). Clusters are numbered 1..k by size, largest first.
-- @writes
-- @param k              Int(1..50) = 4        Number of clusters
-- @param country        String?               Cluster only the users of this country (the others keep theirs)
-- @param max_iterations Int(1..500) = 100     Upper bound on iterations
-- @column user_id                 the user
-- @column cluster_id              the cluster assigned (1..k)
-- @column distance                distance to the cluster's centre, in standard deviations
-- @column avg_session_duration    the features used
-- @column total_sessions
-- @column avg_clicks_per_session
-- @column country
SELECT user_id, cluster_id, round(distance::numeric, 4)::float8 AS distance,
       avg_session_duration, total_sessions, avg_clicks_per_session, country
FROM analytics_assign_clusters(:workspace_id, :k::int, :country, :max_iterations::int)
ORDER BY cluster_id, distance, user_id
