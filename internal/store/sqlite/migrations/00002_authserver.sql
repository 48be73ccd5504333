-- The built-in authorization server (docs/security.md). Secrets never appear in
-- clear: codes, refresh tokens and session ids are stored as hashes,
-- private keys sealed. Access tokens are not stored at all; only the jtis
-- of revoked ones, until they expire.

-- +goose Up
CREATE TABLE signing_keys (
    id           TEXT    NOT NULL PRIMARY KEY,
    purpose      TEXT    NOT NULL,
    alg          TEXT    NOT NULL,
    sealed       BLOB    NOT NULL,
    public_jwk   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    retire_after INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;

-- At most one active key (retire_after = 0) per purpose: the first start
-- of two servers at once cannot create two.
CREATE UNIQUE INDEX signing_keys_active ON signing_keys (purpose) WHERE retire_after = 0;

CREATE TABLE auth_requests (
    id                    TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    scopes                TEXT    NOT NULL DEFAULT '[]',
    state                 TEXT    NOT NULL DEFAULT '',
    nonce                 TEXT    NOT NULL DEFAULT '',
    response_type         TEXT    NOT NULL DEFAULT '',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    prompt                TEXT    NOT NULL DEFAULT '[]',
    max_age               INTEGER NOT NULL DEFAULT -1,
    login_hint            TEXT    NOT NULL DEFAULT '',
    username              TEXT    NOT NULL DEFAULT '',
    auth_time             INTEGER NOT NULL DEFAULT 0,
    amr                   TEXT    NOT NULL DEFAULT '[]',
    done                  INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX auth_requests_expires ON auth_requests (expires_at);

-- used_at = 0 until the code is exchanged; consuming is one conditional
-- UPDATE, so of two concurrent exchanges only one wins.
CREATE TABLE auth_codes (
    hash                  TEXT    NOT NULL PRIMARY KEY,
    client_id             TEXT    NOT NULL,
    redirect_uri          TEXT    NOT NULL,
    username              TEXT    NOT NULL,
    scopes                TEXT    NOT NULL DEFAULT '[]',
    nonce                 TEXT    NOT NULL DEFAULT '',
    code_challenge        TEXT    NOT NULL DEFAULT '',
    code_challenge_method TEXT    NOT NULL DEFAULT '',
    auth_time             INTEGER NOT NULL,
    amr                   TEXT    NOT NULL DEFAULT '[]',
    access_jti            TEXT    NOT NULL,
    family_id             TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL,
    used_at               INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
CREATE INDEX auth_codes_expires ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    hash       TEXT    NOT NULL PRIMARY KEY,
    family_id  TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    username   TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    auth_time  INTEGER NOT NULL,
    amr        TEXT    NOT NULL DEFAULT '[]',
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER NOT NULL DEFAULT 0,
    revoked    INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1))
) STRICT, WITHOUT ROWID;
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (username);
CREATE INDEX refresh_tokens_expires ON refresh_tokens (expires_at);

CREATE TABLE revoked_access_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX revoked_access_tokens_expires ON revoked_access_tokens (expires_at);

CREATE TABLE sessions (
    id_hash    TEXT    NOT NULL PRIMARY KEY,
    username   TEXT    NOT NULL,
    auth_time  INTEGER NOT NULL,
    last_seen  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    amr        TEXT    NOT NULL DEFAULT '[]'
) STRICT, WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (username);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE consents (
    username   TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    scopes     TEXT    NOT NULL DEFAULT '[]',
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (username, client_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE assertion_jtis (
    client_id  TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (client_id, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX assertion_jtis_expires ON assertion_jtis (expires_at);

-- +goose Down
DROP TABLE assertion_jtis;
DROP TABLE consents;
DROP TABLE sessions;
DROP TABLE revoked_access_tokens;
DROP TABLE refresh_tokens;
DROP TABLE auth_codes;
DROP TABLE auth_requests;
DROP TABLE signing_keys;
