-- Second factors of local accounts (docs/security.md, "Second factor").
-- user_totp holds one TOTP secret per user, sealed with the key ring
-- (secret is the AES-GCM box, never the plain secret); confirmed is 0
-- while the user has not yet typed a code from it. last_step is the last
-- RFC 6238 time step accepted, so a code is taken once. Recovery codes are
-- stored as keyed hashes only; used_at is 0 until the code is spent.
-- Times are unix microseconds, as in 00001.

-- +goose Up
CREATE TABLE user_totp (
    username   TEXT    NOT NULL PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    secret     BLOB    NOT NULL,
    confirmed  INTEGER NOT NULL DEFAULT 0 CHECK (confirmed IN (0, 1)),
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE user_recovery_codes (
    username  TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    code_hash TEXT    NOT NULL,
    used_at   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, code_hash)
) STRICT, WITHOUT ROWID;

-- The acr_values of an authorization request ("mfa" asks for a second
-- factor), as a JSON list like its other lists.
ALTER TABLE auth_requests ADD COLUMN acr_values TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE auth_requests DROP COLUMN acr_values;
DROP TABLE user_recovery_codes;
DROP TABLE user_totp;
