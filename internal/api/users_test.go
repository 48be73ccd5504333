package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/credential"
)

func TestUsers(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const base = "/api/v1/admin/users"
		for _, rt := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/admin"},
			{"PATCH", base + "/admin"}, {"POST", base + "/admin/disable"}, {"POST", base + "/admin/enable"}} {
			e.authMatrix(rt[0], rt[1], map[string]any{})
		}

		// Create: 201, never a hash; the password works.
		m := want(t, e.as("POST", base, map[string]any{
			"username": "alice", "password": "correct horse", "email": "alice@example.com",
			"name": "Alice", "roles": []string{"employee", "approver"},
		}), 201, "", "")
		if m["username"] != "alice" || m["email"] != "alice@example.com" || m["password_set"] != true || m["disabled"] != false {
			t.Errorf("created user = %v", m)
		}
		if _, ok := m["created_at"].(string); !ok || !strings.HasSuffix(m["created_at"].(string), "Z") {
			t.Errorf("created_at = %v, want RFC 3339 UTC", m["created_at"])
		}
		u, err := e.st.GetUser(t.Context(), "alice")
		if err != nil || !credential.VerifyPassword("correct horse", u.PasswordHash) {
			t.Fatalf("stored user: %v, password does not verify", err)
		}
		for _, r := range []resp{e.as("GET", base+"/alice", nil), e.as("GET", base, nil)} {
			if bytes.Contains(r.body, []byte("argon2")) || bytes.Contains(r.body, []byte("correct horse")) {
				t.Errorf("an answer shows the password or its hash: %s", r.body)
			}
		}

		// 400s name the field: wrong type, unknown field, invalid values.
		want(t, e.as("POST", base, `{"username": 7}`), 400, "invalid_request", "username")
		want(t, e.as("POST", base, `{"username": "x", "roles": "admin"}`), 400, "invalid_request", "roles")
		want(t, e.as("POST", base, `{"username": "x", "colour": "blue"}`), 400, "invalid_request", "colour")
		want(t, e.as("POST", base, map[string]any{"username": "bad name!"}), 400, "invalid_request", "username")
		want(t, e.as("POST", base, map[string]any{"username": "x", "email": "not-an-email"}), 400, "invalid_request", "email")
		want(t, e.as("POST", base, map[string]any{"username": "x", "password": "short"}), 400, "invalid_request", "password")
		want(t, e.as("POST", base, map[string]any{"email": "a@example.com"}), 400, "invalid_request", "username")
		want(t, e.as("POST", base, `{"username":`), 400, "invalid_request", "JSON")
		want(t, e.as("POST", base, map[string]any{"username": "alice"}), 409, "conflict", "alice")

		// Content type and size.
		r := e.do("POST", base, "Bearer "+e.admin, nil)
		want(t, r, 415, "unsupported_media_type", "")
		big := `{"username": "x", "name": "` + strings.Repeat("a", 2<<20) + `"}`
		want(t, e.as("POST", base, big), 413, "request_too_large", "")

		// 404s name the object.
		want(t, e.as("GET", base+"/nobody", nil), 404, "not_found", `"nobody"`)
		want(t, e.as("PATCH", base+"/nobody", map[string]any{"name": "N"}), 404, "not_found", `"nobody"`)
		want(t, e.as("POST", base+"/nobody/disable", nil), 404, "not_found", `"nobody"`)

		// PATCH changes only what it names; a new password replaces the old.
		m = want(t, e.as("PATCH", base+"/alice", map[string]any{"name": "Alice Example", "password": "battery staple"}), 200, "", "")
		if m["name"] != "Alice Example" || m["email"] != "alice@example.com" {
			t.Errorf("patched user = %v", m)
		}
		u, _ = e.st.GetUser(t.Context(), "alice")
		if !credential.VerifyPassword("battery staple", u.PasswordHash) || !slices.Equal(u.Roles, []string{"employee", "approver"}) {
			t.Errorf("after PATCH: password or roles wrong: %+v", u.Roles)
		}
		want(t, e.as("PATCH", base+"/alice", map[string]any{"username": "eve"}), 400, "invalid_request", "username")
		want(t, e.as("PATCH", base+"/alice", map[string]any{"disabled": "yes"}), 400, "invalid_request", "disabled")

		// Disable and enable.
		if m := want(t, e.as("POST", base+"/alice/disable", nil), 200, "", ""); m["disabled"] != true {
			t.Errorf("disable: %v", m)
		}
		if u, _ := e.st.GetUser(t.Context(), "alice"); !u.Disabled {
			t.Error("user not disabled in the store")
		}
		if m := want(t, e.as("POST", base+"/alice/enable", nil), 200, "", ""); m["disabled"] != false {
			t.Errorf("enable: %v", m)
		}

		// Pagination across pages, in username order.
		for i := range 7 {
			e.user(fmt.Sprintf("u%02d", i), "password-123")
		}
		items, pages := e.pageAll(base, 4)
		var names []string
		for _, it := range items {
			names = append(names, it["username"].(string))
		}
		wantNames := []string{"admin", "alice", "bob", "u00", "u01", "u02", "u03", "u04", "u05", "u06"}
		if !slices.Equal(names, wantNames) || pages != 3 {
			t.Errorf("paged %d pages: %v, want 3 pages of 4 of %v", pages, names, wantNames)
		}
		want(t, e.as("GET", base+"?limit=0", nil), 400, "invalid_request", "limit")
		want(t, e.as("GET", base+"?limit=x", nil), 400, "invalid_request", "limit")
		want(t, e.as("GET", base+"?cursor=***", nil), 400, "invalid_request", "cursor")
	})
}

func TestClients(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const base = "/api/v1/admin/clients"
		for _, rt := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/c"},
			{"PATCH", base + "/c"}, {"DELETE", base + "/c"}, {"POST", base + "/c/secret"}} {
			e.authMatrix(rt[0], rt[1], map[string]any{})
		}

		// A confidential client's secret is shown once, at creation.
		m := want(t, e.as("POST", base, map[string]any{
			"id": "portal", "name": "Portal", "redirect_uris": []string{"http://127.0.0.1:9000/callback"},
			"grant_types": []string{"authorization_code", "refresh_token"}, "scopes": []string{"openid", "tasks"},
			"roles": []string{"robot"},
		}), 201, "", "")
		secret, _ := m["client_secret"].(string)
		if len(secret) < 40 || m["token_endpoint_auth_method"] != "client_secret_basic" || m["consent"] != "user" || m["client_secret_set"] != true {
			t.Fatalf("created client = %v", m)
		}
		c, err := e.st.GetClient(t.Context(), "portal")
		if err != nil || !credential.VerifyClientSecret(e.ring, secret, c.SecretHash) {
			t.Fatalf("stored client secret does not verify: %v", err)
		}
		for _, r := range []resp{e.as("GET", base+"/portal", nil), e.as("GET", base, nil)} {
			if bytes.Contains(r.body, []byte(secret)) || bytes.Contains(r.body, []byte("hmac-sha256")) || bytes.Contains(r.body, []byte(`"client_secret"`)) {
				t.Errorf("a later answer shows the secret or its hash: %s", r.body)
			}
		}

		// A public client has no secret.
		m = want(t, e.as("POST", base, map[string]any{
			"id": "spa", "token_endpoint_auth_method": "none", "redirect_uris": []string{"http://127.0.0.1:9001/cb"},
		}), 201, "", "")
		if _, ok := m["client_secret"]; ok || m["client_secret_set"] != false {
			t.Errorf("public client answer = %v", m)
		}
		want(t, e.as("POST", base+"/spa/secret", nil), 409, "conflict", "none")

		// 400s.
		want(t, e.as("POST", base, map[string]any{"name": "x"}), 400, "invalid_request", "id")
		want(t, e.as("POST", base, map[string]any{"id": "x", "redirect_uris": "http://a"}), 400, "invalid_request", "redirect_uris")
		want(t, e.as("POST", base, map[string]any{"id": "x", "secret": "mine"}), 400, "invalid_request", "secret")
		want(t, e.as("POST", base, map[string]any{"id": "x"}), 400, "invalid_request", "redirect_uris")
		want(t, e.as("POST", base, map[string]any{"id": "x", "redirect_uris": []string{"http://a/cb#frag"}}), 400, "invalid_request", "redirect_uris[0]")
		want(t, e.as("POST", base, map[string]any{"id": "x", "grant_types": []string{"password"}}), 400, "invalid_request", "grant_types[0]")
		want(t, e.as("POST", base, map[string]any{"id": "x", "token_endpoint_auth_method": "private_key_jwt",
			"grant_types": []string{"client_credentials"}, "jwks": 5}), 400, "invalid_request", "jwks")
		want(t, e.as("POST", base, map[string]any{"id": "portal", "redirect_uris": []string{"http://a/cb"}}), 409, "conflict", "portal")

		// 404s.
		want(t, e.as("GET", base+"/ghost", nil), 404, "not_found", `"ghost"`)
		want(t, e.as("PATCH", base+"/ghost", map[string]any{"name": "g"}), 404, "not_found", `"ghost"`)
		want(t, e.as("DELETE", base+"/ghost", nil), 404, "not_found", `"ghost"`)
		want(t, e.as("POST", base+"/ghost/secret", nil), 404, "not_found", `"ghost"`)

		// PATCH keeps the secret; rotation replaces it and shows it once.
		m = want(t, e.as("PATCH", base+"/portal", map[string]any{"name": "Expense portal", "dpop": true}), 200, "", "")
		if m["name"] != "Expense portal" || m["dpop"] != true || m["client_secret"] != nil {
			t.Errorf("patched client = %v", m)
		}
		want(t, e.as("PATCH", base+"/portal", map[string]any{"consent": "everyone"}), 400, "invalid_request", "consent")
		m = want(t, e.as("POST", base+"/portal/secret", nil), 200, "", "")
		rotated, _ := m["client_secret"].(string)
		c, _ = e.st.GetClient(t.Context(), "portal")
		if rotated == "" || rotated == secret || !credential.VerifyClientSecret(e.ring, rotated, c.SecretHash) ||
			credential.VerifyClientSecret(e.ring, secret, c.SecretHash) {
			t.Error("rotation did not replace the secret")
		}
		if r := e.as("GET", base+"/portal", nil); bytes.Contains(r.body, []byte(rotated)) {
			t.Error("GET shows the rotated secret")
		}

		// A public client made confidential gets a secret, once.
		m = want(t, e.as("PATCH", base+"/spa", map[string]any{"token_endpoint_auth_method": "client_secret_post"}), 200, "", "")
		if s, _ := m["client_secret"].(string); len(s) < 40 {
			t.Errorf("client made confidential got no secret: %v", m)
		}

		// Delete, and pagination.
		want(t, e.as("DELETE", base+"/spa", nil), 204, "", "")
		want(t, e.as("GET", base+"/spa", nil), 404, "not_found", "spa")
		for i := range 4 {
			want(t, e.as("POST", base, map[string]any{"id": fmt.Sprintf("c%d", i), "token_endpoint_auth_method": "none",
				"redirect_uris": []string{"http://127.0.0.1/cb"}}), 201, "", "")
		}
		items, pages := e.pageAll(base, 2)
		if len(items) != 5 || pages != 3 || items[0]["id"] != "c0" || items[4]["id"] != "portal" {
			t.Errorf("paged %d pages of %d clients: %v", pages, len(items), items)
		}
	})
}

// Unknown API paths and wrong methods get the API's JSON errors, not the
// router's plain text.
func TestUnknownPathsAndMethodsAreJSON(t *testing.T) {
	e := newEnv(t, "sqlite")
	for _, tc := range []struct {
		method, path string
		status       int
		allow, want  string
	}{
		{"GET", "/api/v1/nothing-here", 404, "", "no API at /api/v1/nothing-here"},
		{"DELETE", "/api/v1/admin/audit", 405, "GET", "DELETE is not allowed on /api/v1/admin/audit"},
		{"PUT", "/api/v1/admin/users/alice", 405, "GET, PATCH", "allowed: GET, PATCH"},
	} {
		req, _ := http.NewRequest(tc.method, e.srv.URL+tc.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]string
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow || !strings.Contains(body["error_description"], tc.want) {
			t.Errorf("%s %s: %d Allow=%q %v (decode err %v)", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, err)
		}
	}
}
