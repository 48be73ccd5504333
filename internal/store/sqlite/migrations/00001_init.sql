-- Flowgate schema, SQLite. Times are unix microseconds (see package
-- sqlstore); string lists are JSON arrays. STRICT tables make SQLite
-- reject a value of the wrong type instead of storing it.

-- +goose Up
CREATE TABLE users (
    username       TEXT    NOT NULL PRIMARY KEY,
    password_hash  TEXT    NOT NULL DEFAULT '',
    email          TEXT    NOT NULL DEFAULT '',
    email_verified INTEGER NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    name           TEXT    NOT NULL DEFAULT '',
    roles          TEXT    NOT NULL DEFAULT '[]',
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE clients (
    id                         TEXT    NOT NULL PRIMARY KEY,
    name                       TEXT    NOT NULL DEFAULT '',
    secret_hash                TEXT    NOT NULL DEFAULT '',
    redirect_uris              TEXT    NOT NULL DEFAULT '[]',
    post_logout_redirect_uris  TEXT    NOT NULL DEFAULT '[]',
    grant_types                TEXT    NOT NULL DEFAULT '[]',
    scopes                     TEXT    NOT NULL DEFAULT '[]',
    token_endpoint_auth_method TEXT    NOT NULL DEFAULT '',
    jwks                       TEXT    NOT NULL DEFAULT '',
    jwks_uri                   TEXT    NOT NULL DEFAULT '',
    public_key_pem             TEXT    NOT NULL DEFAULT '',
    consent                    TEXT    NOT NULL DEFAULT '',
    dpop                       INTEGER NOT NULL DEFAULT 0 CHECK (dpop IN (0, 1)),
    roles                      TEXT    NOT NULL DEFAULT '[]',
    created_at                 INTEGER NOT NULL,
    updated_at                 INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- AUTOINCREMENT so that ids are never reused, even after old rows are
-- pruned: ids must keep increasing in insertion order.
CREATE TABLE audit_events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    ts          INTEGER NOT NULL,
    event       TEXT    NOT NULL DEFAULT '',
    username    TEXT    NOT NULL DEFAULT '',
    client_id   TEXT    NOT NULL DEFAULT '',
    remote_addr TEXT    NOT NULL DEFAULT '',
    user_agent  TEXT    NOT NULL DEFAULT '',
    outcome     TEXT    NOT NULL DEFAULT '',
    detail      TEXT    NOT NULL DEFAULT ''
) STRICT;

-- Newest-first listing, alone or filtered by user or event.
CREATE INDEX audit_events_ts ON audit_events (ts, id);
CREATE INDEX audit_events_user_ts ON audit_events (username, ts, id);
CREATE INDEX audit_events_event_ts ON audit_events (event, ts, id);

-- sealed holds Sealer output only, never a plaintext.
CREATE TABLE secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    sealed     BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE secrets;
DROP TABLE audit_events;
DROP TABLE clients;
DROP TABLE users;
