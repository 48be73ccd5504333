package api_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

// The connection routes and the OAuth server test run against
// internal/testutil/oauthpeer: an independent provider (node-oidc-provider),
// not Flowgate's own authorization server.

// oauthServer creates an OAuth server through the admin API.
func (e *env) oauthServer(body map[string]any) {
	e.t.Helper()
	want(e.t, e.as("POST", "/api/v1/admin/oauth-servers", body), 201, "", "")
}

// connect gets a client-credentials token of server through the vault's
// connectors.Client and saves it as principal's connection, as a user
// login would; it returns the token, so that answers can be searched for
// it.
func (e *env) connect(principal, server string) connectors.Token {
	e.t.Helper()
	c, err := e.vault.Client(e.t.Context(), server)
	if err != nil {
		e.t.Fatal(err)
	}
	tok, err := c.ClientCredentials(e.t.Context(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok.AccessToken == "" {
		e.t.Fatal("the provider issued an empty access token")
	}
	if err := e.vault.Save(e.t.Context(), principal, server, tok); err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// noSecrets fails when body holds any of secrets, or a token field.
func noSecrets(t *testing.T, what string, body []byte, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && bytes.Contains(body, []byte(s)) {
			t.Errorf("%s shows a token or secret: %s", what, body)
		}
	}
	for _, k := range []string{`"access_token"`, `"refresh_token"`, `"client_secret"`} {
		if bytes.Contains(body, []byte(k)) {
			t.Errorf("%s has a %s field: %s", what, k, body)
		}
	}
}

// connectionList reads a list answer of the connection routes.
func connectionList(t *testing.T, r resp) (items []map[string]any, next *string) {
	t.Helper()
	want(t, r, 200, "", "")
	var l struct {
		Items      []map[string]any `json:"items"`
		NextCursor *string          `json:"next_cursor"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		t.Fatal(err)
	}
	return l.Items, l.NextCursor
}

func TestConnections(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		peer := oauthpeer.Start(t, oauthpeer.Options{})
		e.oauthServer(map[string]any{"name": "peer", "metadata_url": peer.MetadataURL(), "client_id": oauthpeer.BasicClient,
			"client_secret": oauthpeer.BasicSecret, "scopes": []string{"api.read"}})
		e.oauthServer(map[string]any{"name": "peer-post", "metadata_url": peer.MetadataURL(), "client_id": oauthpeer.PostClient,
			"client_secret": oauthpeer.PostSecret, "client_auth": "client_secret_post", "scopes": []string{"api.read", "api.write"}})
		e.user("alice", "alice-password", "employee")
		e.user("carol", "carol-password", "employee")
		alice := "Bearer " + e.token("alice", "workflows.read")
		carol := "Bearer " + e.token("carol", "workflows.read")
		const list = "/api/v1/connections"

		// Credentials and scope, as every scoped route.
		for _, rt := range [][2]string{{"GET", list}, {"DELETE", list + "/peer"}} {
			want(t, e.do(rt[0], rt[1], "", nil), 401, "unauthorized", "")
			want(t, e.do(rt[0], rt[1], "Bearer "+e.token("alice", "tasks"), nil), 403, "insufficient_scope", "workflows.read")
		}
		if items, next := connectionList(t, e.do("GET", list, alice, nil)); len(items) != 0 || next != nil {
			t.Fatalf("alice's connections before any = %v", items)
		}

		before := time.Now()
		tok := e.connect("user:alice", "peer")
		tokPost := e.connect("user:alice", "peer-post")

		// The list: both, by server, without either token.
		r := e.do("GET", list, alice, nil)
		noSecrets(t, "the connection list", r.body, tok.AccessToken, tokPost.AccessToken, oauthpeer.BasicSecret, oauthpeer.PostSecret)
		items, next := connectionList(t, r)
		if len(items) != 2 || next != nil {
			t.Fatalf("alice's connections = %s", r.body)
		}
		for i, w := range []struct {
			server string
			scopes string
		}{{"peer", "[api.read]"}, {"peer-post", "[api.read api.write]"}} {
			c := items[i]
			if c["server"] != w.server || fmtList(c["scopes"]) != w.scopes || c["status"] != "ok" || c["last_error"] != nil {
				t.Errorf("connection %d = %v", i, c)
			}
			exp, err := time.Parse(time.RFC3339, c["expires_at"].(string))
			if err != nil || exp.Before(before.Add(59*time.Minute)) || exp.After(time.Now().Add(61*time.Minute)) {
				t.Errorf("connection %s expires_at %v (%v)", w.server, c["expires_at"], err)
			}
			if _, err := time.Parse(time.RFC3339, c["updated_at"].(string)); err != nil {
				t.Errorf("connection %s updated_at %v", w.server, c["updated_at"])
			}
		}

		// Pages of one; a cursor that was never handed out is refused.
		first, next := connectionList(t, e.do("GET", list+"?limit=1", alice, nil))
		if len(first) != 1 || first[0]["server"] != "peer" || next == nil {
			t.Fatalf("first page = %v, next %v", first, next)
		}
		second, last := connectionList(t, e.do("GET", list+"?limit=1&cursor="+url.QueryEscape(*next), alice, nil))
		if len(second) != 1 || second[0]["server"] != "peer-post" || last != nil {
			t.Fatalf("second page = %v, next %v", second, last)
		}
		want(t, e.do("GET", list+"?cursor=!!", alice, nil), 400, "invalid_request", "cursor")
		want(t, e.do("GET", list+"?limit=0", alice, nil), 400, "invalid_request", "limit")

		// Another user sees none of them and cannot remove them.
		if items, _ := connectionList(t, e.do("GET", list, carol, nil)); len(items) != 0 {
			t.Errorf("carol sees alice's connections: %v", items)
		}
		want(t, e.do("DELETE", list+"/peer", carol, nil), 404, "not_found", `"peer"`)
		// Nor does the admin: the list is the caller's own.
		if items, _ := connectionList(t, e.do("GET", list, "Bearer "+e.token("admin", "workflows.read"), nil)); len(items) != 0 {
			t.Errorf("the admin sees alice's connections: %v", items)
		}

		// A refused refresh shows as reconnect_required with its reason.
		if _, err := e.st.RefreshConnection(t.Context(), "user:alice", "peer-post", func(c store.Connection) (store.Connection, error) {
			c.Status, c.LastError = store.ConnectionReconnectRequired, `oauth server "peer-post": refresh: invalid_grant`
			return c, nil
		}); err != nil {
			t.Fatal(err)
		}
		items, _ = connectionList(t, e.do("GET", list, alice, nil))
		if len(items) != 2 || items[1]["status"] != "reconnect_required" || !strings.Contains(items[1]["last_error"].(string), "invalid_grant") {
			t.Errorf("connections after a refused refresh = %v", items)
		}

		// Disconnect: revoked at the provider (one revocation request: a
		// client-credentials token has no refresh token), then gone.
		revocations := peer.Stats(t).Revocations
		r = e.do("DELETE", list+"/peer", alice, nil)
		noSecrets(t, "the disconnect answer", r.body, tok.AccessToken)
		m := want(t, r, 200, "", "")
		if m["server"] != "peer" || m["deleted"] != true || m["revoked"] != true || m["revoke_error"] != nil {
			t.Errorf("disconnect = %s", r.body)
		}
		if n := peer.Stats(t).Revocations; n != revocations+1 {
			t.Errorf("the provider saw %d revocations, want %d", n, revocations+1)
		}
		want(t, e.do("DELETE", list+"/peer", alice, nil), 404, "not_found", `"peer"`)
		want(t, e.do("DELETE", list+"/nope", alice, nil), 404, "not_found", `"nope"`)
		items, _ = connectionList(t, e.do("GET", list, alice, nil))
		if len(items) != 1 || items[0]["server"] != "peer-post" {
			t.Errorf("connections after the disconnect = %v", items)
		}
		if _, err := e.vault.Token(t.Context(), "user:alice", "peer"); err == nil {
			t.Error("the vault still hands out the disconnected token")
		}
	})
}

// TestDisconnectWithoutRevocation: a server without a revocation
// endpoint, and one whose endpoint fails. Either way the connection is
// deleted; the answer says whether the provider revoked, and why not.
func TestDisconnectWithoutRevocation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	peer := oauthpeer.Start(t, oauthpeer.Options{})
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"down for maintenance"}`)
	}))
	t.Cleanup(failing.Close)
	// Explicit endpoints: no discovery, so no revocation endpoint but the
	// one given.
	common := map[string]any{"token_endpoint": peer.Issuer + "/token", "client_id": oauthpeer.BasicClient,
		"client_secret": oauthpeer.BasicSecret, "scopes": []string{"api.read"}}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for _, src := range []map[string]any{common, extra} {
			for k, v := range src {
				m[k] = v
			}
		}
		return m
	}
	e.oauthServer(with(map[string]any{"name": "norevoke"}))
	e.oauthServer(with(map[string]any{"name": "badrevoke", "revocation_endpoint": failing.URL}))
	e.user("alice", "alice-password", "employee")
	alice := "Bearer " + e.token("alice", "workflows.read")
	tok1 := e.connect("user:alice", "norevoke")
	tok2 := e.connect("user:alice", "badrevoke")

	r := e.do("DELETE", "/api/v1/connections/norevoke", alice, nil)
	noSecrets(t, "the disconnect answer", r.body, tok1.AccessToken)
	if m := want(t, r, 200, "", ""); m["deleted"] != true || m["revoked"] != false || m["revoke_error"] != nil {
		t.Errorf("disconnect without a revocation endpoint = %s", r.body)
	}
	r = e.do("DELETE", "/api/v1/connections/badrevoke", alice, nil)
	noSecrets(t, "the disconnect answer", r.body, tok2.AccessToken)
	m := want(t, r, 200, "", "")
	if m["deleted"] != true || m["revoked"] != false || !strings.Contains(m["revoke_error"].(string), "temporarily_unavailable") {
		t.Errorf("disconnect with a failing revocation endpoint = %s", r.body)
	}
	if items, _ := connectionList(t, e.do("GET", "/api/v1/connections", alice, nil)); len(items) != 0 {
		t.Errorf("connections left = %v", items)
	}
}

// TestConnectionsWithoutVault: without a vault the routes are there and
// say why they cannot answer.
func TestConnectionsWithoutVault(t *testing.T) {
	t.Parallel()
	e := buildEnv(t, "sqlite", &flowOpts{noVault: true})
	e.user("alice", "alice-password", "employee")
	alice := "Bearer " + e.token("alice", "workflows.read")
	want(t, e.do("GET", "/api/v1/connections", alice, nil), 503, "unavailable", "vault")
	want(t, e.do("DELETE", "/api/v1/connections/x", alice, nil), 503, "unavailable", "vault")
	// Credentials are still checked first.
	want(t, e.do("GET", "/api/v1/connections", "", nil), 401, "unauthorized", "")
}

// tokenRecorder is a reverse proxy in front of the peer's token endpoint
// that keeps every access token the peer issues through it: what the
// admin test received, to look for in its answer.
type tokenRecorder struct {
	mu     sync.Mutex
	tokens []string
}

func (tr *tokenRecorder) start(t *testing.T, issuer string) string {
	t.Helper()
	target, err := url.Parse(issuer)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(res *http.Response) error {
		b, err := io.ReadAll(res.Body)
		_ = res.Body.Close()
		if err != nil {
			return err
		}
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal(b, &body) == nil && body.AccessToken != "" {
			tr.mu.Lock()
			tr.tokens = append(tr.tokens, body.AccessToken)
			tr.mu.Unlock()
		}
		res.Body = io.NopCloser(bytes.NewReader(b))
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	return srv.URL + "/token"
}

func (tr *tokenRecorder) issued() []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]string(nil), tr.tokens...)
}

// pkjwtKey writes a P-256 key for jwt-client and returns the JWKS the
// peer registers, and the key file.
func pkjwtKey(t *testing.T) (jwks, path string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	path = filepath.Join(t.TempDir(), "jwt-client.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "ec-1", Algorithm: "ES256", Use: "sig"}}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b), path
}

// TestOAuthServerTestAgainstPeer: the admin test runs client credentials
// with each client authentication method against the independent
// provider, reports type, lifetime and granted scopes, and never the
// token; a wrong secret is a clear failure.
func TestOAuthServerTestAgainstPeer(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	jwks, keyFile := pkjwtKey(t)
	peer := oauthpeer.Start(t, oauthpeer.Options{PKJWTJWKS: jwks})
	rec := &tokenRecorder{}
	proxied := rec.start(t, peer.Issuer)
	const base = "/api/v1/admin/oauth-servers"
	servers := []map[string]any{
		{"name": "basic", "metadata_url": peer.MetadataURL(), "client_id": oauthpeer.BasicClient, "client_secret": oauthpeer.BasicSecret},
		{"name": "post", "metadata_url": peer.MetadataURL(), "client_id": oauthpeer.PostClient, "client_secret": oauthpeer.PostSecret,
			"client_auth": "client_secret_post"},
		{"name": "jwt", "metadata_url": peer.MetadataURL(), "client_id": oauthpeer.JWTClient, "client_auth": "private_key_jwt",
			"private_key_file": keyFile, "key_id": "ec-1"},
		// Discovery for the rest, the token endpoint through the recorder.
		{"name": "recorded", "metadata_url": peer.MetadataURL(), "token_endpoint": proxied, "client_id": oauthpeer.BasicClient,
			"client_secret": oauthpeer.BasicSecret},
	}
	for _, s := range servers {
		s["scopes"] = []string{"api.read"}
		e.oauthServer(s)
	}
	// A token of our own: the answers must not hold one like it.
	mine := e.connect("user:admin", "basic").AccessToken
	tokenLike := regexp.MustCompile(`"[A-Za-z0-9_\-.~+/]{` + strconv.Itoa(len(mine)) + `,}={0,2}"`)

	grants := peer.Stats(t).ClientCredentialsGrants
	for _, s := range servers {
		name := s["name"].(string)
		r := e.as("POST", base+"/"+name+"/test", nil)
		noSecrets(t, name+" test", r.body, mine, oauthpeer.BasicSecret, oauthpeer.PostSecret)
		noSecrets(t, name+" test", r.body, rec.issued()...)
		if tokenLike.Match(r.body) {
			t.Errorf("%s test holds a token-like string: %s", name, r.body)
		}
		m := want(t, r, 200, "", "")
		if m["ok"] != true || !strings.EqualFold(m["token_type"].(string), "bearer") || fmtList(m["granted_scopes"]) != "[api.read]" ||
			fmtList(m["scopes"]) != "[api.read]" || m["error"] != nil {
			t.Errorf("%s test = %s", name, r.body)
		}
		if n, _ := m["expires_in"].(float64); n < 3500 || n > 3600 {
			t.Errorf("%s test expires_in = %v", name, m["expires_in"])
		}
		wantEndpoint := peer.Issuer + "/token"
		if name == "recorded" {
			wantEndpoint = proxied
		}
		if m["token_endpoint"] != wantEndpoint {
			t.Errorf("%s test token_endpoint = %v, want %s", name, m["token_endpoint"], wantEndpoint)
		}
	}
	if len(rec.issued()) != 1 {
		t.Errorf("the recorder saw %d tokens, want 1 (the test's)", len(rec.issued()))
	}
	if n := peer.Stats(t).ClientCredentialsGrants; n != grants+len(servers) {
		t.Errorf("the provider counted %d client credentials grants, want %d", n, grants+len(servers))
	}

	// A wrong secret, right after the PUT: the provider's refusal, with
	// its code and kind, and not the secret.
	put := map[string]any{"metadata_url": peer.MetadataURL(), "client_id": oauthpeer.BasicClient, "client_secret": "wrong-SECRET-93ab",
		"scopes": []string{"api.read"}}
	want(t, e.as("PUT", base+"/basic", put), 200, "", "")
	r := e.as("POST", base+"/basic/test", nil)
	noSecrets(t, "failed test", r.body, "wrong-SECRET-93ab", mine)
	m := want(t, r, 200, "", "")
	if m["ok"] != false || m["error_code"] != "invalid_client" || m["error_kind"] != "other" ||
		!strings.Contains(m["error"].(string), "invalid_client") || !strings.Contains(m["error"].(string), `"basic"`) ||
		m["token_type"] != nil || m["granted_scopes"] != nil {
		t.Errorf("test with a wrong secret = %s", r.body)
	}
	// Fixed again, the next test passes at once.
	put["client_secret"] = oauthpeer.BasicSecret
	want(t, e.as("PUT", base+"/basic", put), 200, "", "")
	if m := want(t, e.as("POST", base+"/basic/test", nil), 200, "", ""); m["ok"] != true {
		t.Errorf("test after fixing the secret = %v", m)
	}

	// A provider that is not there: unreachable, at discovery.
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	e.oauthServer(map[string]any{"name": "dead", "metadata_url": deadURL + "/.well-known/openid-configuration",
		"client_id": "c", "client_secret": "s"})
	m = want(t, e.as("POST", base+"/dead/test", nil), 200, "", "")
	if m["ok"] != false || m["error_kind"] != "unreachable" || !strings.Contains(m["error"].(string), "discovery") {
		t.Errorf("test of an unreachable provider = %v", m)
	}
	// A key file that is gone: a configuration error (the test builds
	// its client from the entry every time).
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	if m := want(t, e.as("POST", base+"/jwt/test", nil), 200, "", ""); m["ok"] != false || m["error_kind"] != "configuration" {
		t.Errorf("test with a missing key file = %v", m)
	}

	// 404 for an unknown server; admins only.
	want(t, e.as("POST", base+"/nope/test", nil), 404, "not_found", `"nope"`)
	e.authMatrix("POST", base+"/post/test", nil)
	e.user("alice", "alice-password", "employee")
	want(t, e.do("POST", base+"/post/test", "Bearer "+e.token("alice", "workflows.read"), nil), 403, "insufficient_scope", "admin")
}

func fmtList(v any) string {
	l, _ := v.([]any)
	s := make([]string, len(l))
	for i, x := range l {
		s[i], _ = x.(string)
	}
	return "[" + strings.Join(s, " ") + "]"
}
