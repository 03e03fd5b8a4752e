-- Pages being viewed right now: page views per page in the last few minutes.
-- @param time_window  Interval = '5 minute'  How far back "now" reaches
-- @param limit        Int(1..10000) = 10     Number of pages to return
-- @param include_bots Bool = false           Count bots and crawlers too
-- @column page             the page path
-- @column views            page views (events of type page_view or pageview) in the window
-- @column unique_visitors  distinct visitors (user_id, else session_id) among them
-- @column last_view        time of the latest view
SELECT page,
       count(*) AS views,
       count(DISTINCT visitor_id) AS unique_visitors,
       max(time) AS last_view
FROM events
WHERE workspace_id = :workspace_id
  AND time >= now() - :time_window AND time <= now()
  AND event_type IN ('page_view', 'pageview')
  AND page IS NOT NULL
  AND (:include_bots OR NOT is_bot)
GROUP BY page
ORDER BY views DESC, page
LIMIT :limit
