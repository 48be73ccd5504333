// Package store defines Flowgate's persistence contract. Every piece of state
// lives behind the Store interface so that several flowgate processes on one
// PostgreSQL database behave as one service, and so that the embedded SQLite
// default and PostgreSQL are interchangeable. Backends live in sub-packages
// (store/sqlite, store/postgres) and must all pass the shared conformance
// suite in store/storetest.
package store

import (
	"context"
	"errors"
	"time"
)

// ErrNotFound is returned when the named object does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when creating an object whose key is already taken.
var ErrConflict = errors.New("already exists")

// ErrNoDatabase is returned by a backend opened with Options.MustExist when
// the database does not exist yet: a SQLite file that is not there, or a
// database without Flowgate's schema (never migrated).
var ErrNoDatabase = errors.New("does not exist yet")

// Sealer encrypts secrets before they reach the database. The associated
// data binds a ciphertext to the place it is stored, so a ciphertext copied
// into another row does not open.
type Sealer interface {
	Seal(plaintext, associatedData []byte) ([]byte, error)
	Open(ciphertext, associatedData []byte) ([]byte, error)
}

// Options are what every backend needs besides its DSN.
type Options struct {
	// Sealer encrypts secret columns. Required.
	Sealer Sealer
	// MustExist refuses to create a database: opening one that does not
	// exist or was never migrated fails with ErrNoDatabase, and nothing is
	// created. The admin commands set it, so that one run in the wrong
	// folder says so instead of starting an empty database there.
	MustExist bool
	// NoMigrate opens the database as it is, without applying pending
	// migrations: for a command that must change nothing. Use it with
	// MustExist.
	NoMigrate bool
}

// Store is the whole persistence contract. It grows with the product; each
// part is a small interface so that domain packages can ask for only what
// they use.
type Store interface {
	Users
	Clients
	AuditLog
	Secrets
	NamedSecrets
	AuthServer
	Settings
	Flows
	Connections
	ConnectStates
	SignInFailures
	SecondFactors
	Passkeys
	Dashboard
	Federation
	DataReader
	SCIMResources
	Mails

	// Ping reports whether the database answers and its schema is current.
	Ping(ctx context.Context) error
	// Stats describes the connection pool, for metrics.
	Stats() PoolStats
	// Backend names the implementation: "sqlite" or "postgres".
	Backend() string
	// Close releases the database.
	Close() error
}

// PoolStats is a backend-neutral view of the connection pool.
type PoolStats struct {
	MaxOpen      int
	Open         int
	InUse        int
	Idle         int
	WaitCount    int64
	WaitDuration time.Duration
}

// Page asks for one page of a list. Cursor is opaque and comes from a
// previous page's NextCursor; an empty Cursor starts at the beginning.
type Page struct {
	Limit  int
	Cursor string
}

// DefaultLimit and MaxLimit bound list pages.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// Normalize applies the default and maximum page size.
func (p Page) Normalize() Page {
	if p.Limit <= 0 {
		p.Limit = DefaultLimit
	}
	if p.Limit > MaxLimit {
		p.Limit = MaxLimit
	}
	return p
}

// EachPage calls list page by page, the largest pages allowed, until the
// last one, so a caller walks every object without holding them all.
func EachPage[T any](ctx context.Context, list func(context.Context, Page) ([]T, string, error), each func(T)) error {
	page := Page{Limit: MaxLimit}
	for {
		items, next, err := list(ctx, page)
		if err != nil {
			return err
		}
		for _, it := range items {
			each(it)
		}
		if next == "" {
			return nil
		}
		page.Cursor = next
	}
}

// User is a person who signs in to Flowgate.
type User struct {
	Username string
	// PasswordHash is an argon2id PHC string; empty means the user cannot
	// sign in with a password.
	PasswordHash  string
	Email         string
	EmailVerified bool
	Name          string
	Roles         []string
	Disabled      bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Users stores people.
type Users interface {
	// CreateUser adds a user; ErrConflict when the username is taken.
	CreateUser(ctx context.Context, u User) error
	// UpdateUser replaces every field of an existing user but CreatedAt;
	// ErrNotFound when there is none.
	UpdateUser(ctx context.Context, u User) error
	// GetUser reads a user by username; ErrNotFound when there is none.
	GetUser(ctx context.Context, username string) (User, error)
	// ListUsers pages through users ordered by username.
	ListUsers(ctx context.Context, p Page) (users []User, nextCursor string, err error)
	// CountUsers counts every user, disabled ones included.
	CountUsers(ctx context.Context) (int, error)
}

// Client is an application registered with the authorization server.
type Client struct {
	ID   string
	Name string
	// SecretHash is a keyed hash of the client secret (see package
	// credential); empty for public clients and private_key_jwt clients.
	SecretHash             string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string
	// TokenEndpointAuthMethod is client_secret_basic, client_secret_post,
	// private_key_jwt or none.
	TokenEndpointAuthMethod string
	// JWKS, JWKSURI and PublicKeyPEM are the private_key_jwt key sources;
	// at most one is set.
	JWKS         string
	JWKSURI      string
	PublicKeyPEM string
	// Consent is "user" (ask each user once) or "admin" (pre-approved).
	Consent string
	DPoP    bool
	Roles   []string
	// AllowedOrigins are the browser origins (scheme://host[:port]) that
	// get CORS answers for this client.
	AllowedOrigins []string
	// Audiences are the resources (RFC 8707) besides the public URL this
	// client may ask tokens for.
	Audiences []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Clients stores OAuth clients.
type Clients interface {
	// CreateClient adds a client; ErrConflict when the id is taken.
	CreateClient(ctx context.Context, c Client) error
	// UpdateClient replaces every field of an existing client but CreatedAt;
	// ErrNotFound when there is none.
	UpdateClient(ctx context.Context, c Client) error
	// GetClient reads a client by id; ErrNotFound when there is none.
	GetClient(ctx context.Context, id string) (Client, error)
	// ListClients pages through clients ordered by id.
	ListClients(ctx context.Context, p Page) (clients []Client, nextCursor string, err error)
	// DeleteClient removes a client; ErrNotFound when there is none.
	DeleteClient(ctx context.Context, id string) error
}

// AuditEvent is one line of the authentication audit log. It never holds a
// secret or a token.
type AuditEvent struct {
	// ID is assigned by the store, increasing in insertion order.
	ID         int64
	Time       time.Time
	Event      string
	User       string
	Client     string
	RemoteAddr string
	UserAgent  string
	// Outcome is "success" or "failure".
	Outcome string
	// Detail says why, for failures; free text without secrets.
	Detail string
}

// AuditFilter selects audit events. Zero fields match everything.
type AuditFilter struct {
	Since time.Time
	Until time.Time
	User  string
	// Client is the client's id.
	Client string
	Event  string
	// Outcome is "success" or "failure".
	Outcome string
	Page    Page
}

// AuditLog stores audit events.
type AuditLog interface {
	// AppendAudit writes events in one transaction, so that a caller can
	// group many events into one commit.
	AppendAudit(ctx context.Context, events ...AuditEvent) error
	// ListAudit pages through matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) (events []AuditEvent, nextCursor string, err error)
}

// Secrets is a small encrypted key-value store for server-wide secrets.
// Values are sealed with Options.Sealer before they are written.
type Secrets interface {
	// PutSecret creates or replaces a named secret.
	PutSecret(ctx context.Context, name string, value []byte) error
	// GetSecret reads a named secret; ErrNotFound when there is none.
	GetSecret(ctx context.Context, name string) ([]byte, error)
}
