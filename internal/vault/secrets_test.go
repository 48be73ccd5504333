package vault_test

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/vault"
)

// After logins, refreshes and failed refreshes, no token and no client
// secret is in the SQLite files (database and WAL) in plain text, nor in
// anything the vault logged.
func TestNoTokenAtRestOrInLogs(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	var secrets []string
	keep := func(toks ...connectors.Token) {
		for _, tok := range toks {
			secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
		}
	}
	keep(e.login(t, "alice"), e.login(t, "bob"))
	e.expire(t, "alice")
	e.expire(t, "bob")
	for _, p := range []string{"alice", "bob"} {
		tok, err := e.v.Tokens(ctx, p, server) // a refresh
		if err != nil {
			t.Fatal(err)
		}
		keep(tok)
		if _, err := e.v.ForceRefresh(ctx, p, server); err != nil {
			t.Fatal(err)
		}
		tok, err = e.v.Tokens(ctx, p, server)
		if err != nil {
			t.Fatal(err)
		}
		keep(tok)
	}
	st, err := e.v.ServiceToken(ctx, server, nil)
	if err != nil {
		t.Fatal(err)
	}
	secrets = append(secrets, st.Token, oauthpeer.BasicSecret)

	// Failures, which are logged: alice's grant revoked (invalid_grant),
	// then the provider down for bob (unreachable).
	e.peer.RevokeGrants(t)
	if _, err := e.v.ForceRefresh(ctx, "alice", server); !errors.Is(err, vault.ErrReconnectRequired) {
		t.Fatalf("alice: %v", err)
	}
	e.peer.Stop()
	e.clock.Advance(2 * time.Hour)
	if _, err := e.v.Token(ctx, "bob", server); connectors.KindOf(err) != connectors.KindUnreachable {
		t.Fatalf("bob: %v", err)
	}

	logs := e.logs.String()
	if !strings.Contains(logs, "invalid_grant") || !strings.Contains(logs, "unreachable") {
		t.Fatalf("the failures were not logged:\n%s", logs)
	}
	for _, s := range secrets {
		if s == "" {
			t.Fatal("an empty token among the secrets")
		}
		if strings.Contains(logs, s) {
			t.Fatalf("the log holds a token or secret:\n%s", logs)
		}
	}

	var files []byte
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(e.path + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}
	// The files are the right ones, and the rows are in them.
	if !bytes.Contains(files, []byte("alice")) || !bytes.Contains(files, []byte(store.ConnectionReconnectRequired)) {
		t.Fatal("the connections are not in the files read")
	}
	for _, s := range secrets {
		if bytes.Contains(files, []byte(s)) {
			t.Fatal("a token or the client secret is in the database files in plain text")
		}
	}
}

// A connection written by a server whose clock is ahead (issued after
// it expires, in our time) is not taken as fresh: a negative lifetime
// must not turn into a negative margin that hands out an expired token.
func TestSkewedIssuedAtIsNotFresh(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := ctxFor(t)
	old := e.login(t, "alice")
	c := e.conn(t, "alice")
	now := e.clock.Now()
	c.Expiry, c.IssuedAt = now.Add(-time.Minute), now.Add(10*time.Minute)
	if err := e.st.PutConnection(ctx, c); err != nil {
		t.Fatal(err)
	}
	at, err := e.v.Token(ctx, "alice", server)
	if err != nil {
		t.Fatal(err)
	}
	if at.Token == old.AccessToken || !at.Expiry.After(now) {
		t.Fatal("an expired token was handed out as fresh")
	}
	if s := e.peer.Stats(t); s.RefreshGrants != 1 {
		t.Fatalf("refresh grants %d, want 1", s.RefreshGrants)
	}
}

// A principal's forced refresh and a service token whose flight keys
// could once be spelled alike ("service", scope "force") run side by side
// without mixing their results.
func TestFlightsOfDifferentKindsDoNotMix(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.login(t, "service")
	for range 10 {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := e.v.ForceRefresh(ctxFor(t), "service", server); err != nil {
				t.Errorf("force refresh: %v", err)
			}
		}()
		go func() {
			defer wg.Done()
			e.v.InvalidateService(server)
			if _, err := e.v.ServiceToken(ctxFor(t), server, []string{"force"}); err != nil {
				t.Errorf("service token: %v", err)
			}
		}()
		wg.Wait()
	}
	if s := e.peer.Stats(t); s.RefreshGrants != 10 || s.RefreshErrors != 0 || s.ClientCredentialsGrants != 10 {
		t.Fatalf("stats %+v, want 10 refreshes and 10 client credentials grants", s)
	}
}
