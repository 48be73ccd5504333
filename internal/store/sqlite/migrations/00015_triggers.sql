-- Flows that start themselves and tasks with deadlines.
-- tasks.due_at: when the task is due (unix microseconds; NULL: no due
-- time); escalated: its escalation has added assignees.
-- schedule_claims: one row per schedule and scheduled time that started an
-- instance; the primary key is what makes servers sharing a database start
-- exactly one instance per time (the claim is inserted in the instance's
-- own transaction). catch_up marks the one instance started for times
-- missed while no server ran (missed: run_once).
-- webhook_replays: signatures already accepted, refused if presented again
-- until expires_at.
-- mail_outbox: email waiting to be sent (or sent, until pruned), written in
-- the transaction of the step or task that sends it; servers claim due
-- rows by moving next_at ahead (a lease), so a mail server that is down
-- delays mail and loses none. kind 'email' rows carry their message;
-- task notices (task_*) are composed when sent, from the task (its serial
-- is known only once the task is written: new_task is the commit's task).

-- +goose Up
ALTER TABLE tasks ADD COLUMN due_at INTEGER;
ALTER TABLE tasks ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0 CHECK (escalated IN (0, 1));
CREATE INDEX tasks_due ON tasks (due_at) WHERE status = 'open';

CREATE TABLE schedule_claims (
    workflow    TEXT    NOT NULL,
    schedule    TEXT    NOT NULL,
    fire_at     INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    instance_id TEXT    NOT NULL,
    claimed_at  INTEGER NOT NULL,
    catch_up    INTEGER NOT NULL DEFAULT 0 CHECK (catch_up IN (0, 1)),
    PRIMARY KEY (workflow, schedule, fire_at)
) STRICT, WITHOUT ROWID;

CREATE TABLE webhook_replays (
    key        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX webhook_replays_expires ON webhook_replays (expires_at);

CREATE TABLE mail_outbox (
    id          TEXT NOT NULL PRIMARY KEY,
    kind        TEXT    NOT NULL CHECK (kind IN ('email', 'task_assigned', 'task_reminder', 'task_escalated')),
    recipients  TEXT    NOT NULL DEFAULT '[]',
    cc          TEXT    NOT NULL DEFAULT '[]',
    subject     TEXT    NOT NULL DEFAULT '',
    body        TEXT    NOT NULL DEFAULT '',
    html        TEXT    NOT NULL DEFAULT '',
    message_id  TEXT    NOT NULL,
    task_serial INTEGER,
    instance_id TEXT    NOT NULL DEFAULT '',
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER  NOT NULL,
    next_at     INTEGER  NOT NULL,
    sent_at     INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX mail_outbox_due ON mail_outbox (next_at) WHERE sent_at IS NULL;

-- +goose Down
DROP TABLE mail_outbox;
DROP TABLE webhook_replays;
DROP TABLE schedule_claims;
DROP INDEX tasks_due;
ALTER TABLE tasks DROP COLUMN escalated;
ALTER TABLE tasks DROP COLUMN due_at;
