-- When a waiting instance is due to wake (unix microseconds; 0: it waits
-- for a person, not a time). The wake job in the queue says the same, but
-- the instance row is the truth a starting server scans for overdue
-- waits, so a lost or stuck job never leaves an instance asleep.

-- +goose Up
ALTER TABLE instances ADD COLUMN wake_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX instances_wake ON instances (wake_at) WHERE status = 'waiting';

-- +goose Down
DROP INDEX instances_wake;
ALTER TABLE instances DROP COLUMN wake_at;
