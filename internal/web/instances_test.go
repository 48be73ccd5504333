package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

const familyFlows = `
name: credit
permissions: {start: ["role:employee"]}
steps:
  - id: review
    type: task
    title: Check the credit
    assignees: ["role:approver"]
    actions: [OK]
    next: {OK: ok}
  - {id: ok, type: return}
---
name: order
permissions: {start: ["role:employee"]}
steps:
  - id: check-credit
    type: flow
    flow: credit
  - {id: done, type: return}
`

// page renders a page for the signed-in user.
func (e *benchEnv) page(t *testing.T, path string) string {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range e.cookie {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	body, _ := io.ReadAll(rec.Body)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d\n%.2000s", path, rec.Code, body)
	}
	return string(body)
}

// An instance's page links the instance its flow step started, in its
// children and on its diagram, and the child's page links its parent,
// for the user who started them; an assignee of the child's task who may
// not see the parent gets its id alone.
func TestInstancePageParentAndChildren(t *testing.T) {
	e, eng := newBenchEnv(t)
	ctx := t.Context()
	for i, src := range strings.Split(familyFlows, "---\n") {
		if _, _, err := eng.Deploy(ctx, []byte(src), []string{"credit.yaml", "order.yaml"}[i], "test"); err != nil {
			t.Fatal(err)
		}
	}
	started, err := eng.StartInstance(ctx, engine.StartRequest{Workflow: "order", Input: map[string]any{}, Caller: emma})
	if err != nil {
		t.Fatal(err)
	}
	parent := started.Instance.ID
	var child string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		kids, err := eng.Children(ctx, parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(kids) == 1 {
			if in, err := eng.VisibleInstance(ctx, kids[0], emma); err == nil && in.Status == store.StatusWaiting {
				child = kids[0]
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no waiting child of %s: %v", parent, kids)
		}
	}
	e.signIn(t, "emma", "bench-password-1")
	html := e.page(t, "/instances/"+parent)
	for _, want := range []string{
		`<td><a href="/instances/` + child + `">` + child + `</a></td><td>a flow step&#39;s child</td><td>credit</td><td>waiting</td>`,
		`<a href="/instances/` + child + `" aria-label="Step check-credit: child instance of credit">`,
		`<g class="node link taken current" data-step="check-credit">`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the parent's page lacks %s", want)
		}
	}
	if strings.Contains(html, `id="parent"`) {
		t.Error("the parent's page names a parent")
	}
	html = e.page(t, "/instances/"+child)
	if want := `<a href="/instances/` + parent + `">` + parent + `</a> (order), whose flow step started this instance`; !strings.Contains(html, want) {
		t.Errorf("the child's page lacks %s", want)
	}
	if strings.Contains(html, `id="h-children"`) {
		t.Error("the child's page lists children")
	}
	// victor is the child's assignee: he sees it, not its parent.
	e.signIn(t, "victor", "bench-password-1")
	html = e.page(t, "/instances/"+child)
	if want := `<dd id="parent">` + parent + `, whose flow step started this instance</dd>`; !strings.Contains(html, want) {
		t.Errorf("the assignee's view of the child lacks %s", want)
	}
}

const reviewsFlow = `
name: reviews
permissions: {start: ["role:employee"]}
steps:
  - id: reviews
    type: parallel
    branches:
      legal:
        - {id: legal-ok, type: task, title: Legal, assignees: ["role:approver"], actions: [OK]}
      finance:
        - {id: finance-note, type: set, vars: {noted: true}}
        - {id: finance-ok, type: task, title: Finance, assignees: ["role:approver"], actions: [OK]}
  - {id: done, type: return}
`

// While a parallel step's branches wait at their tasks, the instance's
// page marks both tasks current inside the step's frame and the steps
// the branches took, lists the branch instances as its children, and
// shows their records in its history, each with its branch.
func TestInstancePageBranches(t *testing.T) {
	e, eng := newBenchEnv(t)
	ctx := t.Context()
	if _, _, err := eng.Deploy(ctx, []byte(reviewsFlow), "reviews.yaml", "test"); err != nil {
		t.Fatal(err)
	}
	started, err := eng.StartInstance(ctx, engine.StartRequest{Workflow: "reviews", Input: map[string]any{}, Caller: emma})
	if err != nil {
		t.Fatal(err)
	}
	id := started.Instance.ID
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		in, err := eng.VisibleInstance(ctx, id, emma)
		if err != nil {
			t.Fatal(err)
		}
		cur, err := eng.CurrentSteps(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		if len(cur) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("current steps %+v, want reviews, legal-ok, finance-ok", cur)
		}
	}
	e.signIn(t, "emma", "bench-password-1")
	html := e.page(t, "/instances/"+id)
	for _, want := range []string{
		`<g class="frame parallel taken current" data-step="reviews"`,
		`<g class="node taken current" data-step="legal-ok">`,
		`<g class="node taken current" data-step="finance-ok">`,
		`<g class="node taken" data-step="finance-note">`,
		`<g class="edge taken" data-from="finance-note" data-to="finance-ok">`,
		`<td>branch legal of reviews</td><td>reviews</td><td>waiting</td>`,
		`<td>branch finance of reviews</td><td>reviews</td><td>waiting</td>`,
		`<td>finance-note <span class="meta">set · branch finance of reviews</span></td>`,
	} {
		if !strings.Contains(html, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if !strings.Contains(html, `<g class="node terminal" data-step="done">`) {
		t.Error("done is not drawn unmarked before the branches joined")
	}
}
