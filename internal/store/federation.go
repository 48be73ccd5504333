package store

import (
	"context"
	"time"
)

// FederationLink ties a person at an upstream identity provider (the
// identity_providers entry and the subject it knows them by) to a Flowgate
// user (docs/configuration.md, federation).
type FederationLink struct {
	Provider string // the identity_providers entry's name
	Subject  string // the provider's stable id of the person (sub, or oid for Entra)
	Username string // the Flowgate user
	// Email is the address the provider gave at the last sign-in, for
	// people reading the link; never used to find it.
	Email string
	// Roles are the roles the provider's claims granted at the last
	// sign-in, so the next one can take back those no longer granted
	// without touching roles given another way.
	Roles       []string
	CreatedAt   time.Time // zero: now
	LastLoginAt time.Time // zero: now
}

// FederationState is a sign-in sent to an upstream provider and not back
// yet: what /login/callback needs to finish it. Only the state
// parameter's hash is stored; the PKCE verifier and nonce are sealed.
type FederationState struct {
	StateHash   string // hex SHA-256 of the state parameter
	BrowserHash string // hash of the browser-binding cookie; the callback must carry the same
	Provider    string // the identity_providers entry
	Nonce       string // plain in memory only: sealed in the database
	Verifier    string // PKCE verifier, plain in memory only: sealed in the database
	// Request is the pending authorization request the sign-in is for,
	// or "" when ReturnTo (a path on this server) is.
	Request   string
	ReturnTo  string
	ExpiresAt time.Time
	CreatedAt time.Time // zero: now
}

// Federation stores federation links and pending federated sign-ins.
type Federation interface {
	// CreateFederationState stores s; ErrConflict when its hash exists.
	CreateFederationState(ctx context.Context, s FederationState) error
	// TakeFederationState deletes and returns the state with stateHash
	// atomically (one use, even across servers), when it has not expired
	// at now and was started by the browser with browserHash; otherwise
	// ErrNotFound, and a state presented by another browser is left alone.
	TakeFederationState(ctx context.Context, stateHash, browserHash string, now time.Time) (FederationState, error)
	// DeleteExpiredFederationStates removes states expired at now and
	// returns how many.
	DeleteExpiredFederationStates(ctx context.Context, now time.Time) (int, error)

	// GetFederationLink reads the link of a provider's subject;
	// ErrNotFound when there is none.
	GetFederationLink(ctx context.Context, provider, subject string) (FederationLink, error)
	// CreateFederationLink adds a link to an existing user; ErrConflict
	// when the subject is linked already, ErrNotFound when the user does
	// not exist.
	CreateFederationLink(ctx context.Context, l FederationLink) error
	// CreateFederatedUser creates a user and its first link in one
	// transaction: both or neither. ErrConflict when the username is
	// taken or the subject is linked already.
	CreateFederatedUser(ctx context.Context, u User, l FederationLink) error
	// UpdateFederationLink records a sign-in: Email, Roles and
	// LastLoginAt; ErrNotFound when the link is gone.
	UpdateFederationLink(ctx context.Context, l FederationLink) error
	// ListFederationLinks lists the links of username, or of every user
	// when username is "", ordered by provider, username and subject.
	ListFederationLinks(ctx context.Context, username string) ([]FederationLink, error)
	// DeleteFederationLink removes a link; ErrNotFound when there is none.
	DeleteFederationLink(ctx context.Context, provider, subject string) error
	// UsersByEmail lists the users whose email equals email, ignoring
	// case, ordered by username.
	UsersByEmail(ctx context.Context, email string) ([]User, error)
}
