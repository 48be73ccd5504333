package admin

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
)

// ProbeIssuer reports the keys and their algorithms, and says what is
// wrong when the metadata names another issuer or cannot be read.
func TestProbeIssuer(t *testing.T) {
	var srv *httptest.Server
	issuer := ""
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			_, _ = w.Write([]byte(`{"issuer":"` + issuer + `","jwks_uri":"` + srv.URL + `/jwks"}`))
		case "/jwks":
			_, _ = w.Write([]byte(`{"keys":[{"kty":"RSA","alg":"RS256"},{"kty":"EC","alg":"ES256"},{"kty":"RSA","alg":"RS256"},{"kty":"OKP"}]}`))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	issuer = srv.URL
	t0 := store.TrustedIssuer{Name: "x", Issuer: srv.URL, MetadataURL: srv.URL + "/.well-known/openid-configuration"}

	p := ProbeIssuer(context.Background(), srv.Client(), t0)
	if !p.OK || p.Keys != 4 || !slices.Equal(p.Algorithms, []string{"RS256", "ES256", "OKP (no alg)"}) || p.Err != "" {
		t.Fatalf("a good issuer: %+v", p)
	}

	other := t0
	other.Issuer = "https://other.example"
	if p := ProbeIssuer(context.Background(), srv.Client(), other); p.OK || p.IssuerMatch || p.Keys != 4 || p.Err == "" {
		t.Fatalf("another issuer in the metadata: %+v", p)
	}

	gone := t0
	gone.MetadataURL = srv.URL + "/missing"
	if p := ProbeIssuer(context.Background(), srv.Client(), gone); p.OK || p.Err != "metadata: GET "+gone.MetadataURL+" answered 404 Not Found" {
		t.Fatalf("missing metadata: %+v", p)
	}
}
