-- Seed 001's feature_usage reads only the events that name a feature (a small share of all events): a partial
-- index finds them without scanning the table.
CREATE INDEX events_feature_idx ON events (workspace_id, feature, time) WHERE feature IS NOT NULL;
