package authserver

import (
	"context"

	"github.com/flowgate/flowgate/internal/store"
)

// Store is what the authorization server needs of the store: the users who
// sign in and the clients they sign in to (read only: changing them is
// package account's and admin's), its own protocol state (signing keys,
// authorization requests and codes, refresh tokens, the access-token
// deny-list, sessions, consents, client-assertion ids) and the sign-in
// throttle's failures, and
// the second factors (one-time codes and passkeys).
type Store interface {
	GetUser(ctx context.Context, username string) (store.User, error)
	ClientReader
	store.SigningKeys
	store.AuthRequests
	store.AuthCodes
	store.RefreshTokens
	store.AccessTokenDenylist
	store.Sessions
	store.Consents
	store.AssertionJTIs
	store.DPoPJTIs
	store.SignInFailures
	store.SecondFactors
	store.Passkeys
	// Backend names the database ("sqlite" serves one server): what a
	// server may remember of it (revocationMemory).
	Backend() string
}

// ClientReader reads a client by id; store.ErrNotFound when there is none.
type ClientReader interface {
	GetClient(ctx context.Context, id string) (store.Client, error)
	// ListClients pages through clients (for the CORS origins of browser
	// clients).
	ListClients(ctx context.Context, p store.Page) ([]store.Client, string, error)
}
