package flow

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func specFlow(t testing.TB) *Definition {
	t.Helper()
	data, err := os.ReadFile("testdata/expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d, err := Parse(data, "expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func specEnv() *Env {
	return &Env{
		Input: map[string]any{"amount": 1500.0, "purpose": "a team dinner"},
		Vars:  map[string]any{"n": 2, "tags": []any{"a", "b"}},
		Steps: map[string]StepState{
			"me": {Output: map[string]any{"status": 200, "body": map[string]any{"displayName": "Alice Example"}}},
		},
		Instance: Instance{ID: "i-1", Workflow: "expense-approval", Version: 3,
			StartedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), StartedBy: "user:alice"},
		User: User{ID: "user:alice", Kind: "user", Subject: "alice", Issuer: "flowgate", Roles: []string{"employee"}},
	}
}

func TestTemplateTyping(t *testing.T) {
	env := specEnv()
	tests := []struct {
		src  string
		want any
	}{
		{"${{ input.amount > 1000 }}", true},
		{"${{ input.amount }}", 1500.0},
		{"${{ vars.n }}", 2},
		{"${{ vars.n * 2 }}", 4},
		{"${{ vars.tags }}", []any{"a", "b"}},
		{"${{ {a: vars.n} }}", map[string]any{"a": 2}},
		{"${{ steps.me.output.body }}", map[string]any{"displayName": "Alice Example"}},
		{"${{ nil }}", nil},
		{"Approve ${{ input.amount }} for ${{ input.purpose }}", "Approve 1500 for a team dinner"},
		{"n=${{ vars.n }} half=${{ vars.n / 4 }}", "n=2 half=0.5"},
		{"${{ input.amount }} ", "1500 "},
		{"tags ${{ vars.tags }} map ${{ {\"k\": \"<v>\"} }}", `tags ["a","b"] map {"k":"<v>"}`},
		{"[${{ vars.missing }}]", "[]"},
		{"${{ vars.missing }}", nil},
		{"${{ vars.missing?.deeper }}", nil},
		{"${{ vars.missing ?? 'none' }}", "none"},
		{"by ${{ user.id }} (${{ 'employee' in user.roles }})", "by user:alice (true)"},
		{"${{ instance.workflow }} v${{ instance.version }} at ${{ instance.started_at }}", "expense-approval v3 at 2026-01-02T03:04:05Z"},
		{"${{ instance.started_at.Year() }}", 2026},
		{`${{ "}}" + "x" }}`, "}}x"},
		{"no expressions", "no expressions"},
		{"", ""},
		{"${{ 1e21 }} ${{ 0.1 + 0.2 }} ${{ 100.0 }}", "1e+21 0.30000000000000004 100"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			tmpl, err := NewTemplate(tt.src)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tmpl.Evaluate(env)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v (%T), want %#v (%T)", got, got, tt.want, tt.want)
			}
		})
	}
}

func TestSwitchWhenTyping(t *testing.T) {
	d := mustParse(t, `name: t
input:
  flag: {type: string}
steps:
  - id: s
    type: switch
    cases:
      - when: "${{ input.flag }}"
        next: yes
    default: no
  - {id: "yes", type: return, body: "yes"}
  - {id: "no", type: return, body: "no"}
`)
	next, err := d.AfterSwitch("s", &Env{Input: map[string]any{"flag": "true"}})
	var ee *EvalError
	if err == nil || !errors.As(err, &ee) {
		t.Fatalf("AfterSwitch = %q, %v; want an EvalError", next, err)
	}
	if want := `t: step "s": cases[0].when: ${{ input.flag }}: want true or false, got string`; err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}

	spec := specFlow(t)
	for amount, want := range map[float64]string{1500: "approve", 10: "graph-token"} {
		got, err := spec.AfterSwitch("check", &Env{Input: map[string]any{"amount": amount}})
		if err != nil || got != want {
			t.Errorf("AfterSwitch(amount %v) = %q, %v; want %q", amount, got, err, want)
		}
	}
}

func TestEvaluateTree(t *testing.T) {
	d := mustParse(t, `name: t
input:
  amount: {type: number}
steps:
  - id: me
    type: set
    vars: {x: 1}
  - id: done
    type: return
    body:
      approved: true
      who: "${{ steps.me.output.body.displayName }}"
      amount: "${{ input.amount }}"
      line: "total ${{ input.amount * 2 }}"
      nested:
        list: [1, "${{ input.amount > 1000 }}", {deep: "${{ user.subject }}"}]
        none: null
`)
	env := specEnv()
	got, err := EvaluateTree(d.Steps[1].Return.Body, env)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"approved": true,
		"who":      "Alice Example",
		"amount":   1500.0,
		"line":     "total 3000",
		"nested": map[string]any{
			"list": []any{1, true, map[string]any{"deep": "alice"}},
			"none": nil,
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %#v\nwant %#v", got, want)
	}
	// The definition's tree is not changed by evaluation.
	if _, ok := d.Steps[1].Return.Body.(map[string]any)["who"].(*Template); !ok {
		t.Error("the definition's body was modified")
	}
}

func TestRuntimeErrorNamesStepAndField(t *testing.T) {
	d := specFlow(t)
	// The step "me" has not run: steps.me is empty, and .body of it is nil,
	// so .displayName fails.
	_, err := EvaluateTree(d.Steps[4].Return.Body, &Env{Input: map[string]any{"amount": 5.0}})
	var ee *EvalError
	if err == nil || !errors.As(err, &ee) {
		t.Fatalf("err = %v, want an EvalError", err)
	}
	if ee.Flow != "expense-approval" || ee.Step != "done" || ee.Field != "body.who" {
		t.Errorf("EvalError = %+v", ee)
	}
	want := `expense-approval: step "done": body.who: ${{ steps.me.output.body.displayName }}: cannot fetch displayName from <nil>`
	if err.Error() != want {
		t.Errorf("got  %s\nwant %s", err, want)
	}
}

func TestTemplateLimits(t *testing.T) {
	env := &Env{Vars: map[string]any{"s": strings.Repeat("x", 1000)}}
	tests := []struct {
		src, want string
	}{
		{"${{ repeat(vars.s, 2000) }}", "repeat: the result would be longer than 1048576 bytes"},
		{"${{ repeat(repeat('x', 1000000), 1000000) }}", "repeat: the result would be longer than 1048576 bytes"},
		{"a${{ repeat(vars.s, 1000) }}${{ repeat(vars.s, 1000) }}", "the text is longer than 1048576 bytes"},
		{"${{ map(1..2000000, #) }}", "memory budget exceeded"},
	}
	for _, tt := range tests {
		tmpl, err := NewTemplate(tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		if _, err := tmpl.Evaluate(env); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.src, err, tt.want)
		}
	}
	if v, err := mustTemplate(t, "${{ len(repeat('ab', 3)) }}").Evaluate(nil); err != nil || v != 6 {
		t.Errorf("repeat within limits = %v, %v", v, err)
	}
}

func mustTemplate(t *testing.T, src string) *Template {
	t.Helper()
	tmpl, err := NewTemplate(src)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestSplitTemplate(t *testing.T) {
	for src, want := range map[string]string{
		"${{ }}":                  "empty ${{ }}",
		"${{ 1":                   "${{ without a closing }}",
		"${{ 'abc }}":             "unterminated string in ${{ … }}",
		"${{ 1 }} and ${{ 2 + }}": "${{ 2 + }}: unexpected token EOF",
	} {
		if _, err := NewTemplate(src); err == nil || err.Error() != want {
			t.Errorf("NewTemplate(%q) = %v, want %q", src, err, want)
		}
	}
	tmpl := mustTemplate(t, "${{ {a: {b: 1}} }}")
	if v, err := tmpl.Evaluate(nil); err != nil || !reflect.DeepEqual(v, map[string]any{"a": map[string]any{"b": 1}}) {
		t.Errorf("nested map literal = %v, %v", v, err)
	}
	if !mustTemplate(t, "plain").IsLiteral() || mustTemplate(t, "x ${{ 1 }}").IsExpression() || !mustTemplate(t, "${{ 1 }}").IsExpression() {
		t.Error("IsLiteral/IsExpression")
	}
}

func TestResolveAssignees(t *testing.T) {
	d := mustParse(t, `name: t
input:
  manager: {type: string}
steps:
  - id: a
    type: task
    title: T
    assignees: [role:approver, "user:${{ input.manager }}", "${{ vars.extra }}", role:approver]
    actions: [OK]
    next: {OK: a}
`)
	task := d.Steps[0].Task
	got, err := task.ResolveAssignees(&Env{Input: map[string]any{"manager": "bob"}, Vars: map[string]any{"extra": []any{"client:portal"}}})
	if err != nil || !reflect.DeepEqual(got, []string{"role:approver", "user:bob", "client:portal"}) {
		t.Errorf("ResolveAssignees = %v, %v", got, err)
	}
	_, err = task.ResolveAssignees(&Env{Input: map[string]any{"manager": "bob smith"}, Vars: map[string]any{"extra": "role:x"}})
	if want := `t: step "a": assignees[1]: user:${{ input.manager }}: "user:bob smith": a user name is at most 64 letters, digits and . _ @ -`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}

func TestWaitAndReturnAtRuntime(t *testing.T) {
	d := mustParse(t, `name: t
steps:
  - {id: w1, type: wait, duration: 90s}
  - {id: w2, type: wait, until: "2030-01-01T00:00:00+02:00"}
  - {id: w3, type: wait, until: "${{ vars.when }}"}
  - {id: r, type: return, status: "${{ vars.status }}"}
`)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	env := &Env{Vars: map[string]any{"when": "2031-05-06T07:08:09Z", "status": 201.0}}
	for id, want := range map[string]time.Time{
		"w1": start.Add(90 * time.Second),
		"w2": time.Date(2029, 12, 31, 22, 0, 0, 0, time.UTC),
		"w3": time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC),
	} {
		s, _ := d.Step(id)
		got, err := s.Wait.Deadline(start, env)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("%s: Deadline = %v, %v; want %v", id, got, err, want)
		}
	}
	s, _ := d.Step("w3")
	if _, err := s.Wait.Deadline(start, &Env{Vars: map[string]any{"when": "soon"}}); err == nil ||
		err.Error() != `t: step "w3": until: ${{ vars.when }}: "soon" is not an RFC 3339 time` {
		t.Errorf("Deadline(soon) = %v", err)
	}
	r, _ := d.Step("r")
	if st, err := r.Return.StatusCode(env); err != nil || st != 201 {
		t.Errorf("StatusCode = %d, %v", st, err)
	}
	if _, err := r.Return.StatusCode(&Env{Vars: map[string]any{"status": 42}}); err == nil {
		t.Error("StatusCode(42) succeeded")
	}
}

func TestMaskAndSecrets(t *testing.T) {
	d := specFlow(t)
	login, _ := d.Step("graph-token")
	if got := login.Secrets(); !reflect.DeepEqual(got, []string{"access_token", "refresh_token"}) {
		t.Errorf("Secrets() = %v", got)
	}
	if call, _ := d.Step("me"); call.Secrets() != nil {
		t.Errorf("http Secrets() = %v", call.Secrets())
	}
	out := map[string]any{"access_token": "eyJ…", "expires_in": 3599, "token_type": "bearer", "status_code": 0}
	masked := Mask(out, login.Secrets())
	want := map[string]any{"access_token": "****", "expires_in": 3599, "token_type": "bearer", "status_code": 0}
	if !reflect.DeepEqual(masked, want) {
		t.Errorf("Mask = %v, want %v", masked, want)
	}
	if out["access_token"] != "eyJ…" {
		t.Error("Mask changed its argument")
	}
	if Mask(nil, login.Secrets()) != nil {
		t.Error("Mask(nil) is not nil")
	}
}

func TestEvaluateMapAndConcurrency(t *testing.T) {
	d := mustParse(t, `name: t
input:
  n: {type: integer}
steps:
  - id: call
    type: http
    url: "https://api.example.com/items"
    headers: {X-Trace: "t-${{ instance.id }}"}
    query: {n: "${{ input.n }}", ids: "${{ [1, 2] }}"}
`)
	h := d.Steps[0].HTTP
	done := make(chan error)
	for i := range 8 {
		go func() {
			env := &Env{Input: map[string]any{"n": i}, Instance: Instance{ID: "i"}}
			for range 200 {
				q, err := EvaluateMap(h.Query, env)
				if err != nil {
					done <- err
					return
				}
				if !reflect.DeepEqual(q, map[string]any{"n": i, "ids": []any{1, 2}}) {
					done <- errors.New("wrong query")
					return
				}
			}
			hd, err := EvaluateMap(h.Headers, env)
			if err == nil && hd["X-Trace"] != "t-i" {
				err = errors.New("wrong header")
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestProblemWithoutFile(t *testing.T) {
	_, err := Parse([]byte("name: t\nsteps:\n  - {id: a, type: nope}\n"), "")
	if want := `line 3:19: t: step "a": type: unknown step type "nope" (want one of http, oauth_server_login, oauth_user_login, oauth_refresh, task, switch, set, wait, return, fail, email, flow, parallel, foreach)`; err == nil || err.Error() != want {
		t.Errorf("got  %v\nwant %s", err, want)
	}
}
