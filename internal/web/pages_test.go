package web

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/vault"
)

// Every page renders in the layout with data of the shape its handler
// gives it: html/template finds a wrong field name only when it executes.
func TestPagesRender(t *testing.T) {
	rd, err := newRenderer()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	task := store.Task{Serial: 7, Type: "task", Title: "Review <it>", Workflow: "leave", InstanceID: "i-1", Status: store.TaskOpen,
		Actions: []string{"Approve", "Reject"}, CreatedAt: now,
		Form: []byte(`{"days":{"type":"integer","required":true,"description":"Days"},"kind":{"type":"string","enum":["sick","annual"]},"paid":{"type":"boolean"},"extra":{"type":"object"}}`)}
	fields, err := formFields(task.Form)
	if err != nil {
		t.Fatal(err)
	}
	fields[0].Error = "want integer, got 1.5"
	connect := store.Task{Serial: 8, Type: "connect", Title: "Sign in to peer", ConnectURL: "http://x/connect/i/s", Status: store.TaskOpen, CreatedAt: now}
	for name, data := range map[string]any{
		"home": struct {
			Tasks     []taskRow
			Instances []store.Instance
			Flows     []*flow.Definition
		}{taskRows([]store.Task{task}, now), []store.Instance{{ID: "i-1", Workflow: "leave", Status: "waiting", StartedAt: now}}, []*flow.Definition{{Name: "leave", Title: "Leave"}}},
		"tasks": struct {
			Tasks []taskRow
			Next  string
		}{taskRows([]store.Task{task, connect}, now), "/tasks?cursor=x"},
		"task":   taskPage{Task: task, Fields: fields, Error: "Please correct the fields marked below."},
		"status": "There is nothing for you at this address.",
		"flows": struct {
			Flows []*flow.Definition
			Next  string
		}{[]*flow.Definition{{Name: "leave", Title: "Leave", Version: 2}}, "/flows?cursor=x"},
		"flow": flowStartPage{Flow: &flow.Definition{Name: "leave", Title: "Leave", Version: 2}, Diagram: "<svg></svg>", Fields: fields,
			Versions: []flowVersion{{Version: 2, Latest: true}, {Version: 1}}, Error: "Please correct the fields marked below."},
		"instances": &instanceListPage{Instances: []store.Instance{{ID: "i-1", Workflow: "leave", Status: "waiting", StartedAt: now}}, All: true,
			Statuses: instanceStatuses(), Status: "bogus", StatusError: `"bogus" is not an instance status`, Next: "/instances?cursor=x"},
		"instance": instancePage{Instance: store.Instance{ID: "i-1", Workflow: "leave", Version: 1, Status: "failed", Error: "boom", StartedAt: now, EndedAt: now},
			Vars: "{}", Diagram: "<svg></svg>", MayCancel: false, Error: "instance has ended",
			Parent: "p-1", ParentFlow: "orders", AllChildren: 4,
			Children: []childRow{{ID: "c-1", Flow: "book-line", Status: "completed"}, {ID: "c-2"},
				{ID: "c-3", Flow: "leave", Status: "running", Part: "branch legal of reviews"}},
			History: []historyRow{toHistoryRow(engine.HistoryRecord{StepRecord: store.StepRecord{Seq: 1, StepID: "review", Type: "task", Status: "failed", Attempt: 1, StartedAt: now, EndedAt: now.Add(time.Second), Input: []byte(`{"a":"****"}`), Error: "x"}, Item: -1}),
				toHistoryRow(engine.HistoryRecord{StepRecord: store.StepRecord{Seq: 1, StepID: "legal-ok", Type: "task", Status: "waiting", Attempt: 1, StartedAt: now}, Fork: "reviews", Branch: "legal", Item: -1}),
				toHistoryRow(engine.HistoryRecord{StepRecord: store.StepRecord{Seq: 1, StepID: "price", Type: "set", Status: "completed", Attempt: 1, StartedAt: now, EndedAt: now}, Fork: "each-line", Item: 3})}},
		"connections": connectionsPage{Connections: []vault.Info{{Server: "erp", Scopes: []string{"openid"}, Expiry: now, Status: "reconnect_required"}},
			Reconnect: map[string]string{"erp": "http://x/connect/i/s"}},
		"account": accountPage{Account: store.User{Username: "bob", Roles: []string{"approver"}}, PasswordError: "password must be 8 to 1024 characters",
			Sessions: []sessionRow{{Session: store.Session{AuthTime: now, LastSeen: now, ExpiresAt: now}, Handle: "abc", Current: true}}},
		"connect": taskPage{Task: connect},
	} {
		var buf bytes.Buffer
		tmpl := name
		if name == "connect" {
			tmpl = "task"
		}
		if err := rd.pages[tmpl].ExecuteTemplate(&buf, "layout", view{Title: "T", User: "bob", CSRF: "tok", Data: data}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		html := buf.String()
		if !strings.Contains(html, `name="csrf_token" value="tok"`) || strings.Contains(html, "<it>") {
			t.Errorf("%s: no CSRF token in the sign-out form, or unescaped text:\n%s", name, html)
		}
		// An instance links its parent and its children.
		if name == "instance" {
			for _, want := range []string{`<a href="/instances/p-1">p-1</a> (orders), whose flow step started this instance`,
				`<td><a href="/instances/c-1">c-1</a></td><td>a flow step&#39;s child</td><td>book-line</td><td>completed</td>`,
				`<td><a href="/instances/c-3">c-3</a></td><td>branch legal of reviews</td><td>leave</td><td>running</td>`,
				`the first 3 of 4 children`,
				`<td>legal-ok <span class="meta">task · branch legal of reviews</span></td>`,
				`<td>price <span class="meta">set · item 3 of each-line</span></td>`,
				`<td>review <span class="meta">task</span></td>`} {
				if !strings.Contains(html, want) {
					t.Errorf("instance page lacks %s", want)
				}
			}
		}
		// A connect task is done at its sign-in link, not with a form.
		if (name == "tasks" || name == "connect") && !strings.Contains(html, `<a class="button" href="http://x/connect/i/s">Connect</a>`) {
			t.Errorf("%s has no Connect button for the connect task:\n%s", name, html)
		}
	}
}

// The form keeps the declared field order and reads posted text as the
// JSON value the API would have been sent.
func TestFormFieldsAndValues(t *testing.T) {
	fields, err := formFields([]byte(`{"z":{"type":"number"},"a":{"type":"integer","enum":[1,2]},"b":{"type":"boolean"},"c":{"type":"array"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range fields {
		names = append(names, f.Name)
	}
	if strings.Join(names, ",") != "z,a,b,c" {
		t.Fatalf("field order %v, want z,a,b,c", names)
	}
	for _, c := range []struct {
		f       int
		posted  string
		present bool
		want    any
		ok      bool
	}{
		{0, "2.5", true, 2.5, true},
		{0, "abc", true, "abc", true}, // the engine says what is wrong
		{0, "", true, nil, false},
		{1, "2", true, float64(2), true},
		{2, "", false, false, true},
		{2, "true", true, true, true},
		{3, `[1]`, true, []any{float64(1)}, true},
	} {
		got, ok := fields[c.f].value(c.posted, c.present)
		if ok != c.ok || !equalJSON(got, c.want) {
			t.Errorf("field %s posted %q: %#v %v, want %#v %v", fields[c.f].Name, c.posted, got, ok, c.want, c.ok)
		}
	}
}

func equalJSON(a, b any) bool {
	return strings.TrimSpace(jsonText(a)) == strings.TrimSpace(jsonText(b))
}

func jsonText(v any) string {
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(v)
	return buf.String()
}

// The start form is the flow's input fields in declared order, with
// their defaults and choices, and the engine's problems land next to
// their fields.
func TestStartFormFields(t *testing.T) {
	def, err := flow.Parse([]byte(`name: f
input:
  purpose: {type: string, required: true}
  amount: {type: number, description: "The amount"}
  currency: {type: string, enum: [EUR, USD], default: EUR}
steps:
  - id: a
    type: return
`), "f.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fields := inputFields(def)
	var got []string
	for _, f := range fields {
		got = append(got, f.Name+"="+f.Value+"/"+strings.Join(f.Options, "|"))
	}
	if strings.Join(got, ",") != "purpose=/,amount=/,currency=EUR/EUR|USD" || fields[1].InputType() != "number" || fields[1].Description != "The amount" {
		t.Fatalf("fields: %v", got)
	}
	_, verr := def.ValidateInput(map[string]any{"amount": "abc", "colour": "red"})
	summary := markFields(fields, "input.", flow.InputErrors(verr))
	if fields[0].Error != "required" || !strings.Contains(fields[1].Error, "want number") || fields[2].Error != "" ||
		!strings.Contains(summary, "input.colour: unknown field") {
		t.Fatalf("errors: %q %q %q; summary %q", fields[0].Error, fields[1].Error, fields[2].Error, summary)
	}
}

// A branch or item instance is named by its parent's step: a parallel
// step's branch (even one named with digits) or a foreach step's item.
func TestPartLabel(t *testing.T) {
	def, err := flow.Parse([]byte(`name: orders
steps:
  - id: reviews
    type: parallel
    branches:
      legal: [{id: l, type: set, vars: {a: 1}}]
      "2": [{id: two, type: set, vars: {a: 2}}]
  - id: each-line
    type: foreach
    items: "${{ [1, 2] }}"
    steps: [{id: p, type: set, vars: {a: 3}}]
`), "orders.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		def          *flow.Definition
		branch, want string
	}{
		{def, "reviews/legal", "branch legal of reviews"},
		{def, "reviews/2", "branch 2 of reviews"},
		{def, "each-line/3", "item 3 of each-line"},
		{def, "", ""},
		{nil, "each-line/3", "item 3 of each-line"}, // its version is gone
		{nil, "reviews/legal", "branch legal of reviews"},
	} {
		if got := partLabel(c.def, c.branch); got != c.want {
			t.Errorf("partLabel(%q) = %q, want %q", c.branch, got, c.want)
		}
	}
}

// A flow step's box links to the child its finished record names, or,
// while one flow step waits, to the one flow-step child still running;
// branch and item instances are not flow steps' children.
func TestChildOfStep(t *testing.T) {
	rec := func(s store.StepRecord) engine.HistoryRecord {
		if s.InstanceID == "" {
			s.InstanceID = "i-1"
		}
		return engine.HistoryRecord{StepRecord: s, Item: -1}
	}
	recs := []engine.HistoryRecord{
		rec(store.StepRecord{Seq: 1, StepID: "first", Type: "flow", Status: store.StepCompleted, Output: []byte(`{"instance":"c-1","status":"completed"}`)}),
		rec(store.StepRecord{Seq: 2, StepID: "reviews", Type: "parallel", Status: store.StepCompleted}),
		// A branch's flow step links to its own child; one waiting
		// is not the instance's.
		rec(store.StepRecord{InstanceID: "b-1", Seq: 1, StepID: "in-branch", Type: "flow", Status: store.StepCompleted, Output: []byte(`{"instance":"g-1"}`)}),
		rec(store.StepRecord{InstanceID: "b-2", Seq: 1, StepID: "in-branch-2", Type: "flow", Status: store.StepWaiting}),
		rec(store.StepRecord{Seq: 3, StepID: "second", Type: "flow", Status: store.StepWaiting, Output: []byte(`{"flow":"x","version":1}`)}),
	}
	children := []childRow{
		{ID: "c-1", Flow: "a", Status: store.StatusCompleted},
		{ID: "b-1", Flow: "orders", Status: store.StatusRunning, branch: "reviews/legal"},
		{ID: "c-2", Flow: "x", Status: store.StatusWaiting},
	}
	got := childOfStep("i-1", recs, children)
	if len(got) != 3 || got["first"] != "c-1" || got["second"] != "c-2" || got["in-branch"] != "g-1" {
		t.Errorf("childOfStep = %v, want first c-1, second c-2, in-branch g-1", got)
	}
	// Two flow-step children running: which is whose is not known.
	children = append(children, childRow{ID: "c-3", Flow: "x", Status: store.StatusRunning})
	if got := childOfStep("i-1", recs, children); len(got) != 2 || got["second"] != "" {
		t.Errorf("childOfStep = %v, want first and in-branch alone", got)
	}
}
