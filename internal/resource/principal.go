package resource

import (
	"context"
	"slices"
	"time"
)

// Kind says what sort of caller a Principal is.
type Kind string

// The kinds of callers.
const (
	KindUser     Kind = "user"     // a Flowgate user: a token of Flowgate's own, or a trusted issuer's for a linked subject
	KindClient   Kind = "client"   // a Flowgate client acting for itself (client credentials)
	KindExternal Kind = "external" // anyone with a token from a trusted external issuer
)

// OwnIssuerName is the IssuerName of principals whose token Flowgate itself issued, and the name
// of Flowgate's own issuer in Status.
const OwnIssuerName = "flowgate"

// Principal is the caller as Flowgate understands a validated token.
type Principal struct {
	// ID is how permissions name the caller: "user:alice", "client:portal" or
	// "<issuer name>:<subject>" (for example "entra:8d2f…").
	ID         string
	Kind       Kind
	Subject    string    // the subject the ID was built from
	Issuer     string    // the token's iss
	IssuerName string    // OwnIssuerName or the trusted_issuers entry's name
	ClientID   string    // the OAuth client the token was issued to, when the token says
	Roles      []string  // from the user or client record, or from the issuer's roles claim
	Scopes     []string  // granted scopes, external ones already mapped to Flowgate's names
	Audience   []string  // the token's aud
	ExpiresAt  time.Time // the token's exp, UTC
	TokenID    string    // the token's jti, when present
}

// HasScope reports whether the token granted scope.
func (p *Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

// HasRole reports whether the caller holds role.
func (p *Principal) HasRole(role string) bool { return slices.Contains(p.Roles, role) }

// AdminRole is the role, and AdminScope the scope, that together make an administrator.
const (
	AdminRole  = "admin"
	AdminScope = "admin"
)

// CanAdminister reports whether the caller may act as an administrator: beyond its own
// instances and tasks, and on the admin API. It takes both the admin role (the right) and a
// token granting the admin scope (the grant): a token the user obtained for something else
// does not carry the user's administrative powers.
func (p *Principal) CanAdminister() bool {
	return p.ID != "" && p.HasRole(AdminRole) && p.HasScope(AdminScope)
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx carrying p. Middleware does this for validated tokens;
// other authentication paths (such as legacy basic auth) can use it to look the same to handlers.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal Middleware put in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}
