package main

// Passkeys in a real browser on the real binary, with Chromium's virtual
// authenticator (the DevTools WebAuthn domain) standing in for a phone
// or security key: alice adds a passkey on /account, signs in with her
// password and the passkey (the browser asks the authenticator; the
// server checks the signature), a client asking acr_values=mfa gets amr
// [pwd hwk mfa], she signs in with the passkey alone from /login, and
// once she removes it the same authenticator no longer gets her in,
// neither as the second step nor alone. The account page with the
// passkey section passes axe-core at a phone's and a desktop's width.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
)

func TestBrowserPasskey(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	// Browsers refuse an IP address as a WebAuthn relying party, so the
	// public URL names the host localhost.
	port := addr[strings.LastIndex(addr, ":")+1:]
	catch := &catcher{last: map[string]url.Values{}}
	rpSrv := httptest.NewServer(catch)
	t.Cleanup(rpSrv.Close)
	rpURL := rpSrv.URL
	e := &connectEnv{base: "http://localhost:" + port, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
auth:
  mfa: optional
users:
  - username: alice
    password: %q
    roles: [employee]
clients:
  - id: rp
    secret: rp-secret-0123456789abcdef
    redirect_uris: [%q]
    scopes: [openid, profile]
    consent: admin
`, e.dbPath, portalAlicePassword, rpURL+"/rp")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", cfg, "--public-url", e.base)
	ctx := browser.New(t)

	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
		t.Fatalf("WebAuthn.enable: %v", err)
	}
	if _, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
		Protocol: webauthn.AuthenticatorProtocolCtap2, Ctap2version: webauthn.Ctap2versionCtap21, Transport: webauthn.AuthenticatorTransportInternal,
		HasResidentKey: true, HasUserVerification: true, IsUserVerified: true, AutomaticPresenceSimulation: true,
	}}); err != nil {
		t.Fatalf("WebAuthn.addVirtualAuthenticator: %v", err)
	}

	// Add a passkey on /account.
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	p := e.signIn(t, ctx, "alice", portalAlicePassword)
	if p.url.Path != "/account" || !strings.Contains(p.text, "No passkeys") {
		t.Fatalf("account before adding a passkey: %s\n%s", p.url, p.text)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector('#passkey-add').hidden`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the add form stays hidden (script not run?): %v", err)
	}
	browser.CheckPage(t, ctx, "/account with the passkey section")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-passkey-name"), "Laptop")); err != nil {
		t.Fatal(err)
	}
	p = waitNav(t, ctx, `#add-passkey`, "/account")
	if !strings.Contains(p.text, "The passkey is added") || !strings.Contains(p.text, "Laptop") {
		t.Fatalf("after adding: %s\n%s", p.url, p.text)
	}
	browser.CheckPage(t, ctx, "/account with a passkey")

	// Sign in again: the password, then the passkey.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	p = e.signIn(t, ctx, "alice", portalAlicePassword)
	if p.url.Path != "/login/mfa" || strings.Contains(p.text, "six-digit code") {
		t.Fatalf("after the password: %s\n%s", p.url, p.text)
	}
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`!document.querySelector('#passkey-step').hidden`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the passkey step stays hidden: %v", err)
	}
	browser.CheckPage(t, ctx, "/login/mfa with a passkey")
	p = waitNav(t, ctx, `#use-passkey`, "/account")
	if !strings.Contains(p.text, "Laptop") || !strings.Contains(p.text, "last used") {
		t.Fatalf("after the passkey: %s\n%s", p.url, p.text)
	}

	// A client asking for a second factor (acr_values=mfa): password and
	// passkey, and the ID token's amr says so.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	verifier := oauth2.GenerateVerifier()
	rp := &oauth2.Config{ClientID: "rp", ClientSecret: "rp-secret-0123456789abcdef", RedirectURL: rpURL + "/rp",
		Endpoint: oauth2.Endpoint{AuthURL: e.base + "/oauth2/authorize", TokenURL: e.base + "/oauth2/token"}, Scopes: []string{"openid"}}
	e.open(t, ctx, rp.AuthCodeURL("st-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n-1"), oauth2.SetAuthURLParam("acr_values", "mfa")))
	if p = e.signIn(t, ctx, "alice", portalAlicePassword); p.url.Path != "/login/mfa" {
		t.Fatalf("acr_values=mfa, after the password: %s\n%s", p.url, p.text)
	}
	waitForJS(t, ctx, `!document.querySelector('#passkey-step').hidden`, "the passkey step")
	waitNav(t, ctx, `#use-passkey`, "/rp")
	q := catch.query("/rp")
	if q.Get("state") != "st-1" || q.Get("code") == "" {
		t.Fatalf("the relying party got %v", q)
	}
	tok, err := rp.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	op, err := oidc.NewProvider(t.Context(), e.base)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: "rp"}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	// The virtual authenticator's keys are not backup-eligible: hwk.
	if idt.Subject != "alice" || !slices.Equal(claims.AMR, []string{"pwd", "hwk", "mfa"}) {
		t.Fatalf("ID token sub %q amr %v; want alice, [pwd hwk mfa]", idt.Subject, claims.AMR)
	}
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	e.signIn(t, ctx, "alice", portalAlicePassword)
	waitForJS(t, ctx, `!!document.querySelector('#passkey-step') && !document.querySelector('#passkey-step').hidden`, "the passkey step")
	waitNav(t, ctx, `#use-passkey`, "/account")

	// A passkey alone signs in from /login: the authenticator names
	// alice, and verified her (user verification), so no password.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	waitForJS(t, ctx, `!document.querySelector('#passkey-login').hidden`, "the passkey button on /login")
	browser.CheckPage(t, ctx, "/login with a passkey")
	if p = waitNav(t, ctx, `#sign-in-passkey`, "/account"); !strings.Contains(p.text, "Laptop") {
		t.Fatalf("after a passkey alone: %s\n%s", p.url, p.text)
	}

	// Remove it while a sign-in that offers it is waiting at its
	// second step: the authenticator still holds the key, but the server
	// refuses it. The removal goes through /account with alice's session
	// from outside the browser, as from another device.
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('form[action="/account/passkeys/remove"] input[name=id]').value`))
	if err != nil || id == "" {
		t.Fatalf("no passkey to remove listed: %v", err)
	}
	csrf, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('form[action="/account/passkeys/remove"] input[name=csrf_token]').value`))
	if err != nil {
		t.Fatal(err)
	}
	cookies, err := chromedp.Call(ctx, network.GetCookies, network.GetCookiesParams{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	if p = e.signIn(t, ctx, "alice", portalAlicePassword); p.url.Path != "/login/mfa" {
		t.Fatalf("after the password: %s\n%s", p.url, p.text)
	}
	form := url.Values{"csrf_token": {csrf}, "id": {id}}
	req, _ := http.NewRequest(http.MethodPost, e.base+"/account/passkeys/remove", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.base)
	for _, c := range cookies.Cookies {
		req.AddCookie(&http.Cookie{Name: c.Name, Value: c.Value})
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "passkey-removed") {
		t.Fatalf("removing the passkey: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#use-passkey"))); err != nil {
		t.Fatal(err)
	}
	waitForJS(t, ctx, `document.readyState === "complete" && document.body.innerText.includes("That passkey was not accepted")`, "the removed passkey refused")
	if u, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname`)); u != "/login/mfa/passkey" {
		t.Fatalf("after the removed passkey the browser is at %s", u)
	}
	// Nor does it sign in alone.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	waitForJS(t, ctx, `!document.querySelector('#passkey-login').hidden`, "the passkey button on /login")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sign-in-passkey"))); err != nil {
		t.Fatal(err)
	}
	waitForJS(t, ctx, `location.pathname === "/login/passkey" && document.readyState === "complete" && document.body.innerText.includes("That passkey was not accepted")`, "the removed passkey refused at /login")
	// With no second factor left, the password alone signs her in.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	if p = e.signIn(t, ctx, "alice", portalAlicePassword); p.url.Path != "/account" || !strings.Contains(p.text, "No passkeys") {
		t.Fatalf("without a passkey: %s\n%s", p.url, p.text)
	}
}

// waitNav clicks sel, whose form script asks the authenticator and then
// submits, and waits until a new page at path has loaded.
func waitNav(t *testing.T, ctx context.Context, sel, path string) page {
	t.Helper()
	before, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.timeOrigin`))
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		t.Fatal(err)
	}
	js := fmt.Sprintf(`performance.timeOrigin !== %v && location.pathname === %q && document.readyState === "complete"`, before, path)
	// The page navigates while it is polled, which fails an evaluation;
	// poll again until the deadline.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
			break
		}
		if time.Now().After(deadline) {
			msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("clicking %s did not reach %s\n%s", sel, path, msg)
		}
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		t.Fatal(err)
	}
	href, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href`))
	u, _ := url.Parse(href)
	return page{url: u, text: text}
}

// waitForJS polls js until it is true, through navigations.
func waitForJS(t *testing.T, ctx context.Context, js, what string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			msg, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
			t.Fatalf("waiting for %s: timed out\n%s", what, msg)
		}
	}
}
