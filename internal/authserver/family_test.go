package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestFamilyRevocationRefusesAccessTokens: whenever a refresh family is
// revoked (refresh-token reuse, revocation of a refresh token, code reuse),
// every access token issued in it is refused, by introspection, userinfo
// and Revoked (the resource server's check); client-credentials tokens and
// other families are untouched.
func TestFamilyRevocationRefusesAccessTokens(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	b := browser(t)
	v, ch := pkce()
	scope := url.Values{"scope": {"openid offline_access"}}
	// family starts one: a code and its exchange.
	family := func() (code string, tok map[string]any) {
		t.Helper()
		code = e.login(b, e.authorizeURL("portal", ch, scope), "alice", alicePass).Get("code")
		return code, e.exchange(code, v)
	}
	refresh := func(rt string) (int, map[string]any) {
		return e.tokenRequest(PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "portal", portalSecret)
	}
	refreshOK := func(rt string) map[string]any {
		t.Helper()
		code, m := refresh(rt)
		if code != http.StatusOK {
			t.Fatalf("refresh: %d %v", code, m)
		}
		return m
	}
	active := func(at string) bool {
		t.Helper()
		_, c := decodeJWT(t, at)
		revoked, err := e.srv.Revoked(ctx, c["jti"].(string))
		if err != nil {
			t.Fatal(err)
		}
		introspected := e.introspect(at)["active"] == true
		req, _ := http.NewRequest(http.MethodGet, e.issuer+PathUserinfo, nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readBody(resp)
		// A client-credentials token is valid there but has no user:
		// insufficient_scope; a refused token is a 401.
		userinfo := resp.StatusCode != http.StatusUnauthorized
		if introspected == revoked || userinfo != introspected {
			t.Fatalf("token %v disagreement: introspection active %v, userinfo %v (%d %s %s), Revoked %v", c, introspected, userinfo, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body, revoked)
		}
		return introspected
	}
	_, cc := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
	ccToken := cc["access_token"].(string)
	if _, c := decodeJWT(t, ccToken); strings.Contains(c["jti"].(string), ".") {
		t.Errorf("client-credentials jti %q names a family", c["jti"])
	}

	// Refresh-token reuse.
	_, t1 := family()
	_, bystander := family()
	t2 := refreshOK(t1["refresh_token"].(string))
	t3 := refreshOK(t2["refresh_token"].(string))
	for _, m := range []map[string]any{t1, t2, t3} {
		if !active(m["access_token"].(string)) {
			t.Fatal("live family's access token inactive")
		}
	}
	if code, _ := refresh(t1["refresh_token"].(string)); code != http.StatusBadRequest {
		t.Fatalf("reuse accepted: %d", code)
	}
	for i, m := range []map[string]any{t1, t2, t3} {
		if active(m["access_token"].(string)) {
			t.Errorf("refresh reuse: access token %d of the family still active", i+1)
		}
	}
	if !active(bystander["access_token"].(string)) || !active(ccToken) {
		t.Error("refresh reuse revoked tokens of another family or a client-credentials token")
	}

	// Revocation of a refresh token (RFC 7009 §2.1).
	t4 := refreshOK(bystander["refresh_token"].(string))
	if code, _ := e.tokenRequest(PathRevoke, url.Values{"token": {t4["refresh_token"].(string)}}, "portal", portalSecret); code != http.StatusOK {
		t.Fatalf("revoke: %d", code)
	}
	for i, m := range []map[string]any{bystander, t4} {
		if active(m["access_token"].(string)) {
			t.Errorf("refresh revocation: access token %d of the family still active", i+1)
		}
	}

	// Code reuse: the access token of the exchange and of its refresh.
	code, t5 := family()
	t6 := refreshOK(t5["refresh_token"].(string))
	if status, _ := e.tokenRequest(PathToken, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpCallback},
		"code_verifier": {v}}, "portal", portalSecret); status != http.StatusBadRequest {
		t.Fatalf("code reuse accepted: %d", status)
	}
	for i, m := range []map[string]any{t5, t6} {
		if active(m["access_token"].(string)) {
			t.Errorf("code reuse: access token %d of the family still active", i+1)
		}
	}
	if code, _ := refresh(t6["refresh_token"].(string)); code != http.StatusBadRequest {
		t.Errorf("code reuse: refresh token still works: %d", code)
	}
	if !active(ccToken) {
		t.Error("client-credentials token revoked")
	}
}
