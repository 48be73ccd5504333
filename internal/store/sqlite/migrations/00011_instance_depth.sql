-- How deep an instance is in a chain of instances started by instances
-- (an http step calling Flowgate's own API, later a flow step): 1 for an
-- instance started by a person or a client. Fixed at creation; the engine
-- refuses a start deeper than its limit, so a flow that starts itself
-- cannot multiply without bound.

-- +goose Up
ALTER TABLE instances ADD COLUMN depth INTEGER NOT NULL DEFAULT 1;

-- +goose Down
ALTER TABLE instances DROP COLUMN depth;
