package main

// The user login of an oauth_user_login step, end to end: the real binary,
// a real headless Chromium, and an independent OAuth provider
// (panva/node-oidc-provider through internal/testutil/oauthpeer) with its
// own login and consent pages. The browser follows the connect link from
// the worklist through Flowgate's login page, the provider's pages and back
// to /oauth-callback; then the callback's state is attacked: replayed,
// forged, and presented from other browser sessions.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

const (
	connectAlicePassword = "alice-password-1"
	connectBobPassword   = "bob-password-1"
)

// connectFlow signs the starter in to the provider, stops with 409 and the
// status code when that did not work, else calls the target API with the
// starter's token.
const connectFlow = `
name: connect-demo
title: Connect demo
permissions: {start: ["role:employee"]}
steps:
  - id: login
    type: oauth_user_login
    server: peer
  - id: check
    type: switch
    cases:
      - when: "${{ steps.login.output.status_code != 0 }}"
        next: refused
    default: call
  - id: call
    type: http
    method: GET
    url: "%s/me"
    auth: {server: peer, as: starter}
  - id: done
    type: return
    status: 200
    body: {called: "${{ steps.call.output.status }}"}
  - id: refused
    type: return
    status: 409
    body: {code: "${{ steps.login.output.status_code }}"}
`

// bearerLog is the target API: it records the bearer tokens it is sent.
type bearerLog struct {
	mu     sync.Mutex
	tokens []string
}

func (b *bearerLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	b.tokens = append(b.tokens, tok)
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (b *bearerLog) seen() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.tokens...)
}

// connectEnv is the running binary, the provider and the target, and
// everything the test saw that must hold no token.
type connectEnv struct {
	base   string
	srv    *serving
	peer   *oauthpeer.Peer
	sink   *bearerLog
	dbPath string

	// providerLogins counts the provider's login pages the browser
	// filled in.
	providerLogins int

	mu       sync.Mutex
	seen     map[string][]byte // API responses and pages, by what they were
	nSeen    int
	dbCopies map[string][]byte
}

func newConnectEnv(t *testing.T) *connectEnv {
	t.Helper()
	dir := t.TempDir()
	e := &connectEnv{sink: &bearerLog{}, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	tgt := httptest.NewServer(e.sink)
	t.Cleanup(tgt.Close)
	addr := freeAddr(t)
	e.base = "http://" + addr
	e.peer = oauthpeer.Start(t, oauthpeer.Options{RedirectURI: e.base + "/oauth-callback"})

	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "connect-demo.yaml"), fmt.Appendf(nil, connectFlow, tgt.URL), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: alice
    password: %q
    roles: [employee]
  - username: bob
    password: %q
    roles: [employee]
oauth_servers:
  - name: peer
    metadata_url: %q
    client_id: %s
    client_secret: %s
    scopes: [openid, api.read, offline_access]
    use_prompt: true
apis:
  basic_auth: true
egress:
  allow: [127.0.0.1] # the provider and the flow's target
flows: %s
`, e.dbPath, connectAlicePassword, connectBobPassword, e.peer.MetadataURL(), oauthpeer.BasicClient, oauthpeer.BasicSecret, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey},
		"--config", cfg, "--public-url", e.base, "--log-level", "debug")
	return e
}

// keep records what the test saw, for the final search for tokens.
func (e *connectEnv) keep(what string, b []byte) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.nSeen++
	e.seen[fmt.Sprintf("%03d %s", e.nSeen, what)] = append([]byte(nil), b...)
}

// api calls the API as a user with HTTP Basic (apis.basic_auth).
func (e *connectEnv) api(t *testing.T, method, path, user, pass string, body any) (int, map[string]any, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(user, pass)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	e.keep(method+" "+path, raw)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, raw
}

func (e *connectEnv) alice(t *testing.T, method, path string, body any) (int, map[string]any, []byte) {
	t.Helper()
	return e.api(t, method, path, "alice", connectAlicePassword, body)
}

// invoke runs the flow as alice: it waits for her sign-in, so 202 with the
// connect link.
func (e *connectEnv) invoke(t *testing.T) (id, connectURL string) {
	t.Helper()
	code, body, raw := e.alice(t, http.MethodPost, "/api/v1/flows/connect-demo/invoke", map[string]any{})
	if code != http.StatusAccepted {
		t.Fatalf("invoke: %d %s\n%s", code, raw, e.srv.stderr.String())
	}
	inst, _ := body["instance"].(map[string]any)
	id, _ = inst["id"].(string)
	connectURL, _ = body["connect_url"].(string)
	if id == "" || inst["status"] != "waiting" {
		t.Fatalf("invoke: want a waiting instance, got %s", raw)
	}
	if want := e.base + "/connect/" + id + "/login"; connectURL != want {
		t.Fatalf("invoke: connect_url %q, want %q", connectURL, want)
	}
	return id, connectURL
}

// instance waits until the instance has one of the statuses.
func (e *connectEnv) instance(t *testing.T, id string, statuses ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, raw := e.alice(t, http.MethodGet, "/api/v1/instances/"+id, nil)
		for _, s := range statuses {
			if code == http.StatusOK && body["status"] == s {
				return body
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: %d %s; want status %v\n%s", id, code, raw, statuses, e.srv.stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ended checks the instance completed with the return step's status and
// body field.
func (e *connectEnv) ended(t *testing.T, id string, status int, key string, value any) {
	t.Helper()
	inst := e.instance(t, id, "completed", "failed", "cancelled")
	out, _ := inst["output"].(map[string]any)
	body, _ := out["body"].(map[string]any)
	if inst["status"] != "completed" || out["status"] != float64(status) || body[key] != value {
		t.Fatalf("instance %s: want completed with %d and %s=%v, got %v", id, status, key, value, inst)
	}
}

// vaultTokens reads alice's connection to peer from the database, as a
// second process with the server's key: the tokens the test must then
// find nowhere else.
func (e *connectEnv) vaultTokens(t *testing.T) store.Connection {
	t.Helper()
	ring, err := keyring.Parse(durableKey)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), e.dbPath, store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c, err := st.GetConnection(t.Context(), "user:alice", "peer")
	if err != nil {
		t.Fatalf("alice's connection to peer: %v", err)
	}
	if len(c.AccessToken) < 16 || len(c.RefreshToken) < 16 {
		t.Fatalf("the vault holds access token of %d and refresh token of %d characters", len(c.AccessToken), len(c.RefreshToken))
	}
	return c
}

// copyDatabase keeps the database's bytes as they are now.
func (e *connectEnv) copyDatabase(t *testing.T, when string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(e.dbPath + suffix)
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		e.dbCopies[when+": flowgate.db"+suffix] = b
	}
}

// Browser steps.

// page is what the browser shows: where, its heading and text.
type page struct {
	status int64
	url    *url.URL
	title  string
	text   string
}

func (e *connectEnv) readPage(t *testing.T, ctx context.Context, resp *network.Response) page {
	t.Helper()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(loc)
	if err != nil {
		t.Fatal(err)
	}
	p := page{url: u}
	if resp != nil {
		p.status = resp.Status
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatalf("page %s: %v", u.Path, err)
	}
	e.keep("page "+u.Path, []byte(html))
	if p.text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err != nil {
		t.Fatal(err)
	}
	if p.title, err = chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("h1") || {}).textContent || ""`)); err != nil {
		t.Fatal(err)
	}
	return p
}

func (e *connectEnv) open(t *testing.T, ctx context.Context, u string) page {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(u))
	if err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
	return e.readPage(t, ctx, resp)
}

func (e *connectEnv) click(t *testing.T, ctx context.Context, sel string) page {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("click %s: %v", sel, err)
	}
	return e.readPage(t, ctx, resp)
}

// signIn fills Flowgate's login page.
func (e *connectEnv) signIn(t *testing.T, ctx context.Context, user, pass string) page {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#username"), user),
		chromedp.SendKeys(chromedp.CSS("#password"), pass),
	); err != nil {
		t.Fatalf("Flowgate's login form: %v", err)
	}
	return e.click(t, ctx, `button[type=submit]`)
}

// signInAt opens Flowgate's login page in a fresh browser session and
// signs in.
func (e *connectEnv) signInAt(t *testing.T, ctx context.Context, user, pass string) {
	t.Helper()
	if p := e.open(t, ctx, e.base+"/login?return_to=%2F"); p.url.Path != "/login" {
		t.Fatalf("the login page is at %s", p.url)
	}
	e.signIn(t, ctx, user, pass)
}

// The choice the user makes on the provider's consent page.
type consentChoice int

const (
	approve consentChoice = iota
	deny
	// approveAndHold approves, but the browser's request to Flowgate's
	// callback is intercepted and answered by the test: the callback URL
	// is captured unused.
	approveAndHold
)

// atProvider plays the user on the provider's pages: its login page when
// shown (devInteractions: any login, any password), then the consent page.
// It returns the page the browser ends on and, with approveAndHold, the
// held callback URL.
func (e *connectEnv) atProvider(t *testing.T, ctx context.Context, choice consentChoice) (page, string) {
	t.Helper()
	peerHost := strings.TrimPrefix(e.peer.Issuer, "http://")
	for range 3 {
		if u := location(t, ctx); u.Host != peerHost {
			t.Fatalf("expected a page of the provider, the browser is at %s", u)
		}
		prompt, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector('input[name="prompt"]') || {}).value || ""`))
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case prompt == "login":
			if err := chromedp.Do(ctx,
				chromedp.SendKeys(chromedp.CSS(`input[name="login"]`), "alice@peer"),
				chromedp.SendKeys(chromedp.CSS(`input[name="password"]`), "whatever"),
			); err != nil {
				t.Fatalf("the provider's login form: %v", err)
			}
			e.providerLogins++
			e.click(t, ctx, `button[type=submit]`)
		case prompt == "consent" && choice == deny:
			return e.click(t, ctx, `a[href$="/abort"]`), ""
		case prompt == "consent" && choice == approve:
			return e.click(t, ctx, `button[type=submit]`), ""
		case prompt == "consent" && choice == approveAndHold:
			return e.approveAndHold(t, ctx)
		default:
			html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
			t.Fatalf("a provider page with neither login nor consent form:\n%s", html)
		}
	}
	t.Fatal("the provider kept showing pages")
	return page{}, ""
}

// approveAndHold clicks Continue on the consent page with Chromium's
// Fetch domain pausing requests to Flowgate's callback: the paused
// request's URL (code and state) is captured, and the test answers it
// instead of Flowgate, which never sees it.
func (e *connectEnv) approveAndHold(t *testing.T, ctx context.Context) (page, string) {
	t.Helper()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: e.base + "/oauth-callback*"}},
	}); err != nil {
		t.Fatalf("Fetch.enable: %v", err)
	}
	var held string
	resp, err := chromedp.RunResponse(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		ev, err := chromedp.WaitEvent(fetch.RequestPaused, nil, chromedp.Click(chromedp.CSS(`button[type=submit]`)))(ctx, tg)
		if err != nil {
			return err
		}
		held = ev.Request.URL
		_, err = cdp.Call(ctx, tg, fetch.FulfillRequest, fetch.FulfillRequestParams{
			RequestID:       ev.RequestID,
			ResponseCode:    http.StatusOK,
			ResponseHeaders: []*fetch.HeaderEntry{{Name: "Content-Type", Value: "text/html; charset=utf-8"}},
			Body:            []byte(`<!doctype html><title>Held</title><h1>Held by the test</h1>`),
		})
		return err
	}))
	if err != nil {
		t.Fatalf("holding the callback: %v", err)
	}
	if _, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatalf("Fetch.disable: %v", err)
	}
	return e.readPage(t, ctx, resp), held
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

// newSession is another browser session in the same Chromium: a browser
// context of its own, so no cookie of the others.
func newSession(t *testing.T, ctx context.Context) context.Context {
	t.Helper()
	sctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(sctx); err != nil {
		t.Fatalf("new browser session: %v", err)
	}
	return sctx
}

func randomState(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestConnectUserLoginInBrowser: alice's instance waits at an
// oauth_user_login step; her worklist has the connect link; Chromium
// follows it through Flowgate's login page and the provider's login and
// consent pages to /oauth-callback; the instance resumes and calls the
// target with her token. The callback's state is then replayed, forged,
// and presented from other sessions (anonymous, bob's, another of
// alice's), none of which changes anything; a denial at the provider gives
// -2; and no token shows in the log, the API's answers, the pages or the
// database file.
func TestConnectUserLoginInBrowser(t *testing.T) {
	t.Parallel()
	start := time.Now()
	e := newConnectEnv(t)
	bctx := browser.New(t)
	t.Logf("binary, provider and browser up in %s", time.Since(start).Round(time.Millisecond))

	// 1. The instance waits for alice; her worklist says where to sign in.
	id1, connect1 := e.invoke(t)
	code, tasks, raw := e.alice(t, http.MethodGet, "/api/v1/tasks", nil)
	if code != http.StatusOK {
		t.Fatalf("tasks: %d %s", code, raw)
	}
	found := false
	for _, it := range tasks["items"].([]any) {
		task := it.(map[string]any)
		if task["instance"] == id1 {
			found = task["type"] == "connect" && task["connect_url"] == connect1
			if !found {
				t.Fatalf("alice's task for instance %s: %v, want type connect and connect_url %s", id1, task, connect1)
			}
		}
	}
	if !found {
		t.Fatalf("alice's worklist has no task for instance %s: %s", id1, raw)
	}

	// 2. The browser follows the link: Flowgate's login, then the provider.
	p := e.open(t, bctx, connect1)
	if p.url.Path != "/login" || p.url.Query().Get("return_to") != "/connect/"+id1+"/login" {
		t.Fatalf("the connect link without a session should go to Flowgate's login page, went to %s", p.url)
	}
	e.signIn(t, bctx, "alice", connectAlicePassword)
	p, _ = e.atProvider(t, bctx, approve)
	callback1 := p.url.String()
	if p.status != http.StatusOK || p.url.Path != "/oauth-callback" || p.title != "Signed in" ||
		p.url.Query().Get("code") == "" || p.url.Query().Get("state") == "" {
		t.Fatalf("after the provider's consent: HTTP %d at %s, %q: %s", p.status, p.url, p.title, p.text)
	}
	if e.providerLogins != 1 {
		t.Fatalf("the browser went through the provider's login page %d times, want once", e.providerLogins)
	}
	e.ended(t, id1, http.StatusOK, "called", 200.0)
	if seen := e.sink.seen(); len(seen) != 1 || len(seen[0]) < 16 {
		t.Fatalf("the target saw bearer tokens %q, want exactly one", seen)
	}
	vault1 := e.vaultTokens(t)
	if vault1.AccessToken != e.sink.seen()[0] {
		t.Error("the target was not sent the access token the vault holds")
	}
	code, conns, raw := e.alice(t, http.MethodGet, "/api/v1/connections", nil)
	items, _ := conns["items"].([]any)
	if code != http.StatusOK || len(items) != 1 || items[0].(map[string]any)["server"] != "peer" || items[0].(map[string]any)["status"] != "ok" {
		t.Fatalf("alice's connections: %d %s, want one to peer", code, raw)
	}
	_, hist, raw := e.alice(t, http.MethodGet, "/api/v1/instances/"+id1+"/history", nil)
	masked := false
	for _, it := range hist["items"].([]any) {
		h := it.(map[string]any)
		if out, _ := h["output"].(map[string]any); h["step"] == "login" && h["status"] == "completed" {
			masked = out["access_token"] == "****" && out["refresh_token"] == "****" && out["status_code"] == 0.0
		}
	}
	if !masked {
		t.Errorf("the monitor should show the login step completed with its tokens masked: %s", raw)
	}
	stats := e.peer.Stats(t)
	if stats.CodeGrants != 1 {
		t.Fatalf("the provider exchanged %d codes, want 1", stats.CodeGrants)
	}

	// 3. Replay, in the same browser and session: refused, nothing moves.
	_, _, instBefore := e.alice(t, http.MethodGet, "/api/v1/instances/"+id1, nil)
	_, _, connsBefore := e.alice(t, http.MethodGet, "/api/v1/connections", nil)
	if p := e.open(t, bctx, callback1); p.status != http.StatusBadRequest || !strings.Contains(p.text, "not valid") {
		t.Fatalf("replayed callback: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	// Forged: a state Flowgate never issued.
	forged := e.base + "/oauth-callback?code=x&state=" + randomState(t)
	if p := e.open(t, bctx, forged); p.status != http.StatusBadRequest || !strings.Contains(p.text, "not valid") {
		t.Fatalf("forged state: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	_, _, instAfter := e.alice(t, http.MethodGet, "/api/v1/instances/"+id1, nil)
	_, _, connsAfter := e.alice(t, http.MethodGet, "/api/v1/connections", nil)
	if !bytes.Equal(instBefore, instAfter) || !bytes.Equal(connsBefore, connsAfter) {
		t.Errorf("a replayed or forged callback changed something:\ninstance %s\n      -> %s\nconnections %s\n         -> %s", instBefore, instAfter, connsBefore, connsAfter)
	}
	if got := e.peer.Stats(t); got != stats {
		t.Errorf("a replayed or forged callback reached the provider: stats %+v -> %+v", stats, got)
	}
	if n := len(e.sink.seen()); n != 1 {
		t.Errorf("the target saw %d calls after the replay, want still 1", n)
	}

	// 4. Foreign sessions: a second instance; alice approves at the
	// provider, but the browser's way back to Flowgate is held, and the
	// fresh callback URL is presented from other sessions first.
	id2, connect2 := e.invoke(t)
	p = e.open(t, bctx, connect2)
	if p.url.Host == strings.TrimPrefix(e.base, "http://") {
		t.Fatalf("signed in at Flowgate, the connect link should go straight to the provider; it went to %s (%s)", p.url, p.text)
	}
	p, held := e.atProvider(t, bctx, approveAndHold)
	heldURL, err := url.Parse(held)
	if err != nil || heldURL.Path != "/oauth-callback" || heldURL.Query().Get("code") == "" || heldURL.Query().Get("state") == "" || p.title != "Held by the test" {
		t.Fatalf("held callback %q (%v); the browser shows %q", held, err, p.title)
	}
	// No session at all (a plain client).
	resp, err := http.Get(held)
	if err != nil {
		t.Fatal(err)
	}
	anon, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	e.keep("anonymous callback", anon)
	if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(anon, []byte("browser session that started it")) {
		t.Fatalf("the callback without a session: HTTP %d: %s", resp.StatusCode, anon)
	}
	// Bob, signed in his own browser session.
	bob := newSession(t, bctx)
	e.signInAt(t, bob, "bob", connectBobPassword)
	if p := e.open(t, bob, held); p.status != http.StatusBadRequest || p.url.Path != "/oauth-callback" || !strings.Contains(p.text, "not valid") {
		t.Fatalf("alice's callback in bob's session: HTTP %d at %s: %s", p.status, p.url, p.text)
	}
	// Alice herself, but in another browser session than the one that
	// started the sign-in.
	alice2 := newSession(t, bctx)
	e.signInAt(t, alice2, "alice", connectAlicePassword)
	if p := e.open(t, alice2, held); p.status != http.StatusBadRequest || p.url.Path != "/oauth-callback" || !strings.Contains(p.text, "not valid") {
		t.Fatalf("the callback in another session of alice: HTTP %d at %s: %s", p.status, p.url, p.text)
	}
	e.instance(t, id2, "waiting")
	if got := e.peer.Stats(t); got.CodeGrants != 1 {
		t.Fatalf("a callback from a foreign session exchanged the code: stats %+v", got)
	}
	if n := len(e.sink.seen()); n != 1 {
		t.Fatalf("the target saw %d calls, want still 1", n)
	}
	// The state is not burned: the session that started it finishes.
	p = e.open(t, bctx, held)
	if p.status != http.StatusOK || p.title != "Signed in" {
		t.Fatalf("the held callback in alice's own session: HTTP %d %q: %s", p.status, p.title, p.text)
	}
	e.ended(t, id2, http.StatusOK, "called", 200.0)
	if got := e.peer.Stats(t); got.CodeGrants != 2 {
		t.Fatalf("the provider exchanged %d codes, want 2", got.CodeGrants)
	}
	seen := e.sink.seen()
	if len(seen) != 2 || seen[1] == seen[0] {
		t.Fatalf("the target saw %d calls, want a second with the new token", len(seen))
	}
	vault2 := e.vaultTokens(t)
	if vault2.AccessToken != seen[1] || vault2.RefreshToken == vault1.RefreshToken {
		t.Error("the second sign-in did not replace the vault's tokens with the new ones")
	}

	// 5. Denial: alice cancels on the provider's consent page.
	id3, connect3 := e.invoke(t)
	e.open(t, bctx, connect3)
	p, _ = e.atProvider(t, bctx, deny)
	if p.status != http.StatusOK || p.url.Path != "/oauth-callback" || p.url.Query().Get("error") != "access_denied" {
		t.Fatalf("after cancelling at the provider: HTTP %d at %s %q: %s", p.status, p.url, p.title, p.text)
	}
	e.ended(t, id3, http.StatusConflict, "code", -2.0)
	if n := len(e.sink.seen()); n != 2 {
		t.Errorf("the denied instance called the target (%d calls)", n)
	}

	// 6. No token anywhere: the server's log, the API's answers, the
	// pages, the database file (and its WAL) while running and after
	// stopping.
	for _, id := range []string{id1, id2, id3} {
		e.alice(t, http.MethodGet, "/api/v1/instances/"+id, nil)
		e.alice(t, http.MethodGet, "/api/v1/instances/"+id+"/history", nil)
	}
	e.alice(t, http.MethodGet, "/api/v1/tasks?status=closed", nil)
	e.alice(t, http.MethodGet, "/api/v1/connections", nil)
	e.copyDatabase(t, "running")
	if code := e.srv.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
	e.copyDatabase(t, "stopped")
	secrets := map[string]string{
		"access token 1": vault1.AccessToken, "refresh token 1": vault1.RefreshToken,
		"access token 2": vault2.AccessToken, "refresh token 2": vault2.RefreshToken,
	}
	for i, tok := range seen {
		secrets[fmt.Sprintf("token the target saw %d", i+1)] = tok
	}
	hay := map[string][]byte{"server log": []byte(e.srv.stderr.String())}
	for k, v := range e.seen {
		hay[k] = v
	}
	for k, v := range e.dbCopies {
		hay[k] = v
	}
	for what, b := range hay {
		for name, tok := range secrets {
			if bytes.Contains(b, []byte(tok)) {
				t.Errorf("%s holds the %s", what, name)
			}
		}
	}
	t.Logf("%d API answers and pages, %d database files searched; %s in all", len(e.seen), len(e.dbCopies), time.Since(start).Round(time.Millisecond))
}
