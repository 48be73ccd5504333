package main

// A single-page app in a real browser, on another origin than Flowgate:
// oidc-client-ts (test/peers/spa, bundled here by esbuild from npm) signs
// in with the code flow and PKCE, calls /api/v1/me with the access token,
// refreshes and calls again, all across origins through Flowgate's CORS
// answers. The same page from an origin no client lists cannot read even
// the discovery document. Also: the form_post answer page submits itself
// in Chromium under its CSP (no inline script).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
	"github.com/flowgate/flowgate/internal/testutil/rpclient"
)

// bundleSPA bundles test/peers/spa/app.js with the peer's esbuild and
// returns the bundle.
func bundleSPA(t *testing.T) []byte {
	t.Helper()
	dir, err := prereq.PeerDir("spa")
	if err != nil {
		t.Fatal(err)
	}
	esbuild := filepath.Join(dir, "node_modules", ".bin", "esbuild")
	if _, err := os.Stat(esbuild); err != nil {
		prereq.Missing(t, "spa peer not installed: run `npm ci --prefix test/peers/spa` (%v)", err)
	}
	out := filepath.Join(t.TempDir(), "app.js")
	cmd := exec.Command(esbuild, "app.js", "--bundle", "--format=iife", "--target=es2020", "--outfile="+out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("esbuild: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serveSPA serves the app's page and bundle on ln (every path is the
// page, as an SPA host does).
func serveSPA(t *testing.T, ln net.Listener, bundle []byte, authority, clientID string) {
	t.Helper()
	page := fmt.Sprintf(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>SPA</title>
<script>window.SPA = {authority: %q, client_id: %q, api: %q};</script>
<script src="/app.js" defer></script></head><body>
<p id="signed-in"></p><p id="me"></p><p id="refreshed"></p><p id="me-after"></p><p id="probe"></p><p id="error"></p>
</body></html>`, authority, clientID, authority)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/app.js" {
			w.Header().Set("Content-Type", "text/javascript")
			_, _ = w.Write(bundle)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, page)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// waitText waits until the element has text (or #error has) and returns it.
func waitText(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
			`(function(){var e=document.getElementById(%q), f=document.getElementById("error");
			 if (f && f.textContent) return "error: " + f.textContent; return e ? e.textContent : "";})()`, id)))
		if err == nil && v != "" {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	t.Fatalf("#%s stayed empty (page %s)", id, loc)
	return ""
}

func TestSPAInBrowser(t *testing.T) {
	bundle := bundleSPA(t)
	spaLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	otherLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	spaOrigin := "http://" + spaLn.Addr().String()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	conf := protocolConfig("") + `  - id: browser-app
    redirect_uris: ["` + spaOrigin + `/callback"]
    grant_types: [authorization_code, refresh_token]
    scopes: [openid, profile, offline_access, workflows.read]
    token_endpoint_auth_method: none
    consent: admin
    allowed_origins: ["` + spaOrigin + `"]
`
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)
	serveSPA(t, spaLn, bundle, s.base, "browser-app")
	serveSPA(t, otherLn, bundle, s.base, "browser-app")

	ctx := browser.New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(spaOrigin+"/")); err != nil {
		t.Fatal(err)
	}
	// oidc-client-ts sends the browser to Flowgate's sign-in page.
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), protoAlicePassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	if got := waitText(t, ctx, "me-after"); got != "user:alice" {
		t.Fatalf("after refresh /api/v1/me = %q", got)
	}
	for id, want := range map[string]string{"signed-in": "alice", "me": "user:alice", "refreshed": "new tokens"} {
		if got := waitText(t, ctx, id); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}

	// The same app from an origin no client lists.
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+otherLn.Addr().String()+"/#probe")); err != nil {
		t.Fatal(err)
	}
	if got := waitText(t, ctx, "probe"); got != "blocked" {
		t.Fatalf("an unlisted origin reading discovery: %q, want blocked", got)
	}
}

// The form_post page posts the authorization response by itself in a real
// browser: its script comes from /assets and runs under a CSP without
// unsafe-inline (Chromium would refuse an inline one).
func TestFormPostSubmitsInBrowser(t *testing.T) {
	got := make(chan string, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cb := "http://" + ln.Addr().String() + "/cb"
	rcv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		if r.Method == http.MethodPost && r.PostForm.Get("code") != "" {
			select {
			case got <- r.PostForm.Get("state"):
			default:
			}
		}
		_, _ = io.WriteString(w, "<!doctype html><title>received</title><p>received</p>")
	})}
	go func() { _ = rcv.Serve(ln) }()
	t.Cleanup(func() { _ = rcv.Close() })

	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	conf := strings.ReplaceAll(protocolConfig(""), protoCallback, cb)
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)
	rp := rpclient.Start(t)
	rp.MustDo(t, map[string]any{"op": "discover", "issuer": s.base, "client_id": "web"})
	u := rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": cb, "scope": "openid", "response_mode": "form_post"})

	ctx := browser.New(t)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(u["url"].(string)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), protoAlicePassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
	); err != nil {
		t.Fatalf("sign-in page: %v", err)
	}
	select {
	case state := <-got:
		if state == "" {
			t.Fatal("the form_post arrived without state")
		}
	case <-time.After(20 * time.Second):
		loc, _ := chromedp.Run(ctx, chromedp.Location())
		t.Fatalf("the form_post page did not submit itself (browser at %s)", loc)
	}

	// Without JavaScript the page stays, readable and accessible, and its
	// button sends the response.
	nojs := browser.New(t)
	if _, err := chromedp.Call(nojs, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	u = rp.MustDo(t, map[string]any{"op": "authurl", "redirect_uri": cb, "scope": "openid", "response_mode": "form_post"})
	if err := chromedp.Do(nojs,
		chromedp.Navigate(u["url"].(string)),
		chromedp.WaitVisible(chromedp.CSS("#username")),
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.SendKeys(chromedp.CSS("#password"), protoAlicePassword),
		chromedp.Click(chromedp.CSS(`button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS("#response button")),
	); err != nil {
		t.Fatalf("form_post page without JavaScript: %v", err)
	}
	select {
	case <-got:
		t.Fatal("the form_post page submitted itself with JavaScript off")
	case <-time.After(500 * time.Millisecond):
	}
	if _, err := chromedp.Call(nojs, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: false}); err != nil {
		t.Fatal(err)
	}
	browser.CheckPage(t, nojs, "form-post")
	if err := chromedp.Do(nojs, chromedp.Click(chromedp.CSS("#response button"))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(20 * time.Second):
		t.Fatal("the form_post page's button sent nothing")
	}
}
