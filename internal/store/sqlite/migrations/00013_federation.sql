-- Federation (docs/configuration.md, identity_providers): links between a
-- person at an upstream identity provider and a Flowgate user, and the
-- sign-ins sent to a provider and not back yet. Same conventions as 00001:
-- times are unix microseconds, lists are JSON arrays. A state row keeps
-- only the hex SHA-256 of the state parameter and of the browser-binding
-- cookie; nonce and verifier hold Sealer output bound to state_hash.

-- +goose Up
CREATE TABLE federation_links (
    provider      TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    username      TEXT    NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    email         TEXT    NOT NULL DEFAULT '',
    roles         TEXT    NOT NULL DEFAULT '[]',
    created_at    INTEGER NOT NULL,
    last_login_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
) STRICT, WITHOUT ROWID;

-- A user's links, for /account and /admin/users.
CREATE INDEX federation_links_username ON federation_links (username);

CREATE TABLE federation_states (
    state_hash   TEXT    NOT NULL PRIMARY KEY,
    browser_hash TEXT    NOT NULL,
    provider     TEXT    NOT NULL,
    nonce        BLOB    NOT NULL,
    verifier     BLOB    NOT NULL,
    request      TEXT    NOT NULL DEFAULT '',
    return_to    TEXT    NOT NULL DEFAULT '',
    expires_at   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX federation_states_expires_at ON federation_states (expires_at);

-- Linking by email compares addresses ignoring case.
CREATE INDEX users_email_lower ON users (lower(email));

-- +goose Down
DROP INDEX users_email_lower;
DROP TABLE federation_states;
DROP TABLE federation_links;
