-- Every event of one session, in order.
-- @param session_id   String        The session (required)
-- @param include_bots Bool = true   Include events flagged as bots (a session asked for by id is shown whole)
-- @column time         event time (UTC)
-- @column event_type   the event's type
-- @column page         page path
-- @column url          full URL (page_url)
-- @column referrer     referrer
-- @column user_id      user
-- @column tenant_id    tenant
-- @column device_type  device type
-- @column browser      browser
-- @column os           operating system
-- @column country      country
-- @column duration     seconds, when sent
-- @column event_data   the event's data (JSON)
SELECT time, event_type, page, url, referrer, user_id, tenant_id, device_type, browser, os, country, duration,
       properties AS event_data
FROM events
WHERE workspace_id = :workspace_id
  AND session_id = :session_id
  AND (:include_bots OR NOT is_bot)
ORDER BY time, id
LIMIT 10000
