-- The resources (RFC 8707) a refresh token's grant was for, as a JSON
-- list; '' for a grant for Flowgate's own APIs. A refresh keeps them.

-- +goose Up
ALTER TABLE refresh_tokens ADD COLUMN resources TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE refresh_tokens DROP COLUMN resources;
