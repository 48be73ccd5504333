package main

// The second factor in a real browser on the real binary: alice sets up
// an authenticator app on /account (the QR code is an image the server
// serves, the key is shown, a code made by otplib confirms it, the
// recovery codes are shown once), then signs in again with password and
// code (a wrong code is refused on the page); `flowgate user reset-mfa`
// removes it, audited, and with auth.mfa: required the next sign-in
// enrols again before anything else. Every page passes axe-core at a
// phone's and a desktop's width.

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// otplibCode computes a TOTP code with otplib (test/peers/otp).
func otplibCode(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v", err)
	}
	dir, err := prereq.PeerDir("otp")
	if err != nil {
		prereq.Missing(t, "%v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "otplib")); err != nil {
		prereq.Missing(t, "otp peer not installed: run `npm ci --prefix test/peers/otp` (%v)", err)
	}
	out, err := exec.Command(node, filepath.Join(dir, "totp.js"), secret, strconv.FormatInt(at.Unix(), 10)).Output()
	if err != nil {
		t.Fatalf("otplib: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func startMFAServer(t *testing.T, dir, dbPath, policy string) (*connectEnv, string) {
	t.Helper()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, dbPath: dbPath, seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	cfg := filepath.Join(dir, "flowgate-"+policy+".yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
auth:
  mfa: %s
users:
  - username: alice
    password: %q
    roles: [employee]
  - username: root
    password: %q
    roles: [admin]
`, dbPath, policy, portalAlicePassword, portalBobPassword)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", cfg, "--public-url", e.base)
	return e, cfg
}

func TestBrowserSecondFactor(t *testing.T) {
	dir := t.TempDir()
	e, cfg := startMFAServer(t, dir, filepath.Join(dir, "flowgate.db"), "optional")
	ctx := browser.New(t)

	// Set up on /account.
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	p := e.signIn(t, ctx, "alice", portalAlicePassword)
	if p.url.Path != "/account" || !strings.Contains(p.text, "No second factor") {
		t.Fatalf("account before set-up: %s\n%s", p.url, p.text)
	}
	browser.CheckPage(t, ctx, "/account without a second factor")
	p = e.click(t, ctx, `form[action="/account/mfa/start"] button`)
	secret, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil || len(secret) < 16 {
		t.Fatalf("no key shown (%v):\n%s", err, p.text)
	}
	// The QR code is an image this server serves, loaded under the CSP.
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`(() => { const i = document.querySelector('img[src="/account/mfa/qr.png"]'); return !!(i && i.complete && i.naturalWidth >= 200); })()`, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("the QR code did not load: %v", err)
	}
	browser.CheckPage(t, ctx, "/account setting up")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-code"), "000000")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/account/mfa/confirm"] button`)
	if p.status != http.StatusBadRequest || !strings.Contains(p.text, "That code is not right") {
		t.Fatalf("a wrong confirming code: %d\n%s", p.status, p.text)
	}
	now := time.Now()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-code"), otplibCode(t, secret, now))); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/account/mfa/confirm"] button`)
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#recovery-codes code').length`))
	if p.status != http.StatusOK || err != nil || codes != 10 {
		t.Fatalf("after confirming: %d, %d recovery codes (%v)\n%s", p.status, codes, err, p.text)
	}
	browser.CheckPage(t, ctx, "/account recovery codes")

	// Sign in again: password, then the code page.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Faccount")
	p = e.signIn(t, ctx, "alice", portalAlicePassword)
	if p.url.Path != "/login/mfa" || !strings.Contains(p.text, "Enter the six-digit code") {
		t.Fatalf("after the password: %s\n%s", p.url, p.text)
	}
	browser.CheckPage(t, ctx, "/login/mfa")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#code"), "111111")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `button[type=submit]`)
	if p.status != http.StatusUnauthorized || !strings.Contains(p.text, "That code is not right") {
		t.Fatalf("a wrong code: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/login/mfa wrong code")
	// The confirming step is spent; the next one (within the allowed
	// clock skew) signs in.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#code"), otplibCode(t, secret, now.Add(30*time.Second)))); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `button[type=submit]`)
	if p.url.Path != "/account" || !strings.Contains(p.text, "An authenticator app is set up") {
		t.Fatalf("after the code: %s\n%s", p.url, p.text)
	}

	// An administrator resets it on the management site: audited, and
	// alice's account page offers the set-up again.
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e.open(t, ctx, e.base+"/login?return_to=%2Fadmin%2Fusers%2Falice")
	p = e.signIn(t, ctx, "root", portalBobPassword)
	if p.url.Path != "/admin/users/alice" {
		t.Fatalf("the admin's user page: %s\n%s", p.url, p.text)
	}
	p = e.click(t, ctx, `form[action="/admin/users/alice/mfa/reset"] button`)
	if !strings.Contains(p.text, "second factor is removed") {
		t.Fatalf("after the reset button: %d %s\n%s", p.status, p.url, p.text)
	}
	browser.CheckPage(t, ctx, "/admin/users/alice after a second-factor reset")
	p = e.open(t, ctx, e.base+"/admin/audit?event=user.mfa_reset")
	if !strings.Contains(p.text, "user alice") || !strings.Contains(p.text, "user:root") {
		t.Fatalf("the reset in the audit log:\n%s", p.text)
	}

	// The reset from the command line, audited too; with the policy
	// required the next sign-in enrols before anything else.
	e.srv.stop(t)
	env := []string{"FLOWGATE_SECRET_KEY=" + durableKey}
	if r := run(t, dir, "", env, "user", "reset-mfa", "alice", "--config", cfg); r.code != 0 || !strings.Contains(r.stdout, "second factor reset for alice") {
		t.Fatalf("reset-mfa: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, "", env, "audit", "--event", "user.mfa_reset", "--config", cfg); r.code != 0 || !strings.Contains(r.stdout, "cli:") {
		t.Fatalf("audit of the reset: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if r := run(t, dir, "", env, "user", "reset-mfa", "nobody", "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
		t.Fatalf("reset-mfa of an unknown user: %d %s", r.code, r.stderr)
	}
	e2, _ := startMFAServer(t, dir, e.dbPath, "required")
	if _, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	e2.open(t, ctx, e2.base+"/login?return_to=%2Faccount")
	p = e2.signIn(t, ctx, "alice", portalAlicePassword)
	if p.url.Path != "/login/mfa" || !strings.Contains(p.text, "This account needs a second factor") {
		t.Fatalf("required, after a reset: %s\n%s", p.url, p.text)
	}
	browser.CheckPage(t, ctx, "/login/mfa enrolment")
	secret2, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#totp-secret")))
	if err != nil || secret2 == secret {
		t.Fatalf("enrolment after a reset: key %q (%v), want a new one", secret2, err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#code"), otplibCode(t, secret2, time.Now()))); err != nil {
		t.Fatal(err)
	}
	p = e2.click(t, ctx, `button[type=submit]`)
	if !strings.Contains(p.text, "Your second factor is set up") {
		t.Fatalf("enrolment at sign-in: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/login/mfa recovery codes")
	p = e2.click(t, ctx, `button[type=submit]`)
	if p.url.Path != "/account" {
		t.Fatalf("continue after the recovery codes: %s", p.url)
	}
}
