package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/store"
)

// A browser page calling the token endpoint is held to the client's own
// allowed_origins: another app's origin (which CORS lets through, since
// every client's origins get CORS answers) is invalid_client; the client's
// own origin, Flowgate's own and no Origin at all are served.
func TestTokenEndpointHoldsClientToItsOrigins(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	const secret = "browser-app-secret-0123456789"
	if err := e.st.CreateClient(t.Context(), store.Client{ID: "app-a", SecretHash: credential.HashClientSecret(e.ring, secret),
		GrantTypes: []string{"client_credentials"}, Scopes: []string{"workflows.read"}, TokenEndpointAuthMethod: "client_secret_post",
		AllowedOrigins: []string{"https://a.example"}}); err != nil {
		t.Fatal(err)
	}
	post := func(origin string) (int, map[string]any) {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"app-a"}, "client_secret": {secret}}
		req, _ := http.NewRequest(http.MethodPost, e.issuer+PathToken, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		return doJSON(t, req)
	}
	for origin, want := range map[string]int{"": 200, "https://a.example": 200, e.srv.issuerOrigin(): 200, "https://b.example": 401, "null": 401} {
		code, m := post(origin)
		if code != want {
			t.Errorf("Origin %q: %d %v, want %d", origin, code, m, want)
		}
		if want == 401 && m["error"] != "invalid_client" {
			t.Errorf("Origin %q: error %v, want invalid_client", origin, m["error"])
		}
	}
}
