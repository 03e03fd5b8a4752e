-- Usage of product features: how often each feature is used and by how many users, most used first.
-- @param feature      String?    Only this feature; all features when absent
-- @param start_date   DateTime?  Events from this time (YYYY-MM-DD HH:MM:SS, UTC)
-- @param end_date     DateTime?  Events until this time, inclusive
-- @param include_bots Bool = false  Count bots and crawlers too
-- @column feature          the feature
-- @column uses             events naming it
-- @column unique_users     distinct visitors (user_id, else session_id)
-- @column unique_sessions  distinct sessions
-- @column uses_per_user    uses / unique_users
-- @column first_used       earliest use in the range
-- @column last_used        latest use in the range
SELECT feature,
       count(*) AS uses,
       count(DISTINCT visitor_id) AS unique_users,
       count(DISTINCT session_id) AS unique_sessions,
       round(count(*)::numeric / nullif(count(DISTINCT visitor_id), 0), 2)::float8 AS uses_per_user,
       min(time) AS first_used,
       max(time) AS last_used
FROM events
WHERE workspace_id = :workspace_id
  AND feature IS NOT NULL
  AND (:feature IS NULL OR feature = :feature)
  AND (:start_date IS NULL OR time >= :start_date)
  AND (:end_date IS NULL OR time <= :end_date)
  AND (:include_bots OR NOT is_bot)
GROUP BY feature
ORDER BY uses DESC, feature
