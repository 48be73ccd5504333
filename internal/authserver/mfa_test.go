package authserver

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// otpPeer computes TOTP codes with otplib (test/peers/otp), an
// implementation independent of the one Flowgate uses.
func otpPeer(t *testing.T) func(secret string, at time.Time) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err := prereq.PeerDir("otp")
	if err != nil {
		prereq.Missing(t, "%v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "otplib")); err != nil {
		prereq.Missing(t, "otp peer not installed: run `npm ci --prefix test/peers/otp` (%v)", err)
	}
	return func(secret string, at time.Time) string {
		t.Helper()
		out, err := exec.Command(node, filepath.Join(dir, "totp.js"), secret, strconv.FormatInt(at.Unix(), 10)).Output()
		if err != nil {
			t.Fatalf("otplib: %v", err)
		}
		code := strings.TrimSpace(string(out))
		if len(code) != 6 {
			t.Fatalf("otplib printed %q", code)
		}
		return code
	}
}

var (
	secretRE   = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	recoveryRE = regexp.MustCompile(`<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>`)
)

// mfaRP is a relying party (x/oauth2 + coreos/go-oidc) of the portal
// client, reading the ID token's amr.
type mfaRP struct {
	e        *env
	conf     *oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newMFARP(t *testing.T, e *env) *mfaRP {
	provider, err := oidc.NewProvider(t.Context(), e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	conf := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader, "openid")
	conf.Endpoint = provider.Endpoint()
	return &mfaRP{e: e, conf: conf, verifier: provider.Verifier(&oidc.Config{ClientID: "portal"})}
}

// start asks for a sign-in (with acr_values when given) and returns the
// browser's first page after it.
func (rp *mfaRP) start(t *testing.T, c *http.Client, acr string) (*http.Response, string) {
	verifier := oauth2.GenerateVerifier()
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier)}
	if acr != "" {
		opts = append(opts, oauth2.SetAuthURLParam("acr_values", acr))
	}
	return get(t, c, rp.conf.AuthCodeURL("st", opts...)), verifier
}

// finish takes the browser from wherever it is (consent or the RP's
// callback) to the ID token's amr.
func (rp *mfaRP) finish(t *testing.T, c *http.Client, resp *http.Response, verifier string) []string {
	t.Helper()
	if resp.Request.URL.Path == PathConsent && resp.StatusCode == http.StatusOK {
		f := formFields(t, resp)
		f.Set("decision", "approve")
		resp = postForm(t, c, rp.e.issuer+PathConsent, f)
	}
	code := redirectParams(t, resp).Get("code")
	tok, err := rp.conf.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.verifier.Verify(t.Context(), raw)
	if err != nil {
		t.Fatalf("ID token: %v", err)
	}
	var claims struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims.AMR
}

// password posts alice's password on the login page resp shows.
func (e *env) password(t *testing.T, c *http.Client, resp *http.Response) *http.Response {
	t.Helper()
	if resp.Request.URL.Path != PathLogin {
		t.Fatalf("at %s, want the login page", resp.Request.URL)
	}
	f := formFields(t, resp)
	f.Set("username", "alice")
	f.Set("password", alicePass)
	return postForm(t, c, e.issuer+PathLogin, f)
}

// postCode posts a code on the second-factor page.
func (e *env) postCode(t *testing.T, c *http.Client, csrf, code string) *http.Response {
	t.Helper()
	return postForm(t, c, e.issuer+PathLoginMFA, map[string][]string{"csrf_token": {csrf}, "code": {code}})
}

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf_token on the page: %s", body)
	}
	return m[1]
}

func amrHas(amr []string, want ...string) bool {
	for _, w := range want {
		if !slices.Contains(amr, w) {
			return false
		}
	}
	return true
}

// TestMFARequiredTOTP walks a second factor through its life with
// auth.mfa: required: enrolment forced at sign-in (QR code, confirming
// code, recovery codes), sign-in with a code, a replayed code refused, a
// recovery code accepted once, wrong codes throttled, and an
// administrator's reset (audited) forcing enrolment again. Codes come
// from otplib; the ID tokens are read by go-oidc.
func TestMFARequiredTOTP(t *testing.T) {
	codeAt := otpPeer(t)
	e := newEnvWith(t, nil, nil, true, func(a *config.Auth) { a.MFA = config.MFARequired })
	clock := time.Now().Truncate(30 * time.Second).Add(5 * time.Second)
	e.srv.now = func() time.Time { return clock }
	rp := newMFARP(t, e)

	// 1. Enrolment at the first sign-in, before anything else.
	c := browser(t)
	resp, verifier := rp.start(t, c, "")
	resp = e.password(t, c, resp)
	body := readBody(resp)
	if resp.Request.URL.Path != PathLoginMFA || !strings.Contains(body, "Set up a second factor") {
		t.Fatalf("after the password: %s %d, want the enrolment page: %s", resp.Request.URL.Path, resp.StatusCode, body)
	}
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no key on the enrolment page: %s", body)
	}
	secret := m[1]
	qr := get(t, c, e.issuer+PathLoginMFAQR)
	img := readBody(qr)
	if qr.StatusCode != http.StatusOK || qr.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("QR code: %d %s", qr.StatusCode, qr.Header.Get("Content-Type"))
	}
	if _, err := png.Decode(bytes.NewReader([]byte(img))); err != nil {
		t.Fatalf("QR code is not a PNG: %v", err)
	}
	if r := get(t, browser(t), e.issuer+PathLoginMFAQR); r.StatusCode != http.StatusBadRequest {
		t.Fatalf("QR code without the pending sign-in: %d, want 400", r.StatusCode)
	}
	csrf := csrfOf(t, body)
	if resp := e.postCode(t, c, csrf, "000000"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong confirming code: %d, want 401", resp.StatusCode)
	}
	resp = e.postCode(t, c, csrf, codeAt(secret, clock))
	body = readBody(resp)
	codes := recoveryRE.FindAllStringSubmatch(body, -1)
	if resp.StatusCode != http.StatusOK || len(codes) != 10 {
		t.Fatalf("confirm: %d, %d recovery codes, want 10: %s", resp.StatusCode, len(codes), body)
	}
	if !e.audit.has(audit.UserMFAEnrolled, "", "alice") {
		t.Error("enrolment not audited")
	}
	resp = postForm(t, c, e.issuer+PathLoginMFAContinue, map[string][]string{"csrf_token": {csrf}, "request": {regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(body)[1]}})
	if amr := rp.finish(t, c, resp, verifier); !amrHas(amr, "pwd", "otp", "mfa") {
		t.Fatalf("amr after enrolment = %q, want pwd, otp, mfa", amr)
	}

	// signIn runs password then one code in a fresh browser, returning
	// the code step's response.
	signIn := func(code string) (*http.Client, *http.Response, string) {
		c := browser(t)
		resp, verifier := rp.start(t, c, "")
		resp = e.password(t, c, resp)
		body := readBody(resp)
		if !strings.Contains(body, "Enter the six-digit code") {
			t.Fatalf("after the password: %d, want the code form: %s", resp.StatusCode, body)
		}
		return c, e.postCode(t, c, csrfOf(t, body), code), verifier
	}

	// 2. The confirming code's step is spent: the same code is refused.
	if _, resp, _ := signIn(codeAt(secret, clock)); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed confirming code: %d, want 401", resp.StatusCode)
	}
	// 3. The next step's code signs in, once.
	clock = clock.Add(30 * time.Second)
	next := codeAt(secret, clock)
	c, resp, verifier = signIn(next)
	if amr := rp.finish(t, c, resp, verifier); !amrHas(amr, "pwd", "otp", "mfa") {
		t.Fatalf("amr = %q, want pwd, otp, mfa", amr)
	}
	if _, resp, _ := signIn(next); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replayed code: %d, want 401", resp.StatusCode)
	}
	if !e.audit.has(audit.LoginFailure, audit.OutcomeFailure, "wrong second-factor code") {
		t.Error("a wrong code was not audited")
	}
	// 4. A recovery code works once (typed in capitals, as people do).
	c, resp, verifier = signIn(strings.ToUpper(codes[0][1]))
	if amr := rp.finish(t, c, resp, verifier); !amrHas(amr, "pwd", "mfa") {
		t.Fatalf("amr with a recovery code = %q", amr)
	}
	if _, resp, _ := signIn(codes[0][1]); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reused recovery code: %d, want 401", resp.StatusCode)
	}
	if n, _ := e.srv.MFA().RecoveryCodesLeft(t.Context(), "alice"); n != 9 {
		t.Fatalf("%d recovery codes left, want 9", n)
	}

	// 5. Wrong codes are throttled like wrong passwords: after the free
	// failures even the right code waits.
	c = browser(t)
	resp, _ = rp.start(t, c, "")
	body = readBody(e.password(t, c, resp))
	csrf = csrfOf(t, body)
	for i := range 4 {
		if resp := e.postCode(t, c, csrf, "12345"+strconv.Itoa(i)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: %d, want 401", i, resp.StatusCode)
		}
	}
	clock = clock.Add(30 * time.Second)
	resp = e.postCode(t, c, csrf, codeAt(secret, clock))
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(readBody(resp), "Too many attempts") {
		t.Fatalf("right code after 5 wrong ones: %d, want 429", resp.StatusCode)
	}
	if err := e.st.ClearSignInFailures(t.Context(), "alice", "127.0.0.1"); err != nil {
		t.Fatal(err)
	}

	// 6. An administrator's reset is audited and the next sign-in enrols
	// again.
	if err := e.srv.MFA().Reset(context.Background(), "user:admin", "alice"); err != nil {
		t.Fatal(err)
	}
	if !e.audit.has(audit.UserMFAReset, "", "user alice") {
		t.Error("reset not audited")
	}
	c = browser(t)
	resp, _ = rp.start(t, c, "")
	if body := readBody(e.password(t, c, resp)); !strings.Contains(body, "Set up a second factor") || strings.Contains(body, secret) {
		t.Fatalf("after a reset: want a new enrolment with a new key: %s", body)
	}
}

// TestMFAAcrValues: under auth.mfa: optional a user without a factor
// signs in with the password alone, until a client sends acr_values=mfa:
// then the live session is stepped up through enrolment and the ID token
// says so. With auth.mfa: off nothing is asked.
func TestMFAAcrValues(t *testing.T) {
	codeAt := otpPeer(t)
	e := newEnvWith(t, nil, nil, true, func(a *config.Auth) { a.MFA = config.MFAOptional })
	rp := newMFARP(t, e)
	var meta struct {
		ACR []string `json:"acr_values_supported"`
	}
	if err := json.NewDecoder(get(t, http.DefaultClient, e.issuer+PathDiscovery).Body).Decode(&meta); err != nil || !slices.Equal(meta.ACR, []string{"mfa"}) {
		t.Fatalf("discovery acr_values_supported = %q (%v), want [mfa]", meta.ACR, err)
	}
	c := browser(t)
	resp, verifier := rp.start(t, c, "")
	if amr := rp.finish(t, c, e.password(t, c, resp), verifier); !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("optional, not enrolled: amr = %q, want [pwd]", amr)
	}
	// Same browser, live session: acr_values=mfa asks again.
	resp, verifier = rp.start(t, c, "mfa")
	resp = e.password(t, c, resp)
	body := readBody(resp)
	m := secretRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("acr_values=mfa: want the enrolment page: %s", body)
	}
	resp = e.postCode(t, c, csrfOf(t, body), codeAt(m[1], time.Now()))
	body = readBody(resp)
	req := regexp.MustCompile(`name="request" value="([^"]+)"`).FindStringSubmatch(body)
	if req == nil {
		t.Fatalf("no recovery-code page: %s", body)
	}
	resp = postForm(t, c, e.issuer+PathLoginMFAContinue, map[string][]string{"csrf_token": {csrfOf(t, body)}, "request": {req[1]}})
	if amr := rp.finish(t, c, resp, verifier); !amrHas(amr, "pwd", "otp", "mfa") {
		t.Fatalf("acr_values=mfa: amr = %q, want pwd, otp, mfa", amr)
	}
	// The stepped-up session now satisfies acr_values=mfa without a page.
	resp, verifier = rp.start(t, c, "mfa")
	if amr := rp.finish(t, c, resp, verifier); !amrHas(amr, "mfa") {
		t.Fatalf("SSO after step-up: amr = %q", amr)
	}

	// auth.mfa: off on the same database: the enrolled factor is not
	// asked for, even with acr_values=mfa.
	off := newEnvWith(t, e.st, e.ring, false, func(a *config.Auth) { a.MFA = config.MFAOff })
	rpOff := newMFARP(t, off)
	c = browser(t)
	resp, verifier = rpOff.start(t, c, "mfa")
	if amr := rpOff.finish(t, c, off.password(t, c, resp), verifier); !slices.Equal(amr, []string{"pwd"}) {
		t.Fatalf("off: amr = %q, want [pwd]", amr)
	}
}
