package engine_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

// onErrorFlow catches an http step's 500 after its retries in a return
// that reports steps.call.error, and a fail step's failure in a task whose
// title and the return after it read steps.refuse.error across a commit.
const onErrorFlow = `
name: catcher
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
  mode: {type: string, required: true}
steps:
  - id: route
    type: switch
    cases: [{when: "${{ input.mode == 'refuse' }}", next: refuse}]
  - id: call
    type: http
    url: "${{ input.url }}"
    retry: {attempts: 3, backoff: 10ms}
    on_error: call-failed
  - {id: ok, type: return, body: {via: "${{ steps.call.output.status }}"}}
  - id: call-failed
    type: return
    status: 502
    body:
      message: "${{ steps.call.error.message }}"
      type: "${{ steps.call.error.type }}"
      status: "${{ steps.call.error.status }}"
  - id: refuse
    type: fail
    error: "refused for ${{ user.id }}"
    on_error: review
  - id: review
    type: task
    title: "Look at: ${{ steps.refuse.error.message }}"
    assignees: ["role:approver"]
    actions: [Done]
    next: {Done: reviewed}
  - id: reviewed
    type: return
    body: {message: "${{ steps.refuse.error.message }}", type: "${{ steps.refuse.error.type }}"}
`

// keyedStatus answers 500 until fail is false, counting requests per
// Idempotency-Key.
type keyedStatus struct {
	mu    sync.Mutex
	fail  bool
	calls map[string]int
}

func (k *keyedStatus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.mu.Lock()
	k.calls[r.Header.Get("Idempotency-Key")]++
	fail := k.fail
	k.mu.Unlock()
	if fail {
		http.Error(w, "boom", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok": true}`))
}

func TestOnErrorCatchesHTTP500AfterRetries(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		target := &keyedStatus{fail: true, calls: map[string]int{}}
		srv := httptest.NewServer(target)
		defer srv.Close()
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, onErrorFlow)
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "catcher", Input: map[string]any{"url": srv.URL, "mode": "call"}, Caller: alice}, true)
		if err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		if inst.Status != store.StatusCompleted || inst.Error != "" {
			t.Fatalf("caught failure should complete the instance: %s %q", inst.Status, inst.Error)
		}
		body := responseBody(t, inst)
		if body["type"] != "http_status" || body["status"] != float64(500) || !contains(body["message"].(string), "500") {
			t.Errorf("steps.call.error as the flow read it: %v", body)
		}
		if !contains(string(inst.Output), `"status":502`) {
			t.Errorf("the on_error step's return did not answer: %s", inst.Output)
		}
		// Three attempts, one visit: one key, three calls; nothing after.
		target.mu.Lock()
		if len(target.calls) != 1 {
			t.Errorf("keys %v, want one", target.calls)
		}
		for _, n := range target.calls {
			if n != 3 {
				t.Errorf("%d calls, want 3 (the retries, then on_error)", n)
			}
		}
		target.mu.Unlock()
		var steps []string
		for _, r := range history(t, s, inst.ID) {
			steps = append(steps, r.StepID+":"+r.Status)
		}
		want := "route:completed call:failed call:failed call:failed call-failed:completed"
		if got := strings.Join(steps, " "); got != want {
			t.Errorf("history %s, want %s", got, want)
		}

		// The same flow with a healthy target never goes to on_error.
		target.mu.Lock()
		target.fail = false
		target.mu.Unlock()
		res, err = e.Invoke(t.Context(), engine.StartRequest{Workflow: "catcher", Input: map[string]any{"url": srv.URL, "mode": "call"}, Caller: alice}, true)
		if err != nil {
			t.Fatal(err)
		}
		inst = waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		if b := responseBody(t, inst); inst.Status != store.StatusCompleted || b["via"] != float64(200) {
			t.Errorf("healthy call: %s %v", inst.Status, b)
		}
	})
}

func TestOnErrorCatchesFailStep(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, onErrorFlow)
		ctx := t.Context()
		res, err := e.Invoke(ctx, engine.StartRequest{Workflow: "catcher", Input: map[string]any{"url": "http://127.0.0.1:1", "mode": "refuse"}, Caller: alice}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance.Status != store.StatusWaiting || res.Instance.CurrentStep != "review" {
			t.Fatalf("the fail step's on_error should open the task: %s at %q (%q)", res.Instance.Status, res.Instance.CurrentStep, res.Instance.Error)
		}
		tasks, _, err := e.ListTasks(ctx, bob, false, "", store.Page{})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("bob's worklist: %v %v", tasks, err)
		}
		if tasks[0].Title != "Look at: refused for user:alice" {
			t.Errorf("task title %q", tasks[0].Title)
		}
		if _, err := e.Act(ctx, tasks[0].Serial, "Done", nil, bob); err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		// The task's action resumed the instance from the store: the
		// caught error came back with it.
		if b := responseBody(t, inst); inst.Status != store.StatusCompleted || b["message"] != "refused for user:alice" || b["type"] != "fail" {
			t.Errorf("after the task: %s %v", inst.Status, b)
		}
		recs := history(t, s, inst.ID)
		if len(recs) < 2 || recs[1].StepID != "refuse" {
			t.Fatalf("history %+v", recs)
		}
	})
}

// The example of docs/flows.md runs as written: the ERP's 500s after the
// retry open the ops task, whose action ends the instance with the status
// read from steps.post_order.error.
func TestOnErrorDocExample(t *testing.T) {
	target := &keyedStatus{fail: true, calls: map[string]int{}}
	srv := httptest.NewServer(target)
	defer srv.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, docExamples(t, "## Error paths: `on_error`")[0])
	ctx := t.Context()
	sales := engine.Caller{User: flow.User{ID: "user:sam", Kind: "user", Subject: "sam", Issuer: "flowgate", Roles: []string{"sales"}}}
	ops := engine.Caller{User: flow.User{ID: "user:olga", Kind: "user", Subject: "olga", Issuer: "flowgate", Roles: []string{"ops"}}}
	res, err := e.Invoke(ctx, engine.StartRequest{Workflow: "place-order", Input: map[string]any{"erp": srv.URL, "order": map[string]any{"sku": "A-1"}}, Caller: sales}, false)
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, s, res.Instance.ID, store.StatusWaiting, store.StatusFailed, store.StatusCompleted)
	for inst.Status == store.StatusWaiting && inst.CurrentStep == "post_order" {
		time.Sleep(50 * time.Millisecond) // the retry's backoff
		inst = waitStatus(t, s, res.Instance.ID, store.StatusWaiting, store.StatusFailed, store.StatusCompleted)
	}
	if inst.CurrentStep != "ask-ops" {
		t.Fatalf("instance %s at %q (%q), want waiting at ask-ops", inst.Status, inst.CurrentStep, inst.Error)
	}
	tasks, _, err := e.ListTasks(ctx, ops, false, "", store.Page{})
	if err != nil || len(tasks) != 1 || !contains(tasks[0].Title, "500") {
		t.Fatalf("ops worklist: %+v %v", tasks, err)
	}
	if _, err := e.Act(ctx, tasks[0].Serial, "Entered by hand", nil, ops); err != nil {
		t.Fatal(err)
	}
	inst = waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if b := responseBody(t, inst); inst.Status != store.StatusCompleted || b["erp_status"] != float64(500) {
		t.Errorf("end: %s %v", inst.Status, b)
	}
	for _, n := range target.calls {
		if n != 2 {
			t.Errorf("%d calls to the ERP, want 2", n)
		}
	}
}
