-- Flows that start themselves and tasks with deadlines.
-- tasks.due_at: when the task is due (unix microseconds; NULL: no due
-- time); escalated: its escalation has added assignees.
-- schedule_claims: one row per schedule and scheduled time that started an
-- instance; the primary key is what makes servers sharing a database start
-- exactly one instance per time (the claim is inserted in the instance's
-- own transaction).
-- webhook_replays: signatures already accepted, refused if presented again
-- until expires_at.

-- +goose Up
ALTER TABLE tasks ADD COLUMN due_at BIGINT;
ALTER TABLE tasks ADD COLUMN escalated BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX tasks_due ON tasks (due_at) WHERE status = 'open';

CREATE TABLE schedule_claims (
    workflow    TEXT COLLATE "C" NOT NULL,
    schedule    TEXT COLLATE "C" NOT NULL,
    fire_at     BIGINT  NOT NULL,
    version     INTEGER NOT NULL,
    instance_id TEXT    NOT NULL,
    claimed_at  BIGINT  NOT NULL,
    PRIMARY KEY (workflow, schedule, fire_at)
);

CREATE TABLE webhook_replays (
    key        TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webhook_replays_expires ON webhook_replays (expires_at);

-- +goose Down
DROP TABLE webhook_replays;
DROP TABLE schedule_claims;
DROP INDEX tasks_due;
ALTER TABLE tasks DROP COLUMN escalated;
ALTER TABLE tasks DROP COLUMN due_at;
