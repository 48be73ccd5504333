-- The management site's dashboard counts instances in the database: by
-- status now (running, waiting), failed since a time, and started per day.
-- Without these, each count would read the whole instances table.

-- +goose Up
CREATE INDEX instances_status_ended ON instances (status, ended_at);
-- Ending in id, it also orders the Data API's pages by start time.
CREATE INDEX instances_started_at ON instances (started_at, id);

-- +goose Down
DROP INDEX instances_started_at;
DROP INDEX instances_status_ended;
