package authserver

import (
	"net/http"
	"net/url"
	"testing"

	"golang.org/x/oauth2"

	"github.com/flowgate/flowgate/internal/audit"
)

// TestRefreshRefusalsKeepToken: a refresh refused for the caller's own
// error (more scope than granted, another client presenting the token)
// consumes nothing: the token refreshes afterwards, once, without being
// taken for a reuse. A disabled user's refusal ends the family instead.
func TestRefreshRefusalsKeepToken(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	tok := e.userTokens(t, nil, "alice", "openid", "offline_access")
	cfg := e.oauth2Config("portal", portalSecret, oauth2.AuthStyleInHeader)
	refresh := func(rt, scope string) (int, map[string]any) {
		t.Helper()
		v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
		if scope != "" {
			v.Set("scope", scope)
		}
		return e.tokenRequest(PathToken, v, "portal", portalSecret)
	}
	// More scope than granted, twice: the scope is one portal may ask for,
	// but not one this grant holds.
	for range 2 {
		if code, m := refresh(tok.RefreshToken, "openid offline_access workflows.read"); code != http.StatusBadRequest || m["error"] != "invalid_scope" {
			t.Fatalf("refresh asking for more scope: %d %v, want 400 invalid_scope", code, m)
		}
	}
	// Another client presenting it (spa, a public client with the
	// refresh_token grant).
	code, m := e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {"spa"}}, "", "")
	if code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("spa presenting portal's refresh token: %d %v, want 400 invalid_grant", code, m)
	}
	if e.audit.has(audit.RefreshTokenReused, audit.OutcomeFailure, "") {
		t.Fatal("a refused refresh was taken for a reuse")
	}
	if _, m := e.tokenRequest(PathIntrospect, url.Values{"token": {tok.AccessToken}}, "portal", portalSecret); m["active"] != true {
		t.Fatalf("access token after the refused refreshes: %v", m)
	}
	// The token still refreshes, through the relying party's library, with
	// a narrower scope too.
	next, err := cfg.TokenSource(t.Context(), &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatalf("refresh after the refusals: %v", err)
	}
	if next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh did not rotate: %q", next.RefreshToken)
	}
	code, m = refresh(next.RefreshToken, "openid")
	if code != http.StatusOK || m["scope"] != "openid" {
		t.Fatalf("narrowed refresh: %d %v", code, m)
	}
	latest := m["refresh_token"].(string)
	if !e.audit.has(audit.TokenRefreshed, audit.OutcomeFailure, "scope not in the grant: workflows.read") {
		t.Error("refused scope not audited")
	}
	if e.audit.has(audit.RefreshTokenReused, audit.OutcomeFailure, "") {
		t.Fatal("refresh after refusals taken for a reuse")
	}

	// A disabled user: refused, and the family ends (enabling the user
	// again does not bring it back).
	ctx := t.Context()
	u, err := e.st.GetUser(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	u.Disabled = true
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if code, m := refresh(latest, ""); code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("refresh for a disabled user: %d %v", code, m)
	}
	u.Disabled = false
	if err := e.st.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	if code, m := refresh(latest, ""); code != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("refresh of a disabled user's family once enabled again: %d %v", code, m)
	}
	if _, m := e.tokenRequest(PathIntrospect, url.Values{"token": {next.AccessToken}}, "portal", portalSecret); m["active"] != false {
		t.Fatalf("access token of a disabled user's family: %v", m)
	}
}
