-- Passkeys (WebAuthn credentials) of local accounts (docs/security.md,
-- "Second factor"). A passkey's public key is public, so it is kept as
-- is; credential is the library's JSON record of the credential (flags,
-- transports, authenticator) from which it checks a sign-in. sign_count
-- is the authenticator's counter, updated at each use.
-- passkey_challenges holds the state of a WebAuthn ceremony between its
-- start and its end; it is taken (deleted) once. Times are unix
-- microseconds (BIGINT), as in 00001.

-- +goose Up
CREATE TABLE user_passkeys (
    id           BYTEA  NOT NULL PRIMARY KEY,
    username     TEXT COLLATE "C" NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    public_key   BYTEA  NOT NULL,
    sign_count   BIGINT NOT NULL DEFAULT 0,
    credential   TEXT   NOT NULL,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX user_passkeys_username ON user_passkeys (username);

CREATE TABLE passkey_challenges (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    data       BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE passkey_challenges;
DROP TABLE user_passkeys;
