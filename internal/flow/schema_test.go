package flow_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/flowgate/flowgate/internal/flow"
)

// docs/flow.schema.json is what editors check flow files with. These tests
// hold it to the parser: every flow the repository ships passes both, and
// for a table of small flows the schema and Parse agree on accepting or
// refusing, so the schema neither flags good files nor misses the mistakes
// it can see.

const schemaPath = "../../docs/flow.schema.json"

func flowSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	// Formats and patterns are asserted; the pattern dialect is Go's
	// regexp, which the schema keeps to the subset JavaScript shares (no
	// look-ahead, no inline flags) for yaml-language-server.
	c.AssertFormat()
	abs, err := filepath.Abs(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(abs)
	if err != nil {
		t.Fatalf("compiling %s: %v", schemaPath, err)
	}
	return s
}

// yamlValue reads a YAML or JSON document as the JSON value an editor
// validates: YAML timestamps stay the text they were written as.
func yamlValue(t *testing.T, data []byte) any {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal(data, &n); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	markTimestampsText(&n)
	var v any
	if err := n.Decode(&v); err != nil {
		t.Fatalf("YAML: %v", err)
	}
	return jsonValue(v)
}

func markTimestampsText(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!timestamp" {
		n.Tag = "!!str"
	}
	for _, c := range n.Content {
		markTimestampsText(c)
	}
}

// jsonValue turns what yaml.v3 decodes into JSON's shapes (maps with
// string keys).
func jsonValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonValue(e)
		}
		return x
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = jsonValue(e)
		}
		return out
	case []any:
		for i, e := range x {
			x[i] = jsonValue(e)
		}
		return x
	case time.Time:
		return x.Format(time.RFC3339Nano)
	}
	return v
}

// shippedFlows are the flow files in the repository: the examples and the
// parser's and configuration's test data.
func shippedFlows(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, pattern := range []string{
		"../../examples/*.yaml",
		"testdata/*.yaml", "testdata/*.json",
		"../config/testdata/flows/*",
	} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	if len(files) < 6 {
		t.Fatalf("found only %d flow files: %v", len(files), files)
	}
	return files
}

func TestSchemaAcceptsShippedFlows(t *testing.T) {
	s := flowSchema(t)
	for _, f := range shippedFlows(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := flow.Parse(data, filepath.Base(f)); err != nil {
			t.Errorf("%s: the parser refuses it: %v", f, err)
		}
		v := any(nil)
		if filepath.Ext(f) == ".json" {
			// As an editor reads it: JSON, not YAML.
			if v, err = jsonschema.UnmarshalJSON(bytes.NewReader(data)); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
		} else {
			v = yamlValue(t, data)
		}
		if err := s.Validate(v); err != nil {
			t.Errorf("%s: the schema refuses it: %v", f, err)
		}
	}
}

// minimal is a valid flow; the cases below change one step or key.
const minimal = `name: demo
steps:
  - id: first
    type: %s
  - id: end
    type: return
`

func TestSchemaAgreesWithParser(t *testing.T) {
	s := flowSchema(t)
	step := func(body string) string {
		return fmt.Sprintf(minimal, strings.TrimSpace(body))
	}
	cases := []struct {
		name string
		src  string
		ok   bool
	}{
		// The flow.
		{"minimal", "name: demo\nsteps:\n  - {id: end, type: return}\n", true},
		{"all top-level keys", "name: a.b_c-1\ntitle: Demo\ndescription: x\npermissions: {start: [\"user:alice\", \"role:employee\", \"client:portal\", \"entra:8d2f-x\"]}\ninput:\n  n: {type: integer, required: true, description: d, enum: [1, 2], default: 1}\nsteps:\n  - {id: end, type: return}\n", true},
		{"triggers", "name: demo\ntriggers:\n  - {schedule: \"0 7 * * MON-FRI\", timezone: Europe/Amsterdam, missed: run_once}\n  - {webhook: gh, secret: \"${{ secrets.gh }}\", signature: github}\n  - {webhook: env, secret: \"${HOOK}\", signature: hmac}\nsteps:\n  - {id: end, type: return}\n", true},
		{"trigger missed unknown", "name: demo\ntriggers:\n  - {schedule: \"* * * * *\", missed: always}\nsteps:\n  - {id: end, type: return}\n", false},
		{"webhook literal secret", "name: demo\ntriggers:\n  - {webhook: gh, secret: hunter2hunter2, signature: github}\nsteps:\n  - {id: end, type: return}\n", false},
		{"task deadlines and email", "name: demo\nsteps:\n  - {id: tell, type: email, to: [\"role:a\", a@example.com], cc: \"user:b\", subject: S, body: B, html: H}\n  - {id: t, type: task, title: T, assignees: [\"role:a\"], actions: [Yes], due: 2d, remind: 1d, escalate: {after: 1d, to: [\"user:b\"]}, on_due: call, next: {Yes: end}}\n  - {id: call, type: http, url: \"https://x.example/\", fail_on_status: true}\n  - {id: end, type: return}\n", true},
		{"on_error on every step type", "name: demo\nsteps:\n  - {id: h, type: http, url: \"https://x.example/\", on_error: end}\n  - {id: sl, type: oauth_server_login, server: s, on_error: end}\n  - {id: ul, type: oauth_user_login, server: s, on_error: end}\n  - {id: rf, type: oauth_refresh, server: s, refresh_token: x, on_error: end}\n  - {id: t, type: task, title: T, assignees: [\"role:a\"], actions: [Yes], on_error: end}\n  - {id: sw, type: switch, cases: [{when: \"${{ true }}\", next: st}], on_error: end}\n  - {id: st, type: set, vars: {a: 1}, on_error: end}\n  - {id: w, type: wait, duration: 1s, on_error: end}\n  - {id: m, type: email, to: a@example.com, subject: S, body: B, on_error: end}\n  - {id: r, type: return, on_error: f}\n  - {id: f, type: fail, error: x, on_error: end}\n  - {id: end, type: return, body: \"${{ steps.f.error.message }}\"}\n", true},
		{"flow step", "name: demo\nsteps:\n  - {id: child, type: flow, flow: credit-check, input: {amount: \"${{ 1 }}\"}, on_error: end}\n  - {id: end, type: return}\n", true},
		{"flow step without flow", "name: demo\nsteps:\n  - {id: child, type: flow, input: {amount: 1}}\n", false},
		{"flow step bad name", "name: demo\nsteps:\n  - {id: child, type: flow, flow: Credit}\n", false},
		{"flow step input list", "name: demo\nsteps:\n  - {id: child, type: flow, flow: c, input: [1]}\n", false},
		{"on_error not a string", "name: demo\nsteps:\n  - {id: a, type: fail, error: x, on_error: [end]}\n  - {id: end, type: return}\n", false},
		{"email without subject", "name: demo\nsteps:\n  - {id: tell, type: email, to: a@example.com, body: B}\n", false},
		{"no name", "steps:\n  - {id: end, type: return}\n", false},
		{"name upper case", "name: Demo\nsteps:\n  - {id: end, type: return}\n", false},
		{"name too long", "name: " + strings.Repeat("a", 65) + "\nsteps:\n  - {id: end, type: return}\n", false},
		{"version", "name: demo\nversion: 2\nsteps:\n  - {id: end, type: return}\n", false},
		{"unknown top-level key", "name: demo\nstep: []\nsteps:\n  - {id: end, type: return}\n", false},
		{"no steps", "name: demo\n", false},
		{"empty steps", "name: demo\nsteps: []\n", false},
		{"expression in title", "name: demo\ntitle: \"${{ input.x }}\"\nsteps:\n  - {id: end, type: return}\n", false},
		// A bare number where text is wanted is taken as its digits.
		{"numbers as text", "name: 2024\ntitle: 2024\ndescription: 1.5\nsteps:\n  - {id: 1, type: set, vars: {a: 1}, next: 2, description: 3}\n  - id: 2\n    type: task\n    title: 4\n    assignees: [\"role:a\"]\n    actions: [1, 2]\n    next: {1: 3, 2: 3}\n  - {id: 3, type: oauth_server_login, server: 7, scope: 8}\n  - {id: 4, type: fail, error: 5}\n", true},
		{"negative number as step id", "name: demo\nsteps:\n  - {id: -1, type: return}\n", false},
		{"boolean as text", "name: demo\ntitle: true\nsteps:\n  - {id: end, type: return}\n", false},
		{"null as text", "name: demo\nsteps:\n  - {id: end, type: fail, error: null}\n", false},
		{"input null", "name: demo\ninput:\nsteps:\n  - {id: end, type: return}\n", true},
		{"permissions unknown key", "name: demo\npermissions: {begin: [\"role:x\"]}\nsteps:\n  - {id: end, type: return}\n", false},
		{"principal without kind", "name: demo\npermissions: {start: [alice]}\nsteps:\n  - {id: end, type: return}\n", false},
		{"principal bad user name", "name: demo\npermissions: {start: [\"user:a/b\"]}\nsteps:\n  - {id: end, type: return}\n", false},
		{"principal with expression", "name: demo\npermissions: {start: [\"role:${{ input.r }}\"]}\nsteps:\n  - {id: end, type: return}\n", false},

		// Fields.
		{"field without type", "name: demo\ninput: {n: {required: true}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"field unknown type", "name: demo\ninput: {n: {type: date}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"field unknown key", "name: demo\ninput: {n: {type: string, min: 1}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"field bad name", "name: demo\ninput: {1n: {type: string}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"field required not boolean", "name: demo\ninput: {n: {type: string, required: \"yes\"}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"enum on boolean", "name: demo\ninput: {n: {type: boolean, enum: [true]}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"enum of wrong type", "name: demo\ninput: {n: {type: integer, enum: [a]}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"empty enum", "name: demo\ninput: {n: {type: string, enum: []}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"default of wrong type", "name: demo\ninput: {n: {type: number, default: x}}\nsteps:\n  - {id: end, type: return}\n", false},
		{"object default", "name: demo\ninput: {n: {type: object, default: {a: 1}}}\nsteps:\n  - {id: end, type: return}\n", true},

		// Steps in general.
		{"missing id", "name: demo\nsteps:\n  - {type: return}\n", false},
		{"missing type", "name: demo\nsteps:\n  - {id: end}\n", false},
		{"unknown step type", step("sett\n    vars: {a: 1}"), false},
		{"bad step id", "name: demo\nsteps:\n  - {id: \"a b\", type: return}\n", false},
		{"step id expression", "name: demo\nsteps:\n  - {id: \"${{ x }}\", type: return}\n", false},
		{"unknown step key", step("set\n    vars: {a: 1}\n    timeout: 5s"), false},
		{"description", step("set\n    description: why\n    vars: {a: 1}"), true},

		// http.
		{"http", step("http\n    method: post\n    url: https://erp.example.com/x\n    headers: {X-N: 5}\n    query: {q: \"${{ input }}\"}\n    body: {a: [1, true, null]}\n    timeout: 1m30s\n    auth: {server: erp, as: service}\n    retry: {attempts: 10, backoff: 500ms}\n    next: end"), true},
		{"http without url", step("http"), false},
		{"http relative url", step("http\n    url: /x"), false},
		{"http url expression", step("http\n    url: \"${{ 'https://x' }}/y\""), true},
		{"http bad method", step("http\n    method: FETCH\n    url: https://x"), false},
		{"http body and form", step("http\n    url: https://x\n    body: {}\n    form: {a: b}"), false},
		{"http bad timeout", step("http\n    url: https://x\n    timeout: 30"), false},
		{"http bad header name", step("http\n    url: https://x\n    headers: {\"X Y\": z}"), false},
		{"http null header", step("http\n    url: https://x\n    headers: {X-Y: null}"), false},
		{"http auth without as", step("http\n    url: https://x\n    auth: {server: erp}"), false},
		{"http auth as other", step("http\n    url: https://x\n    auth: {server: erp, as: admin}"), false},
		{"http auth and Authorization", step("http\n    url: https://x\n    headers: {authorization: x}\n    auth: {server: erp, as: starter}"), false},
		{"http Authorization without auth", step("http\n    url: https://x\n    headers: {Authorization: x}"), true},
		{"http retry without attempts", step("http\n    url: https://x\n    retry: {backoff: 1s}"), false},
		{"http retry too many", step("http\n    url: https://x\n    retry: {attempts: 11}"), false},
		{"http bad server name", step("http\n    url: https://x\n    auth: {server: \"a b\", as: service}"), false},

		// OAuth steps.
		{"oauth_server_login", step("oauth_server_login\n    server: erp\n    scope: api.read"), true},
		{"oauth_server_login without server", step("oauth_server_login"), false},
		{"oauth_server_login use_prompt", step("oauth_server_login\n    server: erp\n    use_prompt: true"), false},
		{"oauth_user_login", step("oauth_user_login\n    server: erp\n    use_prompt: false"), true},
		{"oauth_user_login use_prompt text", step("oauth_user_login\n    server: erp\n    use_prompt: \"no\""), false},
		{"oauth_refresh", step("oauth_refresh\n    server: erp\n    refresh_token: \"${{ vars.rt }}\""), true},
		{"oauth_refresh without token", step("oauth_refresh\n    server: erp"), false},

		// task.
		{"task", step("task\n    title: t\n    assignees: [\"role:approver\", \"user:${{ vars.m }}\", \"${{ vars.who }}\"]\n    actions: [Approve, Send back]\n    form: {comment: {type: string}}\n    next: {Approve: end}"), true},
		{"task without title", step("task\n    assignees: [\"role:a\"]\n    actions: [Ok]"), false},
		{"task no assignees", step("task\n    title: t\n    assignees: []\n    actions: [Ok]"), false},
		{"task assignee of another kind computed", step("task\n    title: t\n    assignees: [\"team:${{ vars.t }}\"]\n    actions: [Ok]"), false},
		{"task assignee computed before its kind", step("task\n    title: t\n    assignees: [\"${{ vars.kind }}:${{ vars.name }}\", \"ro${{ vars.le }}\"]\n    actions: [Ok]"), true},
		{"task bad assignee", step("task\n    title: t\n    assignees: [\"team:a\"]\n    actions: [Ok]"), false},
		{"task duplicate action", step("task\n    title: t\n    assignees: [\"role:a\"]\n    actions: [Ok, Ok]"), false},
		{"task bad action", step("task\n    title: t\n    assignees: [\"role:a\"]\n    actions: [\"-x\"]"), false},
		{"task next as text", step("task\n    title: t\n    assignees: [\"role:a\"]\n    actions: [Ok]\n    next: end"), false},

		// switch.
		{"switch", step("switch\n    cases:\n      - {when: \"${{ true }}\", next: end}\n    default: end"), true},
		{"switch with next", step("switch\n    cases:\n      - {when: \"${{ true }}\", next: end}\n    next: end"), false},
		{"switch when not an expression", step("switch\n    cases:\n      - {when: \"x ${{ true }}\", next: end}"), false},
		{"switch when boolean", step("switch\n    cases:\n      - {when: true, next: end}"), false},
		{"switch case without next", step("switch\n    cases:\n      - {when: \"${{ true }}\"}"), false},
		{"switch no cases", step("switch\n    cases: []"), false},

		// set, wait, return, fail.
		{"set bad name", step("set\n    vars: {\"a-b\": 1}"), false},
		{"set empty", step("set\n    vars: {}"), false},
		{"wait duration", step("wait\n    duration: 10m"), true},
		{"wait until", step("wait\n    until: 2026-01-31T17:00:00Z"), true},
		{"wait until expression", step("wait\n    until: \"${{ vars.at }}\""), true},
		{"wait until not a time", step("wait\n    until: tomorrow"), false},
		{"wait both", step("wait\n    duration: 1s\n    until: 2026-01-31T17:00:00Z"), false},
		{"wait neither", step("wait"), false},
		{"wait zero", step("wait\n    duration: 0m0.0s"), false},
		{"wait fraction", step("wait\n    duration: .5h1m"), true},
		{"wait negative", step("wait\n    duration: -1s"), false},
		{"wait days", step("wait\n    duration: 7d"), true},
		{"wait days and hours", step("wait\n    duration: 1d12h"), true},
		{"wait fractional days", step("wait\n    duration: 1.5d"), true},
		{"wait zero days", step("wait\n    duration: 0d0h"), false},
		{"wait days last", step("wait\n    duration: 12h1d"), false},
		{"wait days twice", step("wait\n    duration: 1d1d"), false},
		{"return status expression", "name: demo\nsteps:\n  - {id: end, type: return, status: \"${{ 201 }}\", headers: {X-A: b}, body: [1]}\n", true},
		{"return status out of range", "name: demo\nsteps:\n  - {id: end, type: return, status: 700}\n", false},
		{"return status text", "name: demo\nsteps:\n  - {id: end, type: return, status: \"201\"}\n", false},
		{"return with next", "name: demo\nsteps:\n  - {id: end, type: return, next: end}\n", false},
		{"fail", "name: demo\nsteps:\n  - {id: end, type: fail, error: \"no ${{ input }}\"}\n", true},
		{"fail without error", "name: demo\nsteps:\n  - {id: end, type: fail}\n", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, perr := flow.Parse([]byte(c.src), "case.yaml")
			serr := s.Validate(yamlValue(t, []byte(c.src)))
			if (perr == nil) != c.ok {
				t.Errorf("the parser: got %v, want ok=%v\n%s", perr, c.ok, c.src)
			}
			if (serr == nil) != c.ok {
				t.Errorf("the schema: got %v, want ok=%v\n%s", serr, c.ok, c.src)
			}
		})
	}
}

// TestSchemaRefusesBrokenExamples breaks each example in the ways editors
// must catch, and checks the schema says so.
func TestSchemaRefusesBrokenExamples(t *testing.T) {
	s := flowSchema(t)
	files, err := filepath.Glob("../../examples/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	breaks := map[string]func(steps []any){
		"unknown step key": func(steps []any) { steps[0].(map[string]any)["retries"] = 3 },
		"missing id":       func(steps []any) { delete(steps[0].(map[string]any), "id") },
		"unknown type":     func(steps []any) { steps[0].(map[string]any)["type"] = "script" },
		"wrong value type": func(steps []any) { steps[len(steps)-1].(map[string]any)["id"] = []any{"x"} },
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for what, breakIt := range breaks {
			v := yamlValue(t, data).(map[string]any)
			breakIt(v["steps"].([]any))
			if err := s.Validate(v); err == nil {
				t.Errorf("%s with %s: the schema accepts it", filepath.Base(f), what)
			}
		}
	}
}
