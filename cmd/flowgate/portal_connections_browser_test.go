package main

// /connections with a real connection: alice signs in at the independent
// OpenID provider through a flow's oauth_user_login, sees the connection
// on her page (server, scopes, status, expiry, never a token), and
// disconnects it there; a disconnect posted with a forged CSRF token is
// refused and the connection stays. Then she connects ahead, from the
// page, without a flow.

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
)

func TestBrowserPortalConnections(t *testing.T) {
	e := newConnectEnv(t)
	ctx := browser.New(t)
	id, connectURL := e.invoke(t)
	if p := e.open(t, ctx, connectURL); p.url.Path != "/login" {
		t.Fatalf("the connect link went to %s", p.url)
	}
	e.signIn(t, ctx, "alice", connectAlicePassword)
	e.atProvider(t, ctx, approve)
	e.ended(t, id, http.StatusOK, "called", 200.0)
	tokens := e.vaultTokens(t)

	p := e.open(t, ctx, e.base+"/connections")
	if p.status != http.StatusOK || !strings.Contains(p.text, "peer") || !strings.Contains(p.text, "api.read") || !strings.Contains(p.text, "ok") {
		t.Fatalf("/connections: %d\n%s", p.status, p.text)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	if tokens.AccessToken == "" || strings.Contains(html, tokens.AccessToken) || strings.Contains(html, tokens.RefreshToken) {
		t.Fatal("the connections page shows a token")
	}
	if n := count(t, ctx, `td time[datetime]`); n != 1 {
		t.Errorf("the connection's expiry: %d <time> elements, want 1", n)
	}
	browser.CheckPage(t, ctx, "connections with one")

	// A forged token: refused, the connection stays.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookieSignIn(t, c, e.base, "alice", connectAlicePassword)
	if code, _ := postForm(t, c, e.base+"/connections/peer/disconnect", url.Values{"csrf_token": {strings.Repeat("D", 43)}}); code != http.StatusForbidden {
		t.Errorf("disconnect with a forged CSRF token: %d, want 403", code)
	}
	if _, conns, raw := e.alice(t, http.MethodGet, "/api/v1/connections", nil); len(conns["items"].([]any)) != 1 {
		t.Fatalf("after a forged disconnect: %s", raw)
	}

	// The button: the vault's disconnect, as DELETE /api/v1/connections/peer.
	p = e.click(t, ctx, `form[action="/connections/peer/disconnect"] button`)
	if p.url.Path != "/connections" || !strings.Contains(p.text, "Disconnected.") || !strings.Contains(p.text, "You have no connections") {
		t.Fatalf("after disconnecting: %s\n%s", p.url, p.text)
	}
	if _, conns, raw := e.alice(t, http.MethodGet, "/api/v1/connections", nil); len(conns["items"].([]any)) != 0 {
		t.Fatalf("the API still lists the connection: %s", raw)
	}
	// Disconnecting again: nothing to disconnect, the 404 page.
	if code, _ := postForm(t, c, e.base+"/connections/peer/disconnect", url.Values{"csrf_token": {pageCSRF(t, c, e.base+"/connections")}}); code != http.StatusNotFound {
		t.Errorf("disconnecting twice: %d, want 404", code)
	}

	// Connecting ahead: the page offers the server alice's flow signs in
	// to as her; its button goes through the provider's sign-in and back
	// here, connected, without any flow running. A server none of her
	// flows uses, and a forged form, are refused.
	if code, _ := postForm(t, c, e.base+"/connections/elsewhere/connect", url.Values{"csrf_token": {pageCSRF(t, c, e.base+"/connections")}}); code != http.StatusNotFound {
		t.Errorf("connecting to a server no flow of hers uses: %d, want 404", code)
	}
	if code, _ := postForm(t, c, e.base+"/connections/peer/connect", url.Values{"csrf_token": {strings.Repeat("C", 43)}}); code != http.StatusForbidden {
		t.Errorf("connect with a forged CSRF token: %d, want 403", code)
	}
	p = e.open(t, ctx, e.base+"/connections")
	if count(t, ctx, `form[action="/connections/peer/connect"] button`) != 1 {
		t.Fatalf("/connections offers no Connect for peer:\n%s", p.text)
	}
	browser.CheckPage(t, ctx, "connections to connect ahead")
	// The page between, seen with the page's script off (it follows its
	// link by itself otherwise): accessible, at 375 px too, and its link
	// goes to the provider.
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/connections/peer/connect"] button`)
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}
	if p.status != http.StatusOK || count(t, ctx, `a[data-follow]`) != 1 {
		t.Fatalf("the page before the provider: %d %s\n%s", p.status, p.url, p.text)
	}
	browser.CheckPage(t, ctx, "connect ahead, leaving")
	e.click(t, ctx, `a[data-follow]`)
	if u := location(t, ctx); u.Host != strings.TrimPrefix(e.peer.Issuer, "http://") {
		t.Fatalf("the link went to %s, not the provider", u)
	}
	p, _ = e.atProvider(t, ctx, approve)
	if p.url.Path != "/connections" || !strings.Contains(p.text, "Connected to peer.") || count(t, ctx, `form[action="/connections/peer/disconnect"]`) != 1 ||
		count(t, ctx, `form[action="/connections/peer/connect"]`) != 0 {
		t.Fatalf("after connecting ahead: %s\n%s", p.url, p.text)
	}
	if _, conns, raw := e.alice(t, http.MethodGet, "/api/v1/connections", nil); len(conns["items"].([]any)) != 1 {
		t.Fatalf("the API does not list the connection made ahead: %s", raw)
	}
}
