package oauthpeer_test

import (
	"context"
	"net/http"
	"net/http/cookiejar"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

// Login drives the provider's own pages: an approved login gives a code
// the provider exchanges, a denied one access_denied, and a kept session
// with consent already given goes straight back to the client.
func TestLogin(t *testing.T) {
	const redirect = "http://127.0.0.1:9/flowgate-callback"
	p := oauthpeer.Start(t, oauthpeer.Options{RedirectURI: redirect})
	if p.RedirectURI() != redirect {
		t.Fatalf("RedirectURI() = %q, want %q", p.RedirectURI(), redirect)
	}
	cfg := &oauth2.Config{
		ClientID:     oauthpeer.BasicClient,
		ClientSecret: oauthpeer.BasicSecret,
		Endpoint: oauth2.Endpoint{
			AuthURL:   p.Issuer + "/auth",
			TokenURL:  p.Issuer + "/token",
			AuthStyle: oauth2.AuthStyleInHeader,
		},
		RedirectURL: redirect,
		Scopes:      []string{"openid", "api.read"},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()

	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier := oauth2.GenerateVerifier()
	cb := p.Login(t, cfg.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier)), oauthpeer.LoginOptions{Login: "bob", Jar: jar})
	if got := cb.Scheme + "://" + cb.Host + cb.Path; got != redirect {
		t.Fatalf("callback %s, want %s", got, redirect)
	}
	q := cb.Query()
	if q.Get("state") != "state-1" || q.Get("code") == "" || q.Get("error") != "" {
		t.Fatalf("callback query %v: want state-1 and a code", q)
	}
	tok, err := cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatal("exchange gave no access or no refresh token")
	}
	if s := p.Stats(t); s.CodeGrants != 1 {
		t.Fatalf("code_grants = %d, want 1", s.CodeGrants)
	}

	// Same browser, consent given: no page at all, a code at once.
	cb = p.Login(t, cfg.AuthCodeURL("state-2"), oauthpeer.LoginOptions{Jar: jar})
	if q := cb.Query(); q.Get("state") != "state-2" || q.Get("code") == "" {
		t.Fatalf("silent login: callback query %v", q)
	}

	// Same browser, consent asked again, and declined.
	cb = p.Login(t, cfg.AuthCodeURL("state-3", oauth2.SetAuthURLParam("prompt", "consent")), oauthpeer.LoginOptions{Jar: jar, Deny: true})
	if q := cb.Query(); q.Get("error") != "access_denied" || q.Get("state") != "state-3" || q.Get("code") != "" {
		t.Fatalf("denied login: callback query %v, want error=access_denied", q)
	}

	// A new browser that declines.
	cb = p.Login(t, cfg.AuthCodeURL("state-4"), oauthpeer.LoginOptions{Deny: true})
	if q := cb.Query(); q.Get("error") != "access_denied" || q.Get("state") != "state-4" {
		t.Fatalf("denied login: callback query %v, want error=access_denied", q)
	}
	if s := p.Stats(t); s.CodeGrants != 1 {
		t.Fatalf("code_grants = %d after denials, want 1", s.CodeGrants)
	}
}

// StartReliably gives a working peer whose Stop and Restart work as
// Start's do.
func TestStartReliably(t *testing.T) {
	p := oauthpeer.Start(t, oauthpeer.Options{AccessTTL: 5 * time.Minute})
	if s := p.Stats(t); s != (oauthpeer.Stats{}) {
		t.Fatalf("fresh peer stats %+v", s)
	}
	iss := p.Issuer
	p.Restart(t)
	if p.Issuer != iss {
		t.Fatalf("restart moved the issuer: %s -> %s", iss, p.Issuer)
	}
	p.Stop()
	if _, err := http.Get(p.MetadataURL()); err == nil {
		t.Fatal("the peer still answers after Stop")
	}
}
