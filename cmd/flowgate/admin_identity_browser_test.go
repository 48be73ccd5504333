package main

// The management site's users, clients, trusted issuers and OAuth servers
// pages, end to end: the real binary, a real headless Chromium, and the
// independent OAuth provider (test/peers/oidc-provider) as the issuer and
// OAuth server the "test" buttons reach through the egress policy. On
// SQLite every page is also checked with axe-core at 375 and 1280 px; the
// state-changing steps run on PostgreSQL too.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

const (
	idAdminPassword = "root-password-1"
	idAlicePassword = "alice-password-1"
	idAuditorSecret = "auditor-secret-0123456789-abcdefghijklmnop"
)

func TestBrowserAdminIdentity(t *testing.T) {
	dir := t.TempDir()
	runAdminIdentity(t, dir, "sqlite:"+filepath.Join(dir, "flowgate.db"), true)
}

func TestBrowserAdminIdentityPostgres(t *testing.T) {
	runAdminIdentity(t, t.TempDir(), pgtest.DSN(t), false)
}

// idEnv is a running server with an administrator (root) and an employee
// (alice), and the OAuth peer.
type idEnv struct {
	*connectEnv
	admin *http.Client // root, signed in with cookies
}

func newIDEnv(t *testing.T, dir, database string) *idEnv {
	t.Helper()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	e.peer = oauthpeer.Start(t, oauthpeer.Options{RedirectURI: e.base + "/oauth-callback"})
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: %q
users:
  - username: root
    password: %q
    roles: [admin]
  - username: alice
    password: %q
    roles: [employee]
clients:
  - id: auditor
    secret: %q
    grant_types: [client_credentials]
    scopes: [admin]
    roles: [admin]
egress:
  allow: [127.0.0.1] # the OAuth peer
`, database, idAdminPassword, idAlicePassword, idAuditorSecret)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", cfg, "--public-url", e.base)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookieSignIn(t, c, e.base, "root", idAdminPassword)
	return &idEnv{connectEnv: e, admin: c}
}

// post sends a management form as root with the page's CSRF token (or
// the one given, "" for none) and returns the status and the page.
func (e *idEnv) post(t *testing.T, c *http.Client, path string, form url.Values, token *string) (int, string) {
	t.Helper()
	if token == nil {
		_, page := getPage(t, c, e.base+"/admin/users")
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token on /admin/users:\n%s", page)
		}
		token = &m[1]
	}
	if *token != "" {
		form.Set("csrf_token", *token)
	}
	resp, err := c.PostForm(e.base+path, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// fieldError is the message shown next to input name on an HTML page.
func fieldError(page, name string) string {
	m := regexp.MustCompile(`<span class="field-error" id="e-` + regexp.QuoteMeta(name) + `">([^<]*)</span>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return m[1]
}

// clientCredentials asks Flowgate's token endpoint for a token.
func (e *idEnv) clientCredentials(t *testing.T, id, secret string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fill types into the inputs of the page, by id.
func fill(t *testing.T, ctx context.Context, values map[string]string) {
	t.Helper()
	for id, v := range values {
		if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#"+id), v)); err != nil {
			t.Fatalf("typing into #%s: %v", id, err)
		}
	}
}

func evalString(t *testing.T, ctx context.Context, js string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
	if err != nil {
		t.Fatalf("%s: %v", js, err)
	}
	return v
}

func runAdminIdentity(t *testing.T, dir, database string, checkPages bool) {
	e := newIDEnv(t, dir, database)
	check := func(ctx context.Context, name string) {
		if checkPages {
			browser.CheckPage(t, ctx, name)
		}
	}

	// Everyone else gets the 403 page on every one of these pages.
	aliceJar, _ := cookiejar.New(nil)
	aliceHTTP := &http.Client{Jar: aliceJar, CheckRedirect: e.admin.CheckRedirect}
	cookieSignIn(t, aliceHTTP, e.base, "alice", idAlicePassword)
	for _, p := range []string{"/admin/users", "/admin/users/alice", "/admin/clients", "/admin/issuers", "/admin/oauth-servers"} {
		if code, page := getPage(t, aliceHTTP, e.base+p); code != http.StatusForbidden || !strings.Contains(page, "for administrators") {
			t.Errorf("alice on %s: %d, want the 403 page", p, code)
		}
	}

	ctx := browser.New(t)
	e.signInAt(t, ctx, "root", idAdminPassword)

	// --- Clients: create in the browser; the secret is shown once.
	p := e.open(t, ctx, e.base+"/admin/clients")
	if p.status != http.StatusOK || p.title != "Clients" {
		t.Fatalf("/admin/clients: %d %q", p.status, p.title)
	}
	check(ctx, "admin-clients")
	fill(t, ctx, map[string]string{"f-id": "reports", "f-name": "Reporting job", "f-scopes": "workflows.read"})
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#f-grant_types-client_credentials"))); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/admin/clients"] button[type=submit]`)
	if p.status != http.StatusOK || p.title != "Client secret" {
		t.Fatalf("creating a client: %d %q\n%s", p.status, p.title, p.text)
	}
	secret := evalString(t, ctx, `document.getElementById('secret').value`)
	if len(secret) < 40 {
		t.Fatalf("the secret shown: %q", secret)
	}
	check(ctx, "admin-client-secret")
	if code := e.clientCredentials(t, "reports", secret); code != http.StatusOK {
		t.Fatalf("the new client's secret at the token endpoint: %d", code)
	}
	// Loading the address again, or the client's page, never shows it.
	for _, u := range []string{location(t, ctx).String(), e.base + "/admin/clients/reports"} {
		p = e.open(t, ctx, u)
		html := evalString(t, ctx, `document.documentElement.outerHTML`)
		if p.status != http.StatusOK || strings.Contains(html, secret) {
			t.Fatalf("%s after creating: %d, secret shown again: %v", u, p.status, strings.Contains(html, secret))
		}
	}
	if p.title != "Client reports" || !strings.Contains(p.text, "never shown again") {
		t.Fatalf("the client's page: %q\n%s", p.title, p.text)
	}
	check(ctx, "admin-client")

	// Edit: a redirect URI that is not one is refused next to the field.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#f-grant_types-authorization_code"))); err != nil {
		t.Fatal(err)
	}
	fill(t, ctx, map[string]string{"f-redirect_uris": "not a url"})
	p = e.click(t, ctx, `form[action="/admin/clients/reports"] button[type=submit]`)
	msg := evalString(t, ctx, `(document.getElementById('e-redirect_uris') || {}).textContent || ''`)
	if p.status != http.StatusBadRequest || msg == "" {
		t.Fatalf("a bad redirect URI: %d, message %q\n%s", p.status, msg, p.text)
	}
	check(ctx, "admin-client-error")
	fill(t, ctx, map[string]string{"f-redirect_uris": "https://reports.example.com/cb"})
	p = e.click(t, ctx, `form[action="/admin/clients/reports"] button[type=submit]`)
	if p.status != http.StatusOK || !strings.Contains(p.text, "Saved.") || evalString(t, ctx, `document.getElementById('f-redirect_uris').value`) != "https://reports.example.com/cb" {
		t.Fatalf("saving the client: %d\n%s", p.status, p.text)
	}

	// Rotate: the new secret is shown once; the old one stops working.
	p = e.click(t, ctx, `form[action="/admin/clients/reports/secret"] button`)
	rotated := evalString(t, ctx, `document.getElementById('secret').value`)
	if p.title != "Client secret" || rotated == "" || rotated == secret {
		t.Fatalf("rotating: %q %q", p.title, rotated)
	}
	// The token endpoint trusts its cached client record for up to a
	// second: the new secret works, and the old one fails, within it.
	waitFor(t, "the rotated secret to work", func() bool { return e.clientCredentials(t, "reports", rotated) == http.StatusOK })
	waitFor(t, "the old secret to be refused", func() bool { return e.clientCredentials(t, "reports", secret) == http.StatusUnauthorized })

	// Remove, confirmed on a page of its own.
	p = e.open(t, ctx, e.base+"/admin/clients/reports")
	p = e.click(t, ctx, `a[href="/admin/clients/reports/remove"]`)
	if p.title != "Remove client reports" {
		t.Fatalf("the removal question: %q", p.title)
	}
	check(ctx, "admin-client-remove")
	p = e.click(t, ctx, `form[action="/admin/clients/reports/remove"] button`)
	if p.url.Path != "/admin/clients" || !strings.Contains(p.text, "Removed.") || strings.Contains(p.text, "Reporting job") {
		t.Fatalf("after removing: %s\n%s", p.url, p.text)
	}
	waitFor(t, "the removed client to be refused", func() bool { return e.clientCredentials(t, "reports", rotated) == http.StatusUnauthorized })

	// --- Users: alice's open browser session ends when she is disabled.
	actx := newSession(t, ctx)
	e.signInAt(t, actx, "alice", idAlicePassword)
	if p := e.open(t, actx, e.base+"/"); p.status != http.StatusOK || p.url.Path != "/" {
		t.Fatalf("alice's portal: %d %s", p.status, p.url)
	}
	p = e.open(t, ctx, e.base+"/admin/users")
	if !strings.Contains(p.text, "alice") {
		t.Fatalf("the users list:\n%s", p.text)
	}
	check(ctx, "admin-users")
	fill(t, ctx, map[string]string{"f-username": "carol smith", "f-email": "not-an-address", "f-password": "carol-password-1"})
	p = e.click(t, ctx, `form[action="/admin/users"] button[type=submit]`)
	if msg := evalString(t, ctx, `(document.getElementById('e-email') || {}).textContent || ''`); p.status != http.StatusBadRequest || msg == "" ||
		evalString(t, ctx, `document.getElementById('f-username').value`) != "carol smith" || evalString(t, ctx, `document.getElementById('f-password').value`) != "" {
		t.Fatalf("a bad new user: %d, email message %q\n%s", p.status, msg, p.text)
	}
	check(ctx, "admin-users-error")
	p = e.open(t, ctx, e.base+"/admin/users")
	p = e.click(t, ctx, `main a[href="/admin/users/alice"]`)
	if p.title != "User alice" {
		t.Fatalf("alice's page: %q", p.title)
	}
	check(ctx, "admin-user")
	p = e.click(t, ctx, `form[action="/admin/users/alice/disable"] button`)
	if !strings.Contains(p.text, "The user is disabled") || !strings.Contains(p.text, "disabled") {
		t.Fatalf("after disabling:\n%s", p.text)
	}
	if p := e.open(t, actx, e.base+"/"); p.url.Path != "/login" {
		t.Fatalf("alice's next page load after she was disabled: %d at %s, want the sign-in page", p.status, p.url)
	}
	e.signIn(t, actx, "alice", idAlicePassword)
	if u := location(t, actx); u.Path != "/login" {
		t.Fatalf("a disabled alice signed in: %s", u)
	}
	p = e.click(t, ctx, `form[action="/admin/users/alice/enable"] button`)
	if !strings.Contains(p.text, "enabled and may sign in") {
		t.Fatalf("after enabling:\n%s", p.text)
	}

	// Reset password: the policy's message next to the field, then a
	// good one that alice signs in with (and the old one no longer).
	fill(t, ctx, map[string]string{"f-new_password": "short"})
	p = e.click(t, ctx, `form[action="/admin/users/alice/password"] button[type=submit]`)
	if msg := evalString(t, ctx, `(document.getElementById('e-new_password') || {}).textContent || ''`); p.status != http.StatusBadRequest || !strings.Contains(msg, "8 to 1024") {
		t.Fatalf("a short password: %d %q", p.status, msg)
	}
	check(ctx, "admin-user-error")
	fill(t, ctx, map[string]string{"f-new_password": "alice-new-password"})
	p = e.click(t, ctx, `form[action="/admin/users/alice/password"] button[type=submit]`)
	if !strings.Contains(p.text, "The password was changed.") {
		t.Fatalf("after the reset:\n%s", p.text)
	}
	bctx := newSession(t, ctx)
	e.signInAt(t, bctx, "alice", idAlicePassword)
	if u := location(t, bctx); u.Path != "/login" {
		t.Fatalf("alice signed in with her old password: %s", u)
	}
	cctx := newSession(t, ctx)
	e.signInAt(t, cctx, "alice", "alice-new-password")
	if p := e.open(t, cctx, e.base+"/"); p.status != http.StatusOK || p.url.Path != "/" {
		t.Fatalf("alice with her new password: %d %s", p.status, p.url)
	}
	// End sessions: her session ends, she is not disabled.
	p = e.open(t, ctx, e.base+"/admin/users/alice")
	p = e.click(t, ctx, `form[action="/admin/users/alice/sessions"] button`)
	if !strings.Contains(p.text, "sessions ended") {
		t.Fatalf("after ending sessions:\n%s", p.text)
	}
	if p := e.open(t, cctx, e.base+"/"); p.url.Path != "/login" {
		t.Fatalf("alice's page after her sessions ended: %s", p.url)
	}

	// Create a user; bad input first, nothing saved.
	code, page := e.post(t, e.admin, "/admin/users", url.Values{"username": {"bob smith"}, "email": {"nope"}, "password": {"bob-password-1"}}, nil)
	if code != http.StatusBadRequest || fieldError(page, "username") == "" || fieldError(page, "email") == "" {
		t.Fatalf("a bad user: %d, username %q, email %q", code, fieldError(page, "username"), fieldError(page, "email"))
	}
	if strings.Contains(page, "bob-password-1") {
		t.Fatal("the typed password was echoed back")
	}
	if code, _ := getPage(t, e.admin, e.base+"/admin/users/bob%20smith"); code != http.StatusNotFound {
		t.Fatalf("the refused user exists: %d", code)
	}
	code, _ = e.post(t, e.admin, "/admin/users", url.Values{"username": {"bob"}, "name": {"Bob"}, "roles": {"employee, approver"}, "password": {"bob-password-1"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("creating bob: %d", code)
	}
	if code, page := getPage(t, e.admin, e.base+"/admin/users/bob"); code != http.StatusOK || !strings.Contains(page, `value="employee approver"`) {
		t.Fatalf("bob's page: %d\n%s", code, page)
	}
	code, page = e.post(t, e.admin, "/admin/users", url.Values{"username": {"bob"}}, nil)
	if code != http.StatusConflict || fieldError(page, "username") == "" {
		t.Fatalf("bob again: %d %q", code, fieldError(page, "username"))
	}

	// Forged or missing CSRF tokens change nothing.
	for name, tok := range map[string]string{"missing": "", "forged": strings.Repeat("A", 43)} {
		if code, _ := e.post(t, e.admin, "/admin/users/bob/disable", url.Values{}, &tok); code != http.StatusForbidden {
			t.Errorf("%s CSRF token on disable: %d", name, code)
		}
		if code, _ := e.post(t, e.admin, "/admin/clients", url.Values{"id": {"forged"}, "grant_types": {"client_credentials"}}, &tok); code != http.StatusForbidden {
			t.Errorf("%s CSRF token on a new client: %d", name, code)
		}
		if code, _ := e.post(t, e.admin, "/admin/issuers/x/remove", url.Values{}, &tok); code != http.StatusForbidden {
			t.Errorf("%s CSRF token on a removal: %d", name, code)
		}
	}
	if _, page := getPage(t, e.admin, e.base+"/admin/users/bob"); !strings.Contains(page, "<dd>enabled</dd>") {
		t.Error("a forged disable disabled bob")
	}
	if code, _ := getPage(t, e.admin, e.base+"/admin/clients/forged"); code != http.StatusNotFound {
		t.Errorf("a forged form created a client: %d", code)
	}

	// Clients: bad input on the create form.
	code, page = e.post(t, e.admin, "/admin/clients", url.Values{"id": {"web"}, "grant_types": {"authorization_code"}, "redirect_uris": {"/relative"}}, nil)
	if code != http.StatusBadRequest || fieldError(page, "redirect_uris") == "" {
		t.Fatalf("a bad client: %d %q", code, fieldError(page, "redirect_uris"))
	}
	if code, _ := getPage(t, e.admin, e.base+"/admin/clients/web"); code != http.StatusNotFound {
		t.Fatalf("the refused client exists: %d", code)
	}

	// --- Trusted issuers: bad input, then the peer, tested.
	code, page = e.post(t, e.admin, "/admin/issuers", url.Values{"name": {"peer"}, "issuer": {"ftp://peer"}, "audience": {""}}, nil)
	if code != http.StatusBadRequest || fieldError(page, "issuer") == "" || fieldError(page, "audience") == "" {
		t.Fatalf("a bad issuer: %d issuer %q audience %q", code, fieldError(page, "issuer"), fieldError(page, "audience"))
	}
	if code, _ := getPage(t, e.admin, e.base+"/admin/issuers/peer"); code != http.StatusNotFound {
		t.Fatalf("the refused issuer exists: %d", code)
	}
	p = e.open(t, ctx, e.base+"/admin/issuers")
	check(ctx, "admin-issuers")
	fill(t, ctx, map[string]string{"f-name": "peer", "f-issuer": e.peer.Issuer, "f-audience": "flowgate", "f-scope_map": "api.read = workflows.read"})
	p = e.click(t, ctx, `form[action="/admin/issuers"] button[type=submit]`)
	if p.title != "Trusted issuer peer" || !strings.Contains(p.text, "Created.") {
		t.Fatalf("adding the issuer: %d %q\n%s", p.status, p.title, p.text)
	}
	p = e.click(t, ctx, `form[action="/admin/issuers/peer/test"] button`)
	if !strings.Contains(p.text, "The test succeeded.") || !regexp.MustCompile(`Keys\s+[1-9]`).MatchString(p.text) ||
		!regexp.MustCompile(`Algorithms\s+\S`).MatchString(p.text) {
		t.Fatalf("testing the issuer:\n%s", p.text)
	}
	check(ctx, "admin-issuer-test")
	// An issuer whose metadata is not there: the error, said.
	code, _ = e.post(t, e.admin, "/admin/issuers", url.Values{"name": {"gone"}, "issuer": {e.peer.Issuer + "/gone"}, "audience": {"x"}, "subject_claim": {"sub"}, "scope_claim": {"scope"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("adding issuer gone: %d", code)
	}
	code, page = e.post(t, e.admin, "/admin/issuers/gone/test", url.Values{}, nil)
	if code != http.StatusOK || !strings.Contains(page, "The test failed: metadata:") {
		t.Fatalf("testing issuer gone: %d\n%s", code, page)
	}

	// The tests go out through the egress policy: the cloud metadata
	// address is refused before any connection, and the page says why.
	code, _ = e.post(t, e.admin, "/admin/issuers", url.Values{"name": {"meta"}, "issuer": {"http://169.254.169.254"}, "audience": {"x"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("adding issuer meta: %d", code)
	}
	code, page = e.post(t, e.admin, "/admin/issuers/meta/test", url.Values{}, nil)
	if code != http.StatusOK || !strings.Contains(page, "The test failed") || !strings.Contains(page, "link-local") {
		t.Fatalf("testing an issuer on a denied address: %d\n%s", code, page)
	}
	code, _ = e.post(t, e.admin, "/admin/oauth-servers", url.Values{"name": {"meta"}, "token_endpoint": {"http://169.254.169.254/token"},
		"client_id": {"x"}, "client_secret": {"y"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("adding OAuth server meta: %d", code)
	}
	code, page = e.post(t, e.admin, "/admin/oauth-servers/meta/test", url.Values{}, nil)
	if code != http.StatusOK || !strings.Contains(page, "The test failed") || !strings.Contains(page, "link-local") {
		t.Fatalf("testing an OAuth server on a denied address: %d\n%s", code, page)
	}

	// --- OAuth servers: bad input, then the peer, tested; the secret is
	// never shown back.
	code, page = e.post(t, e.admin, "/admin/oauth-servers", url.Values{"name": {"peer"}, "client_secret": {"typed-secret-xyz"}}, nil)
	if code != http.StatusBadRequest || fieldError(page, "client_id") == "" || fieldError(page, "metadata_url") == "" {
		t.Fatalf("a bad OAuth server: %d client_id %q metadata_url %q", code, fieldError(page, "client_id"), fieldError(page, "metadata_url"))
	}
	if strings.Contains(page, "typed-secret-xyz") {
		t.Fatal("the typed client secret was echoed back")
	}
	p = e.open(t, ctx, e.base+"/admin/oauth-servers")
	check(ctx, "admin-oauth-servers")
	fill(t, ctx, map[string]string{"f-name": "peer", "f-metadata_url": e.peer.MetadataURL(), "f-client_id": oauthpeer.BasicClient,
		"f-client_secret": oauthpeer.BasicSecret, "f-scopes": "api.read"})
	p = e.click(t, ctx, `form[action="/admin/oauth-servers"] button[type=submit]`)
	if p.title != "OAuth server peer" || !strings.Contains(p.text, "Created.") {
		t.Fatalf("adding the OAuth server: %d %q\n%s", p.status, p.title, p.text)
	}
	if html := evalString(t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, oauthpeer.BasicSecret) {
		t.Fatal("the OAuth server's page shows its client secret")
	}
	before := e.peer.Stats(t).ClientCredentialsGrants
	p = e.click(t, ctx, `form[action="/admin/oauth-servers/peer/test"] button`)
	if !strings.Contains(p.text, "The test succeeded.") || !strings.Contains(p.text, "api.read") || !regexp.MustCompile(`Expires in\s+\d+ s`).MatchString(p.text) {
		t.Fatalf("testing the OAuth server:\n%s", p.text)
	}
	if after := e.peer.Stats(t).ClientCredentialsGrants; after != before+1 {
		t.Fatalf("client credentials grants at the peer: %d, then %d", before, after)
	}
	if html := evalString(t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, oauthpeer.BasicSecret) || strings.Contains(html, "access_token") {
		t.Fatal("the test's answer shows a secret or a token")
	}
	check(ctx, "admin-oauth-server-test")
	// Edit without typing the secret keeps it; a wrong one makes the test
	// fail with the provider's error code.
	code, _ = e.post(t, e.admin, "/admin/oauth-servers/peer", url.Values{"metadata_url": {e.peer.MetadataURL()}, "client_id": {oauthpeer.BasicClient},
		"client_auth": {"client_secret_basic"}, "scopes": {"api.read"}, "use_pkce": {"on"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("saving the OAuth server without its secret: %d", code)
	}
	if code, page := e.post(t, e.admin, "/admin/oauth-servers/peer/test", url.Values{}, nil); code != http.StatusOK || !strings.Contains(page, "The test succeeded.") {
		t.Fatalf("the kept secret: %d\n%s", code, page)
	}
	code, _ = e.post(t, e.admin, "/admin/oauth-servers/peer", url.Values{"metadata_url": {e.peer.MetadataURL()}, "client_id": {oauthpeer.BasicClient},
		"client_secret": {"wrong-secret"}, "client_auth": {"client_secret_basic"}, "scopes": {"api.read"}}, nil)
	if code != http.StatusSeeOther {
		t.Fatalf("saving a wrong secret: %d", code)
	}
	if code, page := e.post(t, e.admin, "/admin/oauth-servers/peer/test", url.Values{}, nil); code != http.StatusOK || !strings.Contains(page, "The test failed") || !strings.Contains(page, "invalid_client") {
		t.Fatalf("a wrong secret tested: %d\n%s", code, page)
	}
	// Removing the issuer and the server.
	for _, path := range []string{"/admin/issuers/peer", "/admin/oauth-servers/peer"} {
		if code, _ := e.post(t, e.admin, path+"/remove", url.Values{}, nil); code != http.StatusSeeOther {
			t.Fatalf("removing %s: %d", path, code)
		}
		if code, _ := getPage(t, e.admin, e.base+path); code != http.StatusNotFound {
			t.Fatalf("%s after removal: %d", path, code)
		}
	}

	// Every change is in the audit log as the admin API records it: the
	// same events, by user:root, with where the request came from.
	want := []string{"client.created", "client.updated", "client.secret_rotated", "client.removed",
		"user.disabled", "user.enabled", "user.updated", "user.sessions_ended", "user.created",
		"issuer.created", "issuer.removed", "oauth_server.created", "oauth_server.updated", "oauth_server.removed"}
	var missing []string
	waitFor(t, "the changes in the audit log", func() bool {
		seen := map[string]bool{}
		for _, ev := range e.auditEvents(t, "user:root") {
			if ev["remote_addr"] != "" {
				seen[ev["event"].(string)] = true
			}
		}
		missing = missing[:0]
		for _, w := range want {
			if !seen[w] {
				missing = append(missing, w)
			}
		}
		return len(missing) == 0
	})
}

// auditEvents reads the audit log's events by user through the admin API.
func (e *idEnv) auditEvents(t *testing.T, user string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/token", strings.NewReader("grant_type=client_credentials&scope=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("auditor", idAuditorSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tok)
	resp.Body.Close()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("the auditor's token: %d %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest(http.MethodGet, e.base+"/api/v1/admin/audit?limit=500&user="+url.QueryEscape(user), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the audit log: %d %v", resp.StatusCode, err)
	}
	return list.Items
}

// waitFor polls cond for up to 5 s (the token endpoint trusts its client
// cache for a second).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5 s for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
