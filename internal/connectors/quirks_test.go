package connectors_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
)

// fakeProvider answers token and revocation requests with whatever the
// test sets: the quirks of real providers the node peer cannot produce.
type fakeProvider struct {
	*httptest.Server
	mu          sync.Mutex
	status      int
	contentType string
	body        string
	delay       time.Duration
}

func newFakeProvider(t *testing.T) *fakeProvider {
	f := &fakeProvider{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		status, ct, body, delay := f.status, f.contentType, f.body, f.delay
		f.mu.Unlock()
		// Reading the body lets the server notice a client that gives up.
		_, _ = io.Copy(io.Discard, r.Body)
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeProvider) answer(status int, contentType, body string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.contentType, f.body = status, contentType, body
}

func (f *fakeProvider) client(t *testing.T, now func() time.Time) *connectors.Client {
	return newClient(t, store.OAuthServer{Name: "fake", TokenEndpoint: f.URL + "/token", RevocationEndpoint: f.URL + "/revoke",
		ClientID: "cid", ClientSecret: "fake-secret"}, connectors.Options{Now: now})
}

// Token responses as real providers send them, good and bad. The clock
// is far from the real one, so an expiry computed from time.Now instead
// of the Client's clock shows.
func TestTokenResponseQuirks(t *testing.T) {
	f := newFakeProvider(t)
	now := time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)
	c := f.client(t, func() time.Time { return now })
	ctx := testCtx(t)

	t.Run("expires_in counts from the Client's clock", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"at-1","token_type":"Bearer","expires_in":600,"scope":"a b"}`)
		tok, err := c.ClientCredentials(ctx, []string{"x"})
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Expiry.Equal(now.Add(600*time.Second)) || tok.ExpiresIn != 600 {
			t.Fatalf("expiry %s (expires_in %d), want %s (600)", tok.Expiry, tok.ExpiresIn, now.Add(600*time.Second))
		}
		if !slices.Equal(tok.Scopes, []string{"a", "b"}) {
			t.Fatalf("scopes %q: want the response's, not the requested", tok.Scopes)
		}
	})

	t.Run("expires_in as a string", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"at-1","token_type":"bearer","expires_in":"120"}`)
		tok, err := c.ClientCredentials(ctx, []string{"x"})
		if err != nil {
			t.Fatal(err)
		}
		if tok.ExpiresIn != 120 || !slices.Equal(tok.Scopes, []string{"x"}) {
			t.Fatalf("expires_in %d, scopes %q; want 120 and the requested scopes", tok.ExpiresIn, tok.Scopes)
		}
	})

	t.Run("form-encoded answer", func(t *testing.T) {
		f.answer(200, "application/x-www-form-urlencoded", "access_token=at-form&token_type=bearer&expires_in=300&scope=repo")
		tok, err := c.ClientCredentials(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken != "at-form" || tok.ExpiresIn < 299 || tok.ExpiresIn > 300 || !slices.Equal(tok.Scopes, []string{"repo"}) {
			t.Fatalf("form answer: %q, expires_in %d, scopes %q", tok.AccessToken, tok.ExpiresIn, tok.Scopes)
		}
		if d := tok.Expiry.Sub(now); d < 299*time.Second || d > 300*time.Second {
			t.Fatalf("form answer expires %s after the Client's now, want 300s", d)
		}
	})

	t.Run("missing expires_in is DefaultLifetime", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"at-2","token_type":"Bearer"}`)
		tok, err := c.ClientCredentials(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !tok.Expiry.Equal(now.Add(connectors.DefaultLifetime)) || tok.ExpiresIn != int64(connectors.DefaultLifetime/time.Second) {
			t.Fatalf("expiry %s (expires_in %d), want now + %s", tok.Expiry, tok.ExpiresIn, connectors.DefaultLifetime)
		}
		if tok.Scopes != nil {
			t.Fatalf("scopes %q, want nil (neither asked nor granted)", tok.Scopes)
		}
	})

	t.Run("missing token_type is bearer", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"at-3","expires_in":60}`)
		tok, err := c.ClientCredentials(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "Bearer" {
			t.Fatalf("token type %q", tok.TokenType)
		}
	})

	for _, typ := range []string{"DPoP", "mac", "N_A"} {
		t.Run("token type "+typ, func(t *testing.T) {
			f.answer(200, "", `{"access_token":"secret-at-`+typ+`","token_type":"`+typ+`","expires_in":60,"refresh_token":"secret-rt"}`)
			for _, call := range []func() error{
				func() error { _, err := c.ClientCredentials(ctx, nil); return err },
				func() error { _, err := c.Exchange(ctx, "code", "", nil); return err },
				func() error { _, err := c.Refresh(ctx, "rt"); return err },
			} {
				err := call()
				wantKind(t, err, connectors.KindUnsupportedTokenType)
				notIn(t, "error", err.Error(), "secret-at-"+typ, "secret-rt")
			}
		})
	}

	t.Run("refresh without refresh_token keeps the old one", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"at-4","token_type":"Bearer","expires_in":60}`)
		tok, err := c.Refresh(ctx, "rt-old")
		if err != nil {
			t.Fatal(err)
		}
		if tok.RefreshToken != "rt-old" || tok.Rotated || tok.Scopes != nil {
			t.Fatalf("refresh token %q, rotated %t, scopes %q; want rt-old, false, nil", tok.RefreshToken, tok.Rotated, tok.Scopes)
		}
		f.answer(200, "", `{"access_token":"at-5","token_type":"Bearer","expires_in":60,"refresh_token":"rt-old"}`)
		if tok, err = c.Refresh(ctx, "rt-old"); err != nil || tok.Rotated {
			t.Fatalf("the same refresh token back: rotated %t, %v", tok.Rotated, err)
		}
		f.answer(200, "", `{"access_token":"at-6","token_type":"Bearer","expires_in":60,"refresh_token":"rt-new","scope":"a"}`)
		if tok, err = c.Refresh(ctx, "rt-old"); err != nil || !tok.Rotated || tok.RefreshToken != "rt-new" || !slices.Equal(tok.Scopes, []string{"a"}) {
			t.Fatalf("a new refresh token: %q rotated %t scopes %q, %v", tok.RefreshToken, tok.Rotated, tok.Scopes, err)
		}
	})

	errs := []struct {
		name, ct, body string
		status         int
		kind           connectors.Kind
		code           string
	}{
		{"invalid_grant", "", `{"error":"invalid_grant","error_description":"refresh token expired"}`, 400, connectors.KindInvalidGrant, "invalid_grant"},
		{"invalid_grant answered 200", "", `{"error":"invalid_grant"}`, 200, connectors.KindInvalidGrant, "invalid_grant"},
		{"invalid_scope", "", `{"error":"invalid_scope"}`, 400, connectors.KindInvalidScope, "invalid_scope"},
		{"access_denied", "", `{"error":"access_denied"}`, 400, connectors.KindAccessDenied, "access_denied"},
		{"invalid_client", "", `{"error":"invalid_client"}`, 401, connectors.KindOther, "invalid_client"},
		{"5xx without body", "text/html", `<h1>Bad Gateway</h1>`, 502, connectors.KindUnreachable, ""},
		{"server_error", "", `{"error":"server_error"}`, 500, connectors.KindUnreachable, "server_error"},
		{"temporarily_unavailable", "", `{"error":"temporarily_unavailable"}`, 503, connectors.KindUnreachable, "temporarily_unavailable"},
		{"4xx page", "text/html", `<h1>Not Found</h1>`, 404, connectors.KindOther, ""},
		{"no access token", "", `{"token_type":"Bearer"}`, 200, connectors.KindOther, ""},
		{"not JSON", "", `<html>`, 200, connectors.KindOther, ""},
		// A provider echoing what it got must not put it in the error.
		{"echo", "", `{"error":"invalid_request","refresh_token":"rt-echoed","client_secret":"fake-secret"}`, 400, connectors.KindOther, "invalid_request"},
	}
	for _, tc := range errs {
		t.Run(tc.name, func(t *testing.T) {
			f.answer(tc.status, tc.ct, tc.body)
			_, err := c.Refresh(ctx, "rt-echoed")
			ce := wantKind(t, err, tc.kind)
			if ce.Code != tc.code || ce.Op != "refresh" || ce.Server != "fake" {
				t.Fatalf("error %+v, want code %q at refresh of fake", ce, tc.code)
			}
			notIn(t, "error", err.Error(), "rt-echoed", "fake-secret")
			if tc.code == "invalid_grant" && tc.status == 400 && ce.Description != "refresh token expired" {
				t.Fatalf("description %q", ce.Description)
			}
		})
	}

	t.Run("slow provider and a deadline", func(t *testing.T) {
		f.answer(200, "", `{"access_token":"late","token_type":"Bearer"}`)
		f.mu.Lock()
		f.delay = 2 * time.Second
		f.mu.Unlock()
		defer func() { f.mu.Lock(); f.delay = 0; f.mu.Unlock() }()
		short, cancel := testCtxTimeout(t, 100*time.Millisecond)
		defer cancel()
		_, err := c.Refresh(short, "rt")
		wantKind(t, err, connectors.KindUnreachable)
	})
}

func TestRevokeAnswers(t *testing.T) {
	f := newFakeProvider(t)
	c := f.client(t, nil)
	ctx := testCtx(t)
	for _, tc := range []struct {
		status int
		body   string
		kind   connectors.Kind
		ok     bool
	}{
		{200, ``, 0, true},
		{204, ``, 0, true},
		{400, `{"error":"unsupported_token_type"}`, connectors.KindUnsupportedTokenType, false},
		{401, `{"error":"invalid_client","error_description":"bad secret"}`, connectors.KindOther, false},
		{503, ``, connectors.KindUnreachable, false},
	} {
		f.answer(tc.status, "", tc.body)
		err := c.Revoke(ctx, "tok", "access_token")
		if tc.ok {
			if err != nil {
				t.Errorf("HTTP %d: %v", tc.status, err)
			}
			continue
		}
		ce := wantKind(t, err, tc.kind)
		if ce.Op != "revoke" {
			t.Errorf("op %q", ce.Op)
		}
	}
}

func TestNewRefusesBadEntries(t *testing.T) {
	dir := t.TempDir()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallPath := writePEM(t, dir, "small.pem", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(small))
	encPath := writePEM(t, dir, "enc.pem", "ENCRYPTED PRIVATE KEY", []byte("x"))
	junkPath := writePEM(t, dir, "junk.pem", "PRIVATE KEY", []byte("not a key"))
	_, rsaPath, _ := pkjwtKeys(t)
	ok := store.OAuthServer{Name: "s", ClientID: "cid", TokenEndpoint: "https://idp.example/token"}
	for name, mod := range map[string]func(s *store.OAuthServer){
		"no client_id":             func(s *store.OAuthServer) { s.ClientID = "" },
		"no endpoint":              func(s *store.OAuthServer) { s.TokenEndpoint = "" },
		"unknown client_auth":      func(s *store.OAuthServer) { s.ClientAuth = "tls_client_auth" },
		"private_key_jwt, no file": func(s *store.OAuthServer) { s.ClientAuth = connectors.AuthPrivateKeyJWT },
		"missing key file": func(s *store.OAuthServer) {
			s.ClientAuth, s.PrivateKeyFile = connectors.AuthPrivateKeyJWT, filepath.Join(dir, "nope.pem")
		},
		"small RSA key":  func(s *store.OAuthServer) { s.ClientAuth, s.PrivateKeyFile = connectors.AuthPrivateKeyJWT, smallPath },
		"encrypted key":  func(s *store.OAuthServer) { s.ClientAuth, s.PrivateKeyFile = connectors.AuthPrivateKeyJWT, encPath },
		"not a key":      func(s *store.OAuthServer) { s.ClientAuth, s.PrivateKeyFile = connectors.AuthPrivateKeyJWT, junkPath },
		"not PEM at all": func(s *store.OAuthServer) { s.ClientAuth, s.PrivateKeyFile = connectors.AuthPrivateKeyJWT, "/dev/null" },
	} {
		srv := ok
		mod(&srv)
		_, err := connectors.New(srv, connectors.Options{})
		ce := wantKind(t, err, connectors.KindConfig)
		if ce.Server != "s" || ce.Op != "configure" {
			t.Errorf("%s: %+v", name, ce)
		}
	}
	good := ok
	good.ClientAuth, good.PrivateKeyFile = connectors.AuthPrivateKeyJWT, rsaPath
	c, err := connectors.New(good, connectors.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Server().Name != "s" {
		t.Fatalf("Server() = %+v", c.Server())
	}
	if connectors.KindOf(errors.New("plain")) != connectors.KindOther {
		t.Fatal("KindOf(plain error) is not KindOther")
	}
	for k := connectors.KindOther; k <= connectors.KindInvalidScope; k++ {
		if k.String() == "" || (k != connectors.KindOther && k.String() == "other") {
			t.Errorf("Kind(%d).String() = %q", k, k.String())
		}
	}
	if !strings.Contains((&connectors.Error{Kind: connectors.KindConfig, Server: "s", Op: "configure", Err: errors.New("why")}).Error(), "why") {
		t.Fatal("Error() drops the cause")
	}
}

// A caller waiting for another's discovery stops waiting when its own
// context ends; the fetch, once done, serves everyone from the cache.
func TestDiscoveryWaitHonoursContext(t *testing.T) {
	release := make(chan struct{})
	var fetches atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"token_endpoint":"https://idp.example/token"}`)
	}))
	defer srv.Close()
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	defer free()
	// Should a waiter not give up, the fetch ends anyway and the test
	// fails on the time taken rather than hanging.
	time.AfterFunc(2*time.Second, free)
	c := newClient(t, store.OAuthServer{MetadataURL: srv.URL, ClientID: "cid"}, connectors.Options{})
	ctx := testCtx(t)
	first := make(chan error, 1)
	go func() { _, err := c.Endpoints(ctx); first <- err }()
	for fetches.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := testCtxTimeout(t, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Endpoints(short)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a waiting caller took %s with a 100 ms deadline", d)
	}
	ce := wantKind(t, err, connectors.KindUnreachable)
	if ce.Op != "discovery" {
		t.Fatalf("op %q", ce.Op)
	}
	free()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	e, err := c.Endpoints(ctx)
	if err != nil || e.Token != "https://idp.example/token" || fetches.Load() != 1 {
		t.Fatalf("after the fetch: %+v, %v, %d fetches", e, err, fetches.Load())
	}
}
