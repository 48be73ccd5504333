package authserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/federation"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
)

// fedServer is a provider with one identity provider, corp, and the
// login settings of mod. The identity provider is never reached here.
func fedServer(t *testing.T, mod func(*config.Login)) (*httptest.Server, *recorder) {
	t.Helper()
	ring := newRing(t)
	st := sqliteStore(t, ring)
	a := testAuth()
	a.ShowDetailedErrors = false
	a.Login = config.Login{Local: true}
	if mod != nil {
		mod(&a.Login)
	}
	ip := config.IdentityProvider{Name: "corp", Title: "Corp", Issuer: "https://idp.example", ClientID: "c", ClientSecret: "s", CreateUsers: true}.WithDefaults()
	fed, err := federation.New(t.Context(), federation.Options{Providers: []config.IdentityProvider{ip}, PublicURL: "https://flowgate.example",
		Store: st.(federation.Store), HTTPClient: egresstest.Client(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	srv, err := New(ctx, Options{Issuer: "https://flowgate.example", Store: st, Ring: ring, Auth: a, Auditor: rec,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Federation: fed})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, rec
}

func getNoFollow(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestLoginPageFederation: the buttons carry where the sign-in goes on to;
// local: false hides the password form and refuses its POST; a default
// provider skips the page; bad links and callbacks without their browser
// are refused with a page and an audit event.
func TestLoginPageFederation(t *testing.T) {
	hs, rec := fedServer(t, nil)
	// Opened by itself (a bookmark), the sign-in page signs in to the home page.
	if resp, body := getNoFollow(t, hs.URL+"/login"); resp.StatusCode != http.StatusOK ||
		!strings.Contains(body, `name="return_to" value="/"`) {
		t.Fatalf("plain /login: %d %s", resp.StatusCode, body)
	}
	resp, body := getNoFollow(t, hs.URL+"/login?return_to=%2Ftasks")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/login/with/corp?return_to=%2Ftasks"`) ||
		!strings.Contains(body, "Sign in with Corp") || !strings.Contains(body, `name="password"`) {
		t.Fatalf("login page with a provider: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := getNoFollow(t, hs.URL+"/login/with/corp?return_to=%2F%2Fevil.example"); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a return_to off this server: HTTP %d, want 400", resp.StatusCode)
	}
	if resp, body := getNoFollow(t, hs.URL+"/login/with/nope?return_to=%2F"); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "no such sign-in provider") {
		t.Errorf("an unknown provider: HTTP %d %s", resp.StatusCode, body)
	}
	resp, body = getNoFollow(t, hs.URL+"/login/callback?state=abc&code=def")
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not valid") || strings.Contains(body, "foreign state") {
		t.Errorf("a callback without its browser: HTTP %d %s", resp.StatusCode, body)
	}
	if !rec.has(audit.FederationLoginFailure, audit.OutcomeFailure, "invalid_state") {
		t.Error("the refused callback was not audited")
	}

	off, _ := fedServer(t, func(l *config.Login) { l.Local = false })
	resp, body = getNoFollow(t, off.URL+"/login?return_to=%2F")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `name="password"`) || !strings.Contains(body, "Sign in with Corp") {
		t.Fatalf("login page with local false: %d\n%s", resp.StatusCode, body)
	}
	pr, err := http.PostForm(off.URL+"/login", url.Values{"username": {"alice"}, "password": {"x"}, "return_to": {"/"}})
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusForbidden {
		t.Errorf("POST /login with local false: HTTP %d, want 403", pr.StatusCode)
	}

	def, _ := fedServer(t, func(l *config.Login) { l.DefaultIdentityProvider = "corp" })
	resp, _ = getNoFollow(t, def.URL+"/login?return_to=%2Ftasks")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/with/corp?return_to=%2Ftasks" {
		t.Errorf("default provider: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
