package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The served binary is an OpenID provider: discovery names its own public
// URL, client credentials issue a token that introspection accepts, and the
// audit events of the last requests are on disk after SIGTERM.
func TestServeIssuesTokensAndAuditsThem(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	secret := "svc-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	if err := os.WriteFile(cfg, []byte(`
clients:
  - id: svc
    secret: "`+secret+`"
    grant_types: [client_credentials]
    scopes: [workflows.read]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)

	code, disc := getJSON(t, s.base+"/.well-known/openid-configuration")
	if code != 200 || disc["issuer"] != s.base || disc["token_endpoint"] != s.base+"/oauth2/token" {
		t.Fatalf("discovery %d: issuer %v token_endpoint %v (public URL derived from --addr is %s)", code, disc["issuer"], disc["token_endpoint"], s.base)
	}

	post := func(path string, form url.Values, user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest("POST", s.base+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	code, tok := post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"workflows.read"}}, "svc", secret)
	at, _ := tok["access_token"].(string)
	if code != 200 || at == "" {
		t.Fatalf("token: %d %v", code, tok)
	}
	if code, v := post("/oauth2/introspect", url.Values{"token": {at}}, "svc", secret); code != 200 || v["active"] != true || v["sub"] != "svc" {
		t.Fatalf("introspect: %d %v", code, v)
	}
	if code, v := post("/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "wrong"); code != 401 || v["error"] != "invalid_client" {
		t.Fatalf("wrong secret: %d %v", code, v)
	}

	// The APIs trust the provider in the same process.
	me := func(auth string) (int, string, map[string]any) {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/me", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), v
	}
	if code, _, v := me("Bearer " + at); code != 200 || v["principal"] != "client:svc" {
		t.Fatalf("/api/v1/me with a token: %d %v", code, v)
	}
	if code, challenge, _ := me(""); code != 401 || challenge != `Bearer realm="flowgate"` {
		t.Fatalf("/api/v1/me without a token: %d %q", code, challenge)
	}
	if code, _ := post("/oauth2/revoke", url.Values{"token": {at}}, "svc", secret); code != 200 {
		t.Fatalf("revoke: %d", code)
	}
	if code, challenge, _ := me("Bearer " + at); code != 401 || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Fatalf("/api/v1/me with a revoked token: %d %q", code, challenge)
	}
	if code := s.stop(t); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if strings.Contains(s.stderr.String(), secret) || strings.Contains(s.stderr.String(), at) {
		t.Fatal("a secret or token reached the server log")
	}

	r := run(t, dir, "", nil, "--config", cfg, "audit", "--json")
	if r.code != 0 {
		t.Fatalf("audit: %+v", r)
	}
	var issued, failed bool
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		issued = issued || (e["event"] == "token.issued" && e["client"] == "svc" && e["outcome"] == "success")
		failed = failed || (e["event"] == "client_auth.failure" && e["client"] == "svc")
	}
	if !issued || !failed {
		t.Fatalf("audit log lacks the token issued or the failed client authentication:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, at) || strings.Contains(r.stdout, secret) {
		t.Fatal("the audit log holds a token or secret")
	}
}
