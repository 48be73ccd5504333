// Package audit records the authentication audit log of the specification
// (§3, auth.audit_log): every sign-in and its outcome, logout, consent,
// token issue, refresh and revocation, refresh-token and code reuse, and
// client authentication failures, each with time, user, client, remote
// address, user agent, outcome and a short detail. An event never holds a
// secret or a token: callers put names and reasons in it, not credentials.
//
// Events go through a Writer, which batches them into group commits so that
// auditing costs the hot paths (the token endpoint) a channel send, not a
// database transaction.
package audit

import (
	"context"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flowgate/flowgate/internal/store"
)

// Event names. They are part of the product contract: `flowgate audit
// --event` and the admin API filter on them, and log pipelines match them,
// so they are never renamed.
const (
	// LoginSuccess is a user signing in, by password or through an
	// upstream identity provider.
	LoginSuccess = "login.success"
	// LoginFailure is a failed sign-in; Detail says why (unknown user,
	// bad password, user disabled, throttled, upstream error).
	LoginFailure = "login.failure"
	// Logout is the end of a session, from the logout page or RP-initiated
	// logout.
	Logout = "logout"
	// ConsentGranted is a user approving the scopes a client asked for.
	ConsentGranted = "consent.granted"
	// ConsentDenied is a user refusing them.
	ConsentDenied = "consent.denied"
	// TokenIssued is the token endpoint issuing tokens for a grant;
	// Detail names the grant type.
	TokenIssued = "token.issued"
	// TokenRefreshed is a refresh token being redeemed and rotated.
	TokenRefreshed = "token.refreshed"
	// TokenRevoked is a token revoked through /oauth2/revoke or by an
	// administrator.
	TokenRevoked = "token.revoked"
	// RefreshTokenReused is an already rotated refresh token presented
	// again, which revokes its whole family.
	RefreshTokenReused = "refresh_token.reused"
	// ClientAuthFailure is a client failing to authenticate at the token,
	// revocation or introspection endpoint; Detail says how.
	ClientAuthFailure = "client_auth.failure"
	// CodeReused is an authorization code presented a second time, which
	// revokes the tokens issued from it.
	CodeReused = "code.reused"
	// AuthorizeFailure is an authorization request refused before sign-in
	// (bad PKCE, scope not allowed, prompt=none without a session…).
	AuthorizeFailure = "authorize.failure"
	// FederationLoginSuccess is a user signing in through an upstream
	// identity provider; Detail names the provider and how the user was
	// found (link, email, created).
	FederationLoginSuccess = "federation.login.success"
	// FederationLoginFailure is a sign-in through an upstream identity
	// provider that did not work out; Detail names the provider and the
	// reason (invalid_state, access_denied, invalid_id_token, no_account…).
	FederationLoginFailure = "federation.login.failure"
	// UserDisabled is a user account being disabled by an administrator.
	UserDisabled = "user.disabled"
	// UserEnabled is a disabled user account being enabled again.
	UserEnabled = "user.enabled"
)

// Change events: what an administrator (or a task's assignee, or an
// instance's starter) changed, with who did it (see Change). Detail names
// the object changed and, for updates, the fields that changed, never
// their values when they are secrets.
const (
	// UserCreated is a user account being created.
	UserCreated = "user.created"
	// UserUpdated is a user's profile, roles or password being changed;
	// Detail lists the fields.
	UserUpdated = "user.updated"
	// UserSessionsEnded is an administrator signing a user out everywhere
	// (sessions ended, refresh tokens revoked) without disabling them.
	UserSessionsEnded = "user.sessions_ended"
	// UserMFAEnrolled is a user adding a second factor (a one-time-code
	// app or a passkey) to their account.
	UserMFAEnrolled = "user.mfa_enrolled"
	// UserMFAReset is an administrator removing a user's second factors,
	// so that the user enrols again.
	UserMFAReset = "user.mfa_reset"
	// UserPasskeyRemoved is a user removing one of their passkeys.
	UserPasskeyRemoved = "user.passkey_removed"
	// ClientCreated is an OAuth client being registered.
	ClientCreated = "client.created"
	// ClientUpdated is a client's registration being changed.
	ClientUpdated = "client.updated"
	// ClientRemoved is a client being removed.
	ClientRemoved = "client.removed"
	// ClientSecretRotated is a client's secret being replaced.
	ClientSecretRotated = "client.secret_rotated"
	// IssuerCreated is a trusted issuer being added.
	IssuerCreated = "issuer.created"
	// IssuerUpdated is a trusted issuer being changed.
	IssuerUpdated = "issuer.updated"
	// IssuerRemoved is a trusted issuer being removed.
	IssuerRemoved = "issuer.removed"
	// OAuthServerCreated is an outbound OAuth server being added.
	OAuthServerCreated = "oauth_server.created"
	// OAuthServerUpdated is an OAuth server being changed.
	OAuthServerUpdated = "oauth_server.updated"
	// OAuthServerRemoved is an OAuth server being removed.
	OAuthServerRemoved = "oauth_server.removed"
	// IdentityProviderCreated is a federation identity provider being
	// added.
	IdentityProviderCreated = "identity_provider.created"
	// IdentityProviderUpdated is an identity provider being changed.
	IdentityProviderUpdated = "identity_provider.updated"
	// IdentityProviderRemoved is an identity provider being removed.
	IdentityProviderRemoved = "identity_provider.removed"
	// FederationLinked is a user being linked to a person at an upstream
	// identity provider.
	FederationLinked = "federation.linked"
	// FederationUnlinked is such a link being removed.
	FederationUnlinked = "federation.unlinked"
	// APISwitchChanged is an API switch turned on or off; one event per
	// switch that changed, Detail "name=on|off".
	APISwitchChanged = "api_switch.changed"
	// FlowDeployed is a new version of a flow being deployed (a deploy of
	// unchanged source makes no version and no event).
	FlowDeployed = "flow.deployed"
	// KeysRotated is a new signing key being made the active one.
	KeysRotated = "keys.rotated"
	// TaskAction is a task being acted on; Detail names the task, the
	// action and the instance.
	TaskAction = "task.action"
	// InstanceCancelled is an instance being cancelled; a refused cancel
	// has outcome failure.
	InstanceCancelled = "instance.cancelled"
	// SecretSet is a named secret being set (its value is never recorded).
	SecretSet = "secret.set"
	// SecretRemoved is a named secret being removed.
	SecretRemoved = "secret.removed"
	// WebhookReceived is a webhook request: success names the instance it
	// started; a refused one (bad or replayed signature, bad payload) has
	// outcome failure and says why. User is webhook:FLOW/NAME.
	WebhookReceived = "webhook.received"
)

// Outcomes.
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
)

// Events lists every event name this package defines, for validation and
// help texts. It returns a new slice on each call, so callers may keep it.
func Events() []string {
	return []string{
		LoginSuccess, LoginFailure, Logout, ConsentGranted, ConsentDenied,
		TokenIssued, TokenRefreshed, TokenRevoked, RefreshTokenReused,
		ClientAuthFailure, CodeReused, AuthorizeFailure, FederationLoginSuccess, FederationLoginFailure, UserDisabled, UserEnabled,
		UserCreated, UserUpdated, UserMFAEnrolled, UserMFAReset, UserPasskeyRemoved, ClientCreated, ClientUpdated, ClientRemoved, ClientSecretRotated,
		IssuerCreated, IssuerUpdated, IssuerRemoved, OAuthServerCreated, OAuthServerUpdated, OAuthServerRemoved,
		IdentityProviderCreated, IdentityProviderUpdated, IdentityProviderRemoved, FederationLinked, FederationUnlinked, APISwitchChanged,
		FlowDeployed, KeysRotated, TaskAction, InstanceCancelled, SecretSet, SecretRemoved,
		WebhookReceived,
	}
}

// IsEvent reports whether name is one of Events.
func IsEvent(name string) bool { return slices.Contains(Events(), name) }

// defaultOutcome is the outcome an event has when the caller left it empty:
// most events can only go one way.
func defaultOutcome(event string) string {
	switch event {
	case LoginFailure, ConsentDenied, RefreshTokenReused, ClientAuthFailure, CodeReused, AuthorizeFailure, FederationLoginFailure:
		return OutcomeFailure
	case LoginSuccess, FederationLoginSuccess, Logout, ConsentGranted, TokenIssued, TokenRefreshed, TokenRevoked,
		UserDisabled, UserEnabled:
		return OutcomeSuccess
	}
	// A change is recorded once it is made, unless the caller says it
	// was refused.
	if IsEvent(event) {
		return OutcomeSuccess
	}
	return ""
}

// Recorder is where events go: a Writer, or a test's stand-in.
type Recorder interface {
	Record(ctx context.Context, e store.AuditEvent)
}

// Change is one change event. The domain operations (account, clients,
// issuers, OAuth servers, switches, deploys, key rotation, task actions,
// cancels) record it themselves, so every way of making the change (the
// admin API, a command, a page) is audited alike.
type Change struct {
	Event string
	// By is who made the change, as a principal: "user:alice",
	// "client:ops", "<issuer>:<subject>" for an external caller,
	// "cli:<OS user>" for a command, "config" for the configuration file
	// applied at start. It is written to the event's user field.
	By string
	// Detail names the object ("client portal") and what changed.
	Detail string
	// Outcome is OutcomeSuccess unless set (a refused change).
	Outcome string
}

// Record sends c to rec (nothing when rec is nil), with the remote address,
// user agent and client of the request ctx carries (WithOrigin).
func (c Change) Record(ctx context.Context, rec Recorder) {
	if rec == nil {
		return
	}
	o, _ := ctx.Value(originKey{}).(Origin)
	rec.Record(ctx, store.AuditEvent{
		Event: c.Event, User: c.By, Client: o.Client, RemoteAddr: o.RemoteAddr, UserAgent: o.UserAgent,
		Outcome: c.Outcome, Detail: c.Detail,
	})
}

// Origin is where a change came from, when it came over HTTP.
type Origin struct {
	RemoteAddr, UserAgent string
	// Client is the OAuth client the caller's token was issued to.
	Client string
}

type originKey struct{}

// WithOrigin returns ctx carrying r's remote address and user agent (as
// FromRequest reads them) and client, for the changes made while serving
// r. The request is the natural carrier: the domain operations that record
// a change need not know about HTTP.
func WithOrigin(ctx context.Context, r *http.Request, client string) context.Context {
	addr, ua := FromRequest(r)
	return context.WithValue(ctx, originKey{}, Origin{RemoteAddr: addr, UserAgent: ua, Client: client})
}

// Field length limits, in bytes. User agents and details are free text an
// attacker controls; without a bound one request could store kilobytes. The
// other fields are names and addresses and are shorter still.
const (
	MaxTextLen = 512
	MaxNameLen = 256
)

// Sanitize returns e ready to store: Time filled with now when zero and
// always in UTC; every field stripped of control and bidirectional-override
// characters (so a user agent cannot forge lines or reorder text in a
// terminal), invalid UTF-8 replaced (PostgreSQL would refuse the whole batch
// otherwise), and truncated to MaxTextLen (user agent, detail) or MaxNameLen
// (the others). An empty Outcome of a known event gets that event's outcome.
func Sanitize(e store.AuditEvent) store.AuditEvent {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	} else {
		e.Time = e.Time.UTC()
	}
	e.Event = clean(e.Event, MaxNameLen)
	if e.Outcome == "" {
		e.Outcome = defaultOutcome(e.Event)
	}
	e.Outcome = clean(e.Outcome, MaxNameLen)
	e.User = clean(e.User, MaxNameLen)
	e.Client = clean(e.Client, MaxNameLen)
	e.RemoteAddr = clean(e.RemoteAddr, MaxNameLen)
	e.UserAgent = clean(e.UserAgent, MaxTextLen)
	e.Detail = clean(e.Detail, MaxTextLen)
	return e
}

// ellipsis marks a truncated value, so a reader knows there was more.
const ellipsis = "…"

// clean is Sanitize for one string. The common case (short printable
// ASCII) returns s as is without allocating, because Record runs on every
// token request.
func clean(s string, max int) string {
	if len(s) <= max {
		plain := true
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c > 0x7e {
				plain = false
				break
			}
		}
		if plain {
			return s
		}
	}
	var b strings.Builder
	b.Grow(min(len(s), max+utf8.UTFMax))
	for _, r := range s { // invalid bytes arrive as utf8.RuneError, written as U+FFFD
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\v' || r == '\f' ||
			r == '\u0085' || r == '\u2028' || r == '\u2029':
			// Line and column breaks become a space so words stay apart.
			r = ' '
		case unicode.IsControl(r), unicode.Is(unicode.Bidi_Control, r):
			continue
		}
		b.WriteRune(r)
		if b.Len() > max {
			break // enough to know it must be cut
		}
	}
	out := b.String()
	if len(out) <= max {
		return out
	}
	cut := max - len(ellipsis)
	for cut > 0 && !utf8.RuneStart(out[cut]) {
		cut--
	}
	return out[:cut] + ellipsis
}

// FromRequest returns the remote address (without port) and the user agent
// of r, sanitized, for an event.
//
// The address is r.RemoteAddr, the peer of the TCP connection. Headers such
// as X-Forwarded-For and Forwarded are deliberately not read: any client can
// send them, so trusting them by default would let an attacker write any
// address into the audit log and hide where an attack comes from. Behind a
// reverse proxy listed in server.trusted_proxies, the server's middleware
// has already rewritten r.RemoteAddr from that proxy's X-Forwarded-For
// (internal/server), so FromRequest reports the client's address.
func FromRequest(r *http.Request) (remoteAddr, userAgent string) {
	remoteAddr = r.RemoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	return clean(remoteAddr, MaxNameLen), clean(r.UserAgent(), MaxTextLen)
}
