-- The outbound token vault (docs/flows.md): one connection per (principal,
-- OAuth server). Same conventions as 00001: times are unix microseconds
-- (BIGINT, 0: not set), lists are JSON arrays, listed keys COLLATE "C".
-- access_token and refresh_token hold Sealer output only (empty: none),
-- bound to principal, server and column, never a plaintext. A connection
-- dies with its OAuth server: tokens for a server that no longer exists
-- must not linger.

-- +goose Up
CREATE TABLE connections (
    principal     TEXT COLLATE "C" NOT NULL,
    server        TEXT COLLATE "C" NOT NULL REFERENCES oauth_servers (name) ON DELETE CASCADE,
    access_token  BYTEA   NOT NULL DEFAULT ''::bytea,
    refresh_token BYTEA   NOT NULL DEFAULT ''::bytea,
    token_type    TEXT    NOT NULL DEFAULT '',
    expires_at    BIGINT  NOT NULL DEFAULT 0,
    issued_at     BIGINT  NOT NULL DEFAULT 0,
    scopes        TEXT    NOT NULL DEFAULT '[]',
    status        TEXT    NOT NULL DEFAULT 'ok' CHECK (status IN ('ok', 'reconnect_required')),
    last_error    TEXT    NOT NULL DEFAULT '',
    failures      INTEGER NOT NULL DEFAULT 0,
    retry_at      BIGINT  NOT NULL DEFAULT 0,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL,
    PRIMARY KEY (principal, server)
);

-- Deleting an OAuth server cascades by server.
CREATE INDEX connections_server ON connections (server);

-- +goose Down
DROP TABLE connections;
