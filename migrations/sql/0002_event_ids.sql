-- De-duplication of client event ids: a row with an event_id already stored in the workspace is stored once.
-- The writer inserts the ids of a batch here first (ON CONFLICT DO NOTHING) and stores only the rows whose id was
-- new, in the same transaction, so retries of one event never store it twice. Kept separate from `events`
-- because hypertable unique keys must include `time`, and a retry may carry another time.
CREATE TABLE event_ids (
    workspace_id bigint NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    event_id text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workspace_id, event_id)
);

-- GET /api/events/{id}: ids grow with time, so a BRIN index finds an id for almost no write cost.
CREATE INDEX events_id_brin_idx ON events USING brin (id);
