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
