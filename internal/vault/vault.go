// Package vault keeps the tokens flows use on behalf of users: one
// connection per (principal, OAuth server), sealed in the store (docs/flows.md).
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
//   - A flow refreshing a refresh token the vault holds (oauth_refresh)
//     does it through the vault (RefreshPresented), so the vault is never
//     left holding a consumed token, whose next use would be reuse.
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
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
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
	"github.com/flowgate/flowgate/internal/metrics"
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
	// Metrics counts refreshes by outcome; nil counts nothing.
	Metrics *metrics.Metrics
}

// Vault is safe for concurrent use. Several Vaults (servers) may share
// one PostgreSQL database.
type Vault struct {
	st   Store
	opts Options
	now  func() time.Time
	log  *slog.Logger
	// One group per kind of flight, so that keys of different kinds can
	// never meet: each kind's result has its own type.
	refreshes  singleflight.Group // refresh of a connection
	presented  singleflight.Group // RefreshPresented
	serviceTok singleflight.Group // client credentials

	mu      sync.Mutex
	clients map[string]cachedClient
	service map[string]connectors.Token // key: server + "\x00" + scopes
	// serviceGen counts a server's InvalidateService calls.
	serviceGen map[string]uint64
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
		clients: map[string]cachedClient{}, service: map[string]connectors.Token{}, serviceGen: map[string]uint64{}}
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
		opts := connectors.Options{HTTPClient: v.opts.HTTPClient, Now: v.opts.Now, Logger: v.log}
		if srv.DPoP {
			if opts.DPoPKey, err = connectors.LoadDPoPKey(ctx, v.st, srv.Name); err != nil {
				return nil, err
			}
		}
		c, err := connectors.New(srv, opts)
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
	// InstanceURL is the provider's instance URL for this connection or
	// service token (connectors.Token.InstanceURL), "" when none.
	InstanceURL string
}

func accessOf(c store.Connection) AccessToken {
	return AccessToken{Token: c.AccessToken, TokenType: c.TokenType, Expiry: c.Expiry, Scopes: slices.Clone(c.Scopes),
		InstanceURL: c.InstanceURL}
}

// fresh reports whether c's access token is good for now: not within the
// margin of its expiry, the margin bounded by half the token's lifetime.
func (v *Vault) fresh(c store.Connection, now time.Time) bool {
	if c.AccessToken == "" || c.Expiry.IsZero() {
		return false
	}
	margin := v.opts.Margin
	if !c.IssuedAt.IsZero() {
		// Not below zero: an IssuedAt after Expiry (a token saved
		// already expired, or another server's clock ahead of ours) would
		// otherwise push "fresh" past the expiry itself.
		if half := max(c.Expiry.Sub(c.IssuedAt)/2, 0); half < margin {
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

// tokensOf is a connection's whole token set, as Tokens and
// RefreshPresented hand it out; ExpiresIn counts from now.
func tokensOf(c store.Connection, now time.Time) connectors.Token {
	return connectors.Token{
		AccessToken: c.AccessToken, RefreshToken: c.RefreshToken, TokenType: c.TokenType,
		Expiry: c.Expiry, ExpiresIn: max(0, int64(c.Expiry.Sub(now).Round(time.Second)/time.Second)),
		Scopes: slices.Clone(c.Scopes), InstanceURL: c.InstanceURL,
	}
}

// Token returns a valid access token of principal at server, refreshing it
// first when it is within the margin of its expiry. Errors:
// ErrNotConnected, ErrReconnectRequired (fast, without asking the
// provider), *BackoffError, or the provider's *connectors.Error.
func (v *Vault) Token(ctx context.Context, principal, server string) (AccessToken, error) {
	c, err := v.connection(ctx, principal, server)
	if err != nil {
		return AccessToken{}, err
	}
	return accessOf(c), nil
}

// Tokens is Token with the whole token set: the refresh token too, and
// ExpiresIn. It is for oauth_user_login reusing a connection, whose
// outputs include the refresh token; everything else should use Token,
// so that refresh tokens stay in the vault.
func (v *Vault) Tokens(ctx context.Context, principal, server string) (connectors.Token, error) {
	c, err := v.connection(ctx, principal, server)
	if err != nil {
		return connectors.Token{}, err
	}
	return tokensOf(c, v.now()), nil
}

// connection reads principal's connection to server and returns it with
// a usable access token, refreshed when it was due; the errors are
// Token's.
func (v *Vault) connection(ctx context.Context, principal, server string) (store.Connection, error) {
	c, err := v.st.GetConnection(ctx, principal, server)
	if errors.Is(err, store.ErrNotFound) {
		return store.Connection{}, fmt.Errorf("%s at %s: %w", principal, server, ErrNotConnected)
	}
	if err != nil {
		return store.Connection{}, err
	}
	now := v.now()
	if c.Status == store.ConnectionReconnectRequired {
		return store.Connection{}, reconnectError(c)
	}
	if v.fresh(c, now) {
		return c, nil
	}
	if now.Before(c.RetryAt) {
		if usable(c, now) {
			return c, nil
		}
		return store.Connection{}, &BackoffError{RetryAt: c.RetryAt, LastError: c.LastError}
	}
	return v.refresh(ctx, principal, server, false)
}

func reconnectError(c store.Connection) error {
	return fmt.Errorf("%s at %s: %w: %s", c.Principal, c.Server, ErrReconnectRequired, c.LastError)
}

// ForceRefresh refreshes even a fresh-looking token, for an http step
// whose request came back 401. Concurrent callers share one refresh; a
// caller arriving after another refreshed gets that result unless the
// token is older than the refresh it is reacting to... which it cannot
// tell, so it refreshes again: a 401 is rare enough.
func (v *Vault) ForceRefresh(ctx context.Context, principal, server string) (AccessToken, error) {
	c, err := v.refresh(ctx, principal, server, true)
	if err != nil {
		return AccessToken{}, err
	}
	return accessOf(c), nil
}

type refreshResult struct {
	c   store.Connection
	err error
}

// refresh runs one refresh per connection in this process; the others
// wait and share its result.
func (v *Vault) refresh(ctx context.Context, principal, server string, force bool) (store.Connection, error) {
	key := principal + "\x00" + server
	if force {
		key += "\x00force"
	}
	return v.flight(ctx, &v.refreshes, key, func(fctx context.Context) (store.Connection, error) {
		return v.refreshLocked(fctx, principal, server, force)
	})
}

// flight runs fn once for every caller of key in g at the same time. The
// flight outlives a caller that gives up: others wait on it, and a
// refresh abandoned half-way could lose a rotated token. Its context
// leaves the provider call RefreshTimeout and the store's transaction a
// few seconds more to commit what the provider answered.
func (v *Vault) flight(ctx context.Context, g *singleflight.Group, key string, fn func(context.Context) (store.Connection, error)) (store.Connection, error) {
	ch := g.DoChan(key, func() (any, error) {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), v.opts.RefreshTimeout+5*time.Second)
		defer cancel()
		c, err := fn(fctx)
		return refreshResult{c, err}, nil
	})
	select {
	case r := <-ch:
		res := r.Val.(refreshResult)
		return res.c, res.err
	case <-ctx.Done():
		return store.Connection{}, ctx.Err()
	}
}

// errUnchanged is what a RefreshConnection callback returns to write
// nothing; the outcome travels in the callback's closure instead.
var errUnchanged = errors.New("unchanged")

// refreshLocked refreshes under the row lock. Whatever fn decides is
// written in the lock's transaction: new tokens before they are handed
// out, a reconnect_required mark, or a backoff.
func (v *Vault) refreshLocked(ctx context.Context, principal, server string, force bool) (store.Connection, error) {
	client, err := v.Client(ctx, server)
	if err != nil {
		return store.Connection{}, err
	}
	var (
		out    store.Connection
		outErr error
	)
	_, err = v.st.RefreshConnection(ctx, principal, server, func(cur store.Connection) (store.Connection, error) {
		now := v.now()
		switch {
		case cur.Status == store.ConnectionReconnectRequired:
			outErr = reconnectError(cur)
			return cur, errUnchanged
		case !force && v.fresh(cur, now):
			// Another server (or flight) refreshed while we waited for
			// the lock: use its token, do not refresh again.
			out = cur
			return cur, errUnchanged
		case now.Before(cur.RetryAt):
			if usable(cur, now) {
				out = cur
			} else {
				outErr = &BackoffError{RetryAt: cur.RetryAt, LastError: cur.LastError}
			}
			return cur, errUnchanged
		}
		next, err := v.refreshWith(ctx, client, cur, now)
		if err != nil {
			// The old access token is still handed out while it lives:
			// a provider down for a minute need not fail every step.
			if connectors.KindOf(err) != connectors.KindInvalidGrant && usable(cur, now) {
				out = cur
			} else {
				outErr = err
			}
			return next, nil
		}
		out = next
		return next, nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return store.Connection{}, v.storeError(principal, server, err)
	}
	if outErr != nil {
		return store.Connection{}, outErr
	}
	return out, nil
}

// storeError turns a RefreshConnection error into what the vault's
// callers expect.
func (v *Vault) storeError(principal, server string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s at %s: %w", principal, server, ErrNotConnected)
	}
	return err
}

// refreshWith uses cur's refresh token at the provider and returns the
// connection to write: the new tokens (the new refresh token when the
// provider rotated it, else the old one), or, with the error, cur with the
// failure recorded. It runs under the row lock.
func (v *Vault) refreshWith(ctx context.Context, client *connectors.Client, cur store.Connection, now time.Time) (store.Connection, error) {
	pctx, cancel := context.WithTimeout(ctx, v.opts.RefreshTimeout)
	defer cancel()
	tok, err := client.Refresh(pctx, cur.RefreshToken)
	if err != nil {
		outcome := "failure"
		if connectors.KindOf(err) == connectors.KindInvalidGrant {
			outcome = "reconnect_required"
		}
		v.opts.Metrics.VaultRefresh(cur.Server, outcome)
		return v.recordFailure(cur, now, err)
	}
	v.opts.Metrics.VaultRefresh(cur.Server, "success")
	next := cur
	next.AccessToken, next.RefreshToken, next.TokenType = tok.AccessToken, tok.RefreshToken, tok.TokenType
	next.Expiry, next.IssuedAt = tok.Expiry, now
	if tok.Scopes != nil {
		next.Scopes = tok.Scopes
	}
	// Like scopes: a refresh answer without instance_url (most providers
	// send it only at login) leaves the one of the login.
	if tok.InstanceURL != "" {
		next.InstanceURL = tok.InstanceURL
	}
	next.Status, next.LastError, next.Failures, next.RetryAt = store.ConnectionOK, "", 0, time.Time{}
	return next, nil
}

// recordFailure is what a failed refresh writes, and the error for the
// caller: invalid_grant marks the connection reconnect_required for good
// (ErrReconnectRequired); anything else backs off, doubling.
func (v *Vault) recordFailure(cur store.Connection, now time.Time, err error) (store.Connection, error) {
	next := cur
	next.LastError = err.Error()
	next.Failures++
	v.log.Warn("oauth refresh failed", "principal", cur.Principal, "server", cur.Server,
		"kind", connectors.KindOf(err).String(), "failures", next.Failures, "error", err.Error())
	if connectors.KindOf(err) == connectors.KindInvalidGrant {
		next.Status = store.ConnectionReconnectRequired
		return next, fmt.Errorf("%s at %s: %w: %w", cur.Principal, cur.Server, ErrReconnectRequired, err)
	}
	backoff := minBackoff << min(next.Failures-1, 16)
	next.RetryAt = now.Add(min(backoff, maxBackoff))
	return next, err
}

// RefreshPresented refreshes, for the oauth_refresh step, a refresh token
// a flow holds (presented) when it is the one principal's connection to
// server holds: through the provider, under the same single flight and
// row lock as the vault's own refreshes, storing the result before
// returning the whole new token set (matched true). The flow got that
// token from this connection (oauth_user_login's outputs); refreshing it
// behind the vault's back would leave the vault holding a consumed
// refresh token, whose next use a rotating provider takes for reuse,
// revoking the whole grant.
//
// With no connection, or one holding another refresh token, matched is
// false and nothing happens: the caller refreshes presented itself
// (connectors.Client.Refresh). Errors are Token's (a connection marked
// reconnect_required or backing off is not refreshed) and come with
// matched true, the caller's context ending included: whether or not the
// token was the vault's, the caller must not then use it itself.
func (v *Vault) RefreshPresented(ctx context.Context, principal, server, presented string) (tok connectors.Token, matched bool, err error) {
	if presented == "" {
		return connectors.Token{}, false, nil
	}
	// Callers presenting the same token at the same time share one
	// refresh and its result; a hash keeps the token itself out of the
	// key.
	sum := sha256.Sum256([]byte(presented))
	key := principal + "\x00" + server + "\x00" + hex.EncodeToString(sum[:])
	c, err := v.flight(ctx, &v.presented, key, func(fctx context.Context) (store.Connection, error) {
		return v.refreshPresentedLocked(fctx, principal, server, presented)
	})
	switch {
	case errors.Is(err, errNotMatched), errors.Is(err, ErrNotConnected):
		return connectors.Token{}, false, nil
	case err != nil:
		return connectors.Token{}, true, err
	}
	tok = tokensOf(c, v.now())
	tok.Rotated = tok.RefreshToken != presented
	return tok, true, nil
}

// errNotMatched says the connection holds another refresh token.
var errNotMatched = errors.New("refresh token not held")

func (v *Vault) refreshPresentedLocked(ctx context.Context, principal, server, presented string) (store.Connection, error) {
	var (
		out    store.Connection
		outErr error
	)
	_, err := v.st.RefreshConnection(ctx, principal, server, func(cur store.Connection) (store.Connection, error) {
		now := v.now()
		switch {
		case cur.RefreshToken == "" || subtle.ConstantTimeCompare([]byte(cur.RefreshToken), []byte(presented)) != 1:
			outErr = errNotMatched
			return cur, errUnchanged
		case cur.Status == store.ConnectionReconnectRequired:
			outErr = reconnectError(cur)
			return cur, errUnchanged
		case now.Before(cur.RetryAt):
			outErr = &BackoffError{RetryAt: cur.RetryAt, LastError: cur.LastError}
			return cur, errUnchanged
		}
		// Only now: whether the token is ours decides matched, even
		// when the server entry is unusable.
		client, err := v.Client(ctx, server)
		if err != nil {
			outErr = err
			return cur, errUnchanged
		}
		next, err := v.refreshWith(ctx, client, cur, now)
		out, outErr = next, err
		return next, nil
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return store.Connection{}, v.storeError(principal, server, err)
	}
	if outErr != nil {
		return store.Connection{}, outErr
	}
	return out, nil
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
	typ := tok.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	return v.st.PutConnection(ctx, store.Connection{
		Principal: principal, Server: server,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: typ,
		Expiry: exp, IssuedAt: now, Scopes: tok.Scopes, InstanceURL: tok.InstanceURL, Status: store.ConnectionOK,
	})
}

// Delete removes a connection, revoking its tokens at the provider first
// when the server has a revocation endpoint (the refresh token, which at
// most providers ends the grant, then the access token). The connection is
// deleted even when revocation fails: the user asked to disconnect, and
// keeping the tokens would be worse. revoked reports whether the provider
// confirmed; revokeErr says why not (nil when there is no endpoint).
func (v *Vault) Delete(ctx context.Context, principal, server string) (revoked bool, revokeErr error, err error) {
	client, cerr := v.Client(ctx, server)
	// The tokens are read and revoked under the row lock, so a refresh
	// (here or on another server) either ends first, and its new refresh
	// token is the one revoked, or starts after and meets a revoked
	// grant; read outside the lock, a rotation in between would leave the
	// new refresh token alive at the provider.
	_, err = v.st.RefreshConnection(ctx, principal, server, func(cur store.Connection) (store.Connection, error) {
		if cerr != nil {
			revokeErr = cerr
			return cur, errUnchanged
		}
		rctx, cancel := context.WithTimeout(ctx, v.opts.RefreshTimeout)
		defer cancel()
		revoked, revokeErr = revokeAll(rctx, client, cur)
		return cur, errUnchanged
	})
	if err != nil && !errors.Is(err, errUnchanged) {
		return false, nil, v.storeError(principal, server, err)
	}
	if err := v.st.DeleteConnection(ctx, principal, server); err != nil && !errors.Is(err, store.ErrNotFound) {
		return revoked, revokeErr, err
	}
	return revoked, revokeErr, nil
}

// revokeAll revokes c's refresh token, then its access token; revoked is
// true when the provider confirmed every one there was.
func revokeAll(ctx context.Context, client *connectors.Client, c store.Connection) (revoked bool, err error) {
	for _, t := range []struct{ tok, hint string }{{c.RefreshToken, "refresh_token"}, {c.AccessToken, "access_token"}} {
		if t.tok == "" {
			continue
		}
		if err := client.Revoke(ctx, t.tok, t.hint); err != nil {
			if errors.Is(err, connectors.ErrNoRevocationEndpoint) {
				return false, nil
			}
			return false, err
		}
		revoked = true
	}
	return revoked, nil
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
// the margin of its expiry or InvalidateService drops it; concurrent
// callers share one token request.
func (v *Vault) ServiceToken(ctx context.Context, server string, scopes []string) (AccessToken, error) {
	sorted := slices.Clone(scopes)
	slices.Sort(sorted)
	key := server + "\x00" + strings.Join(sorted, " ")
	now := v.now()
	v.mu.Lock()
	t, ok := v.service[key]
	gen := v.serviceGen[server]
	v.mu.Unlock()
	if ok && v.fresh(store.Connection{AccessToken: t.AccessToken, Expiry: t.Expiry, IssuedAt: t.Expiry.Add(-time.Duration(t.ExpiresIn) * time.Second)}, now) {
		return serviceAccess(t), nil
	}
	// The generation is in the key so that a caller after
	// InvalidateService does not join a request that started before.
	ch := v.serviceTok.DoChan(fmt.Sprintf("%s\x00%d", key, gen), func() (any, error) {
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
		// A token requested before an InvalidateService is not cached
		// after it: it may predate what made the old one fail.
		if v.serviceGen[server] == gen {
			v.service[key] = tok
		}
		v.mu.Unlock()
		return tok, nil
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return AccessToken{}, r.Err
		}
		return serviceAccess(r.Val.(connectors.Token)), nil
	case <-ctx.Done():
		return AccessToken{}, ctx.Err()
	}
}

func serviceAccess(t connectors.Token) AccessToken {
	return AccessToken{Token: t.AccessToken, TokenType: t.TokenType, Expiry: t.Expiry, Scopes: slices.Clone(t.Scopes),
		InstanceURL: t.InstanceURL}
}

// InvalidateService drops the cached client-credentials tokens of server,
// whatever their scopes, so the next ServiceToken asks the provider: for
// an http step whose request with a service token came back 401.
func (v *Vault) InvalidateService(server string) {
	prefix := server + "\x00"
	v.mu.Lock()
	defer v.mu.Unlock()
	for k := range v.service {
		if strings.HasPrefix(k, prefix) {
			delete(v.service, k)
		}
	}
	v.serviceGen[server]++
}
