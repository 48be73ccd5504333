package api

import (
	"errors"
	"math"
	"net"
	"net/http"
	"strconv"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
)

// basicScopes are what an HTTP Basic caller is granted: every API scope
// but admin. A password typed into a legacy integration is not a way into
// the admin API.
func basicScopes() []string {
	return []string{"workflows.read", "workflows.start", "tasks", "flows.invoke"}
}

// Authenticate puts the caller's Principal in the request context and
// calls next. It takes a bearer token (the validator's Middleware), or,
// while apis.basic_auth is on, HTTP Basic with a Flowgate user's username
// and password (docs/api.md): the principal is then user:NAME with the user's
// roles and every API scope except admin. Basic failures are rate-limited
// like the login page (package throttle). While the switch is off,
// Basic gets the same 401 Bearer challenge as no credentials at all.
func (a *API) Authenticate(next http.Handler) http.Handler {
	bearer := a.v.Middleware(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		username, password, ok := r.BasicAuth()
		if !ok || !a.current(r.Context()).BasicAuth {
			bearer.ServeHTTP(w, r)
			return
		}
		if a.auditor != nil && a.auditor.Healthy() != nil {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusServiceUnavailable, resource.CodeTemporarilyUnavailable, "sign-in is unavailable: the audit log cannot be written", "")
			return
		}
		addr := remoteHost(r)
		attempt, err := a.limits.Begin(r.Context(), username, addr)
		if err != nil {
			a.log.ErrorContext(r.Context(), "basic auth: reading the sign-in throttle", "err", err)
			writeError(w, http.StatusServiceUnavailable, resource.CodeTemporarilyUnavailable, "the password cannot be checked right now", "")
			return
		}
		defer attempt.End()
		if d := attempt.Wait; d > 0 {
			a.auditFailure(r, username, "HTTP Basic: too many failed sign-ins, rate limited")
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(d.Seconds()))))
			writeError(w, http.StatusTooManyRequests, "too_many_requests",
				"too many failed sign-ins; try again in "+strconv.Itoa(int(math.Ceil(d.Seconds())))+" s", "")
			return
		}
		u, err := a.st.GetUser(r.Context(), username)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.log.ErrorContext(r.Context(), "basic auth: user lookup failed", "err", err)
			writeError(w, http.StatusServiceUnavailable, resource.CodeTemporarilyUnavailable, "the password cannot be checked right now", "")
			return
		}
		// Verify runs even for an unknown user (against a decoy hash), so
		// the answer takes as long whether or not the account exists.
		if !a.hasher.Verify(password, u.PasswordHash) || u.Disabled {
			if err := attempt.Fail(r.Context()); err != nil {
				a.log.ErrorContext(r.Context(), "basic auth: recording a failed sign-in", "err", err)
			}
			// The audit log says why; the caller is told nothing that
			// would reveal whether the account exists.
			why := "HTTP Basic: wrong password"
			switch {
			case err != nil:
				why = "HTTP Basic: unknown user"
			case u.Disabled:
				why = "HTTP Basic: user disabled"
			}
			a.auditFailure(r, username, why)
			a.log.InfoContext(r.Context(), "basic auth refused", "user", username, "remote", addr)
			w.Header().Add("WWW-Authenticate", `Basic realm="flowgate", charset="UTF-8"`)
			w.Header().Add("WWW-Authenticate", `Bearer realm="flowgate"`)
			writeError(w, http.StatusUnauthorized, resource.CodeUnauthorized,
				"wrong username or password, or the account is disabled", "")
			return
		}
		// Succeed ends the attempt: the pair is not held while the API
		// call runs.
		if err := attempt.Succeed(r.Context()); err != nil {
			a.log.ErrorContext(r.Context(), "basic auth: clearing failed sign-ins", "err", err)
		}
		p := &resource.Principal{
			ID:         principal.User(u.Username),
			Kind:       resource.KindUser,
			Subject:    u.Username,
			IssuerName: resource.OwnIssuerName,
			Roles:      u.Roles,
			Scopes:     basicScopes(),
		}
		next.ServeHTTP(w, r.WithContext(resource.WithPrincipal(r.Context(), p)))
	})
}

// remoteHost is the client address without its port, so that a client's
// connections share one limiter. Behind a proxy it is the proxy's.
func remoteHost(r *http.Request) string {
	if h, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return h
	}
	return r.RemoteAddr
}

// auditFailure records a refused HTTP Basic sign-in. Successful ones are
// not recorded: with Basic every API call is a sign-in, and the audit log
// would become a request log.
func (a *API) auditFailure(r *http.Request, username, why string) {
	if a.auditor == nil {
		return
	}
	remote, agent := audit.FromRequest(r)
	a.auditor.Record(r.Context(), store.AuditEvent{Event: audit.LoginFailure, User: username,
		RemoteAddr: remote, UserAgent: agent, Outcome: audit.OutcomeFailure, Detail: why})
}
