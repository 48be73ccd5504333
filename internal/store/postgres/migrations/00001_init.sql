-- Flowgate schema, PostgreSQL. Times are unix microseconds (BIGINT), as
-- on SQLite, so that one set of queries serves both (see package
-- sqlstore); string lists are JSON arrays in TEXT. Listed keys use
-- COLLATE "C" so pages come out in byte order, as on SQLite.

-- +goose Up
CREATE TABLE users (
    username       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    password_hash  TEXT    NOT NULL DEFAULT '',
    email          TEXT    NOT NULL DEFAULT '',
    email_verified BOOLEAN NOT NULL DEFAULT FALSE,
    name           TEXT    NOT NULL DEFAULT '',
    roles          TEXT    NOT NULL DEFAULT '[]',
    disabled       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL
);

CREATE TABLE clients (
    id                         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
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
    dpop                       BOOLEAN NOT NULL DEFAULT FALSE,
    roles                      TEXT    NOT NULL DEFAULT '[]',
    created_at                 BIGINT  NOT NULL,
    updated_at                 BIGINT  NOT NULL
);

CREATE TABLE audit_events (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts          BIGINT NOT NULL,
    event       TEXT   NOT NULL DEFAULT '',
    username    TEXT   NOT NULL DEFAULT '',
    client_id   TEXT   NOT NULL DEFAULT '',
    remote_addr TEXT   NOT NULL DEFAULT '',
    user_agent  TEXT   NOT NULL DEFAULT '',
    outcome     TEXT   NOT NULL DEFAULT '',
    detail      TEXT   NOT NULL DEFAULT ''
);

-- Newest-first listing, alone or filtered by user or event.
CREATE INDEX audit_events_ts ON audit_events (ts, id);
CREATE INDEX audit_events_user_ts ON audit_events (username, ts, id);
CREATE INDEX audit_events_event_ts ON audit_events (event, ts, id);

-- sealed holds Sealer output only, never a plaintext.
CREATE TABLE secrets (
    name       TEXT   NOT NULL PRIMARY KEY,
    sealed     BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE secrets;
DROP TABLE audit_events;
DROP TABLE clients;
DROP TABLE users;
