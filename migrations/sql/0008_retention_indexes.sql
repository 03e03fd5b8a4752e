-- Data retention (RETENTION_DAYS, QUARANTINE_RETENTION_DAYS) deletes old rows in small batches; these indexes find
-- them without scanning the tables. `events` needs none: its key starts with (workspace_id, time).
CREATE INDEX event_ids_first_seen_idx ON event_ids (first_seen);
CREATE INDEX quarantine_received_at_idx ON quarantine (received_at);
