package api_test

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
)

// TestBadInput covers what every body-taking workflow route refuses, and
// the 404s that name what was not found.
func TestBadInput(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(pureFlow)
	e.deploy(approvalFlow)
	alice := e.bearer("alice")
	ap := want(t, e.do("POST", "/api/v1/workflows/approval/instances", alice, map[string]any{"amount": 1}), 201, "", "")
	tasks := e.list("bob", "/api/v1/tasks")
	if len(tasks) != 1 || tasks[0]["instance"] != ap["id"] {
		t.Fatalf("bob's tasks = %v", tasks)
	}
	act := fmt.Sprintf("/api/v1/tasks/%v/actions/Approve", tasks[0]["serial"])

	for _, rt := range []struct{ path, auth string }{
		{"/api/v1/workflows/pure/instances", alice},
		{"/api/v1/flows/pure/invoke", alice},
		{act, e.bearer("bob")},
	} {
		t.Run(rt.path, func(t *testing.T) {
			post := func(body any, headers map[string]string) resp { return e.send("POST", rt.path, rt.auth, body, headers) }
			m := want(t, post(`{"n": 1,`, nil), 400, "invalid_request", "not valid JSON")
			if d := m["error_description"].(string); !strings.Contains(d, "offset 8") {
				t.Errorf("syntax error without its offset: %s", d)
			}
			want(t, post(`{"n": 1} x`, nil), 400, "invalid_request", "offset")
			want(t, post(`{"n": tru}`, nil), 400, "invalid_request", "offset")
			want(t, post(`[1, 2]`, nil), 400, "invalid_request", "not an array")
			want(t, post(`"n"`, nil), 400, "invalid_request", "not a string")
			want(t, post(`null`, nil), 400, "invalid_request", "not null")
			want(t, post(`{"n": 1}`, map[string]string{"Content-Type": "text/plain"}), 415, "unsupported_media_type", "application/json")
			want(t, post(`{"n": 1}`, map[string]string{"Content-Type": ""}), 415, "unsupported_media_type", "")
			want(t, post(`{"n": "`+strings.Repeat("a", 1<<20)+`"}`, nil), 413, "request_too_large", "")
		})
	}
	// A JSON suffix type is JSON too.
	want(t, e.send("POST", "/api/v1/workflows/pure/instances", alice, `{"n": 1}`, map[string]string{"Content-Type": "application/vnd.flow+json"}), 201, "", "")

	// Unknown objects are named.
	want(t, e.do("POST", "/api/v1/workflows/nope/instances", alice, map[string]any{}), 404, "not_found", `workflow "nope"`)
	want(t, e.do("GET", "/api/v1/instances/i-404", alice, nil), 404, "not_found", `instance "i-404"`)
	want(t, e.do("POST", "/api/v1/tasks/0/actions/Approve", e.bearer("bob"), nil), 404, "not_found", `task "0"`)
	want(t, e.do("POST", "/api/v1/tasks/-3/actions/Approve", e.bearer("bob"), nil), 404, "not_found", `task "-3"`)
	// Unknown routes and methods keep the JSON shape.
	want(t, e.do("GET", "/api/v1/nothing-here", alice, nil), 404, "not_found", "/api/v1/nothing-here")
	r := e.do("DELETE", "/api/v1/workflows/pure", alice, nil)
	want(t, r, 405, "method_not_allowed", "GET")
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow = %q", r.header.Get("Allow"))
	}
}

// TestWorkflowSwitches: apis.workflow turns off every workflow, instance
// and task route, apis.invoke the invoke route, each alone.
func TestWorkflowSwitches(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(pureFlow)
	alice := e.bearer("alice")
	inst := want(t, e.do("POST", "/api/v1/workflows/pure/instances", alice, map[string]any{"n": 1}), 201, "", "")
	id := inst["id"].(string)
	workflowRoutes := [][2]string{
		{"GET", "/api/v1/workflows"}, {"GET", "/api/v1/workflows/pure"}, {"POST", "/api/v1/workflows/pure/instances"},
		{"GET", "/api/v1/instances"}, {"GET", "/api/v1/instances/" + id}, {"GET", "/api/v1/instances/" + id + "/history"},
		{"POST", "/api/v1/instances/" + id + "/cancel"}, {"GET", "/api/v1/tasks"}, {"GET", "/api/v1/tasks/1"},
		{"POST", "/api/v1/tasks/1/actions/Approve"},
	}
	const sw = "/api/v1/admin/api-switches"
	want(t, e.as("PUT", sw, map[string]any{"workflow": false}), 200, "", "")
	for _, rt := range workflowRoutes {
		want(t, e.do(rt[0], rt[1], alice, map[string]any{"n": 1}), 403, "api_disabled", "workflow API is disabled")
	}
	if r := e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 1}); r.status != 200 {
		t.Errorf("invoke with the workflow API off: %d %s", r.status, r.body)
	}
	want(t, e.as("PUT", sw, map[string]any{"workflow": true, "invoke": false}), 200, "", "")
	want(t, e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 1}), 403, "api_disabled", "invoke API is disabled")
	want(t, e.do("GET", "/api/v1/workflows/pure", alice, nil), 200, "", "")
	want(t, e.as("PUT", sw, map[string]any{"invoke": true}), 200, "", "")
	want(t, e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 1}), 200, "", "")

	// HTTP Basic, when on, reaches the workflow API as the user.
	want(t, e.as("PUT", sw, map[string]any{"basic_auth": true}), 200, "", "")
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice-password"))
	m := want(t, e.do("POST", "/api/v1/workflows/pure/instances", basic, map[string]any{"n": 1}), 201, "", "")
	if m["started_by"] != "user:alice" {
		t.Errorf("started over Basic by %v", m["started_by"])
	}
}

// TestEngineStopping: while the engine shuts down, starts and invokes are
// refused with 503 and a Retry-After, so that a client tries another
// server or again shortly.
func TestEngineStopping(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(pureFlow)
	if err := e.eng.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/api/v1/workflows/pure/instances", "/api/v1/flows/pure/invoke"} {
		r := e.do("POST", path, e.bearer("alice"), map[string]any{"n": 1})
		want(t, r, 503, "temporarily_unavailable", "shutting down")
		if r.header.Get("Retry-After") != "5" {
			t.Errorf("POST %s: Retry-After %q", path, r.header.Get("Retry-After"))
		}
	}
	// Reading goes on.
	want(t, e.do("GET", "/api/v1/workflows/pure", e.bearer("alice"), nil), 200, "", "")
}
