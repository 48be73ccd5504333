package vault_test

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
	"github.com/flowgate/flowgate/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// server is the OAuth server entry every test's vault knows the peer by.
const server = "peer"

// clock is real time plus an offset the test moves forward, so tokens
// expire in the vault's eyes while the provider, on real time, keeps
// accepting them.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// counter counts the requests the vault sends to providers, the ones
// that fail to connect included. A test may set answered, which runs after
// the provider has answered and before the vault sees the answer.
type counter struct {
	n        atomic.Int64
	base     http.RoundTripper
	answered atomic.Pointer[func(*http.Request)]
}

func (c *counter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	resp, err := c.base.RoundTrip(r)
	if hook := c.answered.Load(); hook != nil && err == nil {
		(*hook)(r)
	}
	return resp, err
}

// env is one test's world: the provider, a SQLite file store with the
// peer registered as server "peer", and a vault over it.
type env struct {
	peer   *oauthpeer.Peer
	sealer store.Sealer
	st     store.Store
	path   string // the SQLite file; empty on PostgreSQL
	v      *vault.Vault
	clock  *clock
	calls  *counter
	logs   *syncbuf.Buffer
}

type envOptions struct {
	peer  oauthpeer.Options
	vault vault.Options // HTTPClient, Now and Logger are set by newEnv
	// srv changes the server entry before it is created.
	srv func(*store.OAuthServer)
}

func newRing(tb testing.TB) *keyring.Ring {
	tb.Helper()
	text, err := keyring.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	r, err := keyring.Parse(text)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func ctxFor(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

func newEnv(tb testing.TB, o envOptions) *env {
	tb.Helper()
	e := &env{peer: oauthpeer.Start(tb, o.peer), path: filepath.Join(tb.TempDir(), "flowgate.db"), sealer: newRing(tb)}
	st, err := sqlite.Open(ctxFor(tb), e.path, store.Options{Sealer: e.sealer})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	e.st = st
	e.createServer(tb, o.srv)
	e.v = e.newVault(tb, st, o.vault)
	return e
}

func (e *env) createServer(tb testing.TB, mod func(*store.OAuthServer)) {
	tb.Helper()
	srv := store.OAuthServer{
		Name:         server,
		MetadataURL:  e.peer.MetadataURL(),
		ClientID:     oauthpeer.BasicClient,
		ClientSecret: oauthpeer.BasicSecret,
		ClientAuth:   connectors.AuthClientSecretBasic,
		Scopes:       []string{"openid", "api.read"},
		RedirectURI:  e.peer.RedirectURI(),
	}
	if mod != nil {
		mod(&srv)
	}
	if err := e.st.CreateOAuthServer(ctxFor(tb), srv); err != nil {
		tb.Fatal(err)
	}
}

// newVault builds a vault over st sharing the env's clock, request
// counter and log.
func (e *env) newVault(tb testing.TB, st vault.Store, opts vault.Options) *vault.Vault {
	tb.Helper()
	if e.clock == nil {
		e.clock, e.calls, e.logs = &clock{}, &counter{base: egresstest.Loopback().Transport()}, &syncbuf.Buffer{}
	}
	opts.HTTPClient = &http.Client{Transport: e.calls, Timeout: 5 * time.Second}
	opts.Now = e.clock.Now
	opts.Logger = slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if opts.RefreshTimeout == 0 {
		opts.RefreshTimeout = 5 * time.Second
	}
	return vault.New(st, opts)
}

// login signs principal in at the provider through its own pages, as
// oauth_user_login does, and saves the connection.
func (e *env) login(tb testing.TB, principal string) connectors.Token {
	tb.Helper()
	ctx := ctxFor(tb)
	c, err := e.v.Client(ctx, server)
	if err != nil {
		tb.Fatal(err)
	}
	verifier := connectors.NewVerifier()
	u, err := c.AuthCodeURL(ctx, connectors.AuthRequest{State: "st", PKCEVerifier: verifier})
	if err != nil {
		tb.Fatal(err)
	}
	cb := e.peer.Login(tb, u, oauthpeer.LoginOptions{Login: principal})
	tok, err := c.Exchange(ctx, cb.Query().Get("code"), verifier, nil)
	if err != nil {
		tb.Fatalf("exchange: %v", err)
	}
	if tok.RefreshToken == "" {
		tb.Fatal("the provider issued no refresh token")
	}
	if err := e.v.Save(ctx, principal, server, tok); err != nil {
		tb.Fatal(err)
	}
	return tok
}

// expire makes the stored access token of principal expired, as if its
// lifetime had passed, without moving the clock.
func (e *env) expire(tb testing.TB, principal string) {
	tb.Helper()
	ctx := ctxFor(tb)
	c, err := e.st.GetConnection(ctx, principal, server)
	if err != nil {
		tb.Fatal(err)
	}
	now := e.clock.Now()
	c.IssuedAt, c.Expiry = now.Add(-time.Hour), now.Add(-time.Minute)
	if err := e.st.PutConnection(ctx, c); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) conn(tb testing.TB, principal string) store.Connection {
	tb.Helper()
	c, err := e.st.GetConnection(ctxFor(tb), principal, server)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}
