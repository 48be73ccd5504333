package store

import (
	"context"
	"errors"
	"time"
)

// ErrReused is returned when a single-use value (an authorization code, a
// refresh token) is presented a second time. The caller must treat it as
// a sign of theft and revoke what the first use produced.
var ErrReused = errors.New("already used")

// AuthServer is what the built-in authorization server keeps. Access tokens
// are not stored: they are self-contained JWTs, and only their revocations
// are (RevokeAccessToken), so issuing one costs no write.
type AuthServer interface {
	SigningKeys
	AuthRequests
	AuthCodes
	RefreshTokens
	AccessTokenDenylist
	Sessions
	Consents
	AssertionJTIs
	DPoPJTIs

	// PruneAuth deletes every authorization-server row that expired
	// before now: requests, codes, refresh tokens, revocations, sessions
	// assertion jtis and DPoP proof jtis. It returns how many rows went.
	PruneAuth(ctx context.Context, now time.Time) (int64, error)
}

// SigningKey is one of the authorization server's token signing keys.
type SigningKey struct {
	// ID is the JWK kid.
	ID string
	// Purpose is "access" (access tokens) or "id" (ID tokens). Each
	// purpose has at most one active key.
	Purpose string
	// Alg is the JWS algorithm: ES256, RS256 or EdDSA.
	Alg string
	// Private is the PKCS #8 DER private key. The store seals it (the
	// associated data names the key id) and never writes it in clear.
	Private []byte
	// PublicJWK is the public key as a JWK JSON object.
	PublicJWK string
	CreatedAt time.Time
	// RetireAfter is zero for the active key of its purpose. A rotated key
	// keeps being published until RetireAfter, when every token it signed
	// has expired.
	RetireAfter time.Time
}

// SigningKeys stores signing keys.
type SigningKeys interface {
	// AddSigningKey inserts k as the active key of its purpose if that
	// purpose has none yet; ErrConflict when it has one (another server
	// won the race at first start).
	AddSigningKey(ctx context.Context, k SigningKey) error
	// RotateSigningKey retires the active key of k.Purpose at retireAfter
	// and makes k the active one, in one transaction.
	RotateSigningKey(ctx context.Context, k SigningKey, retireAfter time.Time) error
	// ListSigningKeys returns the keys still published at now (active, or
	// retiring after now), newest first.
	ListSigningKeys(ctx context.Context, now time.Time) ([]SigningKey, error)
}

// AuthRequest is an authorization request between /oauth2/authorize and
// the code it ends with, while the user signs in and consents.
type AuthRequest struct {
	ID                  string
	ClientID            string
	RedirectURI         string
	Scopes              []string
	State               string
	Nonce               string
	ResponseType        string
	CodeChallenge       string
	CodeChallengeMethod string
	Prompt              []string
	// MaxAge is the max_age parameter in seconds; -1 when absent.
	MaxAge    int64
	LoginHint string
	// ResponseMode is how the response goes back to the client: "" or
	// "query", "fragment", "form_post".
	ResponseMode string
	// Resource holds the resource indicators (RFC 8707) asked for.
	Resource []string
	// ACRValues are the acr_values asked for ("mfa": a second factor).
	ACRValues []string
	// DPoPJKT is the dpop_jkt parameter (RFC 9449 §10): the thumbprint of
	// the DPoP key the code must be exchanged with; "" when not asked.
	DPoPJKT string
	// User, AuthTime and AMR are set once the user has signed in.
	User     string
	AuthTime time.Time
	AMR      []string
	// Done is set once the user is authenticated for this request.
	Done      bool
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthRequests stores pending authorization requests.
type AuthRequests interface {
	// CreateAuthRequest stores a new request; ErrConflict on a taken id.
	CreateAuthRequest(ctx context.Context, r AuthRequest) error
	// GetAuthRequest reads a request; ErrNotFound when there is none or it
	// expired before now.
	GetAuthRequest(ctx context.Context, id string, now time.Time) (AuthRequest, error)
	// CompleteAuthRequest records who signed in for the request.
	CompleteAuthRequest(ctx context.Context, id, user string, authTime time.Time, amr []string) error
	// DeleteAuthRequest removes a request; deleting a missing one is not an
	// error.
	DeleteAuthRequest(ctx context.Context, id string) error
}

// AuthCode is an issued authorization code. Only a hash of the code is
// stored.
type AuthCode struct {
	Hash                string
	ClientID            string
	RedirectURI         string
	User                string
	Scopes              []string
	Nonce               string
	CodeChallenge       string
	CodeChallengeMethod string
	AuthTime            time.Time
	AMR                 []string
	// AccessJTI and FamilyID are chosen when the code is issued: the jti
	// of the access token and the refresh family its exchange creates, so
	// that a second use can revoke them without the exchange writing them.
	AccessJTI string
	FamilyID  string
	// Resource holds the resource indicators (RFC 8707) of the
	// authorization request; the exchange's tokens are for them.
	Resource []string
	// DPoPJKT binds the code to a DPoP key (the request's dpop_jkt): the
	// exchange must carry a proof made with it. "" when unbound.
	DPoPJKT   string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is zero until the code is exchanged.
	UsedAt time.Time
}

// AuthCodes stores authorization codes.
type AuthCodes interface {
	// CreateAuthCode stores a new code.
	CreateAuthCode(ctx context.Context, c AuthCode) error
	// ConsumeAuthCode marks the code used at now and returns it, atomically:
	// of concurrent callers exactly one succeeds. A code used before comes
	// back with ErrReused; a missing or expired one gives ErrNotFound.
	ConsumeAuthCode(ctx context.Context, hash string, now time.Time) (AuthCode, error)
}

// RefreshToken is an issued refresh token. Only the SHA-256 hash of the
// opaque token is stored.
type RefreshToken struct {
	Hash string
	// FamilyID groups every token descended from one authorization.
	FamilyID  string
	ClientID  string
	User      string
	Scopes    []string
	AuthTime  time.Time
	AMR       []string
	CreatedAt time.Time
	ExpiresAt time.Time
	// UsedAt is set when the token was rotated.
	UsedAt  time.Time
	Revoked bool
	// DPoPJKT is the thumbprint (RFC 7638) of the DPoP key the token is
	// bound to; empty when unbound. Rotation keeps it.
	DPoPJKT string
	// Resources are the resources (RFC 8707) the grant was for; nil for
	// a grant for Flowgate's own APIs. A refresh may ask for some of them
	// and gets them all when it names none. Rotation keeps them.
	Resources []string
}

// RefreshTokens stores refresh tokens.
type RefreshTokens interface {
	// CreateRefreshToken stores a new token.
	CreateRefreshToken(ctx context.Context, t RefreshToken) error
	// GetRefreshToken reads a token by hash; ErrNotFound when there is none.
	GetRefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// RotateRefreshToken marks the token oldHash (which must belong to
	// clientID, be unrevoked and unexpired at now) used and stores its
	// successor newHash with the same family, user, scopes, auth time, DPoP key and resources,
	// expiring at expires, in one transaction. It returns the successor.
	// When the old token was already used, its whole family is revoked and
	// the error is ErrReused; any other refusal is ErrNotFound.
	RotateRefreshToken(ctx context.Context, clientID, oldHash, newHash string, now, expires time.Time) (RefreshToken, error)
	// RevokeRefreshFamily revokes every token of a family.
	RevokeRefreshFamily(ctx context.Context, familyID string) error
	// RevokeUserRefreshTokens revokes every token of a user and returns
	// how many were live.
	RevokeUserRefreshTokens(ctx context.Context, user string) (int64, error)
}

// AccessTokenDenylist records revoked access tokens until they expire.
type AccessTokenDenylist interface {
	// RevokeAccessToken deny-lists a jti until expiresAt. Revoking twice is
	// not an error.
	RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error
	// AccessTokenRevoked reports whether jti is deny-listed.
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
}

// Session is a browser sign-in. Only a hash of the cookie value is stored.
type Session struct {
	IDHash    string
	User      string
	AuthTime  time.Time
	LastSeen  time.Time
	ExpiresAt time.Time
	AMR       []string
}

// Sessions stores browser sessions.
type Sessions interface {
	// CreateSession stores a new session.
	CreateSession(ctx context.Context, s Session) error
	// GetSession reads a session; ErrNotFound when there is none or it
	// expired before now.
	GetSession(ctx context.Context, idHash string, now time.Time) (Session, error)
	// TouchSession records activity, moving the idle expiry.
	TouchSession(ctx context.Context, idHash string, lastSeen, expiresAt time.Time) error
	// DeleteSession ends a session; a missing one is not an error.
	DeleteSession(ctx context.Context, idHash string) error
	// ListUserSessions lists a user's live sessions (expiring after now),
	// the most recently used first.
	ListUserSessions(ctx context.Context, user string, now time.Time) ([]Session, error)
	// DeleteUserSessions ends every session of a user.
	DeleteUserSessions(ctx context.Context, user string) error
}

// Consents stores the scopes each user granted each client.
type Consents interface {
	// GetConsent returns the scopes user granted client; none is not an
	// error.
	GetConsent(ctx context.Context, user, clientID string) ([]string, error)
	// PutConsent replaces the scopes user granted client.
	PutConsent(ctx context.Context, user, clientID string, scopes []string) error
}

// AssertionJTIs remembers the jti of every client assertion
// (private_key_jwt) until it expires, so none is accepted twice.
type AssertionJTIs interface {
	// UseAssertionJTI records jti for client until expiresAt;
	// ErrReused when it is already recorded and not yet expired at now.
	UseAssertionJTI(ctx context.Context, clientID, jti string, now, expiresAt time.Time) error
}

// DPoPJTIs remembers the jti of every DPoP proof accepted (RFC 9449 §11.1)
// until a proof with it could no longer be accepted, so that a proof is
// accepted once, by one server.
type DPoPJTIs interface {
	// UseDPoPJTI records jti for the key with thumbprint jkt until
	// expiresAt; ErrReused when it is already recorded and not yet expired
	// at now.
	UseDPoPJTI(ctx context.Context, jkt, jti string, now, expiresAt time.Time) error
}
