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
	"net"
	"net/http"
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
	// UserDisabled is a user account being disabled by an administrator.
	UserDisabled = "user.disabled"
	// UserEnabled is a disabled user account being enabled again.
	UserEnabled = "user.enabled"
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
		ClientAuthFailure, CodeReused, AuthorizeFailure, UserDisabled, UserEnabled,
	}
}

// defaultOutcome is the outcome an event has when the caller left it empty:
// most events can only go one way.
func defaultOutcome(event string) string {
	switch event {
	case LoginFailure, ConsentDenied, RefreshTokenReused, ClientAuthFailure, CodeReused:
		return OutcomeFailure
	case LoginSuccess, Logout, ConsentGranted, TokenIssued, TokenRefreshed, TokenRevoked,
		UserDisabled, UserEnabled:
		return OutcomeSuccess
	}
	return ""
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
// address into the audit log and hide where an attack comes from. A
// deployment behind a reverse proxy should rewrite r.RemoteAddr from the
// proxy's header in a middleware that checks the connection comes from that
// proxy; FromRequest then reports the rewritten address.
func FromRequest(r *http.Request) (remoteAddr, userAgent string) {
	remoteAddr = r.RemoteAddr
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		remoteAddr = host
	}
	return clean(remoteAddr, MaxNameLen), clean(r.UserAgent(), MaxTextLen)
}
