package vault_test

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/vault"
)

// A saved connection's token is handed out from the store while it is
// fresh: no request to the provider.
func TestTokenFromStore(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")
	before, calls := e.peer.Stats(t), e.calls.n.Load()
	for range 3 {
		at, err := e.v.Token(ctx, "alice", server)
		if err != nil {
			t.Fatal(err)
		}
		if at.Token != tok.AccessToken || !strings.EqualFold(at.TokenType, "bearer") || !slices.Contains(at.Scopes, "api.read") {
			t.Fatalf("token: same %t, type %q, scopes %q", at.Token == tok.AccessToken, at.TokenType, at.Scopes)
		}
		if d := at.Expiry.Sub(e.clock.Now()); d < 59*time.Minute || d > time.Hour {
			t.Fatalf("expires in %s, want about an hour", d)
		}
	}
	if n := e.calls.n.Load(); n != calls {
		t.Fatalf("%d requests to the provider for a fresh token", n-calls)
	}
	if after := e.peer.Stats(t); after != before {
		t.Fatalf("provider stats moved: %+v -> %+v", before, after)
	}
	if _, err := e.v.Token(ctx, "bob", server); !errors.Is(err, vault.ErrNotConnected) {
		t.Fatalf("bob: %v, want ErrNotConnected", err)
	}
	if _, err := e.v.Token(ctx, "alice", "elsewhere"); !errors.Is(err, vault.ErrNotConnected) {
		t.Fatalf("unknown server: %v, want ErrNotConnected", err)
	}
}

// 50 steps of one user with an expired access token: the provider sees
// exactly one refresh, all 50 get its token, and the rotated refresh token
// is the one stored.
func TestConcurrentRefresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.login(t, "alice")
	e.expire(t, "alice")
	before := e.peer.Stats(t)
	toks := concurrentTokens(t, 50, func() (vault.AccessToken, error) { return e.v.Token(ctxFor(t), "alice", server) })
	after := e.peer.Stats(t)
	if n := after.RefreshGrants - before.RefreshGrants; n != 1 {
		t.Fatalf("the provider saw %d refreshes, want exactly 1", n)
	}
	if after.RefreshErrors != before.RefreshErrors {
		t.Fatalf("the provider refused %d refreshes", after.RefreshErrors-before.RefreshErrors)
	}
	checkOneNewToken(t, toks, old.AccessToken)
	c := e.conn(t, "alice")
	if c.RefreshToken == old.RefreshToken || c.RefreshToken == "" || c.AccessToken != toks[0].Token {
		t.Fatalf("stored: rotated refresh token %t, access token the new one %t", c.RefreshToken != old.RefreshToken, c.AccessToken == toks[0].Token)
	}
	// The stored refresh token is the live one: using it works, and the
	// provider sees no reuse.
	if _, err := e.v.ForceRefresh(ctxFor(t), "alice", server); err != nil {
		t.Fatalf("refresh with the stored token: %v", err)
	}
	if s := e.peer.Stats(t); s.RefreshGrants != before.RefreshGrants+2 || s.RefreshErrors != before.RefreshErrors {
		t.Fatalf("stats %+v", s)
	}

	// Two vaults over two handles of the same SQLite file: no shared
	// single flight, so the store's lock and the re-read under it alone
	// keep it to one refresh.
	other, err := sqlite.Open(ctxFor(t), e.path, store.Options{Sealer: e.sealer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	v2 := e.newVault(t, other, vault.Options{})
	e.expire(t, "alice")
	old.AccessToken = e.conn(t, "alice").AccessToken
	before = e.peer.Stats(t)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		both []vault.AccessToken
	)
	for _, v := range []*vault.Vault{e.v, v2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := concurrentTokens(t, 25, func() (vault.AccessToken, error) { return v.Token(ctxFor(t), "alice", server) })
			mu.Lock()
			both = append(both, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if s := e.peer.Stats(t); s.RefreshGrants != before.RefreshGrants+1 || s.RefreshErrors != before.RefreshErrors {
		t.Fatalf("two vaults on one SQLite file: %d refreshes, %d refused; want 1 and 0",
			s.RefreshGrants-before.RefreshGrants, s.RefreshErrors-before.RefreshErrors)
	}
	checkOneNewToken(t, both, old.AccessToken)
}

// The same with two Flowgate servers (two vaults, two store handles) on
// one PostgreSQL database, 25 steps on each.
func TestConcurrentRefreshTwoServersPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	sealer := newRing(t)
	var stores [2]*postgres.Store
	for i := range stores {
		s, err := postgres.Open(ctxFor(t), dsn, store.Options{Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	e := &env{peer: oauthpeer.Start(t, oauthpeer.Options{}), st: stores[0]}
	e.createServer(t, nil)
	vaults := [2]*vault.Vault{e.newVault(t, stores[0], vault.Options{}), e.newVault(t, stores[1], vault.Options{})}
	e.v = vaults[0]
	old := e.login(t, "alice")
	e.expire(t, "alice")
	before := e.peer.Stats(t)

	var (
		mu   sync.Mutex
		toks []vault.AccessToken
		wg   sync.WaitGroup
	)
	for _, v := range vaults {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got := concurrentTokens(t, 25, func() (vault.AccessToken, error) { return v.Token(ctxFor(t), "alice", server) })
			mu.Lock()
			toks = append(toks, got...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	after := e.peer.Stats(t)
	if n := after.RefreshGrants - before.RefreshGrants; n != 1 || after.RefreshErrors != before.RefreshErrors {
		t.Fatalf("the provider saw %d refreshes and %d refused, want exactly 1 and none", n, after.RefreshErrors-before.RefreshErrors)
	}
	if len(toks) != 50 {
		t.Fatalf("%d tokens", len(toks))
	}
	checkOneNewToken(t, toks, old.AccessToken)
	for i, st := range stores {
		c, err := st.GetConnection(ctxFor(t), "alice", server)
		if err != nil {
			t.Fatal(err)
		}
		if c.RefreshToken == old.RefreshToken || c.AccessToken != toks[0].Token {
			t.Fatalf("store %d: the rotated tokens are not stored", i)
		}
	}
}

// concurrentTokens calls get n times at once, failing on any error.
func concurrentTokens(t *testing.T, n int, get func() (vault.AccessToken, error)) []vault.AccessToken {
	toks := make([]vault.AccessToken, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			toks[i], errs[i] = get()
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("call %d: %v", i, err)
		}
	}
	return toks
}

func checkOneNewToken(t *testing.T, toks []vault.AccessToken, old string) {
	t.Helper()
	for i, tok := range toks {
		if tok.Token == "" || tok.Token == old || tok.Token != toks[0].Token {
			t.Fatalf("call %d: empty %t, the old token %t, another new token %t", i, tok.Token == "", tok.Token == old, tok.Token != toks[0].Token)
		}
	}
}

// The provider revoking the grant: the refresh gets invalid_grant, the
// connection is marked reconnect_required, and later calls fail fast
// without asking the provider, until the user logs in again.
func TestRevokedGrantNeedsReconnect(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	e.login(t, "alice")
	e.peer.RevokeGrants(t)
	e.clock.Advance(time.Hour)
	before := e.peer.Stats(t)

	_, err := e.v.Token(ctx, "alice", server)
	if !errors.Is(err, vault.ErrReconnectRequired) || connectors.KindOf(err) != connectors.KindInvalidGrant {
		t.Fatalf("token after revocation: %v, want ErrReconnectRequired wrapping invalid_grant", err)
	}
	if s := e.peer.Stats(t); s.RefreshErrors != before.RefreshErrors+1 {
		t.Fatalf("refresh errors %d -> %d, want one refused refresh", before.RefreshErrors, s.RefreshErrors)
	}
	c := e.conn(t, "alice")
	if c.Status != store.ConnectionReconnectRequired || !strings.Contains(c.LastError, "invalid_grant") || c.Failures != 1 {
		t.Fatalf("stored status %q, last error %q, failures %d", c.Status, c.LastError, c.Failures)
	}
	infos, err := e.v.List(ctx, "alice")
	if err != nil || len(infos) != 1 || infos[0].Status != store.ConnectionReconnectRequired {
		t.Fatalf("list %+v, %v", infos, err)
	}

	stats, calls := e.peer.Stats(t), e.calls.n.Load()
	for range 5 {
		if _, err := e.v.Token(ctx, "alice", server); !errors.Is(err, vault.ErrReconnectRequired) {
			t.Fatalf("token: %v, want ErrReconnectRequired", err)
		}
		if _, err := e.v.ForceRefresh(ctx, "alice", server); !errors.Is(err, vault.ErrReconnectRequired) {
			t.Fatalf("force refresh: %v, want ErrReconnectRequired", err)
		}
		if _, err := e.v.Tokens(ctx, "alice", server); !errors.Is(err, vault.ErrReconnectRequired) {
			t.Fatalf("tokens: %v, want ErrReconnectRequired", err)
		}
	}
	if s := e.peer.Stats(t); s != stats || e.calls.n.Load() != calls {
		t.Fatalf("a connection marked reconnect_required still asks the provider: %+v -> %+v, %d requests", stats, s, e.calls.n.Load()-calls)
	}

	// A new login clears the mark.
	tok := e.login(t, "alice")
	at, err := e.v.Token(ctx, "alice", server)
	if err != nil || at.Token != tok.AccessToken {
		t.Fatalf("after a new login: %v", err)
	}
	if c := e.conn(t, "alice"); c.Status != store.ConnectionOK || c.LastError != "" || c.Failures != 0 {
		t.Fatalf("after a new login: status %q, last error %q, failures %d", c.Status, c.LastError, c.Failures)
	}
}

// A provider that is down: the refresh fails and backs off (doubling);
// the old access token is handed out while it lives; calls during the
// backoff do not contact the provider; once the token has expired they
// get a BackoffError.
func TestProviderDownBacksOff(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")
	// Three minutes left: inside the 5-minute margin, still usable.
	e.clock.Advance(57 * time.Minute)
	e.peer.Stop()

	calls := e.calls.n.Load()
	at, err := e.v.Token(ctx, "alice", server)
	if err != nil || at.Token != tok.AccessToken {
		t.Fatalf("token with the provider down, inside the margin: %v (old token %t)", err, at.Token == tok.AccessToken)
	}
	if e.calls.n.Load() == calls {
		t.Fatal("no refresh was attempted inside the margin")
	}
	c := e.conn(t, "alice")
	if c.Failures != 1 || c.Status != store.ConnectionOK || !strings.Contains(c.LastError, "unreachable") {
		t.Fatalf("after one failure: failures %d, status %q, last error %q", c.Failures, c.Status, c.LastError)
	}
	if d := c.RetryAt.Sub(e.clock.Now()); d <= 0 || d > 2*time.Second {
		t.Fatalf("retry in %s, want within 2 s", d)
	}

	calls = e.calls.n.Load()
	for range 10 {
		at, err := e.v.Token(ctx, "alice", server)
		if err != nil || at.Token != tok.AccessToken {
			t.Fatalf("token during backoff: %v", err)
		}
	}
	if n := e.calls.n.Load() - calls; n != 0 {
		t.Fatalf("%d requests to the provider during the backoff", n)
	}

	// Backoff over: one more attempt, and the next backoff is twice as
	// long.
	e.clock.Advance(2 * time.Second)
	if _, err := e.v.Token(ctx, "alice", server); err != nil {
		t.Fatal(err)
	}
	if e.calls.n.Load() == calls {
		t.Fatal("no refresh after the backoff")
	}
	c = e.conn(t, "alice")
	if d := c.RetryAt.Sub(e.clock.Now()); c.Failures != 2 || d <= 2*time.Second || d > 4*time.Second {
		t.Fatalf("after two failures: failures %d, retry in %s, want 2 and 4 s", c.Failures, d)
	}

	// Expired: the failed refresh's error, then BackoffError without a
	// request.
	e.clock.Advance(4 * time.Minute)
	_, err = e.v.Token(ctx, "alice", server)
	if connectors.KindOf(err) != connectors.KindUnreachable {
		t.Fatalf("expired token, provider down: %v, want unreachable", err)
	}
	calls = e.calls.n.Load()
	_, err = e.v.Token(ctx, "alice", server)
	var be *vault.BackoffError
	if !errors.As(err, &be) || !be.RetryAt.After(e.clock.Now()) || !strings.Contains(be.LastError, "unreachable") {
		t.Fatalf("expired token during backoff: %v, want BackoffError", err)
	}
	if e.calls.n.Load() != calls {
		t.Fatal("a request to the provider during the backoff")
	}
	notIn(t, "backoff error", err.Error(), tok.AccessToken, tok.RefreshToken)
}

// Delete revokes at the provider and removes the row.
func TestDelete(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")
	before := e.peer.Stats(t)
	revoked, revokeErr, err := e.v.Delete(ctx, "alice", server)
	if err != nil || revokeErr != nil || !revoked {
		t.Fatalf("delete: revoked %t, revoke error %v, error %v", revoked, revokeErr, err)
	}
	if s := e.peer.Stats(t); s.Revocations != before.Revocations+2 {
		t.Fatalf("revocations %d -> %d, want the refresh and the access token", before.Revocations, s.Revocations)
	}
	if _, err := e.st.GetConnection(ctx, "alice", server); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("connection after delete: %v", err)
	}
	if _, err := e.v.Token(ctx, "alice", server); !errors.Is(err, vault.ErrNotConnected) {
		t.Fatalf("token after delete: %v", err)
	}
	c, err := e.v.Client(ctx, server)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Refresh(ctx, tok.RefreshToken); connectors.KindOf(err) != connectors.KindInvalidGrant {
		t.Fatalf("the deleted connection's refresh token still works: %v", err)
	}
	if _, _, err := e.v.Delete(ctx, "alice", server); !errors.Is(err, vault.ErrNotConnected) {
		t.Fatalf("second delete: %v, want ErrNotConnected", err)
	}

	// The provider down: the row goes anyway, and the caller learns why
	// nothing was revoked.
	e.login(t, "alice")
	e.peer.Stop()
	revoked, revokeErr, err = e.v.Delete(ctx, "alice", server)
	if err != nil || revoked || connectors.KindOf(revokeErr) != connectors.KindUnreachable {
		t.Fatalf("delete, provider down: revoked %t, revoke error %v, error %v", revoked, revokeErr, err)
	}
	if _, err := e.st.GetConnection(ctx, "alice", server); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("connection after delete: %v", err)
	}
}

// A server without a revocation endpoint: nothing to revoke, no error.
func TestDeleteWithoutRevocationEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{srv: func(s *store.OAuthServer) {
		iss := strings.TrimSuffix(s.MetadataURL, "/.well-known/openid-configuration")
		s.MetadataURL, s.AuthorizationEndpoint, s.TokenEndpoint = "", iss+"/auth", iss+"/token"
	}})
	ctx := ctxFor(t)
	e.login(t, "alice")
	before := e.peer.Stats(t)
	revoked, revokeErr, err := e.v.Delete(ctx, "alice", server)
	if err != nil || revokeErr != nil || revoked {
		t.Fatalf("delete: revoked %t, revoke error %v, error %v", revoked, revokeErr, err)
	}
	if s := e.peer.Stats(t); s.Revocations != before.Revocations {
		t.Fatal("a revocation without a revocation endpoint")
	}
	if _, err := e.st.GetConnection(ctx, "alice", server); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("connection after delete: %v", err)
	}
}

// List shows connections, never a token.
func TestListHasNoTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")
	infos, err := e.v.List(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Server != server || infos[0].Status != store.ConnectionOK || !slices.Contains(infos[0].Scopes, "api.read") ||
		infos[0].Expiry.IsZero() || infos[0].UpdatedAt.IsZero() {
		t.Fatalf("list %+v", infos)
	}
	notIn(t, "list", fmt.Sprintf("%#v", infos), tok.AccessToken, tok.RefreshToken)
	for f := range reflect.TypeFor[vault.Info]().Fields() {
		if strings.Contains(strings.ToLower(f.Name), "token") {
			t.Errorf("Info has a field %s", f.Name)
		}
	}
	if infos, err := e.v.List(ctx, "bob"); err != nil || len(infos) != 0 {
		t.Fatalf("bob's list %+v, %v", infos, err)
	}
}

// Client-credentials tokens are cached per scopes, fetched again when
// they expire and after InvalidateService, one request for concurrent
// callers.
func TestServiceToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	grants := func() int { return e.peer.Stats(t).ClientCredentialsGrants }

	first, err := e.v.ServiceToken(ctx, server, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.Token == "" || !slices.Equal(first.Scopes, []string{"openid", "api.read"}) {
		t.Fatalf("service token %+v", first.Scopes)
	}
	for range 3 {
		if at, err := e.v.ServiceToken(ctx, server, nil); err != nil || at.Token != first.Token {
			t.Fatalf("cached service token: %v", err)
		}
	}
	if n := grants(); n != 1 {
		t.Fatalf("%d client credentials grants, want 1 (cached)", n)
	}

	// Other scopes, asked by 20 at once: one request, one token.
	toks := concurrentTokens(t, 20, func() (vault.AccessToken, error) {
		return e.v.ServiceToken(ctxFor(t), server, []string{"api.write", "api.read"})
	})
	if n := grants(); n != 2 {
		t.Fatalf("%d client credentials grants, want 2", n)
	}
	checkOneNewToken(t, toks, first.Token)
	if at, err := e.v.ServiceToken(ctx, server, []string{"api.read", "api.write"}); err != nil || at.Token != toks[0].Token {
		t.Fatalf("the same scopes in another order are another token: %v", err)
	}

	// Expired (the clock moves past the margin): fetched again.
	e.clock.Advance(56 * time.Minute)
	second, err := e.v.ServiceToken(ctx, server, nil)
	if err != nil || second.Token == first.Token {
		t.Fatalf("after expiry: %v, new token %t", err, second.Token != first.Token)
	}
	if n := grants(); n != 3 {
		t.Fatalf("%d client credentials grants, want 3", n)
	}

	// Invalidated (a 401): fetched again, every scope set.
	e.v.InvalidateService("elsewhere")
	if at, _ := e.v.ServiceToken(ctx, server, nil); at.Token != second.Token || grants() != 3 {
		t.Fatal("invalidating another server dropped this one's token")
	}
	e.v.InvalidateService(server)
	third, err := e.v.ServiceToken(ctx, server, nil)
	if err != nil || third.Token == second.Token {
		t.Fatalf("after InvalidateService: %v, new token %t", err, third.Token != second.Token)
	}
	if at, err := e.v.ServiceToken(ctx, server, []string{"api.read", "api.write"}); err != nil || at.Token == toks[0].Token {
		t.Fatalf("after InvalidateService, other scopes: %v, new token %t", err, at.Token != toks[0].Token)
	}
	if n := grants(); n != 5 {
		t.Fatalf("%d client credentials grants, want 5", n)
	}
	if _, err := e.v.ServiceToken(ctx, "elsewhere", nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown server: %v", err)
	}
}

// Tokens hands out the whole token set, refreshing first when due.
func TestTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")
	got, err := e.v.Tokens(ctx, "alice", server)
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != tok.AccessToken || got.RefreshToken != tok.RefreshToken || !strings.EqualFold(got.TokenType, "bearer") ||
		got.ExpiresIn < 3590 || got.ExpiresIn > 3600 || !slices.Equal(got.Scopes, tok.Scopes) || !got.Expiry.Equal(e.conn(t, "alice").Expiry) {
		t.Fatalf("tokens: same access %t, same refresh %t, type %q, expires_in %d, scopes %q", got.AccessToken == tok.AccessToken,
			got.RefreshToken == tok.RefreshToken, got.TokenType, got.ExpiresIn, got.Scopes)
	}
	e.clock.Advance(30 * time.Minute)
	if got, _ := e.v.Tokens(ctx, "alice", server); got.ExpiresIn < 1790 || got.ExpiresIn > 1800 {
		t.Fatalf("expires_in %d half an hour later, want about 1800", got.ExpiresIn)
	}
	if s := e.peer.Stats(t); s.RefreshGrants != 0 {
		t.Fatal("refreshed a fresh token")
	}

	e.clock.Advance(time.Hour)
	got, err = e.v.Tokens(ctx, "alice", server)
	if err != nil {
		t.Fatal(err)
	}
	c := e.conn(t, "alice")
	if got.AccessToken == tok.AccessToken || got.RefreshToken == tok.RefreshToken || got.RefreshToken != c.RefreshToken || got.AccessToken != c.AccessToken {
		t.Fatal("expired: Tokens did not hand out the refreshed, stored tokens")
	}
	if s := e.peer.Stats(t); s.RefreshGrants != 1 {
		t.Fatalf("refresh grants %d, want 1", s.RefreshGrants)
	}
	if _, err := e.v.Tokens(ctx, "bob", server); !errors.Is(err, vault.ErrNotConnected) {
		t.Fatalf("bob: %v", err)
	}
}

// RefreshPresented refreshes through the vault a refresh token the vault
// holds, so the vault's copy never becomes a consumed one; any other
// token is left to the caller.
func TestRefreshPresented(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	tok := e.login(t, "alice")

	got, matched, err := e.v.RefreshPresented(ctx, "alice", server, tok.RefreshToken)
	if err != nil || !matched {
		t.Fatalf("refresh presented: matched %t, %v", matched, err)
	}
	if got.AccessToken == tok.AccessToken || got.RefreshToken == tok.RefreshToken || got.RefreshToken == "" || !got.Rotated ||
		!strings.EqualFold(got.TokenType, "bearer") || got.ExpiresIn < 3590 || len(got.Scopes) == 0 {
		t.Fatalf("new tokens: access new %t, refresh new %t, type %q, expires_in %d, scopes %q",
			got.AccessToken != tok.AccessToken, got.RefreshToken != tok.RefreshToken, got.TokenType, got.ExpiresIn, got.Scopes)
	}
	c := e.conn(t, "alice")
	if c.RefreshToken != got.RefreshToken || c.AccessToken != got.AccessToken {
		t.Fatal("the vault does not hold what RefreshPresented returned")
	}
	if s := e.peer.Stats(t); s.RefreshGrants != 1 {
		t.Fatalf("refresh grants %d, want 1", s.RefreshGrants)
	}
	// The vault's copy is the live one: its own refresh works.
	if at, err := e.v.Token(ctx, "alice", server); err != nil || at.Token != got.AccessToken {
		t.Fatalf("token after RefreshPresented: %v", err)
	}

	stats := e.peer.Stats(t)
	for name, tc := range map[string]struct{ principal, server, presented string }{
		"another token":       {"alice", server, "not-the-refresh-token"},
		"the rotated one":     {"alice", server, tok.RefreshToken},
		"empty":               {"alice", server, ""},
		"another principal":   {"bob", server, got.RefreshToken},
		"another server":      {"alice", "elsewhere", got.RefreshToken},
		"a prefix of the one": {"alice", server, got.RefreshToken[:len(got.RefreshToken)-1]},
	} {
		res, matched, err := e.v.RefreshPresented(ctx, tc.principal, tc.server, tc.presented)
		if err != nil || matched || res.AccessToken != "" {
			t.Errorf("%s: matched %t, %v", name, matched, err)
		}
	}
	if s := e.peer.Stats(t); s != stats {
		t.Fatalf("unmatched tokens reached the provider: %+v -> %+v", stats, s)
	}
	if c := e.conn(t, "alice"); c.RefreshToken != got.RefreshToken {
		t.Fatal("an unmatched call changed the connection")
	}

	// Ten flows presenting the same token at once share one refresh.
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results []connectors.Token
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, matched, err := e.v.RefreshPresented(ctxFor(t), "alice", server, got.RefreshToken)
			if err != nil || !matched {
				t.Errorf("concurrent: matched %t, %v", matched, err)
			}
			mu.Lock()
			results = append(results, r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if s := e.peer.Stats(t); s.RefreshGrants != stats.RefreshGrants+1 || s.RefreshErrors != 0 {
		t.Fatalf("10 concurrent presenters: %d refreshes, %d refused; want 1 and 0", s.RefreshGrants-stats.RefreshGrants, s.RefreshErrors)
	}
	for _, r := range results {
		if r.RefreshToken != results[0].RefreshToken || r.RefreshToken == got.RefreshToken {
			t.Fatal("concurrent presenters got different or old tokens")
		}
	}

	// A revoked grant: matched, and the connection is marked.
	e.peer.RevokeGrants(t)
	_, matched, err = e.v.RefreshPresented(ctx, "alice", server, results[0].RefreshToken)
	if !matched || !errors.Is(err, vault.ErrReconnectRequired) {
		t.Fatalf("revoked grant: matched %t, %v; want matched and ErrReconnectRequired", matched, err)
	}
	if c := e.conn(t, "alice"); c.Status != store.ConnectionReconnectRequired {
		t.Fatalf("status %q", c.Status)
	}
	before := e.peer.Stats(t)
	if _, matched, err := e.v.RefreshPresented(ctx, "alice", server, results[0].RefreshToken); !matched || !errors.Is(err, vault.ErrReconnectRequired) {
		t.Fatalf("marked connection: matched %t, %v", matched, err)
	}
	if s := e.peer.Stats(t); s != before {
		t.Fatal("a marked connection's token reached the provider")
	}
}

// notIn fails when any secret appears in s.
func notIn(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Fatalf("%s holds a token or secret", what)
		}
	}
}
