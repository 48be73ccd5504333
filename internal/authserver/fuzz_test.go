package authserver

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// FuzzTokenForm posts arbitrary bodies to the token endpoint: every answer
// is a token (200) or an OAuth error the caller made (400, 401), never a
// failure of ours. On the way, it checks the decoding op does with our
// decoder: the same form with every name also spelled in upper case
// decodes to the same requests, since names match only as spelled.
func FuzzTokenForm(f *testing.F) {
	for _, s := range []string{
		"grant_type=client_credentials&scope=flows.invoke&client_id=svc&client_secret=" + url.QueryEscape(svcSecret),
		"grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=x.y.z&client_id=jwtc",
		"grant_type=authorization_code&code=x&redirect_uri=http%3A%2F%2Frp.invalid%2Fcb&client_id=spa&code_verifier=v",
		"grant_type=refresh_token&refresh_token=x&client_id=spa&scope=openid",
		"GRANT_TYPE=client_credentials&Scope=&client_id=svc&client_id=portal", "scope=%20%20a", "client_secret=&client_secret=x", "=&&=x",
	} {
		f.Add(s)
	}
	e := newEnv(f, nil, nil, true)
	dec := newFormDecoder()
	f.Fuzz(func(t *testing.T, body string) {
		if form, err := url.ParseQuery(body); err == nil {
			sameAsSchema(t, dec, form)
			shouted := url.Values{}
			for k, v := range form {
				shouted[k] = v
				if up := strings.ToUpper(k); form[up] == nil {
					shouted[up] = []string{"SHOUTED"}
				}
			}
			for _, mk := range []func() any{
				func() any { return new(op.ClientCredentials) },
				func() any { return new(oidc.ClientCredentialsRequest) },
				func() any { return new(oidc.AccessTokenRequest) },
				func() any { return new(oidc.RefreshTokenRequest) },
			} {
				want, got := mk(), mk()
				werr, gerr := dec.Decode(want, form), dec.Decode(got, shouted)
				if (werr == nil) != (gerr == nil) || !reflect.DeepEqual(want, got) {
					t.Fatalf("%q into %T: %+v (%v); with upper-case names %+v (%v)", body, want, want, werr, got, gerr)
				}
			}
		}
		r := httptest.NewRequest(http.MethodPost, PathToken, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		e.handler.ServeHTTP(rec, r)
		var m map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%q: %d, body not JSON: %s", body, rec.Code, rec.Body)
		}
		switch rec.Code {
		case http.StatusOK:
			if m["access_token"] == nil {
				t.Fatalf("%q: 200 without an access token: %v", body, m)
			}
		case http.StatusBadRequest, http.StatusUnauthorized:
			if m["error"] == nil {
				t.Fatalf("%q: %d without an error: %v", body, rec.Code, m)
			}
		default:
			t.Fatalf("%q: status %d: %v", body, rec.Code, m)
		}
	})
}

// directTypes are the request types decodeDirect fills.
func directTypes() []func() any {
	return []func() any{
		func() any { return new(op.ClientCredentials) },
		func() any { return new(oidc.ClientCredentialsRequest) },
		func() any { return new(oidc.AccessTokenRequest) },
		func() any { return new(oidc.RefreshTokenRequest) },
		func() any { return new(oidc.IntrospectionRequest) },
		func() any { return new(oidc.RevocationRequest) },
	}
}

// sameAsSchema fails unless the direct decoding of form into each of
// directTypes is what schema's makes of it.
func sameAsSchema(t *testing.T, dec *formDecoder, form url.Values) {
	t.Helper()
	for _, mk := range directTypes() {
		direct, reflected := mk(), mk()
		if !decodeDirect(direct, form) {
			t.Fatalf("%T is not decoded directly", direct)
		}
		if err := dec.decodeReflect(reflected, form); err != nil || !reflect.DeepEqual(direct, reflected) {
			t.Fatalf("%v into %T: directly %+v; by schema %+v (%v)", form, direct, direct, reflected, err)
		}
	}
}

// TestDirectDecodingIsSchemas: the requests of the token, introspection
// and revocation endpoints, decoded without schema, are what schema
// decodes: repeated, empty and missing parameters, names in another case
// or with a path, scopes with doubled, leading and trailing spaces.
func TestDirectDecodingIsSchemas(t *testing.T) {
	dec := newFormDecoder()
	all := url.Values{}
	for _, name := range []string{"grant_type", "scope", "client_id", "client_secret", "client_assertion", "client_assertion_type",
		"code", "redirect_uri", "code_verifier", "refresh_token", "token", "token_type_hint"} {
		all[name] = []string{"v-" + name}
	}
	forms := []url.Values{
		{}, all,
		{"grant_type": {"client_credentials"}, "scope": {"a b"}, "client_id": {"svc"}, "client_secret": {"s"}},
		{"client_id": {"a", "b"}, "client_secret": {"x", ""}, "token": {"", "t"}, "code": {"c1", "c2", "c3"}},
		{"scope": {""}}, {"scope": {}}, {"scope": {"a", ""}}, {"scope": {"", "a"}}, {"scope": {"  a  b "}},
		{"client_id": {}, "token": {}, "grant_type": {""}, "code_verifier": {"", ""}},
		{"CLIENT_ID": {"x"}, "Scope": {"a"}, "Token": {"t"}, "client_id.0": {"y"}, "scope.x": {"z"}, "": {"e"}},
		{"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {"x.y.z"}, "redirect_uri": {"http://rp.invalid/cb"}},
	}
	for _, form := range forms {
		sameAsSchema(t, dec, form)
	}
	for _, form := range forms {
		if form.Has("CLIENT_ID") {
			var cc op.ClientCredentials
			if err := dec.Decode(&cc, form); err != nil || cc.ClientID != "" {
				t.Errorf("CLIENT_ID decoded as client_id: %+v (%v)", cc, err)
			}
		}
	}
}
