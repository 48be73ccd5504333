-- Named secrets flows read as ${{ secrets.NAME }} (docs/design.md, "Secrets in flows"):
-- set by administrators, never readable back through the APIs. Same
-- conventions as 00001: times are unix microseconds. sealed holds Sealer
-- output only, bound to the name, so a ciphertext copied under another
-- name does not open. Kept apart from the server's own secrets table
-- (signing keys, the key canary), which flows must never reach.

-- +goose Up
CREATE TABLE named_secrets (
    name       TEXT    NOT NULL PRIMARY KEY,
    sealed     BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE named_secrets;
