-- The Data API (docs/api.md) filters and orders instances by status and
-- by start time; an index keeps such a page an index range, not a scan of
-- every instance (the one on start time is 00018's). It ends in id, the
-- order of a page's rows.

-- +goose Up
CREATE INDEX instances_status ON instances (status, id);

-- What user provisioning (SCIM, docs/api.md) manages: a user it created
-- or took over (kind 'user', id the username), or a group (kind 'group',
-- id a UUID, name the role it stands for). external_id is the identity
-- provider's own id. A user's link goes when the user does.
CREATE TABLE scim_resources (
    kind        TEXT    NOT NULL CHECK (kind IN ('user', 'group')),
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    external_id TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (kind, id),
    UNIQUE (kind, name)
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE scim_resources;
DROP INDEX instances_status;
