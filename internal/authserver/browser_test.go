package authserver

// Browser tests: a real headless Chromium signs in on the provider's pages
// and lands at an independent relying party (golang.org/x/oauth2 and
// coreos/go-oidc) whose callback runs on its own local server. They prove
// what the http.Client tests cannot: that the pages work as HTML forms in a
// browser, with its own cookie rules (SameSite, Secure, expiry) and
// redirects.

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/store"
	chrome "github.com/flowgate/flowgate/internal/testutil/browser"
)

const webappSecret = "webapp-secret-0123456789"

// rpResult is what the relying party's callback saw.
type rpResult struct {
	errCode string // the error parameter of the callback
	token   *oauth2.Token
	idToken *oidc.IDToken
	err     error // the callback was not a valid response, or exchange or verification failed
}

type pendingAuth struct{ verifier, nonce string }

// relyingParty is an independent OpenID relying party with its callback on
// a local server of its own.
type relyingParty struct {
	issuer   string
	srv      *httptest.Server
	cfg      *oauth2.Config
	verifier *oidc.IDTokenVerifier
	results  chan rpResult

	mu      sync.Mutex
	pending map[string]pendingAuth // by state
}

// newRelyingParty starts the RP and registers it with the provider as the
// confidential client "webapp" (consent: user).
func newRelyingParty(t *testing.T, e *env) *relyingParty {
	t.Helper()
	rp := &relyingParty{issuer: e.issuer, results: make(chan rpResult, 16), pending: map[string]pendingAuth{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /callback", rp.callback)
	rp.srv = httptest.NewServer(mux)
	t.Cleanup(rp.srv.Close)
	ctx := t.Context()
	err := e.st.CreateClient(ctx, store.Client{
		ID: "webapp", Name: "Web app", SecretHash: credential.HashClientSecret(e.ring, webappSecret),
		RedirectURIs: []string{rp.srv.URL + "/callback"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}, TokenEndpointAuthMethod: "client_secret_basic", Consent: "user",
	})
	if err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	rp.cfg = &oauth2.Config{ClientID: "webapp", ClientSecret: webappSecret, RedirectURL: rp.srv.URL + "/callback",
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	rp.cfg.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	rp.verifier = provider.Verifier(&oidc.Config{ClientID: "webapp"})
	return rp
}

// authURL starts an authorization with fresh state, nonce and PKCE.
func (rp *relyingParty) authURL(opts ...oauth2.AuthCodeOption) string {
	state, verifier, nonce := oauth2.GenerateVerifier(), oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	rp.mu.Lock()
	rp.pending[state] = pendingAuth{verifier: verifier, nonce: nonce}
	rp.mu.Unlock()
	return rp.cfg.AuthCodeURL(state, append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}, opts...)...)
}

func (rp *relyingParty) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	rp.mu.Lock()
	p, ok := rp.pending[q.Get("state")]
	delete(rp.pending, q.Get("state"))
	rp.mu.Unlock()
	res := rp.handle(r.Context(), q, p, ok)
	text := "signed in as " + subject(res.idToken)
	switch {
	case res.err != nil:
		text = "failed: " + res.err.Error()
	case res.errCode != "":
		text = "error: " + res.errCode
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><html lang="en"><title>RP</title><p id="result">%s</p></html>`, html.EscapeString(text))
	rp.results <- res
}

func subject(t *oidc.IDToken) string {
	if t == nil {
		return ""
	}
	return t.Subject
}

// handle is what a careful RP does with the callback: match the state,
// check iss (RFC 9207), exchange with the PKCE verifier, verify the ID
// token, its nonce and at_hash.
func (rp *relyingParty) handle(ctx context.Context, q url.Values, p pendingAuth, known bool) rpResult {
	switch {
	case !known:
		return rpResult{err: errors.New("unknown state")}
	case q.Get("iss") != rp.issuer:
		return rpResult{err: fmt.Errorf("iss %q", q.Get("iss"))}
	case q.Get("error") != "":
		return rpResult{errCode: q.Get("error")}
	}
	tok, err := rp.cfg.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		return rpResult{err: fmt.Errorf("exchange: %w", err)}
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(ctx, raw)
	if err != nil {
		return rpResult{err: fmt.Errorf("verify ID token: %w", err)}
	}
	if idt.Nonce != p.nonce {
		return rpResult{err: errors.New("nonce mismatch")}
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		return rpResult{err: fmt.Errorf("at_hash: %w", err)}
	}
	return rpResult{token: tok, idToken: idt}
}

// result waits for the callback's result; the browser must show the same.
func (rp *relyingParty) result(t *testing.T, bctx context.Context) rpResult {
	t.Helper()
	select {
	case res := <-rp.results:
		text, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS("#result")))
		if err != nil {
			t.Fatalf("RP page: %v", err)
		}
		if res.err != nil {
			t.Fatalf("RP: %v", res.err)
		}
		if res.errCode == "" && text != "signed in as "+subject(res.idToken) {
			t.Fatalf("RP page says %q", text)
		}
		return res
	case <-time.After(20 * time.Second):
		loc, _ := chromedp.Run(bctx, chromedp.Location())
		t.Fatalf("the RP's callback was not reached; the browser is at %s", loc)
	}
	return rpResult{}
}

// pageLog counts the provider's page requests, to tell whether the login
// page was shown between two redirects.
type pageLog struct {
	mu    sync.Mutex
	paths []string
}

func (l *pageLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		l.paths = append(l.paths, r.Method+" "+r.URL.Path)
		l.mu.Unlock()
		h.ServeHTTP(w, r)
	})
}

// since returns the requests logged after mark, and a new mark.
func (l *pageLog) since(mark int) ([]string, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.paths[mark:]), len(l.paths)
}

func (l *pageLog) mark() int {
	_, m := l.since(0)
	return m
}

// Browser steps. Each one that submits a form waits for the page it leads
// to, so that the next step reads the right document.

func navigate(t *testing.T, ctx context.Context, u string) *url.URL {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate: %v", err)
	}
	return location(t, ctx)
}

func location(t *testing.T, ctx context.Context) *url.URL {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// click clicks and waits until the page it navigates to has loaded.
func click(t *testing.T, ctx context.Context, sel string) *url.URL {
	t.Helper()
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return location(t, ctx)
}

// signIn types the credentials into the login page and submits it.
func signIn(t *testing.T, ctx context.Context, user, pass string) *url.URL {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
	); err != nil {
		t.Fatalf("login form: %v", err)
	}
	return click(t, ctx, `button[type=submit]`)
}

func countOf(paths []string, want string) int {
	n := 0
	for _, p := range paths {
		if p == want {
			n++
		}
	}
	return n
}

func TestBrowserSignInConsentSSO(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	var log pageLog
	e.handler = log.wrap(e.mux)
	rp := newRelyingParty(t, e)
	ctx := chrome.New(t)

	// First authorization: login page, then consent page, then the RP.
	if u := navigate(t, ctx, rp.authURL()); u.Path != PathLogin {
		t.Fatalf("authorize landed on %s, want the login page", u)
	}
	if u := signIn(t, ctx, "alice", alicePass); u.Path != PathConsent {
		t.Fatalf("after login at %s, want the consent page", u)
	}
	scopes, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("ul")))
	if err != nil {
		t.Fatal(err)
	}
	for _, sc := range []string{"openid", "profile", "email"} {
		if !containsWord(scopes, sc) {
			t.Errorf("consent page lists %q, lacks %s", scopes, sc)
		}
	}
	click(t, ctx, `button[value=approve]`)
	first := rp.result(t, ctx)
	if first.idToken.Subject != "alice" || first.token.AccessToken == "" {
		t.Fatalf("first sign-in: sub %q", first.idToken.Subject)
	}
	var claims struct {
		AuthTime int64  `json:"auth_time"`
		Email    string `json:"email"`
	}
	if err := first.idToken.Claims(&claims); err != nil || claims.AuthTime == 0 || claims.Email != "alice@example.com" {
		t.Fatalf("ID token claims %+v (%v)", claims, err)
	}
	firstAuth := claims.AuthTime

	// SSO: a second authorization goes straight to the RP, with neither
	// the login page nor the consent page (the consent is remembered).
	mark := log.mark()
	navigate(t, ctx, rp.authURL())
	second := rp.result(t, ctx)
	if second.idToken.Subject != "alice" {
		t.Fatalf("SSO sign-in: sub %q", second.idToken.Subject)
	}
	paths, _ := log.since(mark)
	if countOf(paths, "GET "+PathLogin) != 0 || countOf(paths, "GET "+PathConsent) != 0 {
		t.Fatalf("SSO showed a page: %v", paths)
	}
	_ = second.idToken.Claims(&claims)
	if claims.AuthTime != firstAuth {
		t.Errorf("SSO auth_time %d, want the session's %d", claims.AuthTime, firstAuth)
	}

	// prompt=login shows the login page although the session is live; a
	// new sign-in then goes to the RP with a newer auth_time.
	if u := navigate(t, ctx, rp.authURL(oauth2.SetAuthURLParam("prompt", "login"))); u.Path != PathLogin {
		t.Fatalf("prompt=login landed on %s, want the login page", u)
	}
	time.Sleep(1100 * time.Millisecond) // auth_time has a resolution of seconds
	signIn(t, ctx, "alice", alicePass)
	third := rp.result(t, ctx)
	_ = third.idToken.Claims(&claims)
	if claims.AuthTime <= firstAuth {
		t.Errorf("auth_time after prompt=login %d, want later than %d", claims.AuthTime, firstAuth)
	}

	// Deny: prompt=consent asks again; denying sends access_denied to the RP.
	if u := navigate(t, ctx, rp.authURL(oauth2.SetAuthURLParam("prompt", "consent"))); u.Path != PathConsent {
		t.Fatalf("prompt=consent landed on %s, want the consent page", u)
	}
	click(t, ctx, `button[value=deny]`)
	if res := rp.result(t, ctx); res.errCode != "access_denied" {
		t.Fatalf("deny: RP got %+v", res)
	}
	if text, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#result"))); text != "error: access_denied" {
		t.Errorf("RP page after deny: %q", text)
	}
}

func containsWord(text, w string) bool {
	return slices.Contains(strings.Fields(strings.ReplaceAll(text, ";", " ")), w)
}

// TestBrowserIdleTimeout: activity keeps the session alive; idle_timeout
// without any ends it. The cookie is a browser-session cookie so that the
// browser keeps sending it and the server must be the one to refuse it.
func TestBrowserIdleTimeout(t *testing.T) {
	const idle = 2 * time.Second
	e := newEnvWith(t, nil, nil, true, func(a *config.Auth) {
		a.Session.IdleTimeout = idle
		a.Session.Cookie = "session"
	})
	rp := newRelyingParty(t, e)
	ctx := chrome.New(t)
	navigate(t, ctx, rp.authURL())
	signIn(t, ctx, "alice", alicePass)
	click(t, ctx, `button[value=approve]`)
	rp.result(t, ctx)

	// Two authorizations 1.2 s apart: each is within the idle timeout of
	// the last activity, the second is past it counted from the login.
	for range 2 {
		time.Sleep(idle * 6 / 10)
		if u := navigate(t, ctx, rp.authURL()); u.Path == PathLogin {
			t.Fatal("login page shown although the session was active within idle_timeout")
		}
		rp.result(t, ctx)
	}
	time.Sleep(idle + idle/4)
	if u := navigate(t, ctx, rp.authURL()); u.Path != PathLogin {
		t.Fatalf("after idle_timeout authorize landed on %s, want the login page", u)
	}
}

// TestBrowserLoginPageAccessibility checks the basics in the browser:
// every input has a label, keyboard focus goes username → password →
// submit, the document has a language and a title. It also takes the
// screenshot for people to look at (not committed).
func TestBrowserLoginPageAccessibility(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	rp := newRelyingParty(t, e)
	ctx := chrome.New(t)
	if u := navigate(t, ctx, rp.authURL()); u.Path != PathLogin {
		t.Fatalf("authorize landed on %s", u)
	}
	unlabelled, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`
		Array.from(document.querySelectorAll('input, select, textarea'))
			.filter(el => el.type !== 'hidden')
			.filter(el => !(Array.from(el.labels || []).some(l => l.textContent.trim() !== '')
				|| (el.getAttribute('aria-label') || '').trim() !== ''
				|| el.getAttribute('aria-labelledby')))
			.map(el => el.id || el.name || el.outerHTML)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(unlabelled) != 0 {
		t.Errorf("inputs without a label: %v", unlabelled)
	}
	// Sequential focus order as HTML defines it: positive tabindex first
	// (ascending), then tabindex 0 and natively focusable elements in DOM
	// order; negative tabindex, disabled and hidden elements are skipped.
	order, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`
		(() => {
			const els = Array.from(document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]'))
				.filter(el => !el.disabled && el.type !== 'hidden' && el.tabIndex >= 0 && el.getClientRects().length > 0);
			const pos = els.filter(el => el.tabIndex > 0).sort((a, b) => a.tabIndex - b.tabIndex);
			return pos.concat(els.filter(el => el.tabIndex === 0))
				.map(el => el.id || (el.tagName.toLowerCase() + ':' + (el.type || '')));
		})()`))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"username", "password", "button:submit"}; !slices.Equal(order, want) {
		t.Errorf("focus order %v, want %v", order, want)
	}
	// And with the keyboard: autofocus on the username, then Tab, Tab.
	active := func() string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => { const a = document.activeElement; return a.id || (a.tagName.toLowerCase() + ':' + (a.type || '')); })()`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	var tabbed []string
	tabbed = append(tabbed, active())
	for range 2 {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatal(err)
		}
		tabbed = append(tabbed, active())
	}
	if want := []string{"username", "password", "button:submit"}; !slices.Equal(tabbed, want) {
		t.Errorf("Tab moves focus %v, want %v", tabbed, want)
	}
	lang, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`))
	if err != nil || lang == "" {
		t.Errorf("html lang = %q (%v)", lang, err)
	}
	if title, err := chromedp.Run(ctx, chromedp.Title()); err != nil || title == "" {
		t.Errorf("title = %q (%v)", title, err)
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/tmp/flowgate-login.png", png, 0o644); err != nil {
		t.Logf("screenshot not written: %v", err)
	}

	// The security headers, over plain HTTP on the same page.
	resp := get(t, browserClient(t), rp.authURL())
	resp.Body.Close()
	if resp.Request.URL.Path != PathLogin || resp.StatusCode != http.StatusOK {
		t.Fatalf("login page: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	if v := resp.Header.Get("X-Frame-Options"); v != "DENY" {
		t.Errorf("X-Frame-Options = %q", v)
	}
	if v := resp.Header.Get("Content-Security-Policy"); !containsWord(v, "frame-ancestors") || !containsWord(v, "default-src") || strings.Contains(v, "unsafe-inline") {
		t.Errorf("Content-Security-Policy = %q", v)
	}
}

// browserClient is an http.Client with cookies that follows every redirect.
func browserClient(t *testing.T) *http.Client {
	c := browser(t)
	c.CheckRedirect = nil
	return c
}
