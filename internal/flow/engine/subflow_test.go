package engine_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

const creditCheckFlow = `
name: credit-check
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: check
    type: switch
    cases: [{when: "${{ input.amount > 1000 }}", next: deny}]
  - id: review
    type: task
    title: "Credit for ${{ input.amount }}"
    assignees: ["role:approver"]
    actions: [OK]
    next: {OK: ok}
  - {id: ok, type: return, body: {verdict: ok, by: "${{ user.id }}"}}
  - {id: deny, type: fail, error: "too much: ${{ input.amount }}"}
`

const orderFlow = `
name: order
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: credit
    type: flow
    flow: credit-check
    input: {amount: "${{ input.amount }}"}
  - id: done
    type: return
    body:
      child: "${{ steps.credit.output.instance }}"
      status: "${{ steps.credit.output.status }}"
      verdict: "${{ steps.credit.output.output.body.verdict }}"
      by: "${{ steps.credit.output.output.body.by }}"
`

func TestSubflowSucceeds(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, creditCheckFlow)
		deploy(t, e, orderFlow)
		ctx := t.Context()
		res, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 50}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		parent := waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
		if parent.CurrentStep != "credit" {
			t.Fatalf("parent waits at %q", parent.CurrentStep)
		}
		kids, err := e.Children(ctx, parent.ID)
		if err != nil || len(kids) != 1 {
			t.Fatalf("children %v %v", kids, err)
		}
		child := waitStatus(t, s, kids[0], store.StatusWaiting)
		if child.Parent != parent.ID || child.Workflow != "credit-check" || child.StartedBy != alice.ID || child.Depth != parent.Depth+1 {
			t.Errorf("child %+v: want parent %s, started by alice, one deeper", child, parent.ID)
		}
		tasks, _, err := e.ListTasks(ctx, bob, false, "", store.Page{})
		if err != nil || len(tasks) != 1 || tasks[0].InstanceID != child.ID {
			t.Fatalf("bob's worklist %+v %v", tasks, err)
		}
		if _, err := e.Act(ctx, tasks[0].Serial, "OK", nil, bob); err != nil {
			t.Fatal(err)
		}
		parent = waitStatus(t, s, parent.ID, store.StatusCompleted, store.StatusFailed)
		b := responseBody(t, parent)
		if parent.Status != store.StatusCompleted || b["child"] != child.ID || b["status"] != store.StatusCompleted || b["verdict"] != "ok" || b["by"] != alice.ID {
			t.Errorf("parent %s %q, body %v", parent.Status, parent.Error, b)
		}
		var steps []string
		for _, r := range history(t, s, parent.ID) {
			steps = append(steps, r.StepID+":"+r.Status)
		}
		if !slices.Equal(steps, []string{"credit:completed", "done:completed"}) {
			t.Errorf("parent history %v", steps)
		}
	})
}

func TestSubflowFailsAndRefusals(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, creditCheckFlow)
		deploy(t, e, orderFlow)
		ctx := t.Context()
		res, err := e.Invoke(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 5000}, Caller: alice}, false)
		if err != nil {
			t.Fatal(err)
		}
		parent := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		kids, _ := e.Children(ctx, parent.ID)
		if parent.Status != store.StatusFailed || len(kids) != 1 || !contains(parent.Error, `step "credit"`) ||
			!contains(parent.Error, "ended failed") || !contains(parent.Error, "too much: 5000") {
			t.Fatalf("parent %s %q, children %v", parent.Status, parent.Error, kids)
		}
		if child, _ := s.GetInstance(ctx, kids[0]); child.Status != store.StatusFailed {
			t.Errorf("child %s", child.Status)
		}

		// The child flow is checked against the starter's permissions.
		deploy(t, e, `
name: secret-check
permissions: {start: ["role:auditor"]}
steps: [{id: end, type: return}]
`)
		deploy(t, e, `
name: sneaky
permissions: {start: ["role:employee"]}
steps:
  - {id: peek, type: flow, flow: secret-check, on_error: refused}
  - {id: done, type: return}
  - {id: refused, type: return, status: 403, body: "${{ steps.peek.error }}"}
`)
		res, err = e.Invoke(ctx, engine.StartRequest{Workflow: "sneaky", Caller: alice}, false)
		if err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		if b := responseBody(t, inst); !contains(string(inst.Output), `"status":403`) || !contains(b["message"].(string), "may not start secret-check") {
			t.Errorf("forbidden child: %s %s", inst.Status, inst.Output)
		}
		if kids, _ := e.Children(ctx, inst.ID); len(kids) != 0 {
			t.Errorf("a forbidden child was started: %v", kids)
		}
	})
}

// A flow that starts itself stops at the depth limit: the deepest flow
// step fails, and with it every instance above.
func TestSubflowDepthLimit(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: nest
permissions: {start: ["role:employee"]}
steps: [{id: again, type: flow, flow: nest}]
`)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "nest", Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	top := waitStatus(t, s, res.Instance.ID, store.StatusFailed, store.StatusCompleted)
	if top.Status != store.StatusFailed {
		t.Fatalf("top %s", top.Status)
	}
	all, _, err := s.ListInstances(t.Context(), store.InstanceFilter{Workflow: "nest"}, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != engine.MaxDepth {
		t.Errorf("%d instances, want %d (the limit)", len(all), engine.MaxDepth)
	}
	deepest := 0
	for _, in := range all {
		if in.Status != store.StatusFailed {
			t.Errorf("instance at depth %d is %s", in.Depth, in.Status)
		}
		if in.Depth > deepest {
			deepest = in.Depth
			if !contains(in.Error, "too many instances deep") {
				t.Errorf("deepest error %q", in.Error)
			}
		}
	}
	if deepest != engine.MaxDepth {
		t.Errorf("deepest %d", deepest)
	}
}

// Cancelling the parent cancels the waiting child and closes its task.
func TestSubflowCancelCascades(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, creditCheckFlow)
		deploy(t, e, orderFlow)
		ctx := t.Context()
		res, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 50}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
		kids, _ := e.Children(ctx, res.Instance.ID)
		if len(kids) != 1 {
			t.Fatalf("children %v", kids)
		}
		waitStatus(t, s, kids[0], store.StatusWaiting)
		if _, err := e.Cancel(ctx, res.Instance.ID, alice); err != nil {
			t.Fatal(err)
		}
		child := waitStatus(t, s, kids[0], store.StatusCancelled, store.StatusCompleted, store.StatusFailed)
		if child.Status != store.StatusCancelled {
			t.Errorf("child %s", child.Status)
		}
		if tasks, _, _ := e.ListTasks(ctx, bob, false, store.TaskOpen, store.Page{}); len(tasks) != 0 {
			t.Errorf("the child's task is still open: %+v", tasks)
		}
		if p, _ := s.GetInstance(ctx, res.Instance.ID); p.Status != store.StatusCancelled {
			t.Errorf("parent %s after the child's cancel woke it", p.Status)
		}
	})
}

// docExamples returns the yaml blocks of the docs/flows.md section under
// heading, up to the next heading.
func docExamples(t *testing.T, heading string) []string {
	t.Helper()
	b, err := os.ReadFile("../../../docs/flows.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	i := strings.Index(doc, "\n"+heading+"\n")
	if i < 0 {
		t.Fatalf("docs/flows.md has no %q", heading)
	}
	doc = doc[i+len(heading)+2:]
	if j := strings.Index(doc, "\n#"); j >= 0 {
		doc = doc[:j]
	}
	var out []string
	for {
		start := strings.Index(doc, "```yaml\n")
		if start < 0 {
			return out
		}
		doc = doc[start+len("```yaml\n"):]
		end := strings.Index(doc, "```")
		out = append(out, doc[:end])
		doc = doc[end+3:]
	}
}

// The two flows of docs/flows.md run as written: a small amount is quoted
// with the child's id, a large one is caught by on_error with the child's
// failure.
func TestSubflowDocExample(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	examples := docExamples(t, "### `flow` — start another flow and wait for it")
	if len(examples) != 2 {
		t.Fatalf("%d examples", len(examples))
	}
	for _, src := range examples {
		deploy(t, e, src)
	}
	sam := engine.Caller{User: flow.User{ID: "user:sam", Kind: "user", Subject: "sam", Issuer: "flowgate", Roles: []string{"sales"}}}
	for _, tc := range []struct {
		amount float64
		status int
		check  func(b map[string]any) bool
	}{
		{500, 200, func(b map[string]any) bool { id, _ := b["checked_by"].(string); return id != "" }},
		{50000, 409, func(b map[string]any) bool {
			r, _ := b["reason"].(string)
			return contains(r, "acme is over the limit") && contains(r, "ended failed")
		}},
	} {
		res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "quote", Input: map[string]any{"customer": "acme", "amount": tc.amount}, Caller: sam})
		if err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		var resp engine.Response
		_ = json.Unmarshal(inst.Output, &resp)
		if b, _ := resp.Body.(map[string]any); inst.Status != store.StatusCompleted || resp.Status != tc.status || !tc.check(b) {
			t.Errorf("amount %v: %s %q, answer %s", tc.amount, inst.Status, inst.Error, inst.Output)
		}
	}
}

// Two servers on one database: the one that started the parent stops
// while parent and child wait; the other acts on the child's task, and the
// child's end wakes the parent there, which completes once.
func TestSubflowWakesParentOnAnotherServer(t *testing.T) {
	pg := openPostgresStores(t)
	a := newEngine(t, pg[0], engine.Config{})
	deploy(t, a, creditCheckFlow)
	deploy(t, a, orderFlow)
	ctx := t.Context()
	res, err := a.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 70}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, pg[0], res.Instance.ID, store.StatusWaiting)
	kids, _ := a.Children(ctx, res.Instance.ID)
	if len(kids) != 1 {
		t.Fatalf("children %v", kids)
	}
	waitStatus(t, pg[0], kids[0], store.StatusWaiting)
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	b := newEngine(t, pg[1], engine.Config{})
	tasks, _, err := b.ListTasks(ctx, bob, false, store.TaskOpen, store.Page{})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("tasks %v %v", tasks, err)
	}
	if _, err := b.Act(ctx, tasks[0].Serial, "OK", nil, bob); err != nil {
		t.Fatal(err)
	}
	parent := waitStatus(t, pg[1], res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if body := responseBody(t, parent); parent.Status != store.StatusCompleted || body["child"] != kids[0] {
		t.Fatalf("parent %s %q %v", parent.Status, parent.Error, body)
	}
	var ends int
	for _, r := range history(t, pg[1], parent.ID) {
		if r.StepID == "done" {
			ends++
		}
	}
	if ends != 1 {
		t.Errorf("the parent ran its last step %d times", ends)
	}
}

// A server that dies after creating the child but before recording it
// (the parent's row then holds the flow step's record and no child id,
// still leased to the dead server): the server that takes the parent over
// finds the same child by its key instead of starting a second one.
func TestSubflowTakeoverFindsTheSameChild(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		ctx := t.Context()
		a := newEngine(t, s, engine.Config{})
		deploy(t, a, creditCheckFlow)
		deploy(t, a, orderFlow)
		res, err := a.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 70}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		parent := waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
		kids, _ := a.Children(ctx, parent.ID)
		if len(kids) != 1 {
			t.Fatalf("children %v", kids)
		}
		waitStatus(t, s, kids[0], store.StatusWaiting)
		if err := a.Close(ctx); err != nil {
			t.Fatal(err)
		}
		// Roll the parent back to the moment after the child's creation.
		var st map[string]any
		if err := json.Unmarshal(parent.State, &st); err != nil {
			t.Fatal(err)
		}
		child, _ := st["child"].(map[string]any)
		if child["id"] != kids[0] {
			t.Fatalf("the parent's state does not name its child: %s", parent.State)
		}
		delete(child, "id")
		rolled := parent
		rolled.State, _ = json.Marshal(st)
		rolled.Status, rolled.Owner, rolled.LeaseUntil = store.StatusRunning, "dead-server", time.Now().Add(-time.Minute)
		if err := s.CommitInstance(ctx, store.InstanceCommit{Instance: rolled, ExpectOwner: ""}); err != nil {
			t.Fatal(err)
		}
		b := newEngine(t, s, engine.Config{Lease: time.Second, Sweep: 200 * time.Millisecond})
		deadline := time.Now().Add(20 * time.Second)
		for {
			p, err := s.GetInstance(ctx, parent.ID)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status == store.StatusWaiting && p.Owner == "" && contains(string(p.State), kids[0]) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("parent not taken over: %s owner %q state %s", p.Status, p.Owner, p.State)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if again, _ := b.Children(ctx, parent.ID); !slices.Equal(again, kids) {
			t.Fatalf("children after the takeover %v, want %v", again, kids)
		}
		tasks, _, err := b.ListTasks(ctx, bob, false, store.TaskOpen, store.Page{})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("tasks %v %v", tasks, err)
		}
		if _, err := b.Act(ctx, tasks[0].Serial, "OK", nil, bob); err != nil {
			t.Fatal(err)
		}
		if p := waitStatus(t, s, parent.ID, store.StatusCompleted, store.StatusFailed); p.Status != store.StatusCompleted || responseBody(t, p)["child"] != kids[0] {
			t.Errorf("parent %s %q %s", p.Status, p.Error, p.Output)
		}
	})
}

// Cancelling the child alone ends its wait in the parent: the flow step
// fails with the child's cancel, and the parent with it.
func TestSubflowChildCancelledFailsTheStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, creditCheckFlow)
		deploy(t, e, orderFlow)
		ctx := t.Context()
		res, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{"amount": 50}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
		kids, _ := e.Children(ctx, res.Instance.ID)
		if len(kids) != 1 {
			t.Fatalf("children %v", kids)
		}
		waitStatus(t, s, kids[0], store.StatusWaiting)
		if _, err := e.Cancel(ctx, kids[0], alice); err != nil {
			t.Fatal(err)
		}
		p := waitStatus(t, s, res.Instance.ID, store.StatusFailed, store.StatusCompleted, store.StatusCancelled)
		if p.Status != store.StatusFailed || !contains(p.Error, "ended cancelled") || !contains(p.Error, "cancelled by user:alice") {
			t.Errorf("parent %s %q", p.Status, p.Error)
		}
	})
}
