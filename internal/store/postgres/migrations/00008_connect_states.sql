-- Pending user logins of oauth_user_login steps (docs/flows.md): one row per
-- /connect redirect to an OAuth provider, taken exactly once by
-- /oauth-callback. Same conventions as 00001: times are unix microseconds
-- (BIGINT), lists are JSON arrays. state_hash is the hex SHA-256 of the
-- state parameter, never the parameter itself; verifier holds Sealer
-- output only (empty: none), bound to state_hash. No foreign keys: the
-- instance may be gone by the time the provider calls back, and a state
-- lives minutes.

-- +goose Up
CREATE TABLE connect_states (
    state_hash   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    instance_id  TEXT    NOT NULL,
    step_id      TEXT    NOT NULL,
    seq          INTEGER NOT NULL DEFAULT 0,
    task_serial  BIGINT  NOT NULL DEFAULT 0,
    principal    TEXT    NOT NULL,
    session_hash TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    verifier     BYTEA   NOT NULL DEFAULT ''::bytea,
    scopes       TEXT    NOT NULL DEFAULT '[]',
    expires_at   BIGINT  NOT NULL,
    created_at   BIGINT  NOT NULL
);

-- Pruning deletes by expiry.
CREATE INDEX connect_states_expires_at ON connect_states (expires_at);

-- +goose Down
DROP TABLE connect_states;
