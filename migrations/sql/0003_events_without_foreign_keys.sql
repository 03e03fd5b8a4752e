-- The hot ingest tables check no foreign keys: the check on workspace_id ran for every stored row and cost about a
-- quarter of COPY's speed (measured with bench/run). Workspaces are never deleted while events arrive; deleting a
-- workspace deletes its events and event ids explicitly.
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_workspace_id_fkey;
ALTER TABLE event_ids DROP CONSTRAINT IF EXISTS event_ids_workspace_id_fkey;
