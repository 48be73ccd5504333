package store

import (
	"context"
	"time"
)

// Connection states. A connection is ConnectionOK while its refresh token
// works; the provider answering invalid_grant makes it
// ConnectionReconnectRequired until the user logs in again, so that steps
// fail fast instead of asking the provider again and again.
const (
	ConnectionOK                = "ok"
	ConnectionReconnectRequired = "reconnect_required"
)

// Connection is one principal's tokens for one outbound OAuth server (the
// vault, docs/flows.md). AccessToken and RefreshToken are plain text in memory
// only: the store seals each with Options.Sealer, bound to the principal,
// the server and the column, before it reaches the database. The type has
// no JSON tags on purpose: it is never an API shape.
type Connection struct {
	Principal string
	Server    string

	AccessToken  string
	RefreshToken string
	TokenType    string
	// Expiry is when AccessToken expires; zero means unknown (callers
	// give it a default lifetime rather than "never").
	Expiry time.Time
	// IssuedAt is when AccessToken was obtained; with Expiry it gives the
	// token's lifetime, which bounds the refresh-ahead margin.
	IssuedAt time.Time
	// Scopes are the scopes the provider granted; nil when unknown.
	Scopes []string
	// InstanceURL is where the API of the account that signed in lives,
	// when the provider's token answer said so (Salesforce's
	// instance_url, connectors.Token.InstanceURL); "" otherwise. Not a
	// secret: stored in plain text, and listed.
	InstanceURL string

	// Status is ConnectionOK or ConnectionReconnectRequired; empty is
	// written as ConnectionOK.
	Status string
	// LastError describes the last failed refresh, without secrets.
	LastError string
	// Failures counts refreshes that failed in a row; RetryAt is when the
	// next one may be tried (zero: now). Both reset on success.
	Failures int
	RetryAt  time.Time

	CreatedAt time.Time
	UpdatedAt time.Time
}

// Connections stores the vault's connections, keyed by (principal,
// server). Deleting the OAuth server deletes its connections.
type Connections interface {
	// PutConnection creates or replaces a connection (after a user
	// login). CreatedAt is kept when the row exists; ErrNotFound when the
	// OAuth server does not exist.
	PutConnection(ctx context.Context, c Connection) error
	// GetConnection reads a connection, its tokens opened; ErrNotFound
	// when there is none.
	GetConnection(ctx context.Context, principal, server string) (Connection, error)
	// ListConnections lists a principal's connections ordered by server.
	// The token columns are not read (AccessToken and RefreshToken are
	// empty), so listing never decrypts, or risks exposing, a token.
	ListConnections(ctx context.Context, principal string) ([]Connection, error)
	// DeleteConnection removes a connection; ErrNotFound when there is
	// none.
	DeleteConnection(ctx context.Context, principal, server string) error
	// RefreshConnection locks the connection's row (SELECT … FOR UPDATE
	// on PostgreSQL; the single writer's BEGIN IMMEDIATE on SQLite), calls
	// fn with the row as it is under the lock, and writes what fn returns
	// in the same transaction. When fn returns an error nothing is
	// written and the error is returned as is. Two callers, in one process
	// or on two servers sharing a database, therefore run fn one after the
	// other, the second seeing what the first wrote: a rotated refresh
	// token is never used twice. ErrNotFound when there is no connection.
	RefreshConnection(ctx context.Context, principal, server string, fn func(current Connection) (Connection, error)) (Connection, error)
}
