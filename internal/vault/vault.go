// Package vault keeps the tokens flows use on behalf of users: one
// connection per (principal, OAuth server), sealed in the store (SPEC §5).
// It hands out valid access tokens, refreshing them ahead of expiry, and
// gets this right where token vaults often do not:
//
//   - One refresh at a time per connection: a single-flight in the
//     process, and the store's row lock (store.Connections.RefreshConnection)
//     across servers sharing a database, with the row re-read under the
//     lock. A provider that rotates refresh tokens never sees one twice.
//   - The new refresh token is written (in the locked transaction) before
//     the access token is handed out; without a new one the old is kept.
//   - invalid_grant marks the connection reconnect_required, and later
//     calls fail fast without asking the provider; other failures back off.
//
// Client-credentials tokens (ServiceToken) are cached in memory, not in
// the store: they can be fetched again at any time without a user, so
// persisting them would only add writes and sealed tokens at rest to save
// one token request per server after a restart.
//
// No type here carries JSON tags or is meant to be serialised; the HTTP
// layer builds its own shapes from List, which never holds a token.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
)

// Store is what the vault needs from the store.
type Store interface {
	store.Connections
	store.OAuthServers
}

// Defaults.
const (
	// DefaultMargin is how long before expiry a token is refreshed, so a
	// token handed out does not die on its way to the API.
	DefaultMargin = 5 * time.Minute
	// DefaultRefreshTimeout bounds one call to the provider. On SQLite the
	// refresh holds the single writer while it runs, so it must be short.
	DefaultRefreshTimeout = 15 * time.Second
	// clientTTL is how long a built connectors.Client (its discovery cache
	// and key) is reused before the server entry is read again, so an
	// entry changed by the admin API is picked up within it.
	clientTTL = 30 * time.Second
	// Backoff after a failed refresh: doubling from minBackoff, capped.
	minBackoff = 2 * time.Second
	maxBackoff = 5 * time.Minute
)

// ErrNotConnected is returned when the principal has no connection to the
// server: the user must log in (oauth_user_login).
var ErrNotConnected = errors.New("not connected")

// ErrReconnectRequired is returned while a connection is marked
// reconnect_required: the provider refused its refresh token, and only a
// new login (Save) helps. Steps report status -1 with this reason.
var ErrReconnectRequired = errors.New("reconnect required")

// BackoffError is returned while a connection backs off after a failed
// refresh and its access token has expired. It wraps the last error's
// description (no secrets).
type BackoffError struct {
	RetryAt   time.Time
	LastError string
}

func (e *BackoffError) Error() string {
	return fmt.Sprintf("refresh backing off until %s after: %s", e.RetryAt.Format(time.RFC3339), e.LastError)
}

// Options tune a Vault; the zero value is fine.
type Options struct {
	// Margin is how long before expiry a token is refreshed;
	// DefaultMargin when zero. It is bounded by half the token's lifetime,
	// so a provider issuing 2-minute tokens does not get a refresh on
	// every call.
	Margin time.Duration
	// RefreshTimeout bounds each provider call; DefaultRefreshTimeout
	// when zero.
	RefreshTimeout time.Duration
	// HTTPClient talks to providers; nil means connectors' default.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger records failed refreshes (never tokens); nil means
	// slog.Default().
	Logger *slog.Logger
}

// Vault is safe for concurrent use. Several Vaults (servers) may share
// one PostgreSQL database.
type Vault struct {
	st      Store
	opts    Options
	now     func() time.Time
	log     *slog.Logger
	flights singleflight.Group

	mu      sync.Mutex
	clients map[string]cachedClient
	service map[string]connectors.Token // key: server + "\x00" + scopes
}

type cachedClient struct {
	c       *connectors.Client
	updated time.Time
	read    time.Time
}

// New builds a Vault over st.
func New(st Store, opts Options) *Vault {
	if opts.Margin <= 0 {
		opts.Margin = DefaultMargin
	}
	if opts.RefreshTimeout <= 0 {
		opts.RefreshTimeout = DefaultRefreshTimeout
	}
	v := &Vault{st: st, opts: opts, now: opts.Now, log: opts.Logger,
		clients: map[string]cachedClient{}, service: map[string]connectors.Token{}}
	if v.now == nil {
		v.now = time.Now
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	return v
}

// Client returns the connectors.Client of an OAuth server, reusing one
// built in the last 30 s (or since the entry last changed). The steps use
// it for logins and client credentials. A missing server is
// store.ErrNotFound.
func (v *Vault) Client(ctx context.Context, server string) (*connectors.Client, error) {
	now := v.now()
	v.mu.Lock()
	cc, ok := v.clients[server]
	v.mu.Unlock()
	if ok && now.Sub(cc.read) < clientTTL {
		return cc.c, nil
	}
	srv, err := v.st.GetOAuthServer(ctx, server)
	if err != nil {
		return nil, err
	}
	if ok && srv.UpdatedAt.Equal(cc.updated) {
		cc.read = now
	} else {
		c, err := connectors.New(srv, connectors.Options{HTTPClient: v.opts.HTTPClient, Now: v.opts.Now})
		if err != nil {
			return nil, err
		}
		cc = cachedClient{c: c, updated: srv.UpdatedAt, read: now}
	}
	v.mu.Lock()
	v.clients[server] = cc
	v.mu.Unlock()
	return cc.c, nil
}

// AccessToken is what Token hands out: no refresh token, which stays in
// the vault.
type AccessToken struct {
	Token     string
	TokenType string
	Expiry    time.Time
	Scopes    []string
}

func accessOf(c store.Connection) AccessToken {
	return AccessToken{Token: c.AccessToken, TokenType: c.TokenType, Expiry: c.Expiry, Scopes: c.Scopes}
}

// fresh reports whether c's access token is good for now: not within the
// margin of its expiry, the margin bounded by half the token's lifetime.
func (v *Vault) fresh(c store.Connection, now time.Time) bool {
	if c.AccessToken == "" || c.Expiry.IsZero() {
		return false
	}
	margin := v.opts.Margin
	if !c.IssuedAt.IsZero() {
		if half := c.Expiry.Sub(c.IssuedAt) / 2; half < margin {
			margin = half
		}
	}
	return now.Before(c.Expiry.Add(-margin))
}

// usable reports whether c's access token has not expired yet, margin or
// not: what a failed early refresh can still hand out.
func usable(c store.Connection, now time.Time) bool {
	return c.AccessToken != "" && now.Before(c.Expiry)
}

// Token returns a valid access token of principal at server, refreshing it
// first when it is within the margin of its expiry. Errors:
// ErrNotConnected, ErrReconnectRequired (fast, without asking the
// provider), *BackoffError, or the provider's *connectors.Error.
func (v *Vault) Token(ctx context.Context, principal, server string) (AccessToken, error) {
	c, err := v.st.GetConnection(ctx, principal, server)
	if errors.Is(err, store.ErrNotFound) {
		return AccessToken{}, fmt.Errorf("%s at %s: %w", principal, server, ErrNotConnected)
	}
	if err != nil {
		return AccessToken{}, err
	}
	now := v.now()
	if c.Status == store.ConnectionReconnectRequired {
		return AccessToken{}, fmt.Errorf("%s at %s: %w: %s", principal, server, ErrReconnectRequired, c.LastError)
	}
	if v.fresh(c, now) {
		return accessOf(c), nil
	}
	if now.Before(c.RetryAt) {
		if usable(c, now) {
			return accessOf(c), nil
		}
		return AccessToken{}, &BackoffError{RetryAt: c.RetryAt, LastError: c.LastError}
	}
	return v.refresh(ctx, principal, server, false)
}

// ForceRefresh refreshes even a fresh-looking token, for an http step
// whose request came back 401. Concurrent callers share one refresh; a
// caller arriving after another refreshed gets that result unless the
// token is older than the refresh it is reacting to... which it cannot
// tell, so it refreshes again: a 401 is rare enough.
func (v *Vault) ForceRefresh(ctx context.Context, principal, server string) (AccessToken, error) {
	return v.refresh(ctx, principal, server, true)
}

type refreshResult struct {
	tok AccessToken
	err error
}

// refresh runs one refresh per connection in this process; the others
// wait and share its result.
func (v *Vault) refresh(ctx context.Context, principal, server string, force bool) (AccessToken, error) {
	key := principal + "\x00" + server
	if force {
		key += "\x00force"
	}
	ch := v.flights.DoChan(key, func() (any, error) {
		// The flight outlives a caller that gives up: others wait on it,
		// and a refresh abandoned half-way could lose a rotated token.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.opts.RefreshTimeout+5*time.Second)
		defer cancel()
		tok, err := v.refreshLocked(fctx, principal, server, force)
		return refreshResult{tok, err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(refreshResult)
		return res.tok, res.err
	case <-ctx.Done():
		return AccessToken{}, ctx.Err()
	}
}

// refreshLocked refreshes under the row lock. Whatever fn decides is
// written in the lock's transaction: new tokens before they are handed
// out, a reconnect_required mark, or a backoff.
func (v *Vault) refreshLocked(ctx context.Context, principal, server string, force bool) (AccessToken, error) {
	client, err := v.Client(ctx, server)
	if err != nil {
		return AccessToken{}, err
	}
	var (
		out    AccessToken
		outErr error
	)
	errUnchanged := errors.New("unchanged")
	_, err = v.st.RefreshConnection(ctx, principal, server, func(cur store.Connection) (store.Connection, error) {
		now := v.now()
		switch {
		case cur.Status == store.ConnectionReconnectRequired:
			outErr = fmt.Errorf("%s at %s: %w: %s", principal, server, ErrReconnectRequired, cur.LastError)
			return cur, errUnchanged
		case !force && v.fresh(cur, now):
			// Another server (or flight) refreshed while we waited for
			// the lock: use its token, do not refresh again.
			out = accessOf(cur)
			return cur, errUnchanged
		case now.Before(cur.RetryAt):
			if usable(cur, now) {
				out = accessOf(cur)
			} else {
				outErr = &BackoffError{RetryAt: cur.RetryAt, LastError: cur.LastError}
			}
			return cur, errUnchanged
		}
		pctx, cancel := context.WithTimeout(ctx, v.opts.RefreshTimeout)
		defer cancel()
		tok, err := client.Refresh(pctx, cur.RefreshToken)
		if err != nil {
			return v.recordFailure(cur, now, err, &out, &outErr), nil
		}
		next := cur
		next.AccessToken, next.RefreshToken, next.TokenType = tok.AccessToken, tok.RefreshToken, tok.TokenType
		next.Expiry, next.IssuedAt = tok.Expiry, now
		if tok.Scopes != nil {
			next.Scopes = tok.Scopes
		}
		next.Status, next.LastError, next.Failures, next.RetryAt = store.ConnectionOK, "", 0, time.Time{}
		out = accessOf(next)
		return next, nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		if errors.Is(err, store.ErrNotFound) {
			return AccessToken{}, fmt.Errorf("%s at %s: %w", principal, server, ErrNotConnected)
		}
		return AccessToken{}, err
	}
	if outErr != nil {
		return AccessToken{}, outErr
	}
	return out, nil
}

// recordFailure is what a failed refresh writes: invalid_grant marks the
// connection reconnect_required for good; anything else backs off,
// doubling. The old access token is still handed out while it lives.
func (v *Vault) recordFailure(cur store.Connection, now time.Time, err error, out *AccessToken, outErr *error) store.Connection {
	next := cur
	next.LastError = err.Error()
	next.Failures++
	v.log.Warn("oauth refresh failed", "principal", cur.Principal, "server", cur.Server,
		"kind", connectors.KindOf(err).String(), "failures", next.Failures, "error", err.Error())
	if connectors.KindOf(err) == connectors.KindInvalidGrant {
		next.Status = store.ConnectionReconnectRequired
		*outErr = fmt.Errorf("%s at %s: %w: %w", cur.Principal, cur.Server, ErrReconnectRequired, err)
		return next
	}
	backoff := minBackoff << min(next.Failures-1, 16)
	next.RetryAt = now.Add(min(backoff, maxBackoff))
	if usable(cur, now) {
		*out = accessOf(cur)
	} else {
		*outErr = err
	}
	return next
}

// Save stores the tokens of a user login (after connectors'
// Exchange), replacing any connection the principal had to the server and
// clearing a reconnect_required mark.
func (v *Vault) Save(ctx context.Context, principal, server string, tok connectors.Token) error {
	now := v.now()
	exp := tok.Expiry
	if exp.IsZero() {
		exp = now.Add(connectors.DefaultLifetime)
	}
	return v.st.PutConnection(ctx, store.Connection{
		Principal: principal, Server: server,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: tok.TokenType,
		Expiry: exp, IssuedAt: now, Scopes: tok.Scopes, Status: store.ConnectionOK,
	})
}

// Delete removes a connection, revoking its tokens at the provider first
// when the server has a revocation endpoint (the refresh token, which at
// most providers ends the grant, then the access token). The connection is
// deleted even when revocation fails: the user asked to disconnect, and
// keeping the tokens would be worse. revoked reports whether the provider
// confirmed; revokeErr says why not (nil when there is no endpoint).
func (v *Vault) Delete(ctx context.Context, principal, server string) (revoked bool, revokeErr error, err error) {
	c, err := v.st.GetConnection(ctx, principal, server)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil, fmt.Errorf("%s at %s: %w", principal, server, ErrNotConnected)
	}
	if err != nil {
		return false, nil, err
	}
	if client, cerr := v.Client(ctx, server); cerr != nil {
		revokeErr = cerr
	} else {
		rctx, cancel := context.WithTimeout(ctx, v.opts.RefreshTimeout)
		defer cancel()
		revoked = true
		for _, t := range []struct{ tok, hint string }{{c.RefreshToken, "refresh_token"}, {c.AccessToken, "access_token"}} {
			if t.tok == "" {
				continue
			}
			if rerr := client.Revoke(rctx, t.tok, t.hint); rerr != nil {
				revoked = false
				if !errors.Is(rerr, connectors.ErrNoRevocationEndpoint) {
					revokeErr = rerr
				}
				break
			}
		}
	}
	if err := v.st.DeleteConnection(ctx, principal, server); err != nil && !errors.Is(err, store.ErrNotFound) {
		return revoked, revokeErr, err
	}
	return revoked, revokeErr, nil
}

// Info is a connection as the API may show it: never a token.
type Info struct {
	Server    string
	Scopes    []string
	Expiry    time.Time
	Status    string
	LastError string
	UpdatedAt time.Time
}

// List returns the principal's connections, ordered by server, without
// tokens (the store does not even read the token columns).
func (v *Vault) List(ctx context.Context, principal string) ([]Info, error) {
	cs, err := v.st.ListConnections(ctx, principal)
	if err != nil {
		return nil, err
	}
	out := make([]Info, 0, len(cs))
	for _, c := range cs {
		out = append(out, Info{Server: c.Server, Scopes: c.Scopes, Expiry: c.Expiry, Status: c.Status,
			LastError: c.LastError, UpdatedAt: c.UpdatedAt})
	}
	return out, nil
}

// ServiceToken returns a client-credentials token of server for scopes
// (nil: the server's default scopes), cached in memory until it is within
// the margin of its expiry; concurrent callers share one token request.
func (v *Vault) ServiceToken(ctx context.Context, server string, scopes []string) (AccessToken, error) {
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	key := server + "\x00" + strings.Join(sorted, " ")
	now := v.now()
	v.mu.Lock()
	t, ok := v.service[key]
	v.mu.Unlock()
	if ok && v.fresh(store.Connection{AccessToken: t.AccessToken, Expiry: t.Expiry, IssuedAt: t.Expiry.Add(-time.Duration(t.ExpiresIn) * time.Second)}, now) {
		return AccessToken{Token: t.AccessToken, TokenType: t.TokenType, Expiry: t.Expiry, Scopes: t.Scopes}, nil
	}
	ch := v.flights.DoChan("service\x00"+key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.opts.RefreshTimeout)
		defer cancel()
		client, err := v.Client(fctx, server)
		if err != nil {
			return nil, err
		}
		tok, err := client.ClientCredentials(fctx, scopes)
		if err != nil {
			return nil, err
		}
		v.mu.Lock()
		v.service[key] = tok
		v.mu.Unlock()
		return tok, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return AccessToken{}, r.Err
		}
		tok := r.Val.(connectors.Token)
		return AccessToken{Token: tok.AccessToken, TokenType: tok.TokenType, Expiry: tok.Expiry, Scopes: tok.Scopes}, nil
	case <-ctx.Done():
		return AccessToken{}, ctx.Err()
	}
}
