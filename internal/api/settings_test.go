package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/store"
)

// metadataServer serves OpenID metadata claiming issuer (its own URL when
// empty) and a key set of nkeys keys.
func metadataServer(t *testing.T, issuer string, nkeys int) *httptest.Server {
	t.Helper()
	var srv *httptest.Server
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		iss := issuer
		if iss == "" {
			iss = srv.URL
		}
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": iss, "jwks_uri": srv.URL + "/keys"})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		keys := make([]map[string]string, nkeys)
		for i := range keys {
			keys[i] = map[string]string{"kty": "EC", "crv": "P-256", "kid": fmt.Sprint(i), "x": "AA", "y": "AA"}
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": keys})
	})
	srv = httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTrustedIssuers(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const base = "/api/v1/admin/trusted-issuers"
		for _, rt := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/x"},
			{"PUT", base + "/x"}, {"DELETE", base + "/x"}, {"POST", base + "/x/test"}} {
			e.authMatrix(rt[0], rt[1], map[string]any{})
		}
		idp := metadataServer(t, "", 2)
		m := want(t, e.as("POST", base, map[string]any{
			"name": "keycloak", "issuer": idp.URL, "audience": "api://flowgate",
			"scope_map": map[string]string{"fg.read": "workflows.read"},
		}), 201, "", "")
		if m["metadata_url"] != idp.URL+"/.well-known/openid-configuration" || m["subject_claim"] != "sub" ||
			m["scope_claim"] != "scope" || m["roles_claim"] != "roles" || m["source"] != "api" {
			t.Errorf("created issuer lacks its defaults: %v", m)
		}

		want(t, e.as("POST", base, map[string]any{"name": "x", "issuer": "not a url", "audience": "a"}), 400, "invalid_request", "issuer")
		want(t, e.as("POST", base, map[string]any{"name": "x", "issuer": "https://x.example"}), 400, "invalid_request", "audience")
		want(t, e.as("POST", base, map[string]any{"name": "user", "issuer": "https://x.example", "audience": "a"}), 400, "invalid_request", "name")
		want(t, e.as("POST", base, map[string]any{"name": "x", "issuer": "https://x.example", "audience": "a",
			"scope_map": map[string]string{"ext": "root"}}), 400, "invalid_request", "scope_map.ext")
		want(t, e.as("POST", base, map[string]any{"name": "x", "issuer": "https://x.example", "audience": "a", "subject_claim": "nickname"}), 400, "invalid_request", "subject_claim")
		want(t, e.as("POST", base, `{"name": "x", "scope_map": []}`), 400, "invalid_request", "scope_map")
		want(t, e.as("POST", base, `{"name": "x", "jwks": {}}`), 400, "invalid_request", "jwks")
		want(t, e.as("POST", base, map[string]any{"name": "keycloak", "issuer": "https://y.example", "audience": "a"}), 409, "conflict", "keycloak")
		want(t, e.as("POST", base, map[string]any{"name": "kc2", "issuer": idp.URL, "audience": "a"}), 409, "conflict", "issuer URL")

		want(t, e.as("GET", base+"/nope", nil), 404, "not_found", `"nope"`)
		want(t, e.as("PUT", base+"/nope", map[string]any{"issuer": "https://y.example", "audience": "a"}), 404, "not_found", `"nope"`)
		want(t, e.as("DELETE", base+"/nope", nil), 404, "not_found", `"nope"`)
		want(t, e.as("POST", base+"/nope/test", nil), 404, "not_found", `"nope"`)

		// The test reports what it found.
		m = want(t, e.as("POST", base+"/keycloak/test", nil), 200, "", "")
		if m["ok"] != true || m["issuer_match"] != true || m["keys"] != float64(2) || m["jwks_uri"] != idp.URL+"/keys" {
			t.Errorf("test of a good issuer = %v", m)
		}
		liar := metadataServer(t, "https://someone-else.example", 1)
		want(t, e.as("PUT", base+"/keycloak", map[string]any{"issuer": idp.URL, "audience": "api://flowgate",
			"metadata_url": liar.URL + "/.well-known/openid-configuration"}), 200, "", "")
		m = want(t, e.as("POST", base+"/keycloak/test", nil), 200, "", "")
		if m["ok"] != false || m["issuer_match"] != false || !strings.Contains(m["error"].(string), "someone-else") {
			t.Errorf("test of a mismatched issuer = %v", m)
		}
		liar.Close()
		m = want(t, e.as("POST", base+"/keycloak/test", nil), 200, "", "")
		if m["ok"] != false || !strings.HasPrefix(m["error"].(string), "metadata:") {
			t.Errorf("test of a down issuer = %v", m)
		}
		want(t, e.as("PUT", base+"/keycloak", map[string]any{"name": "other", "issuer": idp.URL, "audience": "a"}), 400, "invalid_request", "name")

		for i := range 3 {
			want(t, e.as("POST", base, map[string]any{"name": fmt.Sprintf("i%d", i), "issuer": fmt.Sprintf("https://i%d.example", i), "audience": "a"}), 201, "", "")
		}
		if items, pages := e.pageAll(base, 2); len(items) != 4 || pages != 2 {
			t.Errorf("paged %d pages of %d issuers", pages, len(items))
		}
		want(t, e.as("DELETE", base+"/keycloak", nil), 204, "", "")
		want(t, e.as("GET", base+"/keycloak", nil), 404, "not_found", "keycloak")
	})
}

// tokenServer is a client-credentials token endpoint that accepts one
// client with HTTP Basic or form credentials.
func tokenServer(t *testing.T, id, secret string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_ = r.ParseForm()
		u, p, ok := r.BasicAuth()
		if !ok {
			u, p = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
		}
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("grant_type") != "client_credentials" || u != id || p != secret {
			w.WriteHeader(401)
			_, _ = w.Write([]byte(`{"error":"invalid_client","error_description":"bad client credentials"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "THE-ACCESS-TOKEN-xyz", "token_type": "Bearer",
			"expires_in": 3599, "scope": r.PostForm.Get("scope") + " extra", "resource": r.PostForm.Get("resource")})
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestOAuthServers(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const base = "/api/v1/admin/oauth-servers"
		for _, rt := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/x"},
			{"PUT", base + "/x"}, {"DELETE", base + "/x"}, {"POST", base + "/x/test"}} {
			e.authMatrix(rt[0], rt[1], map[string]any{})
		}
		const secret = "outbound-SECRET-4f1d"
		ts, calls := tokenServer(t, "flowgate", secret)
		m := want(t, e.as("POST", base, map[string]any{
			"name": "graph", "token_endpoint": ts.URL, "client_id": "flowgate", "client_secret": secret,
			"scopes": []string{"User.Read"}, "params": map[string]string{"resource": "https://graph.example"},
		}), 201, "", "")
		if m["client_secret_set"] != true || m["refresh_endpoint"] != ts.URL || m["client_auth"] != "client_secret_basic" ||
			m["use_pkce"] != true || m["use_prompt"] != true || m["redirect_uri"] != "http://localhost:8080/oauth-callback" {
			t.Errorf("created server = %v", m)
		}
		for _, r := range []resp{e.as("GET", base+"/graph", nil), e.as("GET", base, nil)} {
			if bytes.Contains(r.body, []byte(secret)) || bytes.Contains(r.body, []byte(`"client_secret"`)) {
				t.Errorf("an answer shows the client secret: %s", r.body)
			}
		}
		if o, err := e.st.GetOAuthServer(t.Context(), "graph"); err != nil || o.ClientSecret != secret {
			t.Fatalf("stored secret: %v", err)
		}

		// The test runs client credentials and never shows the token.
		r := e.as("POST", base+"/graph/test", nil)
		m = want(t, r, 200, "", "")
		if m["ok"] != true || m["token_type"] != "Bearer" || m["expires_in"] != float64(3599) || calls.Load() != 1 {
			t.Errorf("test = %v (calls %d)", m, calls.Load())
		}
		if sc, _ := m["scopes"].([]any); len(sc) != 2 || sc[0] != "User.Read" {
			t.Errorf("test scopes = %v", m["scopes"])
		}
		if bytes.Contains(r.body, []byte("THE-ACCESS-TOKEN")) {
			t.Errorf("the test answer shows the token: %s", r.body)
		}

		// PUT without client_secret keeps it; with client_secret_post and a
		// wrong secret the test reports the server's refusal.
		put := map[string]any{"token_endpoint": ts.URL, "client_id": "flowgate", "client_auth": "client_secret_post"}
		m = want(t, e.as("PUT", base+"/graph", put), 200, "", "")
		if m["client_secret_set"] != true || m["client_auth"] != "client_secret_post" {
			t.Errorf("PUT without secret = %v", m)
		}
		if m := want(t, e.as("POST", base+"/graph/test", nil), 200, "", ""); m["ok"] != true {
			t.Errorf("test with client_secret_post = %v", m)
		}
		put["client_secret"] = "wrong"
		want(t, e.as("PUT", base+"/graph", put), 200, "", "")
		m = want(t, e.as("POST", base+"/graph/test", nil), 200, "", "")
		if m["ok"] != false || !strings.Contains(m["error"].(string), "invalid_client") {
			t.Errorf("test with a wrong secret = %v", m)
		}

		// 400s and 404s.
		want(t, e.as("POST", base, map[string]any{"name": "x", "client_id": "c", "client_secret": "s"}), 400, "invalid_request", "metadata_url")
		want(t, e.as("POST", base, map[string]any{"name": "x", "token_endpoint": ts.URL, "client_id": "c"}), 400, "invalid_request", "client_secret")
		want(t, e.as("POST", base, map[string]any{"name": "x", "token_endpoint": ts.URL, "client_secret": "s"}), 400, "invalid_request", "client_id")
		want(t, e.as("POST", base, map[string]any{"name": "x", "token_endpoint": ts.URL, "client_id": "c", "client_secret": "s",
			"params": map[string]string{"client_secret": "x"}}), 400, "invalid_request", "params.client_secret")
		want(t, e.as("POST", base, `{"name": "x", "use_pkce": "no"}`), 400, "invalid_request", "use_pkce")
		want(t, e.as("POST", base, `{"name": "x", "token": "t"}`), 400, "invalid_request", "token")
		want(t, e.as("POST", base, map[string]any{"name": "graph", "token_endpoint": ts.URL, "client_id": "c", "client_secret": "s"}), 409, "conflict", "graph")
		want(t, e.as("GET", base+"/nope", nil), 404, "not_found", `"nope"`)
		want(t, e.as("PUT", base+"/nope", put), 404, "not_found", `"nope"`)
		want(t, e.as("DELETE", base+"/nope", nil), 404, "not_found", `"nope"`)
		want(t, e.as("POST", base+"/nope/test", nil), 404, "not_found", `"nope"`)

		for i := range 4 {
			want(t, e.as("POST", base, map[string]any{"name": fmt.Sprintf("s%d", i), "token_endpoint": ts.URL, "client_id": "c", "client_secret": "s"}), 201, "", "")
		}
		if items, pages := e.pageAll(base, 2); len(items) != 5 || pages != 3 {
			t.Errorf("paged %d pages of %d servers", pages, len(items))
		}
		want(t, e.as("DELETE", base+"/graph", nil), 204, "", "")
		want(t, e.as("GET", base+"/graph", nil), 404, "not_found", "graph")
	})
}

func TestAPISwitchesAndBasicAuth(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const sw = "/api/v1/admin/api-switches"
		e.authMatrix("GET", sw, nil)
		e.authMatrix("PUT", sw, map[string]any{})
		if err := e.api.SeedSwitches(t.Context(), config.Default().APIs); err != nil {
			t.Fatal(err)
		}
		m := want(t, e.as("GET", sw, nil), 200, "", "")
		if m["workflow"] != true || m["invoke"] != true || m["basic_auth"] != false {
			t.Errorf("seeded switches = %v", m)
		}
		user := "Bearer " + e.token("admin", "workflows.read flows.invoke")
		want(t, e.do("GET", "/api/v1/workflows", user, nil), 200, "", "")

		// Off: 403 api_disabled; the other API is untouched; back on.
		want(t, e.as("PUT", sw, map[string]any{"workflow": false}), 200, "", "")
		want(t, e.do("GET", "/api/v1/workflows", user, nil), 403, "api_disabled", "workflow API is disabled")
		want(t, e.do("POST", "/api/v1/flows/x/invoke", user, nil), 200, "", "")
		want(t, e.as("PUT", sw, map[string]any{"invoke": false}), 200, "", "")
		want(t, e.do("POST", "/api/v1/flows/x/invoke", user, nil), 403, "api_disabled", "invoke API is disabled")
		want(t, e.as("PUT", sw, map[string]any{"workflow": true, "invoke": true}), 200, "", "")
		want(t, e.do("GET", "/api/v1/workflows", user, nil), 200, "", "")
		want(t, e.as("PUT", sw, map[string]any{"workflow": "off"}), 400, "invalid_request", "workflow")
		want(t, e.as("PUT", sw, map[string]any{"graphql": true}), 400, "invalid_request", "graphql")

		// Another server on the same store sees the change after its
		// cache expires: here, a store write the cache does not know of,
		// and a fresh API (no cache) reading it.
		if err := e.st.PutSetting(t.Context(), "api.workflow", "false"); err != nil {
			t.Fatal(err)
		}
		if m := want(t, e.as("GET", sw, nil), 200, "", ""); m["workflow"] != false {
			t.Errorf("GET does not read the store: %v", m)
		}
		want(t, e.as("PUT", sw, map[string]any{"workflow": true}), 200, "", "")

		// Basic auth off: Basic gets the Bearer challenge.
		e.user("carol", "carol-password", "employee")
		basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
		r := e.do("GET", "/api/v1/workflows", basic("carol", "carol-password"), nil)
		want(t, r, 401, "unauthorized", "")
		if c := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(c, "Bearer") {
			t.Errorf("challenge with basic auth off = %q", c)
		}

		// On: the user's roles, every scope but admin.
		want(t, e.as("PUT", sw, map[string]any{"basic_auth": true}), 200, "", "")
		m = want(t, e.do("GET", "/api/v1/workflows", basic("carol", "carol-password"), nil), 200, "", "")
		if m["principal"] != "user:carol" || fmt.Sprint(m["roles"]) != "[employee]" || strings.Contains(fmt.Sprint(m["scopes"]), "admin") {
			t.Errorf("basic principal = %v", m)
		}
		me := want(t, e.do("GET", "/api/v1/me", basic("carol", "carol-password"), nil), 200, "", "")
		if me["principal"] != "user:carol" {
			t.Errorf("/api/v1/me with basic = %v", me)
		}
		// Basic never reaches the admin API, even for an admin.
		want(t, e.do("GET", "/api/v1/admin/users", basic("admin", "admin-password"), nil), 401, "", "")

		// Wrong password, unknown user, disabled user.
		r = e.do("GET", "/api/v1/workflows", basic("carol", "nope"), nil)
		want(t, r, 401, "unauthorized", "")
		if !strings.Contains(strings.Join(r.header.Values("WWW-Authenticate"), ","), "Basic") {
			t.Errorf("refused basic has no Basic challenge: %v", r.header)
		}
		want(t, e.do("GET", "/api/v1/workflows", basic("nobody", "whatever1"), nil), 401, "unauthorized", "")
		want(t, e.as("POST", "/api/v1/admin/users/carol/disable", nil), 200, "", "")
		want(t, e.do("GET", "/api/v1/workflows", basic("carol", "carol-password"), nil), 401, "unauthorized", "")
		want(t, e.as("POST", "/api/v1/admin/users/carol/enable", nil), 200, "", "")

		// Rate limit: carol has had 2 failures; 3 more fill the burst of 5,
		// then even the right password waits.
		for range 3 {
			want(t, e.do("GET", "/api/v1/workflows", basic("carol", "nope"), nil), 401, "", "")
		}
		r = e.do("GET", "/api/v1/workflows", basic("carol", "carol-password"), nil)
		want(t, r, 429, "too_many_requests", "")
		if r.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
		// Every refusal is in the audit log with its real reason; the
		// successful Basic calls are not.
		got := strings.Join(e.audit.details(audit.LoginFailure, "carol"), "|")
		wantDetails := "HTTP Basic: wrong password|HTTP Basic: user disabled|HTTP Basic: wrong password|HTTP Basic: wrong password|HTTP Basic: wrong password|HTTP Basic: too many failed sign-ins, rate limited"
		if got != wantDetails {
			t.Errorf("audit of carol's Basic failures:\n got %s\nwant %s", got, wantDetails)
		}
		if d := e.audit.details(audit.LoginFailure, "nobody"); len(d) != 1 || d[0] != "HTTP Basic: unknown user" {
			t.Errorf("audit of an unknown user's Basic failure: %v", d)
		}
		// Another account from the same address still works.
		e.user("dave", "dave-password")
		want(t, e.do("GET", "/api/v1/workflows", basic("dave", "dave-password"), nil), 200, "", "")

		// Switch off again: basic refused with the Bearer challenge.
		want(t, e.as("PUT", sw, map[string]any{"basic_auth": false}), 200, "", "")
		want(t, e.do("GET", "/api/v1/workflows", basic("dave", "dave-password"), nil), 401, "unauthorized", "")
	})
}

func TestAudit(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const base = "/api/v1/admin/audit"
		e.authMatrix("GET", base, nil)
		var evs []store.AuditEvent
		for i := range 5 {
			evs = append(evs, store.AuditEvent{Event: audit.LoginSuccess, User: fmt.Sprintf("u%d", i%2), Outcome: "success"})
		}
		evs = append(evs, store.AuditEvent{Event: "logout", User: "u0", Outcome: "success"},
			store.AuditEvent{Event: audit.ClientAuthFailure, Client: "batch", Outcome: "failure"})
		if err := e.st.AppendAudit(t.Context(), evs...); err != nil {
			t.Fatal(err)
		}
		// By client and outcome, as the management site's audit page.
		if items, _ := e.pageAll(base+"?client=batch&outcome=failure", 10); len(items) != 1 {
			t.Errorf("client=batch&outcome=failure: %d events, want 1", len(items))
		}
		if items, _ := e.pageAll(base+"?outcome=success", 10); len(items) != 6 {
			t.Errorf("outcome=success: %d events, want 6", len(items))
		}
		want(t, e.as("GET", base+"?outcome=maybe", nil), 400, "invalid_request", "outcome")
		if items, pages := e.pageAll(base, 2); len(items) != 7 || pages != 4 {
			t.Errorf("paged %d pages of %d events", pages, len(items))
		}
		if items, _ := e.pageAll(base+"?user=u0&event=login.success", 10); len(items) != 3 {
			t.Errorf("user=u0&event=login.success: %d events, want 3", len(items))
		}
		// An unknown event is refused with the valid names, not answered
		// with an empty list that reads as "it never happened".
		m := want(t, e.as("GET", base+"?event=flow.x", nil), 400, "invalid_request", "event")
		if d := m["error_description"]; !strings.Contains(fmt.Sprint(d), `event "flow.x" is not an audit event; the events are: login.success, login.failure,`) ||
			!strings.Contains(fmt.Sprint(d), "flow.deployed") {
			t.Errorf("error_description = %v", d)
		}
		if items, _ := e.pageAll(base+"?since=1h", 10); len(items) != 7 {
			t.Errorf("since=1h: %d events, want 7", len(items))
		}
		// Days, as the CLI's --since and the configuration take them.
		if items, _ := e.pageAll(base+"?since=7d", 10); len(items) != 7 {
			t.Errorf("since=7d: %d events, want 7", len(items))
		}
		if items, _ := e.pageAll(base+"?until=2000-01-01T00:00:00Z", 10); len(items) != 0 {
			t.Errorf("until 2000: %d events, want 0", len(items))
		}
		want(t, e.as("GET", base+"?since=yesterday", nil), 400, "invalid_request", "since")
		want(t, e.as("GET", base+"?cursor=%25%25", nil), 400, "invalid_request", "cursor")
	})
}

func TestApplyDeclared(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		cfg, err := config.Parse([]byte(`
trusted_issuers:
  - name: entra
    issuer: https://login.example.com/t/v2.0
    audience: api://flowgate
oauth_servers:
  - name: graph
    token_endpoint: https://login.example.com/token
    client_id: fg
    client_secret: declared-secret
`), "test.yaml")
		if err != nil {
			t.Fatal(err)
		}
		// An API entry the file does not name survives.
		want(t, e.as("POST", "/api/v1/admin/trusted-issuers", map[string]any{"name": "mine", "issuer": "https://mine.example", "audience": "a"}), 201, "", "")
		for range 2 { // twice: the second run updates
			if err := e.api.ApplyDeclared(t.Context(), cfg); err != nil {
				t.Fatal(err)
			}
		}
		ti, err := e.st.GetTrustedIssuer(t.Context(), "entra")
		if err != nil || ti.Source != store.SourceConfig || ti.MetadataURL != "https://login.example.com/t/v2.0/.well-known/openid-configuration" {
			t.Errorf("declared issuer = %+v, %v", ti, err)
		}
		o, err := e.st.GetOAuthServer(t.Context(), "graph")
		if err != nil || o.Source != store.SourceConfig || o.ClientSecret != "declared-secret" {
			t.Errorf("declared server = %+v, %v", o.Name, err)
		}
		if _, err := e.st.GetTrustedIssuer(t.Context(), "mine"); err != nil {
			t.Errorf("API entry was touched: %v", err)
		}
	})
}

func TestMe(t *testing.T) {
	e := newEnv(t, "sqlite")
	m := want(t, e.do("GET", "/api/v1/me", "Bearer "+e.token("admin", "tasks"), nil), 200, "", "")
	if m["principal"] != "user:admin" || fmt.Sprint(m["roles"]) != "[admin]" {
		t.Errorf("/api/v1/me = %v", m)
	}
	want(t, e.do("GET", "/api/v1/me", "", nil), 401, "unauthorized", "")
}
