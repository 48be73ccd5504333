-- Second factors of local accounts (docs/security.md, "Second factor").
-- user_totp holds one TOTP secret per user, sealed with the key ring
-- (secret is the AES-GCM box, never the plain secret); confirmed is false
-- while the user has not yet typed a code from it. last_step is the last
-- RFC 6238 time step accepted, so a code is taken once. Recovery codes are
-- stored as keyed hashes only; used_at is 0 until the code is spent.
-- Times are unix microseconds (BIGINT), as in 00001.

-- +goose Up
CREATE TABLE user_totp (
    username   TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES users (username) ON DELETE CASCADE,
    secret     BYTEA   NOT NULL,
    confirmed  BOOLEAN NOT NULL DEFAULT FALSE,
    last_step  BIGINT  NOT NULL DEFAULT 0,
    created_at BIGINT  NOT NULL
);

CREATE TABLE user_recovery_codes (
    username  TEXT COLLATE "C" NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    code_hash TEXT COLLATE "C" NOT NULL,
    used_at   BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (username, code_hash)
);

-- The acr_values of an authorization request ("mfa" asks for a second
-- factor), as a JSON list like its other lists.
ALTER TABLE auth_requests ADD COLUMN acr_values TEXT NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE auth_requests DROP COLUMN acr_values;
DROP TABLE user_recovery_codes;
DROP TABLE user_totp;
