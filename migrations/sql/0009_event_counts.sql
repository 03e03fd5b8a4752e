-- Events per workspace, tenant and UTC day, kept by the writer in the transaction that stores the events, so
-- `total_events` of the realtime stats is a sum over a few rows rather than a count over the whole table.
-- `tenant_id` is '' for events without a tenant (a key column cannot be NULL). Data retention subtracts what it
-- deletes; with TimescaleDB, whose policy drops whole days (one chunk per UTC day), it deletes the days dropped.
CREATE TABLE event_counts (
    workspace_id integer NOT NULL,
    tenant_id text NOT NULL DEFAULT '',
    day date NOT NULL,
    events bigint NOT NULL,
    PRIMARY KEY (workspace_id, tenant_id, day)
);

INSERT INTO event_counts (workspace_id, tenant_id, day, events)
SELECT workspace_id, COALESCE(tenant_id, ''), (time AT TIME ZONE 'UTC')::date, count(*)
FROM events
GROUP BY 1, 2, 3;
