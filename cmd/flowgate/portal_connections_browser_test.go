package main

// /connections with a real connection: alice signs in at the independent
// OpenID provider through a flow's oauth_user_login, sees the connection
// on her page (server, scopes, status, expiry, never a token), and
// disconnects it there; a disconnect posted with a forged CSRF token is
// refused and the connection stays.

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

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
}
