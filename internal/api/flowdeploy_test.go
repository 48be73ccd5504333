package api_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestDeployFlows(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	const base = "/api/v1/admin/flows"
	yaml := map[string]string{"Content-Type": "application/yaml"}
	for _, rt := range [][2]string{{"GET", base}, {"POST", base}, {"GET", base + "/pure"}} {
		e.authMatrix(rt[0], rt[1], nil)
	}

	// New: 201 with the workflow and its version; the same again: 200,
	// nothing stored; changed: version 2.
	r := e.send("POST", base, "Bearer "+e.admin, pureFlow, yaml)
	m := want(t, r, 201, "", "")
	if m["name"] != "pure" || m["version"] != 1.0 || m["created"] != true || m["title"] != "Pure sums" || r.header.Get("Location") != base+"/pure?version=1" {
		t.Errorf("deploy: %v %v", r.header, m)
	}
	m = want(t, e.send("POST", base, "Bearer "+e.admin, pureFlow, map[string]string{"Content-Type": "text/yaml; charset=utf-8"}), 200, "", "")
	if m["version"] != 1.0 || m["created"] != false {
		t.Errorf("redeploy: %v", m)
	}
	v2 := strings.Replace(pureFlow, "title: Pure sums", "title: Pure sums, again", 1)
	m = want(t, e.send("POST", base, "Bearer "+e.admin, v2, map[string]string{"Content-Type": "application/x-yaml"}), 201, "", "")
	if m["version"] != 2.0 || m["title"] != "Pure sums, again" {
		t.Errorf("new version: %v", m)
	}
	// JSON definitions too.
	jsonFlow := `{"name": "j", "permissions": {"start": ["role:employee"]}, "steps": [{"id": "r", "type": "return", "body": {"ok": true}}]}`
	want(t, e.do("POST", base, "Bearer "+e.admin, jsonFlow), 201, "", "")
	if r := e.do("POST", "/api/v1/flows/j/invoke", e.bearer("alice"), nil); r.status != 200 || string(r.body) != `{"ok":true}`+"\n" {
		t.Errorf("invoking the JSON flow: %d %s", r.status, r.body)
	}

	// Every problem, with where it is.
	bad := `name: broken
permissions: {start: ["role:employee"]}
steps:
  - id: a
    type: htttp
  - id: b
    type: return
    status: 700
  - id: c
    type: switch
    default: nowhere
`
	m = want(t, e.send("POST", base, "Bearer "+e.admin, bad, yaml), 400, "invalid_flow", "")
	ps, _ := m["problems"].([]any)
	if len(ps) != 4 {
		t.Fatalf("problems = %v", m)
	}
	wantSteps := []string{"a", "b", "c", "c"}
	for i, p := range ps {
		p := p.(map[string]any)
		if p["flow"] != "broken" || p["step"] != wantSteps[i] || p["line"] == nil || p["column"] == nil || p["message"] == "" {
			t.Errorf("problem %d = %v", i, p)
		}
	}
	if p := ps[1].(map[string]any); p["field"] != "status" || p["line"] != 8.0 || p["column"] != 13.0 || p["message"] != "700 is not a final HTTP status (200–599)" {
		t.Errorf("status problem = %v", ps[1])
	}
	if desc := m["error_description"].(string); !strings.Contains(desc, "htttp") || !strings.Contains(desc, "700") || !strings.Contains(desc, "nowhere") {
		t.Errorf("description does not list every problem: %s", desc)
	}
	m = want(t, e.send("POST", base, "Bearer "+e.admin, "name: [unclosed", yaml), 400, "invalid_flow", "")
	if ps, _ := m["problems"].([]any); len(ps) == 0 || ps[0].(map[string]any)["line"] == nil {
		t.Errorf("syntax error problems = %v", m)
	}
	if got := e.list("admin", "/api/v1/workflows"); len(got) != 2 {
		t.Errorf("an invalid deploy stored something: %v", got)
	}

	// Content types and size.
	want(t, e.send("POST", base, "Bearer "+e.admin, pureFlow, map[string]string{"Content-Type": "text/plain"}), 415, "unsupported_media_type", "application/yaml")
	want(t, e.send("POST", base, "Bearer "+e.admin, pureFlow, map[string]string{"Content-Type": ""}), 415, "unsupported_media_type", "")
	want(t, e.send("POST", base, "Bearer "+e.admin, "name: x\n#"+strings.Repeat("a", 1<<20), yaml), 413, "request_too_large", "")

	// The list and one version with its source.
	items, pages := e.pageAll(base, 1)
	if pages != 2 || len(items) != 2 || items[0]["name"] != "j" || items[1]["name"] != "pure" || items[1]["version"] != 2.0 ||
		items[1]["deployed_by"] != "user:admin" || items[1]["deployed_at"] == nil {
		t.Errorf("admin flow list (%d pages) = %v", pages, items)
	}
	m = want(t, e.as("GET", base+"/pure?version=1", nil), 200, "", "")
	if m["version"] != 1.0 || m["latest_version"] != 2.0 || m["source"] != pureFlow || m["title"] != "Pure sums" {
		t.Errorf("version 1 = %v", m)
	}
	m = want(t, e.as("GET", base+"/pure", nil), 200, "", "")
	if m["version"] != 2.0 || m["source"] != v2 {
		t.Errorf("latest = %v", m)
	}
	in, _ := json.Marshal(m["input"])
	if !strings.Contains(string(in), `"n":{"required":true,"type":"number"}`) {
		t.Errorf("input = %s", in)
	}
	want(t, e.as("GET", base+"/pure?version=9", nil), 404, "not_found", "no version 9")
	want(t, e.as("GET", base+"/pure?version=zero", nil), 400, "invalid_request", "version")
	want(t, e.as("GET", base+"/nope", nil), 404, "not_found", `"nope"`)
}

// A flow naming an OAuth server that is not configured is refused with the
// step, the key and the line, and nothing is stored; once the server is
// added through the admin API the same definition deploys.
func TestDeployChecksOAuthServers(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	yaml := map[string]string{"Content-Type": "application/yaml"}
	src := `name: graphy
permissions: {start: ["role:employee"]}
steps:
  - id: tok
    type: oauth_server_login
    server: graph
  - id: me
    type: http
    url: https://graph.example/me
    auth: {server: graph, as: starter}
  - id: back
    type: oauth_refresh
    server: other
    refresh_token: "${{ vars.rt }}"
`
	m := want(t, e.send("POST", "/api/v1/admin/flows", "Bearer "+e.admin, src, yaml), 400, "invalid_flow", `"graph" is not a configured OAuth server`)
	ps, _ := m["problems"].([]any)
	type where struct {
		step, field string
		line        float64
	}
	var got []where
	for _, p := range ps {
		p := p.(map[string]any)
		got = append(got, where{p["step"].(string), p["field"].(string), p["line"].(float64)})
	}
	if w := []where{{"tok", "server", 6}, {"me", "auth.server", 10}, {"back", "server", 13}}; !slices.Equal(got, w) {
		t.Errorf("problems = %v", ps)
	}
	want(t, e.do("GET", "/api/v1/admin/flows/graphy", "Bearer "+e.admin, nil), 404, "not_found", "")

	for _, name := range []string{"graph", "other"} {
		e.oauthServer(map[string]any{"name": name, "token_endpoint": "https://graph.example/token",
			"authorization_endpoint": "https://graph.example/authorize", "client_id": "flowgate", "client_secret": "s3cret"})
	}
	want(t, e.send("POST", "/api/v1/admin/flows", "Bearer "+e.admin, src, yaml), 201, "", "")
}
