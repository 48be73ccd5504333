-- The branch of its parent's parallel step ("STEP/NAME") or the item of
-- its foreach step ("STEP/INDEX") an instance runs; '' for any other.
-- Listings and the dashboard leave such instances out: they are part of
-- their parent's step. Fixed at creation.

-- +goose Up
ALTER TABLE instances ADD COLUMN branch TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE instances DROP COLUMN branch;
