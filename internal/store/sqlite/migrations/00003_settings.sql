-- Settings an administrator changes while Flowgate runs: trusted issuers,
-- outbound OAuth servers and a small key/value table (API switches).
-- Same conventions as 00001: times are unix microseconds, lists are JSON
-- arrays, maps JSON objects.

-- +goose Up
-- issuer is UNIQUE: the validator picks an issuer's rules by the token's
-- iss, so two entries for one issuer would be ambiguous.
CREATE TABLE trusted_issuers (
    name          TEXT    NOT NULL PRIMARY KEY,
    issuer        TEXT    NOT NULL UNIQUE,
    metadata_url  TEXT    NOT NULL DEFAULT '',
    audience      TEXT    NOT NULL DEFAULT '',
    subject_claim TEXT    NOT NULL DEFAULT '',
    scope_claim   TEXT    NOT NULL DEFAULT '',
    roles_claim   TEXT    NOT NULL DEFAULT '',
    scope_map     TEXT    NOT NULL DEFAULT '{}',
    source        TEXT    NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- client_secret holds Sealer output only (empty: no secret), never a
-- plaintext.
CREATE TABLE oauth_servers (
    name                   TEXT    NOT NULL PRIMARY KEY,
    metadata_url           TEXT    NOT NULL DEFAULT '',
    authorization_endpoint TEXT    NOT NULL DEFAULT '',
    token_endpoint         TEXT    NOT NULL DEFAULT '',
    refresh_endpoint       TEXT    NOT NULL DEFAULT '',
    revocation_endpoint    TEXT    NOT NULL DEFAULT '',
    client_id              TEXT    NOT NULL DEFAULT '',
    client_secret          BLOB    NOT NULL DEFAULT x'',
    client_auth            TEXT    NOT NULL DEFAULT '',
    private_key_file       TEXT    NOT NULL DEFAULT '',
    key_id                 TEXT    NOT NULL DEFAULT '',
    scopes                 TEXT    NOT NULL DEFAULT '[]',
    params                 TEXT    NOT NULL DEFAULT '{}',
    use_prompt             INTEGER NOT NULL DEFAULT 1 CHECK (use_prompt IN (0, 1)),
    use_pkce               INTEGER NOT NULL DEFAULT 1 CHECK (use_pkce IN (0, 1)),
    redirect_uri           TEXT    NOT NULL DEFAULT '',
    source                 TEXT    NOT NULL DEFAULT 'api' CHECK (source IN ('config', 'api')),
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE settings (
    name       TEXT    NOT NULL PRIMARY KEY,
    value      TEXT    NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE settings;
DROP TABLE oauth_servers;
DROP TABLE trusted_issuers;
