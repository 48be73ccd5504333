package scim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const secret = "s3cret-s3cret-s3cret-s3cret"

type env struct {
	base string
	srv  *app.Server
}

func start(t *testing.T, database string) *env {
	t.Helper()
	key, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Default()
	cfg.Database = database
	cfg.Secrets.Key = key
	cfg.Flows = t.TempDir()
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.APIs.SCIM = true
	cfg.APIs.BasicAuth = true // to check that a deactivated user can no longer sign in
	client := func(id string, roles, scopes []string) config.Client {
		return config.Client{ID: id, Secret: secret, GrantTypes: []string{"client_credentials"}, Scopes: scopes, Roles: roles,
			TokenEndpointAuthMethod: "client_secret_basic", Consent: "user"}
	}
	cfg.Clients = []config.Client{
		client("entra", []string{"admin"}, []string{"scim", "admin"}),
		client("norole", nil, []string{"scim"}),
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.NewServer(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), ln.Addr())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		c, cc := context.WithTimeout(context.Background(), 10*time.Second)
		defer cc()
		_ = srv.Close(c)
	})
	return &env{base: cfg.Server.PublicURL, srv: srv}
}

func (e *env) token(t *testing.T, id, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

// do sends a request shaped as an identity provider sends it: a SCIM
// JSON body (given as text, exactly as the providers' documentation shows
// it) and a bearer token.
func (e *env) do(t *testing.T, token, method, path, body string) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.base+"/scim/v2"+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/scim+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(bytes.TrimSpace(raw)) > 0 {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d, body not JSON: %.200s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, m
}

func backends(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite": func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "f.db") },
		"postgres": func(t *testing.T) string {
			if os.Getenv(pgtest.EnvDSN) == "" && !prereq.Strict() {
				t.Skip("PostgreSQL: set " + pgtest.EnvDSN)
			}
			return pgtest.DSN(t)
		},
	}
}

// TestProvisioning drives /scim/v2/ with requests shaped as Entra ID and
// Okta send them (their provisioning documentation's examples): discovery,
// create, find by filter, Entra's PATCH ("Replace", "False" as a string),
// deactivation (the user can no longer sign in, sessions and refresh
// tokens are gone), groups as roles with Entra's and Okta's member
// changes, delete, and the SCIM errors of bad requests.
func TestProvisioning(t *testing.T) {
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) { testProvisioning(t, start(t, db(t))) })
	}
}

func testProvisioning(t *testing.T, e *env) {
	tok := e.token(t, "entra", "scim")
	ctx := context.Background()

	// Discovery.
	if st, m := e.do(t, tok, "GET", "/ServiceProviderConfig", ""); st != 200 || m["patch"].(map[string]any)["supported"] != true || m["filter"].(map[string]any)["supported"] != true {
		t.Errorf("ServiceProviderConfig: %d %v", st, m)
	}
	if st, m := e.do(t, tok, "GET", "/ResourceTypes", ""); st != 200 || m["totalResults"] != float64(2) {
		t.Errorf("ResourceTypes: %d %v", st, m)
	}
	st, m := e.do(t, tok, "GET", "/Schemas", "")
	if st != 200 {
		t.Fatalf("Schemas: %d %v", st, m)
	}
	var userAttrs []string
	for _, s := range m["Resources"].([]any) {
		sm := s.(map[string]any)
		if sm["id"] == "urn:ietf:params:scim:schemas:core:2.0:User" {
			for _, a := range sm["attributes"].([]any) {
				userAttrs = append(userAttrs, a.(map[string]any)["name"].(string))
			}
		}
	}
	slices.Sort(userAttrs)
	if !slices.Equal(userAttrs, []string{"active", "displayName", "emails", "name", "userName"}) {
		t.Errorf("User schema attributes: %v", userAttrs)
	}

	// Entra ID: is the user there? (GET /Users?filter=userName eq "…"), then create.
	st, m = e.do(t, tok, "GET", `/Users?filter=`+url.QueryEscape(`userName eq "jdoe@contoso.com"`)+`&startIndex=1&count=100`, "")
	if st != 200 || m["totalResults"] != float64(0) {
		t.Fatalf("lookup before create: %d %v", st, m)
	}
	createUser := `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
	  "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
	  "userName": "jdoe@contoso.com",
	  "active": true,
	  "emails": [{"primary": true, "type": "work", "value": "jdoe@contoso.com"}],
	  "meta": {"resourceType": "User"},
	  "name": {"formatted": "Jane Doe", "familyName": "Doe", "givenName": "Jane"},
	  "roles": []
	}`
	st, m = e.do(t, tok, "POST", "/Users", createUser)
	if st != 201 || m["id"] != "jdoe@contoso.com" || m["externalId"] != "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef" || m["active"] != true {
		t.Fatalf("create: %d %v", st, m)
	}
	if st, m := e.do(t, tok, "POST", "/Users", createUser); st != 409 || m["scimType"] != "uniqueness" {
		t.Errorf("create twice: %d %v", st, m)
	}
	u, err := e.srv.Store.GetUser(ctx, "jdoe@contoso.com")
	if err != nil || u.Name != "Jane Doe" || u.Email != "jdoe@contoso.com" || u.Disabled {
		t.Fatalf("the Flowgate user: %+v %v", u, err)
	}
	for _, f := range []string{`userName eq "jdoe@contoso.com"`, `externalId eq "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef"`, `userName sw "jdoe"`, `emails[value co "contoso"]`, `userName pr and active eq true`} {
		if st, m := e.do(t, tok, "GET", "/Users?filter="+url.QueryEscape(f), ""); st != 200 || m["totalResults"] != float64(1) {
			t.Errorf("filter %s: %d %v", f, st, m)
		}
	}
	if st, m := e.do(t, tok, "POST", "/Users/.search", `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
	  "filter": "userName sw \"jdoe\"", "startIndex": 1, "count": 10}`); st != 200 || m["totalResults"] != float64(1) {
		t.Errorf("POST /Users/.search: %d %v", st, m)
	}
	if st, m := e.do(t, tok, "GET", "/Users?filter="+url.QueryEscape(`userName eq "nobody"`), ""); st != 200 || m["totalResults"] != float64(0) {
		t.Errorf("filter on someone else: %d %v", st, m)
	}

	// Give the user a password, a session and a refresh token, so that
	// deactivation has something to end.
	hash, err := e.srv.Hasher.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	u.PasswordHash = hash
	if err := e.srv.Store.UpdateUser(ctx, u); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := e.srv.Store.CreateSession(ctx, store.Session{IDHash: "sess-hash", User: u.Username, AuthTime: now, LastSeen: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Store.CreateRefreshToken(ctx, store.RefreshToken{Hash: "rt-hash", FamilyID: "fam", ClientID: "entra", User: u.Username,
		Scopes: []string{"openid"}, AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	signIn := func() int {
		req, _ := http.NewRequest("GET", e.base+"/api/v1/me", nil)
		req.SetBasicAuth("jdoe@contoso.com", "correct horse battery staple")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := signIn(); st != 200 {
		t.Fatalf("sign-in before deactivation: %d", st)
	}

	// Entra ID's update: capitalised ops, emails[type eq "work"].value, and
	// active as the string "False".
	st, m = e.do(t, tok, "PATCH", "/Users/jdoe@contoso.com", `{
	  "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [
	    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "jane.doe@contoso.com"},
	    {"op": "Replace", "path": "name.familyName", "value": "Smith"},
	    {"op": "Replace", "path": "userName", "value": "jdoe@contoso.com"},
	    {"op": "Replace", "path": "active", "value": "False"}
	  ]
	}`)
	if st != 200 || m["active"] != false || m["emails"].([]any)[0].(map[string]any)["value"] != "jane.doe@contoso.com" {
		t.Fatalf("Entra PATCH: %d %v", st, m)
	}
	u, _ = e.srv.Store.GetUser(ctx, "jdoe@contoso.com")
	if !u.Disabled || u.Name != "Jane Smith" || u.Email != "jane.doe@contoso.com" {
		t.Errorf("after the PATCH: %+v", u)
	}
	if st := signIn(); st != 401 {
		t.Errorf("a deactivated user signs in: %d", st)
	}
	if _, err := e.srv.Store.GetSession(ctx, "sess-hash", time.Now()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the session survived deactivation: %v", err)
	}
	if rt, err := e.srv.Store.GetRefreshToken(ctx, "rt-hash"); err == nil && !rt.Revoked {
		t.Errorf("the refresh token survived deactivation: %+v", rt)
	}
	// Okta's form: no path, an object; re-activates.
	if st, m := e.do(t, tok, "PATCH", "/Users/jdoe@contoso.com", `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "replace", "value": {"active": true}}]}`); st != 200 || m["active"] != true {
		t.Errorf("Okta PATCH: %d %v", st, m)
	}
	// Okta's PUT: the whole user.
	if st, m := e.do(t, tok, "PUT", "/Users/jdoe@contoso.com", `{
	  "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
	  "id": "jdoe@contoso.com", "userName": "jdoe@contoso.com",
	  "name": {"givenName": "Jane", "familyName": "Roe"},
	  "emails": [{"primary": true, "value": "jane.roe@contoso.com", "type": "work"}],
	  "displayName": "Jane Roe", "active": true
	}`); st != 200 || m["displayName"] != "Jane Roe" {
		t.Errorf("PUT: %d %v", st, m)
	}

	// Groups are roles: Entra creates an empty group, then adds and removes members.
	e.do(t, tok, "POST", "/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "bob", "active": true}`)
	st, m = e.do(t, tok, "POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
	  "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159", "displayName": "approver", "meta": {"resourceType": "Group"}}`)
	if st != 201 || m["displayName"] != "approver" {
		t.Fatalf("create group: %d %v", st, m)
	}
	gid := m["id"].(string)
	if st, m := e.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "jdoe@contoso.com"}, {"$ref": null, "value": "bob"}]}]}`); st != 200 || len(m["members"].([]any)) != 2 {
		t.Fatalf("Entra add members: %d %v", st, m)
	}
	if u, _ := e.srv.Store.GetUser(ctx, "bob"); !slices.Contains(u.Roles, "approver") {
		t.Errorf("bob lacks the role: %v", u.Roles)
	}
	// Okta removes one member by a value filter.
	if st, m := e.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "remove", "path": "members[value eq \"bob\"]"}]}`); st != 200 || len(m["members"].([]any)) != 1 {
		t.Errorf("Okta remove member: %d %v", st, m)
	}
	if u, _ := e.srv.Store.GetUser(ctx, "bob"); slices.Contains(u.Roles, "approver") {
		t.Errorf("bob kept the role: %v", u.Roles)
	}
	// Entra removes with a value list; Okta renames.
	if st, _ := e.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "Remove", "path": "members", "value": [{"value": "jdoe@contoso.com"}]}]}`); st != 200 {
		t.Errorf("Entra remove member: %d", st)
	}
	e.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "add", "path": "members", "value": [{"value": "bob"}]}]}`)
	if st, m := e.do(t, tok, "PATCH", "/Groups/"+gid, `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
	  "Operations": [{"op": "replace", "value": {"id": "`+gid+`", "displayName": "approvers"}}]}`); st != 200 || m["displayName"] != "approvers" {
		t.Errorf("Okta rename: %d %v", st, m)
	}
	if u, _ := e.srv.Store.GetUser(ctx, "bob"); !slices.Equal(u.Roles, []string{"approvers"}) {
		t.Errorf("bob's roles after the rename: %v", u.Roles)
	}
	if st, m := e.do(t, tok, "GET", "/Groups?filter="+url.QueryEscape(`displayName eq "approvers"`), ""); st != 200 || m["totalResults"] != float64(1) {
		t.Errorf("group filter: %d %v", st, m)
	}
	if st, _ := e.do(t, tok, "DELETE", "/Groups/"+gid, ""); st != 204 {
		t.Errorf("delete group: %d", st)
	}
	if u, _ := e.srv.Store.GetUser(ctx, "bob"); len(u.Roles) != 0 {
		t.Errorf("bob's roles after the group went: %v", u.Roles)
	}

	// Paging.
	for i := range 4 {
		e.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "p%d"}`, i))
	}
	if st, m := e.do(t, tok, "GET", "/Users?startIndex=2&count=3", ""); st != 200 || m["totalResults"] != float64(6) || len(m["Resources"].([]any)) != 3 || m["startIndex"] != float64(2) {
		t.Errorf("paging: %d %v", st, m)
	}

	// Delete: the account stays, disabled, and is no longer provisioned.
	if st, _ := e.do(t, tok, "DELETE", "/Users/bob", ""); st != 204 {
		t.Errorf("delete user: %d", st)
	}
	if st, m := e.do(t, tok, "GET", "/Users/bob", ""); st != 404 || m["status"] != "404" {
		t.Errorf("a deleted user: %d %v", st, m)
	}
	if u, err := e.srv.Store.GetUser(ctx, "bob"); err != nil || !u.Disabled {
		t.Errorf("bob after delete: %+v %v", u, err)
	}

	// Errors, in the SCIM format.
	for name, c := range map[string]struct {
		method, path, body string
		status             int
		scimType           string
	}{
		"wrong schema":      {"POST", "/Users", `{"schemas": ["urn:example:User"], "userName": "x"}`, 400, "invalidSyntax"},
		"unknown attribute": {"POST", "/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x", "title": "CEO"}`, 400, "invalidValue"},
		"unknown patch path": {"PATCH", "/Users/jdoe@contoso.com", `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		  "Operations": [{"op": "Replace", "path": "title", "value": "CEO"}]}`, 400, ""},
		"rename a user": {"PATCH", "/Users/jdoe@contoso.com", `{"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
		  "Operations": [{"op": "Replace", "path": "userName", "value": "other"}]}`, 400, "mutability"},
		"bad username":                    {"POST", "/Users", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "has space"}`, 400, "invalidValue"},
		"bad filter":                      {"GET", "/Users?filter=" + url.QueryEscape(`userName xx "a"`), "", 400, "invalidFilter"},
		"filter the library cannot apply": {"GET", "/Users?filter=" + url.QueryEscape(`emails co "contoso"`), "", 400, "invalidFilter"},
		"not json":                        {"POST", "/Users", `{"schemas": `, 400, "invalidSyntax"},
		"missing":                         {"GET", "/Users/nobody", "", 404, ""},
		"member unknown": {"POST", "/Groups", `{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "g2",
		  "members": [{"value": "nobody"}]}`, 400, "invalidValue"},
	} {
		st, m := e.do(t, tok, c.method, c.path, c.body)
		if st != c.status || m["status"] != fmt.Sprint(c.status) || (c.scimType != "" && m["scimType"] != c.scimType) {
			t.Errorf("%s: %d %v, want %d %s", name, st, m, c.status, c.scimType)
		}
	}
	if _, err := e.srv.Store.GetUser(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused create wrote a user: %v", err)
	}

	// Access: scope scim and role admin; the switch.
	if st, _ := e.do(t, "", "GET", "/Users", ""); st != 401 {
		t.Errorf("no token: %d", st)
	}
	if st, m := e.do(t, e.token(t, "norole", "scim"), "GET", "/Users", ""); st != 403 || m["status"] != "403" {
		t.Errorf("no admin role: %d %v", st, m)
	}
	if st, _ := e.do(t, e.token(t, "entra", "admin"), "GET", "/Users", ""); st != 403 {
		t.Errorf("no scim scope: %d", st)
	}
	admin := e.token(t, "entra", "admin")
	req, _ := http.NewRequest("PUT", e.base+"/api/v1/admin/api-switches", strings.NewReader(`{"scim": false}`))
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("switch off: %v %v", resp, err)
	}
	if st, m := e.do(t, tok, "GET", "/Users", ""); st != 403 || !strings.Contains(fmt.Sprint(m["detail"]), "disabled") {
		t.Errorf("switched off: %d %v", st, m)
	}

	// Every change was audited (the audit writer commits in batches, so
	// the last ones may take a moment).
	want := []string{"user.created", "user.updated", "user.disabled", "user.enabled", "group.created", "group.updated", "group.removed", "user.released"}
	seen := map[string]bool{}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		events, _, err := e.srv.Store.ListAudit(ctx, store.AuditFilter{User: "client:entra", Page: store.Page{Limit: 1000}})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range events {
			seen[ev.Event] = true
		}
		if !slices.ContainsFunc(want, func(w string) bool { return !seen[w] }) || time.Now().After(deadline) {
			break
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no %s audited as client:entra (saw %v)", w, seen)
		}
	}
}

// TestProvisioningRate creates users one request at a time, as an
// identity provider's first sync does, and logs how many a second.
func TestProvisioningRate(t *testing.T) {
	if testing.Short() {
		t.Skip("a measurement")
	}
	const n = 300
	for name, db := range backends(t) {
		t.Run(name, func(t *testing.T) {
			e := start(t, db(t))
			tok := e.token(t, "entra", "scim")
			began := time.Now()
			for i := range n {
				st, m := e.do(t, tok, "POST", "/Users", fmt.Sprintf(`{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
				  "externalId": "ext-%d", "userName": "user%d@contoso.com", "active": true,
				  "name": {"givenName": "User", "familyName": "%d"}, "emails": [{"primary": true, "type": "work", "value": "user%d@contoso.com"}]}`, i, i, i, i))
				if st != 201 {
					t.Fatalf("create %d: %d %v", i, st, m)
				}
			}
			d := time.Since(began)
			t.Logf("%s: %d users created in %v: %.0f users/s", name, n, d.Round(time.Millisecond), n/d.Seconds())
			if st, m := e.do(t, tok, "GET", "/Users?count=1", ""); st != 200 || m["totalResults"] != float64(n) {
				t.Errorf("after the sync: %d %v", st, m)
			}
		})
	}
}
