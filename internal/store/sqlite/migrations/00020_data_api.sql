-- The Data API (docs/api.md) filters and orders instances by status and
-- by start time; these keep such a page an index range, not a scan of
-- every instance. Both end in id, the order of a page's rows.

-- +goose Up
CREATE INDEX instances_status ON instances (status, id);
CREATE INDEX instances_started_at ON instances (started_at, id);

-- +goose Down
DROP INDEX instances_started_at;
DROP INDEX instances_status;
