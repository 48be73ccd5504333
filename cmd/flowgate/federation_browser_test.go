package main

// Federation end to end: the real binary, an independent upstream OpenID
// provider (panva/node-oidc-provider, test/peers/oidc-provider/upstream.js)
// and a real headless Chromium. People sign in through the "Sign in with
// Contoso" button, the provider's own login and consent pages, and come
// back signed in to Flowgate; a relying party of Flowgate then gets an ID
// token whose amr holds fed. Linking, roles, refusals (each audited,
// nothing created), the same person through the provider's access token,
// and a second Flowgate as the upstream.

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

const (
	fedAdminPassword = "admin-password-1"
	fedRPSecret      = "portal-rp-secret-0123456789"
)

const fedConnectFlow = `
name: fed-connect
title: Federated connect
permissions: {start: ["role:member"]}
steps:
  - id: login
    type: oauth_user_login
    server: corp-graph
  - id: done
    type: return
    status: 200
    body: {code: "${{ steps.login.output.status_code }}"}
`

// catcher is the redirect URI of the test's own clients (a relying party
// of Flowgate, the app at the upstream): it keeps the queries it is sent.
type catcher struct {
	mu   sync.Mutex
	last map[string]url.Values
}

func (c *catcher) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.last[r.URL.Path] = r.URL.Query()
	c.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = io.WriteString(w, `<!doctype html><html lang="en"><title>Caught</title><h1>Caught</h1></html>`)
}

func (c *catcher) query(path string) url.Values {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last[path]
}

type fedEnv struct {
	*connectEnv
	up    *oauthpeer.Peer
	catch *catcher
	rpURL string
	// opsToken is the admin client's token, once fetched.
	opsToken string
}

func newFedEnv(t *testing.T) *fedEnv {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	base := "http://" + addr
	e := &fedEnv{connectEnv: &connectEnv{base: base, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}},
		catch: &catcher{last: map[string]url.Values{}}}
	cs := httptest.NewServer(e.catch)
	t.Cleanup(cs.Close)
	e.rpURL = cs.URL
	jwks, keyFile := fedKey(t, dir)
	e.up = oauthpeer.StartUpstream(t, base+"/login/callback", cs.URL+"/app", oauthpeer.Options{PKJWTJWKS: jwks,
		Env: []string{"EXTRA_REDIRECT=" + base + "/oauth-callback"}})
	e.up.SetAccounts(t, map[string]oauthpeer.Account{
		"alice-sub": {Email: "alice@corp.example", EmailVerified: true, PreferredUsername: "alice", Name: "Alice Corp", Groups: []string{"staff"}},
		"carol-sub": {Email: "Carol@Example.com", EmailVerified: true, PreferredUsername: "carol.c", Groups: []string{"approvers"}},
		"dave-sub":  {Email: "dave@example.com", EmailVerified: false, PreferredUsername: "dave"},
		"eve-sub":   {Email: "eve@corp.example", EmailVerified: true, PreferredUsername: "eve"},
		"zoe-sub":   {Email: "zoe@corp.example", EmailVerified: true, PreferredUsername: "zoe"},
		"yan-sub":   {Email: "yan@corp.example", EmailVerified: true, PreferredUsername: "yan"},
	})
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "fed-connect.yaml"), []byte(fedConnectFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	iss := e.up.Issuer
	cfg := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: admin
    password: %q
    roles: [admin]
  - username: carol
    email: carol@example.com
    roles: [auditor]
  - username: dave
    email: dave@example.com
clients:
  - id: ops
    secret: ops-secret-0123456789abcdef
    grant_types: [client_credentials]
    scopes: [admin]
    roles: [admin]
  - id: portal-rp
    secret: %s
    redirect_uris: [%q]
    scopes: [openid, profile, email]
    consent: admin
identity_providers:
  - name: corp
    title: Contoso
    issuer: %q
    client_id: flowgate-rp
    client_secret: flowgate-rp-secret
    scopes: [openid, profile, email, groups]
    role_map: {staff: employee, approvers: approver}
    default_roles: [member]
  - name: strict
    title: Contoso invited
    issuer: %q
    client_id: flowgate-rp
    client_secret: flowgate-rp-secret
    scopes: [openid, profile, email]
    create_users: false
    link_by: none
  - name: corpjwt
    title: Contoso key
    issuer: %q
    client_id: flowgate-rp-jwt
    client_auth: private_key_jwt
    private_key_file: %s
    key_id: ec-1
  - name: down
    title: Gone
    issuer: http://127.0.0.1:9
    client_id: x
    client_secret: y
trusted_issuers:
  - name: corp-api
    issuer: %q
    audience: api://flowgate
oauth_servers:
  - name: corp-graph
    metadata_url: %q
    client_id: flowgate-rp
    client_secret: flowgate-rp-secret
    scopes: [openid]
    use_prompt: false
apis:
  basic_auth: true
egress:
  allow: [127.0.0.1]
flows: %s
`, e.dbPath, fedAdminPassword, fedRPSecret, cs.URL+"/rp", iss, iss, iss, keyFile, iss, e.up.MetadataURL(), fdir)
	path := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", path, "--public-url", base)
	return e
}

// admin calls the admin API as the client ops.
func (e *fedEnv) admin(t *testing.T, path string) map[string]any {
	t.Helper()
	if e.opsToken == "" {
		cc := clientcredentials.Config{ClientID: "ops", ClientSecret: "ops-secret-0123456789abcdef", TokenURL: e.base + "/oauth2/token", Scopes: []string{"admin"}}
		tok, err := cc.Token(t.Context())
		if err != nil {
			t.Fatalf("ops token: %v", err)
		}
		e.opsToken = tok.AccessToken
	}
	code, body, raw := e.bearer(t, http.MethodGet, path, e.opsToken, nil)
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", path, code, raw)
	}
	return body
}

func (e *fedEnv) userRoles(t *testing.T, name string) []string {
	t.Helper()
	u := e.admin(t, "/api/v1/admin/users/"+name)
	var roles []string
	for _, r := range u["roles"].([]any) {
		roles = append(roles, r.(string))
	}
	slices.Sort(roles)
	return roles
}

func (e *fedEnv) usernames(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, it := range e.admin(t, "/api/v1/admin/users?limit=100")["items"].([]any) {
		out = append(out, it.(map[string]any)["username"].(string))
	}
	slices.Sort(out)
	return out
}

// audits are the details of the audit events named event, newest first.
func (e *fedEnv) audits(t *testing.T, event string) []string {
	t.Helper()
	var out []string
	for _, it := range e.admin(t, "/api/v1/admin/audit?event="+event+"&limit=100")["items"].([]any) {
		m := it.(map[string]any)
		d, _ := m["detail"].(string)
		u, _ := m["user"].(string)
		out = append(out, strings.TrimSpace(u+" "+d))
	}
	return out
}

// waitAudit waits for an audit event whose user and detail contain want:
// the audit log is written in batches.
func (e *fedEnv) waitAudit(t *testing.T, event, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := e.audits(t, event)
		if slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, want) }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s audit event with %q; have %q\n%s", event, want, got, e.srv.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// atUpstream plays the person on the upstream's pages: the login (the
// account id typed as login, any password), then the consent, until the
// browser leaves the provider.
func (e *fedEnv) atUpstream(t *testing.T, ctx context.Context, login string) page {
	t.Helper()
	host := strings.TrimPrefix(e.up.Issuer, "http://")
	var p page
	for range 4 {
		if location(t, ctx).Host != host {
			return e.readPage(t, ctx, nil)
		}
		prompt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('input[name="prompt"]') || {}).value || ""`))
		if err != nil {
			t.Fatal(err)
		}
		switch prompt {
		case "login":
			if err := chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), login),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "whatever"),
			); err != nil {
				t.Fatalf("the upstream's login form: %v", err)
			}
			p = e.click(t, ctx, `button[type=submit]`)
		case "consent":
			p = e.click(t, ctx, `button[type=submit]`)
		default:
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("an upstream page with neither login nor consent form:\n%s", html)
		}
		if p.url.Host != host {
			return p
		}
	}
	t.Fatal("the upstream kept showing pages")
	return p
}

// signInWith opens the login page in a fresh browser session, clicks the
// provider's button and goes through the upstream's pages as login.
func (e *fedEnv) signInWith(t *testing.T, bctx context.Context, provider, login string) (context.Context, page) {
	t.Helper()
	ctx := newSession(t, bctx)
	if p := e.open(t, ctx, e.base+"/login?return_to=%2F"); p.url.Path != "/login" {
		t.Fatalf("the login page is at %s", p.url)
	}
	e.click(t, ctx, `a[href^="/login/with/`+provider+`?"]`)
	return ctx, e.atUpstream(t, ctx, login)
}

func signedInAs(t *testing.T, p page, user string) {
	t.Helper()
	if p.status != 0 && p.status != http.StatusOK || p.url.Path != "/" || !strings.Contains(p.text, "Signed in as "+user) {
		t.Fatalf("want the home page signed in as %s; HTTP %d at %s, %q: %s", user, p.status, p.url, p.title, p.text)
	}
}

// TestFederationInBrowser is the whole story against the upstream peer.
func TestFederationInBrowser(t *testing.T) {
	t.Parallel()
	e := newFedEnv(t)
	bctx := browser.New(t)
	before := e.usernames(t)

	// The login page shows a button per provider next to the password form.
	ctx := newSession(t, bctx)
	p := e.open(t, ctx, e.base+"/login?return_to=%2F")
	for _, want := range []string{"Sign in with Contoso", "Sign in with Contoso invited", "Sign in with Gone", "Username"} {
		if !strings.Contains(p.text, want) {
			t.Fatalf("login page lacks %q:\n%s", want, p.text)
		}
	}
	browser.CheckPage(t, ctx, "login with providers")

	// A provider that cannot be reached: a page naming it, audited.
	p = e.click(t, ctx, `a[href^="/login/with/down?"]`)
	if p.status != http.StatusBadGateway || p.title != "Sign-in with Gone failed" || !strings.Contains(p.text, "Gone cannot be reached") ||
		strings.Contains(p.text, "127.0.0.1:9") {
		t.Fatalf("unreachable provider: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	e.waitAudit(t, "federation.login.failure", "provider down: provider_unavailable")

	// 1. First sign-in: the user is created from preferred_username,
	// roles from role_map plus default_roles.
	_, p = e.signInWith(t, bctx, "corp", "alice-sub")
	signedInAs(t, p, "alice")
	if got := e.userRoles(t, "alice"); !slices.Equal(got, []string{"employee", "member"}) {
		t.Fatalf("alice's roles = %v, want employee member", got)
	}
	e.waitAudit(t, "federation.login.success", "alice provider corp: created")
	e.waitAudit(t, "user.created", "federation:corp user alice")

	// 2. A relying party of Flowgate: its code flow goes through the
	// button and the upstream (a fresh browser, so its login again), and
	// the ID token says fed. The same user is reused.
	rpCtx := newSession(t, bctx)
	verifier := oauth2.GenerateVerifier()
	rp := &oauth2.Config{ClientID: "portal-rp", ClientSecret: fedRPSecret, RedirectURL: e.rpURL + "/rp",
		Endpoint: oauth2.Endpoint{AuthURL: e.base + "/oauth2/authorize", TokenURL: e.base + "/oauth2/token"}, Scopes: []string{"openid", "profile"}}
	p = e.open(t, rpCtx, rp.AuthCodeURL("rp-state-1", oauth2.S256ChallengeOption(verifier), oidc.Nonce("rp-nonce-1")))
	if p.url.Path != "/login" {
		t.Fatalf("the authorization request should show the login page, at %s", p.url)
	}
	e.click(t, rpCtx, `a[href^="/login/with/corp?request="]`)
	e.atUpstream(t, rpCtx, "alice-sub")
	q := e.catch.query("/rp")
	if q.Get("state") != "rp-state-1" || q.Get("code") == "" {
		t.Fatalf("the relying party got %v", q)
	}
	tok, err := rp.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange at Flowgate: %v", err)
	}
	op, err := oidc.NewProvider(t.Context(), e.base)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := op.Verifier(&oidc.Config{ClientID: "portal-rp"}).Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("Flowgate's ID token: %v", err)
	}
	var claims struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "alice" || idt.Nonce != "rp-nonce-1" || !slices.Contains(claims.AMR, "fed") {
		t.Fatalf("ID token sub %q nonce %q amr %v; want alice, rp-nonce-1, fed", idt.Subject, idt.Nonce, claims.AMR)
	}
	if got := e.usernames(t); len(got) != len(before)+1 {
		t.Fatalf("users after two sign-ins of alice: %v (before %v)", got, before)
	}
	e.waitAudit(t, "federation.login.success", "alice provider corp: link")

	// 3. Roles follow the upstream's groups at the next sign-in.
	up := map[string]oauthpeer.Account{
		"alice-sub": {Email: "alice@corp.example", EmailVerified: true, PreferredUsername: "alice", Groups: []string{"approvers"}},
		"carol-sub": {Email: "Carol@Example.com", EmailVerified: true, PreferredUsername: "carol.c", Groups: []string{"approvers"}},
		"dave-sub":  {Email: "dave@example.com", EmailVerified: false, PreferredUsername: "dave"},
		"eve-sub":   {Email: "eve@corp.example", EmailVerified: true, PreferredUsername: "eve"},
		"zoe-sub":   {Email: "zoe@corp.example", EmailVerified: true, PreferredUsername: "zoe"},
		"yan-sub":   {Email: "yan@corp.example", EmailVerified: true, PreferredUsername: "yan"},
	}
	e.up.SetAccounts(t, up)
	actx, p := e.signInWith(t, bctx, "corp", "alice-sub")
	signedInAs(t, p, "alice")
	if got := e.userRoles(t, "alice"); !slices.Equal(got, []string{"approver", "member"}) {
		t.Fatalf("alice's roles after her groups changed = %v, want approver member", got)
	}

	// 4. A verified email links an existing user; roles given in
	// Flowgate stay, the provider's are added.
	_, p = e.signInWith(t, bctx, "corp", "carol-sub")
	signedInAs(t, p, "carol")
	if got := e.userRoles(t, "carol"); !slices.Equal(got, []string{"approver", "auditor", "member"}) {
		t.Fatalf("carol's roles = %v", got)
	}
	e.waitAudit(t, "federation.linked", "carol linked to corp by verified email")

	// 5. An unverified email does not link: a page that says why, audited,
	// nothing created.
	_, p = e.signInWith(t, bctx, "corp", "dave-sub")
	if p.status != http.StatusForbidden || p.title != "Sign-in with Contoso failed" || !strings.Contains(p.text, "not verified") {
		t.Fatalf("unverified email: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	e.waitAudit(t, "federation.login.failure", "provider corp: email_not_verified")

	// 6. create_users: false refuses someone unknown with a clear page.
	sctx, p := e.signInWith(t, bctx, "strict", "eve-sub")
	if p.status != http.StatusForbidden || p.title != "Sign-in with Contoso invited failed" || !strings.Contains(p.text, "No Flowgate account is linked") {
		t.Fatalf("create_users false: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	browser.CheckPage(t, sctx, "federation refused")
	e.waitAudit(t, "federation.login.failure", "provider strict: no_account")

	// 7. A forged state: refused, audited.
	fctx := newSession(t, bctx)
	p = e.open(t, fctx, e.base+"/login/callback?state=forged-state&code=forged")
	if p.status != http.StatusBadRequest || !strings.Contains(p.text, "not valid") {
		t.Fatalf("forged state: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	e.waitAudit(t, "federation.login.failure", "invalid_state")

	// 8. A callback replayed, or presented by another browser: refused.
	jar, cb := e.callbackURL(t, "zoe-sub")
	other, _ := cookiejar.New(nil)
	if code, _ := e.get(t, other, cb); code != http.StatusBadRequest {
		t.Fatalf("a callback from another browser: HTTP %d, want 400", code)
	}
	if code, loc := e.get(t, jar, cb); code != http.StatusFound || loc != "/" {
		t.Fatalf("the callback from its own browser: HTTP %d to %q, want 302 to /", code, loc)
	}
	if code, _ := e.get(t, jar, cb); code != http.StatusBadRequest {
		t.Fatalf("the callback replayed: HTTP %d, want 400", code)
	}
	if got := e.usernames(t); !slices.Contains(got, "zoe") || slices.Contains(got, "eve") || slices.Contains(got, "dave-2") {
		t.Fatalf("users: %v", got)
	}
	// zoe (signed in by that callback) may remove her own link, not
	// someone else's.
	e.get(t, jar, e.base+"/")
	csrf := ""
	for _, c := range jar.Cookies(mustURL(t, e.base+"/")) {
		if c.Name == "flowgate_csrf" {
			csrf = c.Value
		}
	}
	if code, _ := e.post(t, jar, "/account/links/remove", url.Values{"csrf_token": {csrf}, "provider": {"corp"}, "subject": {"alice-sub"}}); code != http.StatusNotFound {
		t.Fatalf("zoe removing alice's link: HTTP %d, want 404", code)
	}
	if code, loc := e.post(t, jar, "/account/links/remove", url.Values{"csrf_token": {csrf}, "provider": {"corp"}, "subject": {"zoe-sub"}}); code != http.StatusSeeOther || loc != "/account?removed=1" {
		t.Fatalf("zoe removing her link: HTTP %d to %q", code, loc)
	}
	e.waitAudit(t, "federation.unlinked", "user:zoe user zoe unlinked from corp")

	// Client authentication by private_key_jwt at the provider's token
	// endpoint works the same.
	jar, cb = e.callbackURLAt(t, "corpjwt", "yan-sub")
	if code, loc := e.get(t, jar, cb); code != http.StatusFound || loc != "/" {
		t.Fatalf("sign-in through the private_key_jwt client: HTTP %d to %q", code, loc)
	}
	e.waitAudit(t, "federation.login.success", "yan provider corpjwt: created")

	// 9. One person, one principal: the app's token from the upstream
	// (a trusted issuer with the provider's issuer) is alice, and so is
	// her portal session: the instance and the vault connection are the
	// same for both.
	bearer := e.appToken(t, actx)
	code, me, mraw := e.bearer(t, http.MethodGet, "/api/v1/me", bearer, nil)
	if code != http.StatusOK || me["principal"] != "user:alice" {
		t.Fatalf("/api/v1/me with the upstream's token: %d %s", code, mraw)
	}
	code, inv, iraw := e.bearer(t, http.MethodPost, "/api/v1/flows/fed-connect/invoke", bearer, map[string]any{})
	if code != http.StatusAccepted {
		t.Fatalf("invoke with the upstream's token: %d %s", code, iraw)
	}
	inst, _ := inv["instance"].(map[string]any)
	id, _ := inst["id"].(string)
	connect, _ := inv["connect_url"].(string)
	if id == "" || connect == "" {
		t.Fatalf("invoke: %s", iraw)
	}
	p = e.open(t, actx, connect)
	if location(t, actx).Host == strings.TrimPrefix(e.up.Issuer, "http://") {
		p = e.atUpstream(t, actx, "alice-sub")
	}
	if p.url.Path != "/oauth-callback" || p.status != 0 && p.status != http.StatusOK {
		t.Fatalf("connect as alice's portal session: HTTP %d at %s: %s", p.status, p.url, p.text)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, got, raw := e.bearer(t, http.MethodGet, "/api/v1/instances/"+id, bearer, nil)
		if got["status"] == "completed" {
			if got["started_by"] != "user:alice" {
				t.Fatalf("instance started by %v", got["started_by"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s did not complete: %s", id, raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, conns, craw := e.bearer(t, http.MethodGet, "/api/v1/connections", bearer, nil)
	items, _ := conns["items"].([]any)
	if code != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["server"] != "corp-graph" {
		t.Fatalf("alice's connections through the upstream's token: %d %s", code, craw)
	}

	// The portal session sees the same instance as its own.
	p = e.open(t, actx, e.base+"/")
	if !strings.Contains(p.text, "Signed in as alice") {
		t.Fatalf("alice's portal session: %s", p.text)
	}

	// Her account page lists her sign-in link; she removes it there.
	p = e.open(t, actx, e.base+"/account")
	if !strings.Contains(p.text, "Sign-in links") || !strings.Contains(p.text, "alice-sub") {
		t.Fatalf("alice's account page lacks her link: %s", p.text)
	}
	browser.CheckPage(t, actx, "/account with sign-in links")
	p = e.click(t, actx, `form[action="/account/links/remove"] button[aria-label="Remove the link to corp (alice-sub)"]`)
	if p.url.Path != "/account" || !strings.Contains(p.text, "The link was removed.") || strings.Contains(p.text, "alice-sub") ||
		!strings.Contains(p.text, "You have no links to an identity provider.") {
		t.Fatalf("after alice removed her link: %s: %s", p.url, p.text)
	}
	e.waitAudit(t, "federation.unlinked", "user:alice user alice unlinked from corp")

	// 10. Logout ends the Flowgate session and offers the upstream's.
	e.open(t, actx, e.base+"/")
	p = e.click(t, actx, `header form button[type=submit]`)
	if p.title != "Signed out" || !strings.Contains(p.text, "Sign out of Contoso too") {
		t.Fatalf("after signing out: %q: %s", p.title, p.text)
	}
	href, err := chromedp.Run(actx, chromedp.Evaluate[string](`document.querySelector('a[href*="/session/end"]').href`))
	if err != nil || !strings.HasPrefix(href, e.up.Issuer+"/session/end?client_id=flowgate-rp") {
		t.Fatalf("upstream logout link %q: %v", href, err)
	}

	// 11. The administrators' page lists the links and removes one.
	adm := newSession(t, bctx)
	e.open(t, adm, e.base+"/login?return_to=%2Fadmin%2Fidentity-providers")
	p = e.signIn(t, adm, "admin", fedAdminPassword)
	if p.url.Path != "/admin/identity-providers" || !strings.Contains(p.text, "carol-sub") || !strings.Contains(p.text, e.base+"/login/callback") {
		t.Fatalf("admin page: %s: %s", p.url, p.text)
	}
	browser.CheckPage(t, adm, "/admin/identity-providers")
	p = e.click(t, adm, `form[action$="/corp/test"] button`)
	if !strings.Contains(p.text, "Reached: metadata and 1 signing key") {
		t.Fatalf("test of corp: %s", p.text)
	}
	p = e.click(t, adm, `button[aria-label="Remove the link of carol to corp"]`)
	if !strings.Contains(p.text, "The link was removed.") || strings.Contains(p.text, "carol-sub") {
		t.Fatalf("after removing carol's link: %s", p.text)
	}
	e.waitAudit(t, "federation.unlinked", "user:admin user carol unlinked from corp")

	// A user's page lists that user's links and removes one, back on
	// the same page.
	p = e.open(t, adm, e.base+"/admin/users/yan")
	if !strings.Contains(p.text, "Sign-in links") || !strings.Contains(p.text, "yan-sub") || !strings.Contains(p.text, "corpjwt") {
		t.Fatalf("yan's user page lacks the link: %s", p.text)
	}
	browser.CheckPage(t, adm, "/admin/users/{name} with sign-in links")
	p = e.click(t, adm, `form[action="/admin/identity-providers/links/remove"] button[aria-label="Remove the link to corpjwt (yan-sub)"]`)
	if p.url.Path != "/admin/users/yan" || !strings.Contains(p.text, "The link was removed.") || strings.Contains(p.text, "yan-sub") ||
		!strings.Contains(p.text, "This user has no links to an identity provider.") {
		t.Fatalf("after removing yan's link on his page: %s: %s", p.url, p.text)
	}
	e.waitAudit(t, "federation.unlinked", "user:admin user yan unlinked from corpjwt")

	// 12. The provider down at the callback: a page, an audit row, nothing
	// created.
	jar, cb = e.callbackURL(t, "eve-sub")
	e.up.Stop()
	if code, _ := e.get(t, jar, cb); code != http.StatusBadGateway {
		t.Fatalf("callback with the provider down: HTTP %d, want 502", code)
	}
	e.waitAudit(t, "federation.login.failure", "provider corp: provider_unavailable")
	if got := e.usernames(t); slices.Contains(got, "eve") {
		t.Fatalf("eve was created although her sign-in failed: %v", got)
	}
}

// bearer calls the API with a bearer token.
func (e *fedEnv) bearer(t *testing.T, method, path, token string, body any) (int, map[string]any, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, raw
}

// appToken is the app's access token for Flowgate's API from the upstream:
// a code flow in alice's browser (her upstream session is live), resource
// api://flowgate.
func (e *fedEnv) appToken(t *testing.T, ctx context.Context) string {
	t.Helper()
	app := &oauth2.Config{ClientID: oauthpeer.AppClient, ClientSecret: oauthpeer.AppSecret, RedirectURL: e.rpURL + "/app",
		Endpoint: oauth2.Endpoint{AuthURL: e.up.Issuer + "/auth", TokenURL: e.up.Issuer + "/token"},
		Scopes:   []string{"openid", "workflows.read", "workflows.start", "flows.invoke"}}
	verifier := oauth2.GenerateVerifier()
	e.open(t, ctx, app.AuthCodeURL("app-state", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("resource", oauthpeer.UpstreamAudience)))
	if location(t, ctx).Host == strings.TrimPrefix(e.up.Issuer, "http://") {
		e.atUpstream(t, ctx, "alice-sub")
	}
	q := e.catch.query("/app")
	if q.Get("code") == "" {
		t.Fatalf("the app got %v", q)
	}
	tok, err := app.Exchange(t.Context(), q.Get("code"), oauth2.VerifierOption(verifier), oauth2.SetAuthURLParam("resource", oauthpeer.UpstreamAudience))
	if err != nil {
		t.Fatalf("the app's token: %v", err)
	}
	if strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("the app's access token is not a JWT")
	}
	return tok.AccessToken
}

var formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)

// callbackURL walks a sign-in through the upstream with plain HTTP (its
// login and consent forms) and stops before Flowgate's callback: the jar
// holds the browser binding, the URL carries code and state.
func (e *fedEnv) callbackURL(t *testing.T, login string) (*cookiejar.Jar, string) {
	t.Helper()
	return e.callbackURLAt(t, "corp", login)
}

// callbackURLAt is callbackURL through the named provider.
func (e *fedEnv) callbackURLAt(t *testing.T, provider, login string) (*cookiejar.Jar, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	var cb string
	c := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), e.base+"/login/callback") {
			cb = req.URL.String()
			return http.ErrUseLastResponse
		}
		return nil
	}}
	resp, err := c.Get(e.base + "/login/with/" + provider + "?return_to=%2F")
	for range 4 {
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if cb != "" {
			return jar, cb
		}
		m := formAction.FindSubmatch(body)
		if m == nil {
			t.Fatalf("upstream page without a form (HTTP %d at %s): %s", resp.StatusCode, resp.Request.URL, body)
		}
		action, _ := resp.Request.URL.Parse(string(m[1]))
		form := url.Values{}
		if strings.Contains(string(body), `name="login"`) {
			form.Set("prompt", "login")
			form.Set("login", login)
			form.Set("password", "whatever")
		} else {
			form.Set("prompt", "consent")
		}
		resp, err = c.PostForm(action.String(), form)
	}
	t.Fatal("the upstream never sent the browser back")
	return nil, ""
}

// get requests u with jar, not following redirects.
func (e *fedEnv) get(t *testing.T, jar http.CookieJar, u string) (int, string) {
	t.Helper()
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location")
}

// fedKey makes the EC key of the private_key_jwt client: its public JWKS
// for the upstream and its PEM file for Flowgate.
func fedKey(t *testing.T, dir string) (jwks, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(dir, "idp-key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b), path
}

// TestFederationFlowgateUpstream: another Flowgate is the identity
// provider (template flowgate, the "other project" case). With
// auth.login.local false and a default provider the login page is
// skipped: the browser goes straight to the other Flowgate's sign-in and
// comes back signed in; the password form is refused.
func TestFederationFlowgateUpstream(t *testing.T) {
	t.Parallel()
	upDir, downDir := t.TempDir(), t.TempDir()
	upAddr, downAddr := freeAddr(t), freeAddr(t)
	upBase, downBase := "http://"+upAddr, "http://"+downAddr
	upCfg := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: frank
    password: frank-password-1
    email: frank@other.example
    name: Frank Other
clients:
  - id: downstream
    secret: downstream-secret-0123456789
    redirect_uris: [%q]
    scopes: [openid, profile, email]
    consent: admin
`, filepath.Join(upDir, "up.db"), downBase+"/login/callback")
	downCfg := fmt.Sprintf(`
database: "sqlite:%s"
auth:
  login:
    local: false
    default_identity_provider: other
identity_providers:
  - name: other
    title: Other project
    template: flowgate
    issuer: %q
    client_id: downstream
    client_secret: downstream-secret-0123456789
egress:
  allow: [127.0.0.1]
`, filepath.Join(downDir, "down.db"), upBase)
	for _, f := range [][2]string{{filepath.Join(upDir, "flowgate.yaml"), upCfg}, {filepath.Join(downDir, "flowgate.yaml"), downCfg}} {
		if err := os.WriteFile(f[0], []byte(f[1]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	startServeAt(t, upDir, upAddr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", filepath.Join(upDir, "flowgate.yaml"), "--public-url", upBase)
	down := startServeAt(t, downDir, downAddr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", filepath.Join(downDir, "flowgate.yaml"), "--public-url", downBase)
	e := &fedEnv{connectEnv: &connectEnv{base: downBase, srv: down, seen: map[string][]byte{}, dbCopies: map[string][]byte{}}}

	ctx := browser.New(t)
	p := e.open(t, ctx, downBase+"/login?return_to=%2F")
	if p.url.Host != upAddr || p.url.Path != "/login" {
		t.Fatalf("with a default provider the login page should send the browser to the other Flowgate, it is at %s", p.url)
	}
	p = e.signIn(t, ctx, "frank", "frank-password-1")
	if p.url.Host != downAddr {
		t.Fatalf("after the other Flowgate's sign-in the browser is at %s: %s", p.url, p.text)
	}
	signedInAs(t, p, "frank")

	// The password form is switched off here.
	resp, err := http.PostForm(downBase+"/login", url.Values{"username": {"frank"}, "password": {"frank-password-1"}, "return_to": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "switched off") {
		t.Fatalf("POST /login with login.local false: HTTP %d, want 403 saying password sign-in is off: %s", resp.StatusCode, body)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// post sends a form with jar, not following redirects.
func (e *fedEnv) post(t *testing.T, jar http.CookieJar, path string, form url.Values) (int, string) {
	t.Helper()
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(e.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Location")
}
