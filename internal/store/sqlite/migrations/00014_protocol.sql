-- DPoP (RFC 9449), browser clients and resource indicators (RFC 8707).
--
-- dpop_jtis: the jti of every DPoP proof accepted, per key thumbprint,
-- until the proof could no longer be accepted anyway (its iat window), so
-- a proof replayed to any server of a cluster is refused.
-- refresh_tokens.dpop_jkt: the key a public client's refresh token is
-- bound to ('' when unbound); rotation carries it to the successor.
-- clients.allowed_origins / audiences: CORS origins of browser clients and
-- the extra resources a client may ask tokens for (JSON lists).
-- auth_requests.response_mode / resource, auth_codes.resource: how the
-- authorization response is delivered, and the resources asked for.
-- oauth_servers.dpop: send DPoP proofs to that server; its key, one per
-- server shared by every Flowgate server, sealed, in oauth_server_dpop_keys
-- (created on first use, kept while the server entry exists).

-- +goose Up
CREATE TABLE dpop_jtis (
    jkt        TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (jkt, jti)
) STRICT, WITHOUT ROWID;
CREATE INDEX dpop_jtis_expires ON dpop_jtis (expires_at);
ALTER TABLE refresh_tokens ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE clients ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
ALTER TABLE clients ADD COLUMN audiences TEXT NOT NULL DEFAULT '[]';
ALTER TABLE auth_requests ADD COLUMN response_mode TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_requests ADD COLUMN resource TEXT NOT NULL DEFAULT '[]';
ALTER TABLE auth_codes ADD COLUMN resource TEXT NOT NULL DEFAULT '[]';
ALTER TABLE oauth_servers ADD COLUMN dpop INTEGER NOT NULL DEFAULT 0 CHECK (dpop IN (0, 1));
CREATE TABLE oauth_server_dpop_keys (
    server     TEXT    NOT NULL PRIMARY KEY REFERENCES oauth_servers (name) ON DELETE CASCADE,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE oauth_server_dpop_keys;
ALTER TABLE oauth_servers DROP COLUMN dpop;
ALTER TABLE auth_codes DROP COLUMN resource;
ALTER TABLE auth_requests DROP COLUMN resource;
ALTER TABLE auth_requests DROP COLUMN response_mode;
ALTER TABLE clients DROP COLUMN audiences;
ALTER TABLE clients DROP COLUMN allowed_origins;
ALTER TABLE refresh_tokens DROP COLUMN dpop_jkt;
DROP TABLE dpop_jtis;
