package api_test

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/audit"
)

// TestOpenAPI checks the document against what Register mounts: every
// route documented, nothing documented that is not a route, and each
// operation's security (scope), switch and role as the route has them.
func TestOpenAPI(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	d := openAPI(t)

	// Served without credentials, as embedded.
	r := e.do("GET", "/api/v1/openapi.json", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, api.OpenAPIDocument) || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /api/v1/openapi.json: %d %v", r.status, r.header)
	}
	if d.root["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", d.root["openapi"])
	}

	routes := e.api.Routes()
	registered := map[string]api.Route{}
	for _, rt := range routes {
		registered[strings.ToLower(rt.Method)+" "+rt.Path] = rt
	}
	documented := map[string]map[string]any{}
	paths, _ := d.root["paths"].(map[string]any)
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			if m != "parameters" {
				documented[m+" "+p] = op.(map[string]any)
			}
		}
	}
	var missing, extra []string
	for k := range registered {
		if documented[k] == nil {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if _, ok := registered[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("registered routes missing from openapi.json: %v", missing)
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json documents routes that are not registered: %v", extra)
	}
	for _, k := range []string{"post /api/v1/flows/{name}/invoke", "get /api/v1/tasks", "post /api/v1/admin/flows", "get /api/v1/me", "get /api/v1/openapi.json"} {
		if _, ok := registered[k]; !ok {
			t.Errorf("%s is not registered", k)
		}
	}

	for k, rt := range registered {
		op := documented[k]
		if op == nil {
			continue
		}
		for _, p := range checkOperation(d, rt, op) {
			t.Errorf("%s: %s", k, p)
		}
	}

	// Every $ref points somewhere; every path parameter is declared.
	for _, ref := range refs(d.root) {
		if d.deref(map[string]any{"$ref": ref}) == nil {
			t.Errorf("$ref %s leads nowhere", ref)
		}
	}
	pathParams := func(list any) []string {
		var out []string
		ps, _ := list.([]any)
		for _, x := range ps {
			if pm := d.deref(x.(map[string]any)); pm != nil && pm["in"] == "path" {
				out = append(out, pm["name"].(string))
			}
		}
		return out
	}
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			if m == "parameters" {
				continue
			}
			declared := append(pathParams(item.(map[string]any)["parameters"]), pathParams(op.(map[string]any)["parameters"])...)
			for _, v := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(p, -1) {
				if !slices.Contains(declared, v[1]) {
					t.Errorf("%s %s: path parameter %s is not declared", m, p, v[1])
				}
			}
		}
	}
}

// checkOperation compares one documented operation with its route.
func checkOperation(d *apiDoc, rt api.Route, op map[string]any) []string {
	var problems []string
	sec, ok := op["security"].([]any)
	if !ok {
		return []string{"no security"}
	}
	var schemes, scopes []string
	for _, req := range sec {
		for scheme, sc := range req.(map[string]any) {
			schemes = append(schemes, scheme)
			for _, s := range sc.([]any) {
				scopes = append(scopes, s.(string))
			}
		}
	}
	sort.Strings(schemes)
	switch rt.Access {
	case "public":
		if len(sec) != 0 {
			problems = append(problems, "a public route lists security")
		}
	case "signedIn":
		if !slices.Equal(schemes, []string{"basic", "bearer"}) || len(scopes) != 0 {
			problems = append(problems, fmt.Sprintf("security %v, want bearer or basic without scopes", sec))
		}
	case "scoped":
		if !slices.Equal(schemes, []string{"basic", "bearer"}) || !slices.Equal(scopes, []string{rt.Scope, rt.Scope}) {
			problems = append(problems, fmt.Sprintf("security %v, want bearer or basic with scope %s", sec, rt.Scope))
		}
	case "admin":
		if !slices.Equal(schemes, []string{"bearer"}) || !slices.Equal(scopes, []string{"admin"}) || op["x-flowgate-role"] != "admin" {
			problems = append(problems, fmt.Sprintf("security %v (role %v), want bearer with scope admin and x-flowgate-role admin", sec, op["x-flowgate-role"]))
		}
	default:
		problems = append(problems, "unknown access "+rt.Access)
	}
	if sw, _ := op["x-flowgate-switch"].(string); sw != rt.Switch {
		problems = append(problems, fmt.Sprintf("x-flowgate-switch %q, want %q", sw, rt.Switch))
	}
	responses, _ := op["responses"].(map[string]any)
	success := false
	for code, res := range responses {
		if strings.HasPrefix(code, "2") {
			success = true
		}
		if d.deref(res.(map[string]any)) == nil {
			problems = append(problems, "response "+code+" leads nowhere")
		}
	}
	if !success && rt.Path != "/api/v1/flows/{name}/invoke" {
		problems = append(problems, "no 2xx response")
	}
	if rt.Access != "public" && responses["401"] == nil {
		problems = append(problems, "no 401 response")
	}
	if body, ok := op["requestBody"].(map[string]any); ok {
		if _, ok := body["content"].(map[string]any); !ok {
			problems = append(problems, "requestBody without content")
		}
	} else if rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "PATCH" {
		// Actions without a body (disable, test, cancel, rotate) say so
		// by having none; those with a body must document it.
		if withBody[rt.Method+" "+rt.Path] {
			problems = append(problems, "no requestBody")
		}
	}
	return problems
}

// withBody are the routes that read a request body.
var withBody = map[string]bool{
	"POST /api/v1/admin/users": true, "PATCH /api/v1/admin/users/{username}": true,
	"POST /api/v1/admin/clients": true, "PATCH /api/v1/admin/clients/{id}": true,
	"POST /api/v1/admin/trusted-issuers": true, "PUT /api/v1/admin/trusted-issuers/{name}": true,
	"POST /api/v1/admin/oauth-servers": true, "PUT /api/v1/admin/oauth-servers/{name}": true,
	"PUT /api/v1/admin/api-switches": true, "POST /api/v1/admin/flows": true,
	"POST /api/v1/workflows/{name}/instances": true, "POST /api/v1/tasks/{serial}/actions/{action}": true,
	"POST /api/v1/flows/{name}/invoke": true,
}

// refs lists every $ref in the document.
func refs(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "$ref" {
				out = append(out, s)
				continue
			}
			out = append(out, refs(e)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, refs(e)...)
		}
	}
	return out
}

// TestOpenAPIWithoutEngine: without an engine the engine's routes are not
// registered, and what is registered is still all documented.
func TestOpenAPIWithoutEngine(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "sqlite")
	d := openAPI(t)
	for _, rt := range e.api.Routes() {
		if rt.Switch != "" || strings.Contains(rt.Path, "/admin/flows") {
			t.Errorf("%s %s registered without an engine", rt.Method, rt.Path)
		}
		if d.get("paths", rt.Path, strings.ToLower(rt.Method)) == nil {
			t.Errorf("%s %s is not documented", rt.Method, rt.Path)
		}
	}
}

// The audit log's event filter documents exactly the events there are, so
// a client can offer them and the 400 for any other name is no surprise.
func TestOpenAPIListsTheAuditEvents(t *testing.T) {
	d := openAPI(t)
	params, _ := d.get("paths", "/api/v1/admin/audit", "get", "parameters").([]any)
	var enum []string
	for _, p := range params {
		if m, _ := p.(map[string]any); m["name"] == "event" {
			schema, _ := m["schema"].(map[string]any)
			list, _ := schema["enum"].([]any)
			for _, e := range list {
				enum = append(enum, fmt.Sprint(e))
			}
		}
	}
	if !slices.Equal(enum, audit.Events()) {
		t.Errorf("openapi.json event enum\n %v\nwant audit.Events()\n %v", enum, audit.Events())
	}
}
