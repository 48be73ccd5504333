-- The Data API (docs/api.md) filters and orders instances by status and
-- by start time; an index keeps such a page an index range, not a scan of
-- every instance (the one on start time is 00018's). It ends in id, the
-- order of a page's rows.

-- +goose Up
CREATE INDEX instances_status ON instances (status, id);

-- What user provisioning (SCIM, docs/api.md) manages: a user it created
-- or took over (kind 'user', id the username), or a group (kind 'group',
-- id a UUID, name the role it stands for). external_id is the identity
-- provider's own id.
CREATE TABLE scim_resources (
    kind        TEXT COLLATE "C" NOT NULL CHECK (kind IN ('user', 'group')),
    id          TEXT COLLATE "C" NOT NULL,
    name        TEXT COLLATE "C" NOT NULL,
    external_id TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (kind, id),
    UNIQUE (kind, name)
);

-- +goose Down
DROP TABLE scim_resources;
DROP INDEX instances_status;
