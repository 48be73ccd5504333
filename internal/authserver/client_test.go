package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestClientCredentials(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	ctx := t.Context()
	for name, cc := range map[string]*clientcredentials.Config{
		"basic": {ClientID: "portal", ClientSecret: portalSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader, Scopes: []string{"workflows.read"}},
		"post":  {ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInParams},
	} {
		tok, err := cc.Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		h, c := decodeJWT(t, tok.AccessToken)
		if h["typ"] != "at+jwt" || c["sub"] != cc.ClientID || c["client_id"] != cc.ClientID || c["aud"] != e.issuer {
			t.Errorf("%s: header %v claims %v", name, h, c)
		}
		// The resource server's key source accepts it.
		if _, err := jwt.Parse(tok.AccessToken, e.srv.Keys().Keyfunc); err != nil {
			t.Errorf("%s: Keyfunc: %v", name, err)
		}
	}
	// Wrong secret, and the wrong method for the client.
	for name, cc := range map[string]*clientcredentials.Config{
		"wrong secret":  {ClientID: "portal", ClientSecret: "nope", TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		"wrong method":  {ClientID: "portal", ClientSecret: portalSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInParams},
		"unknown":       {ClientID: "ghost", ClientSecret: "x", TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInHeader},
		"scope refused": {ClientID: "svc", ClientSecret: svcSecret, TokenURL: e.issuer + PathToken, AuthStyle: oauth2.AuthStyleInParams, Scopes: []string{"admin"}},
	} {
		if _, err := cc.Token(ctx); err == nil {
			t.Errorf("%s: token issued", name)
		}
	}
	if !e.audit.has(audit.ClientAuthFailure, "failure", "wrong client secret") {
		t.Error("client auth failure not audited")
	}
	// Content type and body limits.
	req, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth("portal", portalSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("JSON body: %d, want 400", resp.StatusCode)
	}
	code, m := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}, "pad": {strings.Repeat("x", 70<<10)}}, "portal", portalSecret)
	if code != http.StatusBadRequest || m["error"] != "invalid_request" {
		t.Errorf("oversized body: %d %v", code, m)
	}
}

// assertion signs a client assertion for jwtc.
func (e *env) assertion(t *testing.T, kid, aud, jti string, exp time.Time) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: e.jwtKey}, opts)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := josejwt.Signed(signer).Claims(josejwt.Claims{
		Issuer: "jwtc", Subject: "jwtc", Audience: josejwt.Audience{aud}, ID: jti,
		Expiry: josejwt.NewNumericDate(exp), IssuedAt: josejwt.NewNumericDate(time.Now()),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	send := func(assertion string) (int, map[string]any) {
		return e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	}
	soon := time.Now().Add(time.Minute)
	ok := e.assertion(t, "k1", e.issuer+PathToken, "j-1", soon)
	if code, m := send(ok); code != http.StatusOK || m["access_token"] == nil {
		t.Fatalf("private_key_jwt: %d %v", code, m)
	}
	if code, m := send(e.assertion(t, "k1", e.issuer, "j-iss", soon)); code != http.StatusOK {
		t.Fatalf("aud = issuer: %d %v", code, m)
	}
	for name, a := range map[string]string{
		"replayed jti": ok,
		"wrong aud":    e.assertion(t, "k1", "https://elsewhere.invalid/token", "j-2", soon),
		"expired":      e.assertion(t, "k1", e.issuer+PathToken, "j-3", time.Now().Add(-time.Minute)),
		"too long":     e.assertion(t, "k1", e.issuer+PathToken, "j-4", time.Now().Add(time.Hour)),
		"unknown kid":  e.assertion(t, "k9", e.issuer+PathToken, "j-5", soon),
		"no jti":       e.assertion(t, "k1", e.issuer+PathToken, "", soon),
	} {
		if code, m := send(a); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("%s: %d %v", name, code, m)
		}
	}
	if !e.audit.has(audit.ClientAuthFailure, "failure", "replayed") {
		t.Error("replay not audited")
	}
}

// TestPrivateKeyJWTReplayAfterExp: an assertion is accepted until
// clockSkew after its exp, so its jti must be remembered at least that
// long. Replayed after exp but inside that window, even after expired rows
// were pruned, it is refused; a fresh assertion at that moment is not.
func TestPrivateKeyJWTReplayAfterExp(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	send := func(assertion string) (int, map[string]any) {
		return e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {assertion}}, "", "")
	}
	exp := time.Now().Add(10 * time.Second)
	a := e.assertion(t, "k1", e.issuer+PathToken, "j-skew", exp)
	if code, m := send(a); code != http.StatusOK {
		t.Fatalf("first use: %d %v", code, m)
	}
	later := exp.Add(clockSkew * 2 / 3)
	e.srv.now = func() time.Time { return later }
	t.Cleanup(func() { e.srv.now = time.Now })
	if _, err := e.st.PruneAuth(t.Context(), later); err != nil {
		t.Fatal(err)
	}
	if code, m := send(a); code != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Fatalf("replay %v after exp, inside the %v skew: %d %v, want 401 invalid_client", later.Sub(exp), clockSkew, code, m)
	}
	if !e.audit.has(audit.ClientAuthFailure, audit.OutcomeFailure, "jti replayed") {
		t.Error("replay not audited")
	}
	if code, m := send(e.assertion(t, "k1", e.issuer+PathToken, "j-fresh", later.Add(time.Minute))); code != http.StatusOK {
		t.Fatalf("a fresh assertion at the same moment: %d %v", code, m)
	}
}

func TestTwoInstancesOnePostgres(t *testing.T) {
	ring := newRing(t)
	dsn := pgtest.DSN(t)
	open := func() store.Store {
		st, err := postgres.Open(context.Background(), dsn, store.Options{Sealer: ring})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	a := newEnv(t, open(), ring, true)
	b := newEnv(t, open(), ring, false)
	if string(a.srv.Keys().JWKS()) != string(b.srv.Keys().JWKS()) {
		t.Fatal("two instances publish different key sets")
	}
	// b must accept a's tokens: same keys, same issuer URL as configured.
	b.srv.issuer = a.issuer
	code, tok := a.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
	if code != http.StatusOK {
		t.Fatal(tok)
	}
	code, m := b.tokenRequest(PathIntrospect, url.Values{"token": {tok["access_token"].(string)}}, "portal", portalSecret)
	if code != http.StatusOK || m["active"] != true {
		t.Fatalf("instance b introspecting a's token: %d %v", code, m)
	}
	// A rotation on a is picked up by b on the unknown kid.
	if _, err := Rotate(t.Context(), a.st, nil, "test", PurposeAccess, "ES256", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Keys().Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	_, tok = a.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
	if _, m = b.tokenRequest(PathIntrospect, url.Values{"token": {tok["access_token"].(string)}}, "portal", portalSecret); m["active"] != true {
		t.Fatalf("b does not accept a token signed with a's new key: %v", m)
	}
	if string(a.srv.Keys().JWKS()) != string(b.srv.Keys().JWKS()) {
		t.Fatal("key sets differ after rotation")
	}
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(a.srv.Keys().JWKS(), &set)
	if len(set.Keys) != 3 {
		t.Fatalf("after rotation %d keys published, want 3 (new, previous access, ID)", len(set.Keys))
	}
}

// BenchmarkClientCredentials measures the server side of the hot path:
// handler, client read, HMAC, signature and audit record, without the
// load generator's HTTP client.
func BenchmarkClientCredentials(b *testing.B) {
	e := newEnv(b, nil, nil, true)
	body := url.Values{"grant_type": {"client_credentials"}}.Encode()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, PathToken, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("portal", portalSecret)
			w := httptest.NewRecorder()
			e.mux.ServeHTTP(w, req)
			if w.Code != http.StatusOK {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}

// BenchmarkIntrospect measures introspection of a live access token.
func BenchmarkIntrospect(b *testing.B) {
	e := newEnv(b, nil, nil, true)
	_, tok := e.tokenRequest(PathToken, url.Values{"grant_type": {"client_credentials"}}, "portal", portalSecret)
	body := url.Values{"token": {tok["access_token"].(string)}}.Encode()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest(http.MethodPost, PathIntrospect, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("portal", portalSecret)
			w := httptest.NewRecorder()
			e.mux.ServeHTTP(w, req)
			if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"active":true`) {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
}

// TestTokenRequestBodyOnly: the token endpoint reads its parameters from a
// form body alone, whatever way it is read (the plain content type without
// a query is read directly, any other through ParseForm): a query's
// parameters count for nothing, but a malformed query, body or media type
// is refused, as is a body over the limit.
func TestTokenRequestBodyOnly(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	const good = "grant_type=client_credentials&scope=workflows.read"
	form := "application/x-www-form-urlencoded"
	for name, tc := range map[string]struct {
		query, contentType, body string
		status                   int
		scope                    string
	}{
		"plain":                      {"", form, good, http.StatusOK, "workflows.read"},
		"charset":                    {"", form + "; charset=utf-8", good, http.StatusOK, "workflows.read"},
		"type in capitals":           {"", "Application/X-WWW-Form-URLEncoded", good, http.StatusOK, "workflows.read"},
		"query ignored":              {"scope=openid", form, good, http.StatusOK, "workflows.read"},
		"grant_type in query only":   {"grant_type=client_credentials", form, "scope=workflows.read", http.StatusBadRequest, ""},
		"malformed query":            {"scope=%zz", form, good, http.StatusBadRequest, ""},
		"malformed body":             {"", form, good + "&x=%zz", http.StatusBadRequest, ""},
		"malformed body, charset":    {"", form + "; charset=utf-8", good + "&x=%zz", http.StatusBadRequest, ""},
		"semicolon":                  {"", form, "grant_type=client_credentials;scope=workflows.read", http.StatusBadRequest, ""},
		"bad media type parameter":   {"", form + "; charset", good, http.StatusBadRequest, ""},
		"no content type":            {"", "", good, http.StatusBadRequest, ""},
		"oversized, charset":         {"", form + "; charset=utf-8", good + "&pad=" + strings.Repeat("x", 70<<10), http.StatusBadRequest, ""},
		"oversized":                  {"", form, good + "&pad=" + strings.Repeat("x", 70<<10), http.StatusBadRequest, ""},
		"empty body, grant in query": {"grant_type=client_credentials&scope=workflows.read", form, "", http.StatusBadRequest, ""},
	} {
		u := e.issuer + PathToken
		if tc.query != "" {
			u += "?" + tc.query
		}
		code, m := portalPost(t, u, tc.contentType, tc.body)
		if code != tc.status || (tc.scope != "" && m["scope"] != tc.scope) || (tc.status == http.StatusBadRequest && m["error"] != "invalid_request") {
			t.Errorf("%s: %d %v, want %d scope %q", name, code, m, tc.status, tc.scope)
		}
	}
}

// A parameter given twice is refused with invalid_request naming it, at the
// token, revocation and introspection endpoints alike, before the client is
// checked; resource, which RFC 8707 repeats on purpose, is not.
func TestRepeatedParametersRefused(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	for name, tc := range map[string]struct {
		path   string
		body   string
		status int
		param  string
	}{
		"scope twice":           {PathToken, "grant_type=client_credentials&scope=workflows.read&scope=flows.invoke", http.StatusBadRequest, "scope"},
		"grant_type twice":      {PathToken, "grant_type=client_credentials&grant_type=refresh_token", http.StatusBadRequest, "grant_type"},
		"same value twice":      {PathToken, "grant_type=client_credentials&scope=workflows.read&scope=workflows.read", http.StatusBadRequest, "scope"},
		"token twice, revoke":   {PathRevoke, "token=a&token=b", http.StatusBadRequest, "token"},
		"token twice, inspect":  {PathIntrospect, "token=a&token=b", http.StatusBadRequest, "token"},
		"two names, first told": {PathToken, "grant_type=client_credentials&scope=a&scope=b&grant_type=x", http.StatusBadRequest, "grant_type"},
		"once each":             {PathToken, "grant_type=client_credentials&scope=workflows.read", http.StatusOK, ""},
		"resource twice":        {PathToken, "grant_type=client_credentials&resource=" + url.QueryEscape(e.issuer) + "&resource=" + url.QueryEscape(e.issuer), http.StatusOK, ""},
	} {
		code, m := portalPost(t, e.issuer+tc.path, "application/x-www-form-urlencoded", tc.body)
		if code != tc.status {
			t.Errorf("%s: %d %v, want %d", name, code, m, tc.status)
			continue
		}
		if tc.param != "" {
			desc, _ := m["error_description"].(string)
			if m["error"] != "invalid_request" || !strings.Contains(desc, `"`+tc.param+`"`) {
				t.Errorf("%s: %v, want invalid_request naming %q", name, m, tc.param)
			}
		}
	}
}

// portalPost posts body to u as the portal client (HTTP Basic), with
// contentType unless it is empty, and returns the status and JSON answer.
func portalPost(t *testing.T, u, contentType, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.SetBasicAuth("portal", portalSecret)
	return doJSON(t, req)
}

// doJSON sends req and returns the status and the JSON answer (nil when
// the body is not JSON).
func doJSON(t *testing.T, req *http.Request) (int, map[string]any) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}
