-- The sign-in throttle's state (docs/design.md, "Sign-in
-- throttle"): one row per (account, address) pair with failed sign-ins.
-- Times are unix microseconds (BIGINT), as in 00001. account is the
-- username as typed (unknown ones too, so that guessing names is
-- throttled alike); addr is the client address without port. A row is
-- written per failed attempt only, deleted by the next successful sign-in
-- of the pair, and pruned once expires_at has passed, so the table holds
-- at most the pairs that failed within the throttle's memory.

-- +goose Up
CREATE TABLE sign_in_failures (
    addr           TEXT COLLATE "C" NOT NULL,
    account        TEXT COLLATE "C" NOT NULL,
    failures       INTEGER NOT NULL,
    last_failed_at BIGINT  NOT NULL,
    expires_at     BIGINT  NOT NULL,
    PRIMARY KEY (addr, account)
);

-- The per-address count of accounts failed on within a window.
CREATE INDEX sign_in_failures_addr_last ON sign_in_failures (addr, last_failed_at);
-- Pruning deletes by expiry.
CREATE INDEX sign_in_failures_expires_at ON sign_in_failures (expires_at);

-- +goose Down
DROP TABLE sign_in_failures;
