package engine_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// A loop through http steps and waits used to run forever: the budget
// started again after every durable point. It is counted over the
// instance's life, across resumes, and the instance fails when it is
// spent, with no record for the step that did not run.
func TestStepBudgetCountsOverTheInstancesLife(t *testing.T) {
	var calls atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{MaxSteps: 31})
	deploy(t, e, `
name: forever
permissions: {start: ["role:employee"]}
steps:
  - id: loop
    type: switch
    cases:
      - when: "${{ true }}"
        next: call
  - id: call
    type: http
    url: `+target.URL+`
  - id: nap
    type: wait
    duration: 1ms
    next: loop
`)
	started, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "forever", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, s, started.Instance.ID, store.StatusFailed, store.StatusCompleted)
	if inst.Status != store.StatusFailed || !strings.HasPrefix(inst.Error, "step_budget_exhausted:") || !strings.Contains(inst.Error, "31 steps") {
		t.Fatalf("instance %s: %q", inst.Status, inst.Error)
	}
	h := history(t, s, inst.ID)
	if len(h) != 31 || inst.Seq != 31 {
		t.Errorf("history holds %d records (seq %d), want 31", len(h), inst.Seq)
	}
	// loop, call, nap ×10, then loop: step 32 would have been a call.
	if n := calls.Load(); n != 10 || inst.CurrentStep != "call" {
		t.Errorf("the target was called %d times, the instance stopped at %q; want 10 calls, stopped at call", n, inst.CurrentStep)
	}
}

// A set step that makes vars larger than the limit fails, and the
// instance keeps the vars it had.
func TestVarsLimitFailsTheStepThatMadeThem(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{MaxVars: 100})
	deploy(t, e, `
name: grow
permissions: {start: ["role:employee"]}
input:
  s: {type: string, required: true}
steps:
  - id: small
    type: set
    vars: {n: 1}
  - id: big
    type: set
    vars: {copy: "${{ input.s }}", more: 2}
  - id: done
    type: return
    body: {ok: true}
`)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "grow", Input: map[string]any{"s": strings.Repeat("x", 60)}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance.Status != store.StatusCompleted {
		t.Fatalf("under the limit: %s %q", res.Instance.Status, res.Instance.Error)
	}
	res, err = e.Invoke(t.Context(), engine.StartRequest{Workflow: "grow", Input: map[string]any{"s": strings.Repeat("x", 200)}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	inst := res.Instance
	if inst.Status != store.StatusFailed || !strings.Contains(inst.Error, `step "big"`) || !strings.Contains(inst.Error, "vars_too_large") ||
		!strings.Contains(inst.Error, "limits.max_vars (100 bytes)") {
		t.Fatalf("over the limit: %s %q", inst.Status, inst.Error)
	}
	if string(inst.Vars) != `{"n":1}` {
		t.Errorf("vars = %s, want those before the failed step", inst.Vars)
	}
	h := history(t, s, inst.ID)
	if last := h[len(h)-1]; last.StepID != "big" || last.Status != store.StepFailed {
		t.Errorf("last record = %+v, want big failed", last)
	}
}

// Every http step's request says how deep its instance is, whatever the
// flow's own headers say; a start one deeper than the limit is refused
// before anything is written.
func TestDepthHeaderAndLimit(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, strings.Join(r.Header.Values(engine.DepthHeader), ","))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: caller
permissions: {start: ["role:employee"]}
steps:
  - id: call
    type: http
    url: `+target.URL+`
    headers: {flowgate-depth: "0"}
  - id: done
    type: return
`)
	for _, depth := range []int{0, 3, engine.MaxDepth - 1} {
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "caller", Caller: alice, CallerDepth: depth}, false)
		if err != nil {
			t.Fatal(err)
		}
		if res.Instance.Status != store.StatusCompleted || res.Instance.Depth != depth+1 {
			t.Errorf("caller depth %d: instance %s %q at depth %d", depth, res.Instance.Status, res.Instance.Error, res.Instance.Depth)
		}
		if got := getInstanceDepth(t, s, res.Instance.ID); got != depth+1 {
			t.Errorf("caller depth %d: stored depth %d", depth, got)
		}
	}
	mu.Lock()
	if got := strings.Join(seen, " "); got != "1 4 8" {
		t.Errorf("%s headers seen: %q, want 1 4 8", engine.DepthHeader, got)
	}
	mu.Unlock()

	_, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "caller", Caller: alice, CallerDepth: engine.MaxDepth})
	if !errors.Is(err, engine.ErrTooDeep) || !strings.Contains(err.Error(), "9 deep") {
		t.Fatalf("start at depth 9: %v, want ErrTooDeep", err)
	}
	list, _, err := s.ListInstances(t.Context(), store.InstanceFilter{}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Errorf("%d instances, want the 3 allowed: the refused start wrote one", len(list))
	}
}

func getInstanceDepth(t *testing.T, s store.Store, id string) int {
	t.Helper()
	inst, err := s.GetInstance(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return inst.Depth
}

// A loop of switch steps alone is ended by the step budget too, however
// many records that makes (it used to fail after 1000 with another
// message), and is committed on the way in bounded batches.
func TestPureLoopEndsAtTheStepBudget(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{MaxSteps: 2500})
	deploy(t, e, `
name: spin
permissions: {start: ["role:employee"]}
steps:
  - id: again
    type: switch
    cases:
      - when: "${{ true }}"
        next: again
`)
	started, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "spin", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, s, started.Instance.ID, store.StatusFailed, store.StatusCompleted)
	if inst.Status != store.StatusFailed || !strings.HasPrefix(inst.Error, "step_budget_exhausted: the instance ran 2500 steps") {
		t.Fatalf("instance %s: %q", inst.Status, inst.Error)
	}
	n := 0
	cursor := ""
	for {
		recs, next, err := s.History(t.Context(), inst.ID, store.Page{Limit: store.MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		n += len(recs)
		if next == "" {
			break
		}
		cursor = next
	}
	if n != 2500 {
		t.Errorf("history holds %d records, want 2500", n)
	}
}
