package authserver

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
	chrome "github.com/flowgate/flowgate/internal/testutil/browser"
)

var logoutFieldRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// TestEndSessionAsksWithoutProof: RP-initiated logout ends a live session
// at once only with an id_token_hint issued in that session. Without one
// (or with another session's), GET shows a confirmation page whose form
// posts the request back with a CSRF token; only that POST ends the
// session and sends the browser to the registered URI with its state.
func TestEndSessionAsksWithoutProof(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	hash, err := e.hasher.Hash(alicePass)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.st.CreateUser(t.Context(), store.User{Username: "carol", PasswordHash: hash}); err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	firstTok := e.userTokens(t, b, "alice", "openid")
	carolTok := e.userTokens(t, nil, "carol", "openid")
	_, ch := pkce()
	live := func() bool {
		t.Helper()
		q := redirectParams(t, get(t, b, e.authorizeURL("portal", ch, url.Values{"prompt": {"none"}})))
		return q.Get("code") != ""
	}
	if !live() {
		t.Fatal("no session after sign-in")
	}
	params := url.Values{"client_id": {"portal"}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}
	carolHint := url.Values{"id_token_hint": {carolTok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}
	for name, q := range map[string]url.Values{"no hint": params, "another session's hint": carolHint} {
		resp := get(t, b, e.issuer+PathEndSession+"?"+q.Encode())
		body := readBody(resp)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<form method="post" action="/oauth2/logout">`) {
			t.Fatalf("%s: GET end session: %d %s, want the confirmation page", name, resp.StatusCode, body)
		}
		if !strings.Contains(body, "alice") || !strings.Contains(body, `<button type="submit" aria-describedby="logout-question">Sign out</button>`) {
			t.Errorf("%s: the confirmation page names neither the user nor its question: %s", name, body)
		}
		if strings.Contains(body, "id_token_hint") {
			t.Errorf("%s: the ID token is copied into the page", name)
		}
		if !live() {
			t.Fatalf("%s: GET end session ended the session", name)
		}
	}
	// An access token of this session is no id_token_hint.
	resp := get(t, b, e.issuer+PathEndSession+"?"+url.Values{"id_token_hint": {firstTok.AccessToken}}.Encode())
	if body := readBody(resp); resp.StatusCode != http.StatusBadRequest || !live() {
		t.Fatalf("access token as id_token_hint: %d %s, want 400 and the session kept", resp.StatusCode, body)
	}
	resp = get(t, b, e.issuer+PathEndSession+"?"+params.Encode())
	form := url.Values{}
	for _, m := range logoutFieldRE.FindAllStringSubmatch(readBody(resp), -1) {
		form.Set(m[1], m[2])
	}
	for _, k := range []string{"csrf_token", "client_id", "post_logout_redirect_uri", "state"} {
		if form.Get(k) == "" {
			t.Fatalf("the confirmation form lacks %s: %v", k, form)
		}
	}
	// A POST without the right CSRF token (what another site can send)
	// only asks again.
	forged := url.Values{}
	for k, v := range form {
		forged[k] = v
	}
	forged.Set("csrf_token", strings.Repeat("x", 43))
	for name, f := range map[string]url.Values{"forged CSRF token": forged, "no CSRF token": params} {
		resp := postForm(t, b, e.issuer+PathEndSession, f)
		if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/oauth2/logout"`) {
			t.Fatalf("%s: POST end session: %d %s, want the confirmation page", name, resp.StatusCode, body)
		}
		if !live() {
			t.Fatalf("%s: POST end session ended the session", name)
		}
	}
	if e.audit.has(audit.Logout, audit.OutcomeSuccess, "") {
		t.Fatal("logout audited although the session lives")
	}
	// The confirmation: the session ends, the browser goes back to the RP.
	if q := redirectParams(t, postForm(t, b, e.issuer+PathEndSession, form)); q.Get("state") != "bye" {
		t.Fatalf("after confirming: %v", q)
	}
	if live() {
		t.Fatal("session still live after the confirmed logout")
	}
	if !e.audit.has(audit.Logout, audit.OutcomeSuccess, "") {
		t.Error("logout not audited")
	}

	// A new session of alice's, signed in later: an ID token of her first
	// session does not end it; one of this session does, at once.
	e.srv.now = func() time.Time { return time.Now().Add(5 * time.Second) }
	t.Cleanup(func() { e.srv.now = time.Now })
	b = browser(t)
	aliceTok := e.userTokens(t, b, "alice", "openid")
	old := url.Values{"id_token_hint": {firstTok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}}
	resp = get(t, b, e.issuer+PathEndSession+"?"+old.Encode())
	if body := readBody(resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/oauth2/logout"`) {
		t.Fatalf("logout with an earlier session's id_token_hint: %d %s, want the confirmation page", resp.StatusCode, body)
	}
	if !live() {
		t.Fatal("an earlier session's id_token_hint ended the session")
	}
	hint := url.Values{"id_token_hint": {aliceTok.Extra("id_token").(string)}, "post_logout_redirect_uri": {rpLoggedOut}, "state": {"bye"}}
	if q := redirectParams(t, get(t, b, e.issuer+PathEndSession+"?"+hint.Encode())); q.Get("state") != "bye" {
		t.Fatalf("logout with the session's id_token_hint: %v", q)
	}
	resp = get(t, b, e.authorizeURL("portal", ch, url.Values{"prompt": {"none"}}))
	if q := redirectParams(t, resp); q.Get("error") != "login_required" {
		t.Fatalf("after logout with the session's hint, prompt=none: %v", q)
	}
}

// confirmPage is what TestBrowserLogoutConfirmation reads of the page.
type confirmPage struct {
	Lang, Title, Heading, Button, Description string
	Scripts                                   int
}

// TestBrowserLogoutConfirmation: in Chromium with JavaScript off, a
// relying party's logout link without id_token_hint shows the confirmation
// page (language, title, heading, a labelled button described by the
// question, reached by the keyboard); its button ends the session and
// returns to the relying party with its state.
func TestBrowserLogoutConfirmation(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	rp := newRelyingParty(t, e)
	bye := make(chan url.Values, 1)
	landing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, `<!doctype html><html lang="en"><title>RP</title><p id="bye">signed out</p></html>`)
		bye <- r.URL.Query()
	}))
	t.Cleanup(landing.Close)
	ctx := t.Context()
	c, err := e.st.GetClient(ctx, "webapp")
	if err != nil {
		t.Fatal(err)
	}
	c.PostLogoutRedirectURIs = []string{landing.URL + "/bye"}
	if err := e.st.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	bctx := chrome.New(t)
	navigate(t, bctx, rp.authURL())
	signIn(t, bctx, "alice", alicePass)
	click(t, bctx, `button[value=approve]`)
	rp.result(t, bctx)

	noScript := chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
		return err
	})
	if err := chromedp.Do(bctx, noScript); err != nil {
		t.Fatal(err)
	}
	logout := e.issuer + PathEndSession + "?" + url.Values{"client_id": {"webapp"}, "post_logout_redirect_uri": {landing.URL + "/bye"}, "state": {"s1"}}.Encode()
	if u := navigate(t, bctx, logout); u.Path != PathEndSession {
		t.Fatalf("logout link landed on %s, want the confirmation page", u)
	}
	page, err := chromedp.Run(bctx, chromedp.Evaluate[confirmPage](`(() => {
		const b = document.querySelector('form button[type=submit]');
		const d = b && document.getElementById(b.getAttribute('aria-describedby') || '');
		return {Lang: document.documentElement.lang, Title: document.title, Heading: document.querySelector('h1')?.textContent.trim() || '',
			Button: b?.textContent.trim() || '', Description: d?.textContent.trim() || '', Scripts: document.scripts.length};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if page.Lang == "" || page.Title == "" || page.Heading == "" || page.Button != "Sign out" || !strings.Contains(page.Description, "alice") || page.Scripts != 0 {
		t.Errorf("confirmation page %+v", page)
	}
	if err := chromedp.Do(bctx, chromedp.KeyEvent(kb.Tab)); err != nil {
		t.Fatal(err)
	}
	if focused, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.activeElement.textContent.trim()`)); err != nil || focused != "Sign out" {
		t.Errorf("Tab focuses %q (%v), want the Sign out button", focused, err)
	}
	if u := click(t, bctx, `button[type=submit]`); u.Host != strings.TrimPrefix(landing.URL, "http://") {
		t.Fatalf("after Sign out at %s, want the relying party", u)
	}
	select {
	case q := <-bye:
		if q.Get("state") != "s1" {
			t.Errorf("relying party got %v, want state s1", q)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the relying party's post-logout page was not reached")
	}
	if u := navigate(t, bctx, rp.authURL()); u.Path != PathLogin {
		t.Fatalf("after logout, authorize landed on %s, want the login page", u)
	}
}
