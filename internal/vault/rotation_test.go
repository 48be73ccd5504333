package vault_test

import (
	"context"
	"database/sql"
	"errors"
	"net/http"
	"testing"
	"time"
)

// isTokenRequest tells a request to the peer's token endpoint from the
// vault's other requests (discovery). After login, a refresh is the only
// grant these tests make there.
func isTokenRequest(r *http.Request) bool {
	return r.Method == http.MethodPost && r.URL.Path == "/token"
}

// A caller that gives up while its refresh is at the provider must not
// lose the rotated refresh token: the provider has already consumed the
// old one, so if the new one were not stored the next refresh would
// present a consumed token, which a rotating provider takes for reuse and
// answers by revoking the whole grant.
func TestCallerCancelledMidRefreshKeepsRotatedToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.login(t, "alice")
	e.expire(t, "alice")
	before := e.peer.Stats(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := func(r *http.Request) {
		if isTokenRequest(r) {
			cancel() // the provider has rotated; the caller leaves now
		}
	}
	e.calls.answered.Store(&hook)
	if _, err := e.v.Token(ctx, "alice", server); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	e.calls.answered.Store(nil)

	// The flight goes on without its caller and stores what the provider
	// answered.
	var c = e.conn(t, "alice")
	for deadline := time.Now().Add(10 * time.Second); c.RefreshToken == old.RefreshToken && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		c = e.conn(t, "alice")
	}
	if c.RefreshToken == old.RefreshToken {
		t.Fatal("the rotated refresh token was not stored after the caller gave up")
	}
	if s := e.peer.Stats(t); s.RefreshGrants != before.RefreshGrants+1 || s.RefreshErrors != before.RefreshErrors {
		t.Fatalf("provider: %d refreshes, %d refused; want 1 and 0", s.RefreshGrants-before.RefreshGrants, s.RefreshErrors-before.RefreshErrors)
	}

	// The next caller gets the stored token, and the refresh after it
	// presents the rotated refresh token: the provider sees no reuse.
	at, err := e.v.Token(ctxFor(t), "alice", server)
	if err != nil || at.Token != c.AccessToken {
		t.Fatalf("next caller: same token %t, %v", at.Token == c.AccessToken, err)
	}
	e.expire(t, "alice")
	if _, err := e.v.Token(ctxFor(t), "alice", server); err != nil {
		t.Fatalf("refresh with the rotated token: %v", err)
	}
	if s := e.peer.Stats(t); s.RefreshGrants != before.RefreshGrants+2 || s.RefreshErrors != before.RefreshErrors {
		t.Fatalf("provider after the second refresh: %d refreshes, %d refused; want 2 and 0",
			s.RefreshGrants-before.RefreshGrants, s.RefreshErrors-before.RefreshErrors)
	}
}

// When the store cannot write the rotated tokens, the new access token is
// not handed out: a caller could otherwise act with a token whose refresh
// token is lost, and the stored connection would silently disagree with
// what is in use.
func TestRotatedTokenNotHandedOutWhenStoreWriteFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	old := e.login(t, "alice")
	e.expire(t, "alice")
	db := e.st.(interface{ WriteDB() *sql.DB }).WriteDB()
	// A real write failure in the database, not a stand-in store: every
	// update of the connection's tokens is aborted.
	if _, err := db.ExecContext(ctxFor(t), `CREATE TRIGGER refuse_token_write BEFORE UPDATE ON connections
		WHEN NEW.refresh_token IS NOT OLD.refresh_token OR NEW.access_token IS NOT OLD.access_token
		BEGIN SELECT RAISE(ABORT, 'simulated write failure'); END`); err != nil {
		t.Fatal(err)
	}
	before := e.peer.Stats(t)
	var issued []string
	hook := func(r *http.Request) {
		if isTokenRequest(r) {
			issued = append(issued, r.URL.Path)
		}
	}
	e.calls.answered.Store(&hook)
	at, err := e.v.Token(ctxFor(t), "alice", server)
	e.calls.answered.Store(nil)
	if err == nil || at.Token != "" {
		t.Fatalf("store write failed: got a token (%t) and error %v; want no token and an error", at.Token != "", err)
	}
	if s := e.peer.Stats(t); s.RefreshGrants != before.RefreshGrants+1 || len(issued) != 1 {
		t.Fatalf("the refresh did not reach the provider (%d refreshes, %d token requests): the test proves nothing",
			s.RefreshGrants-before.RefreshGrants, len(issued))
	}
	if c := e.conn(t, "alice"); c.RefreshToken != old.RefreshToken || c.AccessToken != old.AccessToken {
		t.Fatal("a failed write changed the stored connection")
	}
	// Nothing of the new token set reaches a later caller either.
	if _, err := db.ExecContext(ctxFor(t), `DROP TRIGGER refuse_token_write`); err != nil {
		t.Fatal(err)
	}
	if at, _ := e.v.Token(ctxFor(t), "alice", server); at.Token != "" && at.Token != e.conn(t, "alice").AccessToken {
		t.Fatal("a later caller got a token the store does not hold")
	}
}
