package flow

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/yamlnode"
)

func mustParse(t *testing.T, src string) *Definition {
	t.Helper()
	d, err := Parse([]byte(src), "t.yaml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return d
}

func TestParseSpecExample(t *testing.T) {
	for _, file := range []string{"testdata/expense-approval.yaml", "testdata/expense-approval.json"} {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			d, err := Parse(data, file)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if d.Name != "expense-approval" || d.Title != "Expense approval" || d.Version != 0 {
				t.Errorf("name, title, version = %q, %q, %d", d.Name, d.Title, d.Version)
			}
			if want := []string{"role:employee", "client:portal"}; !reflect.DeepEqual(d.Permissions.Start, want) {
				t.Errorf("permissions.start = %v, want %v", d.Permissions.Start, want)
			}
			if want := []string{"amount", "purpose"}; !reflect.DeepEqual(d.InputOrder, want) {
				t.Errorf("input order = %v, want %v", d.InputOrder, want)
			}
			if f := d.Input["amount"]; f.Type != "number" || !f.Required {
				t.Errorf("input.amount = %+v", f)
			}
			if f := d.Input["purpose"]; f.Type != "string" || f.Required {
				t.Errorf("input.purpose = %+v", f)
			}
			var ids []string
			var types []StepType
			for _, s := range d.Steps {
				ids = append(ids, s.ID)
				types = append(types, s.Type)
			}
			if want := []string{"check", "approve", "graph-token", "me", "done", "rejected"}; !reflect.DeepEqual(ids, want) {
				t.Errorf("ids = %v, want %v", ids, want)
			}
			if want := []StepType{TypeSwitch, TypeTask, TypeOAuthServerLogin, TypeHTTP, TypeReturn, TypeReturn}; !reflect.DeepEqual(types, want) {
				t.Errorf("types = %v, want %v", types, want)
			}

			sw := d.Steps[0].Switch
			if len(sw.Cases) != 1 || sw.Cases[0].Next != "approve" || sw.Default != "graph-token" ||
				sw.Cases[0].When.String() != "${{ input.amount > 1000 }}" || !sw.Cases[0].When.IsExpression() {
				t.Errorf("switch = %+v", sw)
			}
			task := d.Steps[1].Task
			if task.Title.String() != "Approve ${{ input.amount }} for ${{ input.purpose }}" ||
				len(task.Assignees) != 1 || task.Assignees[0].String() != "role:approver" ||
				!reflect.DeepEqual(task.Actions, []string{"Approve", "Reject"}) ||
				!reflect.DeepEqual(task.Next, map[string]string{"Approve": "graph-token", "Reject": "rejected"}) {
				t.Errorf("task = %+v", task)
			}
			login := d.Steps[2].OAuthServerLogin
			if login.Server != "graph" || login.Scope.String() != "https://graph.microsoft.com/.default" {
				t.Errorf("oauth_server_login = %+v", login)
			}
			h := d.Steps[3].HTTP
			if h.Method != "GET" || h.URL.String() != "https://graph.microsoft.com/v1.0/me" ||
				h.Timeout != 30*time.Second || *h.Auth != (HTTPAuth{Server: "graph", As: "starter"}) ||
				h.Retry != (Retry{Attempts: 3, Backoff: 2 * time.Second}) || h.HasBody || h.Form != nil {
				t.Errorf("http = %+v", h)
			}
			done := d.Steps[4].Return
			body := done.Body.(map[string]any)
			if done.Status != 200 || body["approved"] != true ||
				body["who"].(*Template).String() != "${{ steps.me.output.body.displayName }}" {
				t.Errorf("return done = %+v", done)
			}
			if r := d.Steps[5].Return; r.Status != 403 || !reflect.DeepEqual(r.Body, map[string]any{"approved": false}) {
				t.Errorf("return rejected = %+v", r)
			}
			if got := d.Servers(); !reflect.DeepEqual(got, []string{"graph"}) {
				t.Errorf("Servers() = %v", got)
			}
			if d.Document["name"] != "expense-approval" || len(d.Document["steps"].([]any)) != 6 {
				t.Errorf("Document = %v", d.Document)
			}
		})
	}
}

// TestParseYAMLAndJSONAgree checks the JSON form gives the same definition
// as the YAML one, as far as plain data and the workflow summary show.
func TestParseYAMLAndJSONAgree(t *testing.T) {
	var defs []*Definition
	for _, file := range []string{"testdata/expense-approval.yaml", "testdata/expense-approval.json"} {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		d, err := Parse(data, "")
		if err != nil {
			t.Fatal(err)
		}
		defs = append(defs, d)
	}
	if !reflect.DeepEqual(defs[0].Document, defs[1].Document) {
		t.Errorf("documents differ:\n%v\n%v", defs[0].Document, defs[1].Document)
	}
	if !reflect.DeepEqual(defs[0].Summary(), defs[1].Summary()) {
		t.Errorf("summaries differ")
	}
}

// header puts steps at a known line: the first step's "- id" is line 3.
const header = "name: t\nsteps:\n"

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // the whole message of the only problem
	}{
		{"flow name syntax", "name: Bad_Name\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:1:7: name: "Bad_Name" must be lower-case letters, digits and . _ - (starting with a letter or digit)`},
		{"flow name length", "name: " + strings.Repeat("a", 65) + "\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:1:7: name: "` + strings.Repeat("a", 65) + `" is longer than 64 characters`},
		{"flow name missing", "steps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:1:1: name: required`},
		{"version refused", "name: t\nversion: 3\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:2:1: t: version: the server numbers versions on deploy; remove version`},
		{"no steps", "name: t\nsteps: []\n", `t.yaml:2:8: t: steps: a flow needs at least one step`},
		{"unknown flow key", "name: t\ntitel: x\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:2:1: t: titel: unknown key (did you mean title?)`},
		{"step id missing", header + "  - type: fail\n    error: x\n",
			`t.yaml:3:5: t: steps[0]: id: required`},
		{"step id syntax", header + "  - id: a.b\n    type: fail\n    error: x\n",
			`t.yaml:3:9: t: steps[0]: id: "a.b" must be letters, digits, _ and -`},
		{"duplicate step id", header + "  - {id: a, type: set, vars: {x: 1}}\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:4:10: t: steps[1]: id: duplicate step id "a" (also steps[0], line 3)`},
		{"unknown step type", header + "  - id: a\n    type: htp\n",
			`t.yaml:4:11: t: step "a": type: unknown step type "htp" (want one of http, oauth_server_login, oauth_user_login, oauth_refresh, task, switch, set, wait, return, fail, email, flow, parallel, foreach)`},
		{"unknown step key", header + "  - id: a\n    type: fail\n    eror: x\n    error: x\n",
			`t.yaml:5:5: t: step "a": eror: unknown key (did you mean error?)`},
		{"unknown step key no hint", header + "  - id: a\n    type: fail\n    zzzzzz: 1\n    error: x\n",
			`t.yaml:5:5: t: step "a": zzzzzz: unknown key (a fail step takes id, type, description, on_error, error)`},
		{"duplicate key", header + "  - id: a\n    type: fail\n    error: x\n    error: y\n",
			`t.yaml:6:5: t: step "a": error: duplicate key (first at line 5)`},
		{"on_error to missing step", header + "  - {id: a, type: set, vars: {x: 1}, on_error: handle}\n  - {id: handler, type: fail, error: x}\n",
			`t.yaml:3:48: t: step "a": on_error: no step "handle" (did you mean handler?)`},
		{"on_error to itself", header + "  - {id: a, type: fail, error: x, on_error: a}\n",
			`t.yaml:3:45: t: step "a": on_error: a step's failure cannot lead back to the step itself (use retry on an http step)`},
		{"on_error with expression", header + "  - {id: a, type: fail, error: x, on_error: \"${{ input.x }}\"}\n",
			`t.yaml:3:45: t: step "a": on_error: expressions are not allowed here`},
		{"flow without flow", header + "  - {id: a, type: flow, input: {x: 1}}\n",
			`t.yaml:3:5: t: step "a": flow: required: the name of the deployed flow to start`},
		{"flow bad name", header + "  - {id: a, type: flow, flow: Credit Check}\n",
			`t.yaml:3:31: t: step "a": flow: "Credit Check" is not a flow name (lower-case letters, digits and . _ -)`},
		{"flow input not a mapping", header + "  - {id: a, type: flow, flow: c, input: [1]}\n",
			`t.yaml:3:41: t: step "a": input: want a mapping of the child flow's input fields, not a list`},
		{"next to missing step", header + "  - {id: a, type: set, vars: {x: 1}, next: b}\n  - {id: bb, type: fail, error: x}\n",
			`t.yaml:3:44: t: step "a": next: no step "b" (did you mean bb?)`},
		{"next is static", header + "  - {id: a, type: set, vars: {x: 1}, next: \"${{ vars.x }}\"}\n",
			`t.yaml:3:44: t: step "a": next: expressions are not allowed here`},
		{"switch case to missing step", header + "  - id: a\n    type: switch\n    cases:\n      - {when: \"${{ true }}\", next: zz}\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:6:37: t: step "a": cases[0].next: no step "zz"`},
		{"switch default to missing step", header + "  - id: a\n    type: switch\n    cases:\n      - {when: \"${{ true }}\", next: b}\n    default: zz\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:7:14: t: step "a": default: no step "zz"`},
		{"switch with next", header + "  - id: a\n    type: switch\n    next: b\n    cases:\n      - {when: \"${{ true }}\", next: b}\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:5:5: t: step "a": next: a switch goes on by its cases and default, not next`},
		{"return with next", header + "  - {id: a, type: return, next: a}\n",
			`t.yaml:3:27: t: step "a": next: a return step ends the instance; nothing comes next`},
		{"task action leads nowhere", header + "  - id: a\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: [Yes, No]\n    next: {Yes: b}\n  - {id: b, type: fail, error: x}\n",
			``}, // not last: No goes on to b; checked below
		{"last task action leads nowhere", header + "  - {id: b, type: set, vars: {x: 1}}\n  - id: a\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: [Yes, No]\n    next: {Yes: b}\n",
			`t.yaml:4:5: t: step "a": next: action "No" leads nowhere: the task is the last step; map it in next (a return step ends the instance)`},
		{"next key not an action", header + "  - id: a\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: [Approve, Reject]\n    next: {Aprove: b, Reject: b}\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:8:12: t: step "a": next.Aprove: "Aprove" is not one of the actions (Approve, Reject)`},
		{"task next not a map", header + "  - id: a\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: [Approve]\n    next: b\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:8:11: t: step "a": next: a task's next maps each action to a step, such as {Approve: STEP}`},
		{"unreachable step", header + "  - {id: a, type: return}\n  - {id: b, type: fail, error: x}\n",
			`t.yaml:4:5: t: step "b": unreachable: no step leads here`},
		{"task without actions", header + "  - id: approve\n    type: task\n    title: T\n    assignees: [role:x]\n    actions: []\n",
			`t.yaml:7:14: t: step "approve": actions: a task needs at least one action`},
		{"task without actions key", header + "  - id: approve\n    type: task\n    title: T\n    assignees: [role:x]\n",
			`t.yaml:3:5: t: step "approve": actions: a task needs at least one action`},
		{"task without assignees", header + "  - id: approve\n    type: task\n    title: T\n    actions: [OK]\n    next: {OK: approve}\n",
			`t.yaml:3:5: t: step "approve": assignees: required: a task needs at least one assignee (user:NAME, role:NAME, client:ID)`},
		{"bad assignee", header + "  - id: approve\n    type: task\n    title: T\n    assignees: [role:x, group:y]\n    actions: [OK]\n    next: {OK: approve}\n",
			`t.yaml:6:25: t: step "approve": assignees[1]: "group:y" is not an assignee (want user:NAME, role:NAME or client:ID)`},
		{"bad computed assignee kind", header + "  - id: approve\n    type: task\n    title: T\n    assignees: [\"group:${{ vars.g }}\"]\n    actions: [OK]\n    next: {OK: approve}\n",
			`t.yaml:6:17: t: step "approve": assignees[0]: "group:" is not an assignee kind (want user:, role: or client:)`},
		{"bad user name", header + "  - id: approve\n    type: task\n    title: T\n    assignees: [\"user:a b\"]\n    actions: [OK]\n    next: {OK: approve}\n",
			`t.yaml:6:17: t: step "approve": assignees[0]: "user:a b": a user name is at most 64 letters, digits and . _ @ -`},
		{"bad permission principal", "name: t\npermissions:\n  start: [role:a, nobody, \"entra:\"]\nsteps:\n  - {id: a, type: fail, error: x}\n",
			""}, // two problems, checked below
		{"unknown input type", "name: t\ninput:\n  amount: {type: money}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:18: t: input.amount.type: unknown type "money" (want one of string, number, integer, boolean, object, array)`},
		{"input type missing", "name: t\ninput:\n  amount: {required: true}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:11: t: input.amount.type: required (one of string, number, integer, boolean, object, array)`},
		{"input field name", "name: t\ninput:\n  first-name: {type: string}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:3: t: input.first-name: a field name is letters, digits and _ (not starting with a digit), at most 64, so expressions can say input.NAME`},
		{"default of wrong type", "name: t\ninput:\n  n: {type: integer, default: 1.5}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:31: t: input.n.default: want integer, got 1.5`},
		{"default not in enum", "name: t\ninput:\n  c: {type: string, enum: [a, b], default: c}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:44: t: input.c.default: want one of "a", "b"`},
		{"http url missing", header + "  - id: a\n    type: http\n",
			`t.yaml:3:5: t: step "a": url: required`},
		{"http url not absolute", header + "  - {id: a, type: http, url: /x}\n",
			`t.yaml:3:30: t: step "a": url: "/x": want an absolute http:// or https:// URL`},
		{"http method", header + "  - {id: a, type: http, url: \"https://x\", method: FETCH}\n",
			`t.yaml:3:51: t: step "a": method: "FETCH" is not an HTTP method (want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)`},
		{"http timeout", header + "  - {id: a, type: http, url: \"https://x\", timeout: 30}\n",
			`t.yaml:3:52: t: step "a": timeout: "30" is not a duration (such as 90s, 20m, 1h30m, 7d)`},
		{"http timeout too long", header + "  - {id: a, type: http, url: \"https://x\", timeout: 1h}\n",
			`t.yaml:3:52: t: step "a": timeout: at most 5m0s`},
		{"retry backoff", header + "  - {id: a, type: http, url: \"https://x\", retry: {attempts: 2, backoff: soon}}\n",
			`t.yaml:3:73: t: step "a": retry.backoff: "soon" is not a duration (such as 90s, 20m, 1h30m, 7d)`},
		{"retry attempts 0", header + "  - {id: a, type: http, url: \"https://x\", retry: {attempts: 0}}\n",
			`t.yaml:3:61: t: step "a": retry.attempts: 0: want 1 to 10 (every try counts, the first included)`},
		{"retry attempts 11", header + "  - {id: a, type: http, url: \"https://x\", retry: {attempts: 11}}\n",
			`t.yaml:3:61: t: step "a": retry.attempts: 11: want 1 to 10 (every try counts, the first included)`},
		{"auth as missing", header + "  - {id: a, type: http, url: \"https://x\", auth: {server: graph}}\n",
			`t.yaml:3:49: t: step "a": auth.as: required: starter (the user who started the instance) or service (Flowgate's own client credentials)`},
		{"auth and authorization header", header + "  - {id: a, type: http, url: \"https://x\", headers: {authorization: x}, auth: {server: g, as: service}}\n",
			`t.yaml:3:78: t: step "a": auth: auth sets the Authorization header; remove headers.authorization`},
		{"body and form", header + "  - {id: a, type: http, url: \"https://x\", method: POST, body: {a: 1}, form: {a: 1}}\n",
			`t.yaml:3:71: t: step "a": form: body and form exclude each other: body is sent as JSON, form as application/x-www-form-urlencoded`},
		{"return status", header + "  - {id: a, type: return, status: 600}\n",
			`t.yaml:3:35: t: step "a": status: 600 is not a final HTTP status (200–599)`},
		{"return status informational", header + "  - {id: a, type: return, status: 101}\n",
			`t.yaml:3:35: t: step "a": status: 101 is not a final HTTP status (200–599)`},
		{"return status text", header + "  - {id: a, type: return, status: ok}\n",
			`t.yaml:3:35: t: step "a": status: want a number 200–599 or one ${{ … }} expression, not a string`},
		{"wait both", header + "  - {id: a, type: wait, duration: 1m, until: \"2030-01-01T00:00:00Z\"}\n",
			`t.yaml:3:5: t: step "a": a wait takes duration or until, not both`},
		{"wait neither", header + "  - {id: a, type: wait}\n",
			`t.yaml:3:5: t: step "a": a wait needs duration (such as 10m) or until (an RFC 3339 time or an expression)`},
		{"wait duration", header + "  - {id: a, type: wait, duration: -1m}\n",
			`t.yaml:3:35: t: step "a": duration: "-1m" must be longer than zero`},
		{"wait until literal", header + "  - {id: a, type: wait, until: tomorrow}\n",
			`t.yaml:3:32: t: step "a": until: "tomorrow" is not an RFC 3339 time (such as 2026-01-31T17:00:00Z) or an expression`},
		{"oauth_server_login without server", header + "  - {id: a, type: oauth_server_login}\n",
			`t.yaml:3:5: t: step "a": server: required: the name of an oauth_servers entry`},
		{"oauth_user_login without server", header + "  - {id: a, type: oauth_user_login, use_prompt: true}\n",
			`t.yaml:3:5: t: step "a": server: required: the name of an oauth_servers entry`},
		{"oauth_refresh without server", header + "  - {id: a, type: oauth_refresh, refresh_token: \"${{ vars.rt }}\"}\n",
			`t.yaml:3:5: t: step "a": server: required: the name of an oauth_servers entry`},
		{"oauth_refresh without token", header + "  - {id: a, type: oauth_refresh, server: g}\n",
			`t.yaml:3:5: t: step "a": refresh_token: required: an expression giving the refresh token, such as ${{ vars.refresh_token }}`},
		{"use_prompt not bool", header + "  - {id: a, type: oauth_user_login, server: g, use_prompt: yes}\n",
			`t.yaml:3:60: t: step "a": use_prompt: want true or false, not a string`},
		{"expression syntax", header + "  - {id: a, type: fail, error: \"${{ input.amount > }}\"}\n",
			`t.yaml:3:32: t: step "a": error: ${{ input.amount > }}: unexpected token EOF`},
		{"unterminated expression", header + "  - {id: a, type: fail, error: \"${{ 1 + 2\"}\n",
			`t.yaml:3:32: t: step "a": error: ${{ without a closing }}`},
		{"unknown top-level name", header + "  - {id: a, type: fail, error: \"${{ inptu.amount }}\"}\n",
			`t.yaml:3:32: t: step "a": error: ${{ inptu.amount }}: unknown name inptu`},
		{"undeclared input field", "name: t\ninput:\n  amount: {type: number}\nsteps:\n  - {id: a, type: fail, error: \"${{ input.amout }}\"}\n",
			`t.yaml:5:32: t: step "a": error: ${{ input.amout }}: input has no field "amout"`},
		{"unknown step in expression", header + "  - {id: a, type: fail, error: \"${{ steps.b.output }}\"}\n",
			`t.yaml:3:32: t: step "a": error: ${{ steps.b.output }}: no step "b"`},
		{"step id with dash in expression", header + "  - {id: graph-token, type: set, vars: {x: 1}}\n  - {id: a, type: fail, error: \"${{ steps.graph-token.output }}\"}\n",
			`t.yaml:4:32: t: step "a": error: ${{ steps.graph-token.output }}: write steps["graph-token"]: steps.graph-token reads as steps.graph minus token`},
		{"unknown user field", header + "  - {id: a, type: fail, error: \"${{ user.rolse }}\"}\n",
			`t.yaml:3:32: t: step "a": error: ${{ user.rolse }}: type flow.User has no field rolse`},
		{"when not boolean", header + "  - id: a\n    type: switch\n    cases: [{when: \"${{ 1 + 2 }}\", next: a}]\n",
			`t.yaml:5:20: t: step "a": cases[0].when: ${{ 1 + 2 }}: expected bool, but got int`},
		{"when not an expression", header + "  - id: a\n    type: switch\n    cases: [{when: \"input.x > 1\", next: a}]\n",
			`t.yaml:5:20: t: step "a": cases[0].when: want one ${{ … }} expression giving true or false`},
		{"when a YAML boolean", header + "  - id: a\n    type: switch\n    cases: [{when: true, next: a}]\n",
			`t.yaml:5:20: t: step "a": cases[0].when: want a ${{ … }} expression giving true or false, not a boolean`},
		{"node limit", header + "  - {id: a, type: fail, error: \"${{ " + strings.Repeat("1 + ", 600) + "1 }}\"}\n",
			""}, // checked below
		{"expression in a key", header + "  - {id: a, type: return, body: {\"${{ vars.k }}\": 1}}\n",
			`t.yaml:3:34: t: step "a": body.${{ vars.k }}: expressions are not allowed in keys`},
		{"set var name", header + "  - {id: a, type: set, vars: {my-var: 1}}\n",
			`t.yaml:3:31: t: step "a": vars.my-var: a variable name is letters, digits and _ (not starting with a digit), at most 64, so expressions can say vars.NAME`},
		{"server name", header + "  - {id: a, type: oauth_server_login, server: \"a b\"}\n",
			`t.yaml:3:47: t: step "a": server: "a b" is not a server name (letters, digits, . _ -)`},
		{"yaml syntax", "name: t\nsteps:\n  - id: [a\n", ""}, // checked below
		{"two documents", "name: t\nsteps:\n  - {id: a, type: return}\n---\nname: u\n",
			`t.yaml:4:1: t: one flow per file: a second YAML document starts here`},
		{"not a mapping", "- a\n- b\n", `t.yaml:1:1: a flow definition is a mapping with name and steps, not a list`},
		{"empty", "", `t.yaml: the file is empty`},
		{"duplicate key in a default", "name: t\ninput:\n  o: {type: object, default: {a: 1, a: 2}}\nsteps:\n  - {id: a, type: fail, error: x}\n",
			`t.yaml:3:37: t: input.o.default.a: duplicate key (first at line 3)`},
		{"merge of a non-mapping", header + "  - {id: a, type: return, <<: [{status: 201}, 5]}\n",
			`t.yaml:3:47: t: step "a": << merges mappings, not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.src), "t.yaml")
			if tt.want == "" {
				switch tt.name {
				case "task action leads nowhere":
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
				case "bad permission principal":
					want := "t.yaml:3:19: t: permissions.start[1]: \"nobody\" is not a principal (want user:NAME, role:NAME, client:ID or ISSUER:SUBJECT)\n" +
						"t.yaml:3:27: t: permissions.start[2]: \"entra:\" is not a principal (want user:NAME, role:NAME, client:ID or ISSUER:SUBJECT)"
					if err == nil || err.Error() != want {
						t.Fatalf("got  %v\nwant %s", err, want)
					}
				case "node limit":
					if err == nil || !strings.Contains(err.Error(), `t.yaml:3:32: t: step "a": error: ${{ 1 + 1 + `) ||
						!strings.Contains(err.Error(), "exceeds maximum allowed nodes") {
						t.Fatalf("got %v", err)
					}
				case "yaml syntax":
					var p *Problem
					if err == nil || !errors.As(err, &p) || p.Line == 0 || !errors.As(err, new(*yamlnode.SyntaxError)) ||
						!strings.HasPrefix(err.Error(), "t.yaml:") {
						t.Fatalf("got %v", err)
					}
				default:
					t.Fatal("no expectation")
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse succeeded, want %s", tt.want)
			}
			if err.Error() != tt.want {
				t.Errorf("got  %s\nwant %s", err, tt.want)
			}
			ps := Problems(err)
			if len(ps) != 1 {
				t.Errorf("Problems() = %d, want 1", len(ps))
			}
		})
	}
}

func TestParseReportsAllProblemsInOrder(t *testing.T) {
	src := `name: expense-approval
input:
  amount: {type: money}
steps:
  - id: check
    type: switch
    cases:
      - when: "${{ input.amount > }}"
        next: aprove
  - id: approve
    type: task
    title: T
    assignees: [role:approver]
    actions: []
  - id: call
    type: http
    method: FETCH
    retry: {attempts: 0}
`
	_, err := Parse([]byte(src), "f.yaml")
	want := []string{
		`f.yaml:3:18: expense-approval: input.amount.type: unknown type "money" (want one of string, number, integer, boolean, object, array)`,
		`f.yaml:8:15: expense-approval: step "check": cases[0].when: ${{ input.amount > }}: unexpected token EOF`,
		`f.yaml:9:15: expense-approval: step "check": cases[0].next: no step "aprove" (did you mean approve?)`,
		`f.yaml:14:14: expense-approval: step "approve": actions: a task needs at least one action`,
		`f.yaml:15:5: expense-approval: step "call": url: required`,
		`f.yaml:17:13: expense-approval: step "call": method: "FETCH" is not an HTTP method (want one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS)`,
		`f.yaml:18:23: expense-approval: step "call": retry.attempts: 0: want 1 to 10 (every try counts, the first included)`,
	}
	if err == nil {
		t.Fatal("Parse succeeded")
	}
	if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	ps := Problems(err)
	if len(ps) != len(want) || ps[3].Step != "approve" || ps[3].Field != "actions" || ps[3].Line != 14 {
		t.Errorf("Problems() = %v", ps)
	}
}

// A step reached only through another step's on_error is reachable, and
// expressions may read steps.ID.error.
func TestParseOnError(t *testing.T) {
	d := mustParse(t, header+"  - {id: call, type: http, url: \"https://x.example/\", on_error: handle}\n  - {id: done, type: return}\n"+
		"  - {id: handle, type: return, status: 502, body: {why: \"${{ steps.call.error.message }}\", code: \"${{ steps.call.error.status }}\"}}\n")
	s, ok := d.Step("call")
	if !ok || s.OnError != "handle" {
		t.Fatalf("call.OnError = %+v", s)
	}
	if s, _ := d.Step("done"); s.OnError != "" {
		t.Errorf("done.OnError = %q, want none", s.OnError)
	}
}

func TestParseDefaultsAndOptions(t *testing.T) {
	d := mustParse(t, `name: t
permissions:
  start: [user:alice, "entra:8d2f-11", client:portal]
input:
  n: {type: integer, default: 3, description: How many}
  kind: {type: string, enum: [a, b]}
steps:
  - id: call
    type: http
    method: post
    url: "https://api.example.com/${{ input.kind }}"
    headers: {X-Count: 5}
    query: {q: "${{ input.n }}"}
    form: {a: b}
    timeout: 2s
    retry: {attempts: 2}
  - id: login
    type: oauth_user_login
    server: graph
    use_prompt: false
  - id: w
    type: wait
    until: "2030-01-01T00:00:00Z"
  - id: week
    type: wait
    duration: 1d12h
  - id: ask
    type: task
    title: Check
    assignees: ["user:${{ user.subject }}"]
    actions: [OK, Send back]
    form:
      comment: {type: string, required: true}
      score: {type: integer}
    next: {Send back: call}
  - id: s
    type: set
    vars: {b: 2, a: "${{ vars.x }}"}
`)
	h := d.Steps[0].HTTP
	if h.Method != "POST" || h.Timeout != 2*time.Second || h.Retry != (Retry{Attempts: 2, Backoff: time.Second}) ||
		h.Headers["X-Count"].String() != "5" || h.Form["a"].String() != "b" || h.HasBody {
		t.Errorf("http = %+v", h)
	}
	if u := d.Steps[1].OAuthUserLogin; u.UsePrompt == nil || *u.UsePrompt || u.Scope != nil {
		t.Errorf("oauth_user_login = %+v", u)
	}
	// Flows take days as the configuration file does.
	if w := d.Steps[3].Wait; w.Duration != 36*time.Hour {
		t.Errorf("wait duration 1d12h = %v, want 36h", w.Duration)
	}
	if task := d.Steps[4].Task; !reflect.DeepEqual(task.FormOrder, []string{"comment", "score"}) || task.Form["comment"].Type != "string" {
		t.Errorf("task form = %+v", task)
	}
	if s := d.Steps[5].Set; !reflect.DeepEqual(s.VarsOrder, []string{"b", "a"}) || s.Vars["b"] != 2 {
		t.Errorf("set = %+v", s)
	}
	if d.Input["n"].Default != 3 || !reflect.DeepEqual(d.Input["kind"].Enum, []any{"a", "b"}) {
		t.Errorf("input = %+v", d.Input)
	}
	// "Send back" is mapped; OK goes on to the following step.
	if next, _ := d.AfterAction("ask", "OK"); next != "s" {
		t.Errorf("AfterAction(OK) = %q, want s", next)
	}
	if next, _ := d.AfterAction("ask", "Send back"); next != "call" {
		t.Errorf("AfterAction(Send back) = %q, want call", next)
	}
	if _, err := d.AfterAction("ask", "Nope"); err == nil {
		t.Error("AfterAction(Nope) succeeded")
	}
	if got := d.After("call"); got != "login" {
		t.Errorf("After(call) = %q", got)
	}
	if got := d.After("s"); got != "" {
		t.Errorf("After(last) = %q, want completion", got)
	}
	if !d.CanStart("user:alice", nil) || !d.CanStart("entra:8d2f-11", nil) || d.CanStart("user:bob", []string{"employee"}) {
		t.Error("CanStart")
	}
}

func TestParseMergeKeysAndAnchors(t *testing.T) {
	d := mustParse(t, `name: t
steps:
  - id: a
    type: http
    url: "https://x"
    retry: &r {attempts: 3, backoff: 5s}
  - id: b
    type: http
    url: "https://y"
    <<: {method: DELETE}
    retry: *r
`)
	if d.Steps[1].HTTP.Method != "DELETE" || d.Steps[1].HTTP.Retry.Attempts != 3 {
		t.Errorf("step b = %+v", d.Steps[1].HTTP)
	}
}
