-- Flows (docs/flows.md): deployed definitions, instances, the step history
-- (the process flow monitor), worklist tasks and Idempotency-Keys.
-- Same conventions as 00001: times are unix microseconds (BIGINT), lists
-- are JSON arrays, documents JSON text, listed keys COLLATE "C".
-- instances.state is Sealer output (it holds step outputs, which may be
-- tokens), never plaintext.

-- +goose Up
CREATE TABLE flow_versions (
    name        TEXT COLLATE "C" NOT NULL,
    version     INTEGER NOT NULL CHECK (version > 0),
    title       TEXT    NOT NULL DEFAULT '',
    source      BYTEA   NOT NULL,
    filename    TEXT    NOT NULL DEFAULT '',
    deployed_by TEXT    NOT NULL DEFAULT '',
    deployed_at BIGINT  NOT NULL,
    PRIMARY KEY (name, version)
);

-- id is a UUIDv7: ordering by id is ordering by start time.
CREATE TABLE instances (
    id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workflow     TEXT COLLATE "C" NOT NULL,
    version      INTEGER NOT NULL,
    status       TEXT    NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    started_by   TEXT COLLATE "C" NOT NULL,
    starter      TEXT    NOT NULL DEFAULT '{}',
    input        TEXT    NOT NULL DEFAULT '{}',
    vars         TEXT    NOT NULL DEFAULT '{}',
    output       TEXT,
    error        TEXT    NOT NULL DEFAULT '',
    current_step TEXT    NOT NULL DEFAULT '',
    seq          INTEGER NOT NULL DEFAULT 0,
    state        BYTEA   NOT NULL DEFAULT ''::bytea,
    owner        TEXT    NOT NULL DEFAULT '',
    lease_until  BIGINT  NOT NULL DEFAULT 0,
    started_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    ended_at     BIGINT,
    FOREIGN KEY (workflow, version) REFERENCES flow_versions (name, version)
);
CREATE INDEX instances_started_by ON instances (started_by, id);
CREATE INDEX instances_workflow ON instances (workflow, id);
-- The takeover sweep looks only at running instances.
CREATE INDEX instances_lease ON instances (lease_until) WHERE status = 'running';
CREATE INDEX instances_owner ON instances (owner) WHERE status = 'running';

CREATE TABLE instance_steps (
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    step_id     TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    status      TEXT    NOT NULL CHECK (status IN ('running', 'waiting', 'completed', 'failed', 'cancelled')),
    attempt     INTEGER NOT NULL DEFAULT 1,
    started_at  BIGINT  NOT NULL,
    ended_at    BIGINT,
    input       TEXT,
    output      TEXT,
    error       TEXT    NOT NULL DEFAULT '',
    PRIMARY KEY (instance_id, seq)
);

CREATE TABLE tasks (
    serial      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance_id TEXT COLLATE "C" NOT NULL REFERENCES instances (id) ON DELETE CASCADE,
    workflow    TEXT    NOT NULL,
    step_id     TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    type        TEXT    NOT NULL CHECK (type IN ('task', 'connect')),
    title       TEXT    NOT NULL,
    assignees   TEXT    NOT NULL DEFAULT '[]',
    actions     TEXT    NOT NULL DEFAULT '[]',
    form        TEXT,
    connect_url TEXT    NOT NULL DEFAULT '',
    status      TEXT    NOT NULL CHECK (status IN ('open', 'done', 'cancelled')),
    action      TEXT    NOT NULL DEFAULT '',
    acted_by    TEXT    NOT NULL DEFAULT '',
    data        TEXT,
    created_at  BIGINT  NOT NULL,
    acted_at    BIGINT
);
CREATE INDEX tasks_instance ON tasks (instance_id);
-- The worklist of everything (admin) walks one status in serial order.
CREATE INDEX tasks_status ON tasks (status, serial);

-- One row per task and assignee, so a worklist is an indexed lookup by
-- the caller's principal and roles.
CREATE TABLE task_assignees (
    assignee TEXT    NOT NULL,
    serial   BIGINT  NOT NULL REFERENCES tasks (serial) ON DELETE CASCADE,
    PRIMARY KEY (assignee, serial)
);

CREATE TABLE idempotency_keys (
    principal    TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    request_hash TEXT    NOT NULL,
    instance_id  TEXT    NOT NULL,
    created_at   BIGINT  NOT NULL,
    PRIMARY KEY (principal, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE task_assignees;
DROP TABLE tasks;
DROP TABLE instance_steps;
DROP TABLE instances;
DROP TABLE flow_versions;
