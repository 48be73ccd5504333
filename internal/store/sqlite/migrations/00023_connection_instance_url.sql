-- A provider may name, in its token answer, where the API of the account
-- that signed in lives (Salesforce's instance_url, docs/flows.md). It is
-- kept with the connection so that a later use of the connection, without
-- a new token answer, still gives it. It is not a secret: plain text, ''
-- when the provider sent none.

-- +goose Up
ALTER TABLE connections ADD COLUMN instance_url TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE connections DROP COLUMN instance_url;
