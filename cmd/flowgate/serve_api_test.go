package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// externalIssuer is an OpenID issuer on 127.0.0.1 publishing one ES256 key.
// (The resource package tests the validation rules against the independent
// oidc-provider; this one checks that the served binary wires issuers in.)
type externalIssuer struct {
	srv *httptest.Server
	key *ecdsa.PrivateKey
}

func newExternalIssuer(t *testing.T) *externalIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ei := &externalIssuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": ei.srv.URL, "jwks_uri": ei.srv.URL + "/jwks"})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}})
	})
	ei.srv = httptest.NewServer(mux)
	t.Cleanup(ei.srv.Close)
	return ei
}

func (ei *externalIssuer) token(t *testing.T, sub string) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": ei.srv.URL, "aud": "api://flowgate", "sub": sub, "scope": "workflows.read",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix(),
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(ei.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestAdminAPIManagesTrustedIssuersLive(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	secret := "ops-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	if err := os.WriteFile(cfg, []byte(`
clients:
  - id: ops
    secret: "`+secret+`"
    grant_types: [client_credentials]
    scopes: [admin, workflows.read]
    roles: [admin]
egress:
  allow: [127.0.0.1] # the external issuer
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)
	ext := newExternalIssuer(t)

	admin := clientToken(t, s.base, "ops", secret, "admin")

	call := func(method, path, bearer string, body any) (int, map[string]any) {
		var rd *bytes.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		} else {
			rd = bytes.NewReader(nil)
		}
		req, _ := http.NewRequest(method, s.base+path, rd)
		req.Header.Set("Authorization", "Bearer "+bearer)
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 15 s", what)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	extToken := ext.token(t, "u1")
	if code, _ := call("GET", "/api/v1/me", extToken, nil); code != 401 {
		t.Fatalf("external token before its issuer is trusted: %d", code)
	}
	code, v := call("POST", "/api/v1/admin/trusted-issuers", admin, map[string]any{"name": "ext", "issuer": ext.srv.URL, "audience": "api://flowgate"})
	if code != 201 {
		t.Fatalf("create trusted issuer: %d %v", code, v)
	}
	waitFor("external token accepted after the issuer was added", func() bool {
		code, v := call("GET", "/api/v1/me", extToken, nil)
		return code == 200 && v["principal"] == "ext:u1"
	})
	if code, v := call("GET", "/api/v1/admin/users", extToken, nil); code != 403 {
		t.Fatalf("external token without the admin scope on the admin API: %d %v", code, v)
	}
	if code, v := call("DELETE", "/api/v1/admin/trusted-issuers/ext", admin, nil); code != 204 && code != 200 {
		t.Fatalf("delete trusted issuer: %d %v", code, v)
	}
	waitFor("external token refused after the issuer was removed", func() bool {
		code, _ := call("GET", "/api/v1/me", extToken, nil)
		return code == 401
	})

	code, v = call("PUT", "/api/v1/admin/api-switches", admin, map[string]bool{"workflow": false, "invoke": true, "basic_auth": false})
	if code != 200 || v["workflow"] != false {
		t.Fatalf("api switches: %d %v", code, v)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
