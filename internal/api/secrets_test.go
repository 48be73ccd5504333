package api_test

import (
	"strings"
	"testing"
)

func TestAdminSecrets(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		for _, rt := range []struct{ method, path string }{
			{"GET", "/api/v1/admin/secrets"}, {"POST", "/api/v1/admin/secrets"},
			{"PUT", "/api/v1/admin/secrets/API_KEY"}, {"DELETE", "/api/v1/admin/secrets/API_KEY"},
		} {
			e.authMatrix(rt.method, rt.path, map[string]any{"name": "API_KEY", "value": "v-1234"})
		}
		const value = "first-value-7f3a9c"
		r := e.as("POST", "/api/v1/admin/secrets", map[string]any{"name": "API_KEY", "value": value})
		m := want(t, r, 201, "", "")
		if m["name"] != "API_KEY" || m["created_at"] == nil || r.header.Get("Location") != "/api/v1/admin/secrets/API_KEY" {
			t.Errorf("create = %s, Location %q", r.body, r.header.Get("Location"))
		}
		created := m["created_at"]
		r = e.as("PUT", "/api/v1/admin/secrets/API_KEY", map[string]any{"value": "second-value-7f3a9c"})
		m = want(t, r, 200, "", "")
		if m["created_at"] != created || m["updated_at"].(string) < created.(string) {
			t.Errorf("replace = %s, want created_at %v kept", r.body, created)
		}
		want(t, e.as("PUT", "/api/v1/admin/secrets/OTHER", map[string]any{"name": "OTHER", "value": "other-value"}), 201, "", "")
		lr := e.as("GET", "/api/v1/admin/secrets", nil)
		want(t, lr, 200, "", "")
		items, pages := e.pageAll("/api/v1/admin/secrets", 1)
		if got := field(items, "name"); strings.Join(got, ",") != "API_KEY,OTHER" || pages != 2 {
			t.Errorf("list = %v in %d pages", got, pages)
		}
		// Never readable back: not in any answer, and there is no GET of one.
		for _, b := range []string{string(lr.body), string(r.body)} {
			if strings.Contains(b, "value-7f3a9c") || strings.Contains(b, `"value"`) {
				t.Errorf("an answer shows a value: %s", b)
			}
		}
		want(t, e.as("GET", "/api/v1/admin/secrets/API_KEY", nil), 405, "", "")

		// Bad input names what is wrong, and changes nothing.
		want(t, e.as("POST", "/api/v1/admin/secrets", map[string]any{"name": "1bad-name", "value": "long enough"}), 400, "invalid_request", "name")
		want(t, e.as("POST", "/api/v1/admin/secrets", map[string]any{"name": "API_KEY", "value": "abc"}), 400, "invalid_request", "value")
		want(t, e.as("POST", "/api/v1/admin/secrets", map[string]any{"name": "API_KEY"}), 400, "invalid_request", "value")
		want(t, e.as("POST", "/api/v1/admin/secrets", map[string]any{"name": "API_KEY", "value": 42}), 400, "invalid_request", "value")
		want(t, e.as("PUT", "/api/v1/admin/secrets/API_KEY", map[string]any{"name": "OTHER", "value": "long enough"}), 400, "invalid_request", "name")
		if v, err := e.st.GetNamedSecret(t.Context(), "API_KEY"); err != nil || string(v) != "second-value-7f3a9c" {
			t.Errorf("after refusals the secret is %q, %v", v, err)
		}

		want(t, e.as("DELETE", "/api/v1/admin/secrets/API_KEY", nil), 204, "", "")
		want(t, e.as("DELETE", "/api/v1/admin/secrets/API_KEY", nil), 404, "not_found", "API_KEY")
	})
}

// TestSecretsMaskedInTheAPI runs a flow that puts a named secret in a
// query, a header, a form, vars, an error and a return body, and checks
// that the instance and its history, as the API shows them, have it
// masked.
func TestSecretsMaskedInTheAPI(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	target := newEchoTarget(t)
	const value = "sk-live-51c0ffee"
	want(t, e.as("PUT", "/api/v1/admin/secrets/API_KEY", map[string]any{"value": value}), 201, "", "")
	e.deploy(`
name: keyed
permissions: {start: ["role:employee"]}
steps:
  - id: keep
    type: set
    vars: {header: "Key ${{ secrets.API_KEY }}"}
  - id: call
    type: http
    method: POST
    url: ` + target.URL + `/x
    query: {key: "${{ secrets.API_KEY }}"}
    headers: {X-Plain: "${{ vars.header }}"}
    form: {client_secret: "${{ secrets.API_KEY }}"}
  - id: answer
    type: return
    body: {key: "${{ secrets.API_KEY }}", path: "${{ steps.call.output.body.path }}"}
`)
	m := want(t, e.do("POST", "/api/v1/workflows/keyed/instances", e.bearer("alice"), map[string]any{}), 201, "", "")
	id := m["id"].(string)
	inst := e.waitInstance("alice", id, "completed", "failed")
	if inst["status"] != "completed" {
		t.Fatalf("instance = %v", inst)
	}
	ir := e.do("GET", "/api/v1/instances/"+id, e.bearer("alice"), nil)
	hr := e.do("GET", "/api/v1/instances/"+id+"/history", e.bearer("alice"), nil)
	for _, b := range [][]byte{ir.body, hr.body} {
		if strings.Contains(string(b), "51c0ffee") {
			t.Errorf("the API shows the secret: %s", b)
		}
	}
	if vars := inst["vars"].(map[string]any); vars["header"] != "Key ****" {
		t.Errorf("vars = %v", vars)
	}
	if body := inst["output"].(map[string]any)["body"].(map[string]any); body["key"] != "****" || body["path"] != "/x" {
		t.Errorf("output = %v", inst["output"])
	}
	call := want(t, hr, 200, "", "")["items"].([]any)[1].(map[string]any)
	in := call["input"].(map[string]any)
	if !strings.Contains(in["url"].(string), "key=****") || in["headers"].(map[string]any)["X-Plain"] != "Key ****" ||
		in["form"].(map[string]any)["client_secret"] != "****" {
		t.Errorf("recorded request = %v", in)
	}

	// A step reading a secret that is gone fails, naming it.
	want(t, e.as("DELETE", "/api/v1/admin/secrets/API_KEY", nil), 204, "", "")
	m = want(t, e.do("POST", "/api/v1/workflows/keyed/instances", e.bearer("alice"), map[string]any{}), 201, "", "")
	failed := e.waitInstance("alice", m["id"].(string), "completed", "failed")
	if failed["status"] != "failed" || !strings.Contains(failed["error"].(string), `secret "API_KEY" is not set`) {
		t.Errorf("without the secret: %v", failed)
	}
}
