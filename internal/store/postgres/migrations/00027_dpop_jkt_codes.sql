-- dpop_jkt (RFC 9449 §10): the DPoP key an authorization request binds
-- its code to; '' when it binds none.

-- +goose Up
ALTER TABLE auth_requests ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';
ALTER TABLE auth_codes ADD COLUMN dpop_jkt TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE auth_codes DROP COLUMN dpop_jkt;
ALTER TABLE auth_requests DROP COLUMN dpop_jkt;
