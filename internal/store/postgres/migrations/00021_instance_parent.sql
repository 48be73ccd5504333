-- The instance whose flow step started this one; '' for an instance a
-- person, a client, a schedule or a webhook started. Fixed at creation.
-- The index lists an instance's children (the API's children, and the
-- cancel that cascades to them).

-- +goose Up
ALTER TABLE instances ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
CREATE INDEX instances_parent ON instances (parent_id) WHERE parent_id <> '';

-- +goose Down
DROP INDEX instances_parent;
ALTER TABLE instances DROP COLUMN parent_id;
