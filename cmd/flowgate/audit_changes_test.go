package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	opsSecret   = "ops-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	alicePass   = "alice-password-1"
	bobPassword = "bob-password-that-is-secret"
	oauthSecret = "oauth-server-client-secret-xyz"
)

// approvalFlow parks on a task that alice (role employee) and ops may act
// on, so instances can be acted on and cancelled.
const approvalFlow = `name: approval
permissions: {start: ["role:employee", "client:ops"]}
steps:
  - id: approve
    type: task
    title: Approve
    assignees: ["role:employee", "client:ops"]
    actions: [OK]
  - id: done
    type: return
    body: {ok: true}
`

// auditClient talks to a served Flowgate as one caller.
type auditClient struct {
	t      *testing.T
	base   string
	bearer string
	user   string // HTTP Basic user; password alicePass
}

func (c auditClient) do(method, path string, body any, contentType string) (int, map[string]any) {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
		contentType = "application/json"
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("User-Agent", "audit-test/1")
	if c.user != "" {
		req.SetBasicAuth(c.user, alicePass)
	} else {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v
}

func (c auditClient) must(status int, method, path string, body any) map[string]any {
	c.t.Helper()
	code, v := c.do(method, path, body, "")
	if code != status {
		c.t.Fatalf("%s %s: %d %v, want %d", method, path, code, v, status)
	}
	return v
}

// auditRows reads the audit log through the admin API, newest first,
// waiting until the writer has written at least min rows of event.
func (c auditClient) auditRows(event string, min int) []map[string]any {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := c.must(200, "GET", "/api/v1/admin/audit?limit=100&event="+url.QueryEscape(event), nil)
		items, _ := v["items"].([]any)
		if len(items) >= min || time.Now().After(deadline) {
			out := make([]map[string]any, len(items))
			for i, it := range items {
				out[i], _ = it.(map[string]any)
			}
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Every change made through the admin API and the workflow API is in the
// audit log, with its literal event name, who made it (the principal in
// user, their token's client in client), the outcome and the object; a
// secret never is.
func TestAdminChangesAreAudited(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
users:
  - username: alice
    password: %q
    roles: [employee]
clients:
  - id: ops
    secret: %q
    grant_types: [client_credentials]
    scopes: [admin, workflows.read, workflows.start, tasks]
    roles: [admin]
apis:
  basic_auth: true
`, alicePass, opsSecret)), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, nil, "--config", cfg)

	ops := auditClient{t: t, base: s.base, bearer: clientToken(t, s.base, "ops", opsSecret, "admin workflows.read workflows.start tasks")}
	alice := auditClient{t: t, base: s.base, user: "alice"}
	const admin = "/api/v1/admin"

	// Users.
	ops.must(201, "POST", admin+"/users", map[string]any{"username": "bob", "password": bobPassword, "roles": []string{"employee"}})
	ops.must(200, "PATCH", admin+"/users/bob", map[string]any{"roles": []string{"employee", "approver"}, "password": bobPassword + "2"})
	ops.must(200, "POST", admin+"/users/bob/disable", nil)
	ops.must(200, "POST", admin+"/users/bob/enable", nil)
	ops.must(200, "PATCH", admin+"/users/bob", map[string]any{"disabled": true})

	// Clients: the secrets shown once must appear nowhere in the log.
	var secrets []string
	v := ops.must(201, "POST", admin+"/clients", map[string]any{"id": "portal", "redirect_uris": []string{"http://127.0.0.1:9000/cb"}})
	secrets = append(secrets, fmt.Sprint(v["client_secret"]))
	ops.must(200, "PATCH", admin+"/clients/portal", map[string]any{"name": "Portal"})
	v = ops.must(200, "POST", admin+"/clients/portal/secret", nil)
	secrets = append(secrets, fmt.Sprint(v["client_secret"]))
	ops.must(204, "DELETE", admin+"/clients/portal", nil)

	// Trusted issuers and OAuth servers.
	iss := map[string]any{"name": "corp", "issuer": "https://idp.example.com", "audience": "api://flowgate"}
	ops.must(201, "POST", admin+"/trusted-issuers", iss)
	iss["audience"] = "api://flowgate2"
	ops.must(200, "PUT", admin+"/trusted-issuers/corp", iss)
	ops.must(204, "DELETE", admin+"/trusted-issuers/corp", nil)
	srv := map[string]any{"name": "graph", "token_endpoint": "https://as.example.com/token", "client_id": "fg", "client_secret": oauthSecret}
	ops.must(201, "POST", admin+"/oauth-servers", srv)
	srv["scopes"] = []string{"read"}
	ops.must(200, "PUT", admin+"/oauth-servers/graph", srv)
	ops.must(204, "DELETE", admin+"/oauth-servers/graph", nil)

	// Named secrets: set twice (created, then replaced) and removed.
	const flowSecret = "carrier-api-key-5f1e2d"
	ops.must(201, "PUT", admin+"/secrets/CARRIER_KEY", map[string]any{"value": flowSecret})
	ops.must(200, "PUT", admin+"/secrets/CARRIER_KEY", map[string]any{"value": flowSecret + "-2"})
	ops.must(204, "DELETE", admin+"/secrets/CARRIER_KEY", nil)
	secrets = append(secrets, flowSecret)

	// Switches: only the one that changed is recorded.
	ops.must(200, "PUT", admin+"/api-switches", map[string]any{"invoke": false, "workflow": true})

	// A deploy, a task action by a user, cancels refused and done.
	if code, v := ops.do("POST", admin+"/flows", approvalFlow, "application/yaml"); code != 201 {
		t.Fatalf("deploy: %d %v", code, v)
	}
	first := alice.must(201, "POST", "/api/v1/workflows/approval/instances", map[string]any{})
	var serial any
	deadline := time.Now().Add(10 * time.Second)
	for serial == nil && time.Now().Before(deadline) {
		items, _ := alice.must(200, "GET", "/api/v1/tasks", nil)["items"].([]any)
		for _, it := range items {
			if m, _ := it.(map[string]any); m["instance"] == first["id"] {
				serial = m["serial"]
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if serial == nil {
		t.Fatal("no task for alice's instance")
	}
	alice.must(200, "POST", fmt.Sprintf("/api/v1/tasks/%v/actions/OK", serial), map[string]any{})
	second := ops.must(201, "POST", "/api/v1/workflows/approval/instances", map[string]any{})
	alice.must(403, "POST", fmt.Sprintf("/api/v1/instances/%v/cancel", second["id"]), nil)
	ops.must(200, "POST", fmt.Sprintf("/api/v1/instances/%v/cancel", second["id"]), nil)

	type row struct{ event, user, client, outcome, detail string }
	for _, want := range []struct {
		row
		n int // rows of the event, newest first; want is the newest
	}{
		{row{"user.created", "client:ops", "ops", "success", "user bob"}, 1},
		{row{"user.updated", "client:ops", "ops", "success", "user bob: roles, password"}, 1},
		{row{"user.disabled", "client:ops", "ops", "success", "user bob"}, 2},
		{row{"user.enabled", "client:ops", "ops", "success", "user bob"}, 1},
		{row{"client.created", "client:ops", "ops", "success", "client portal"}, 1},
		{row{"client.updated", "client:ops", "ops", "success", "client portal"}, 1},
		{row{"client.secret_rotated", "client:ops", "ops", "success", "client portal"}, 1},
		{row{"client.removed", "client:ops", "ops", "success", "client portal"}, 1},
		{row{"issuer.created", "client:ops", "ops", "success", "issuer corp (https://idp.example.com)"}, 1},
		{row{"issuer.updated", "client:ops", "ops", "success", "issuer corp (https://idp.example.com)"}, 1},
		{row{"issuer.removed", "client:ops", "ops", "success", "issuer corp"}, 1},
		{row{"oauth_server.created", "client:ops", "ops", "success", "oauth server graph"}, 1},
		{row{"oauth_server.updated", "client:ops", "ops", "success", "oauth server graph"}, 1},
		{row{"oauth_server.removed", "client:ops", "ops", "success", "oauth server graph"}, 1},
		{row{"secret.set", "client:ops", "ops", "success", "secret CARRIER_KEY replaced"}, 2},
		{row{"secret.removed", "client:ops", "ops", "success", "secret CARRIER_KEY"}, 1},
		{row{"api_switch.changed", "client:ops", "ops", "success", "invoke=off"}, 1},
		{row{"flow.deployed", "client:ops", "ops", "success", "flow approval version 1"}, 1},
		{row{"task.action", "user:alice", "", "success", fmt.Sprintf("task %v OK: instance %v step approve", serial, first["id"])}, 1},
		{row{"instance.cancelled", "client:ops", "ops", "success", fmt.Sprintf("instance %v (approval)", second["id"])}, 2},
	} {
		rows := ops.auditRows(want.event, want.n)
		if len(rows) != want.n {
			t.Errorf("%s: %d rows, want %d: %v", want.event, len(rows), want.n, rows)
			continue
		}
		r := rows[0]
		got := row{fmt.Sprint(r["event"]), fmt.Sprint(r["user"]), fmt.Sprint(r["client"]), fmt.Sprint(r["outcome"]), fmt.Sprint(r["detail"])}
		if got != want.row {
			t.Errorf("audit row\n got %+v\nwant %+v", got, want.row)
		}
		if r["remote_addr"] != "127.0.0.1" || r["user_agent"] != "audit-test/1" {
			t.Errorf("%s: remote %v, user agent %v", want.event, r["remote_addr"], r["user_agent"])
		}
	}
	// The refused cancel is recorded as a failure, by who tried.
	rows := ops.auditRows("instance.cancelled", 2)
	if r := rows[len(rows)-1]; r["user"] != "user:alice" || r["outcome"] != "failure" {
		t.Errorf("refused cancel: %v", r)
	}

	all, err := json.Marshal(ops.auditRows("", 40))
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range append(secrets, bobPassword, bobPassword+"2", oauthSecret, opsSecret, alicePass) {
		if len(secret) < 8 || bytes.Contains(all, []byte(secret)) {
			t.Errorf("a secret (%d chars) is in the audit log", len(secret))
		}
	}
}

// The commands record their changes the same way, as "cli:<OS user>".
func TestCommandChangesAreAudited(t *testing.T) {
	dir := t.TempDir()
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	by := "cli:" + u.Username
	if err := os.WriteFile(filepath.Join(dir, "approval.yaml"), []byte(approvalFlow), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		stdin string
		args  []string
	}{
		{"", []string{"migrate"}},
		{"carol-password-1\n", []string{"user", "add", "carol", "--password-stdin"}},
		{"carol-password-2\n", []string{"user", "passwd", "carol", "--password-stdin"}},
		{"", []string{"user", "disable", "carol"}},
		{"", []string{"client", "add", "tool", "--redirect-uri", "http://127.0.0.1:9000/cb"}},
		{"", []string{"client", "remove", "tool"}},
		{"", []string{"flow", "deploy", "approval.yaml"}},
		{"", []string{"keys", "rotate"}},
		{"carrier-api-key-5f1e2d\n", []string{"secret", "set", "CARRIER_KEY", "--value-stdin"}},
		{"", []string{"secret", "remove", "CARRIER_KEY"}},
	}
	var secret string
	for _, s := range steps {
		r := run(t, dir, s.stdin, nil, s.args...)
		if r.code != 0 {
			t.Fatalf("%v: %+v", s.args, r)
		}
		if _, after, ok := strings.Cut(r.stdout, "client_secret: "); ok {
			secret, _, _ = strings.Cut(after, "\n")
		}
	}
	r := run(t, dir, "", nil, "audit", "--json")
	if r.code != 0 {
		t.Fatalf("audit: %+v", r)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		detail := fmt.Sprint(e["detail"])
		if e["event"] == "keys.rotated" {
			// The key id is random: keep what the test can know.
			detail = strings.Join(strings.Fields(detail)[:2], " ")
		}
		got = append(got, fmt.Sprintf("%v %v %v %s", e["event"], e["user"], e["outcome"], detail))
	}
	want := []string{ // newest first
		"secret.removed " + by + " success secret CARRIER_KEY",
		"secret.set " + by + " success secret CARRIER_KEY created",
		"keys.rotated " + by + " success access key",
		"flow.deployed " + by + " success flow approval version 1",
		"client.removed " + by + " success client tool",
		"client.created " + by + " success client tool",
		"user.disabled " + by + " success user carol",
		"user.updated " + by + " success user carol: password",
		"user.created " + by + " success user carol",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log\n got %q\nwant %q", got, want)
	}
	for _, s := range []string{secret, "carol-password-1", "carol-password-2", "carrier-api-key-5f1e2d"} {
		if s == "" || strings.Contains(r.stdout, s) {
			t.Errorf("a secret (%d chars) is in the audit log", len(s))
		}
	}
}

// Filtering on a name that is no event is an error that lists the events,
// not an empty answer.
func TestAuditUnknownEventIsAnError(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	r := run(t, dir, "", nil, "audit", "--event", "flow.x")
	want := `flowgate: --event: "flow.x" is not an audit event; the events are: login.success, login.failure,`
	if r.code != 1 || !strings.HasPrefix(lastLine(r.stderr), want) || !strings.Contains(r.stderr, "flow.deployed") {
		t.Fatalf("audit --event flow.x: %+v", r)
	}
}
