package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
)

func openStore(t *testing.T) backend.Store {
	t.Helper()
	s, err := openBenchSQLite(t)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openBenchSQLite(tb testing.TB) (backend.Store, error) {
	s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "flowgate.db"), store.Options{Sealer: storetest.NewSealer(tb)})
	if err != nil {
		return nil, err
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, nil
}

// openQueue opens a job queue on s, as a server does for its engine.
func openQueue(tb testing.TB, s backend.Store) engine.Queue {
	tb.Helper()
	q, err := s.OpenQueue(tb.Context(), slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	return q
}

// newEngine starts an engine on s, with a queue of its own unless
// cfg.NoQueue.
func newEngine(t *testing.T, s backend.Store, cfg engine.Config) *engine.Engine {
	t.Helper()
	cfg.Store = s
	if cfg.Queue == nil && !cfg.NoQueue {
		cfg.Queue = openQueue(t, s)
	}
	if cfg.Egress == nil {
		cfg.Egress = egresstest.Loopback() // the tests' servers are on 127.0.0.1
	}
	if cfg.Lease == 0 {
		cfg.Lease = 2 * time.Second
	}
	if cfg.Sweep == 0 {
		cfg.Sweep = 500 * time.Millisecond
	}
	e, err := engine.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("close engine: %v", err)
		}
	})
	return e
}

func deploy(t *testing.T, e *engine.Engine, src string) *flow.Definition {
	t.Helper()
	def, _, err := e.Deploy(t.Context(), []byte(src), "test.yaml", "test")
	if err != nil {
		t.Fatalf("deploy: %v", err)
	}
	return def
}

var alice = engine.Caller{User: flow.User{ID: "user:alice", Kind: "user", Subject: "alice", Issuer: "flowgate", Roles: []string{"employee"}}}
var bob = engine.Caller{User: flow.User{ID: "user:bob", Kind: "user", Subject: "bob", Issuer: "flowgate", Roles: []string{"approver"}}}

// waitStatus polls until the instance reaches one of the statuses.
func waitStatus(t *testing.T, s store.Store, id string, statuses ...string) store.Instance {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		inst, err := s.GetInstance(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range statuses {
			if inst.Status == st {
				return inst
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s is %s (at %q, error %q), want one of %v", id, inst.Status, inst.CurrentStep, inst.Error, statuses)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func history(t *testing.T, s store.Store, id string) []store.StepRecord {
	t.Helper()
	recs, _, err := s.History(t.Context(), id, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

const echoFlow = `
name: echo
permissions: {start: ["role:employee"]}
input:
  n: {type: number, required: true}
steps:
  - id: double
    type: set
    vars: {twice: "${{ input.n * 2 }}"}
  - id: check
    type: switch
    cases:
      - when: "${{ vars.twice > 10 }}"
        next: big
  - id: small
    type: return
    status: 200
    headers: {X-Size: small}
    body: {twice: "${{ vars.twice }}", who: "${{ user.id }}"}
  - id: big
    type: return
    status: 201
    body: {big: true}
`

func TestPureFlowCompletesInOneCommit(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, echoFlow)

	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 2}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.Response == nil {
		t.Fatalf("invoke not done: %+v", res)
	}
	if res.Response.Status != 200 || res.Response.Headers["X-Size"] != "small" {
		t.Errorf("response = %+v", res.Response)
	}
	body, _ := json.Marshal(res.Response.Body)
	if string(body) != `{"twice":4,"who":"user:alice"}` {
		t.Errorf("body = %s", body)
	}
	recs := history(t, s, res.Instance.ID)
	var steps []string
	for _, r := range recs {
		steps = append(steps, r.StepID+":"+r.Status)
		if r.EndedAt.IsZero() || r.StartedAt.IsZero() {
			t.Errorf("record %d has no times: %+v", r.Seq, r)
		}
	}
	if got := strings.Join(steps, " "); got != "double:completed check:completed small:completed" {
		t.Errorf("history = %s", got)
	}
	if res.Instance.Status != store.StatusCompleted || res.Instance.EndedAt.IsZero() || res.Instance.Owner != "" {
		t.Errorf("instance = %+v", res.Instance)
	}

	res, err = e.Invoke(t.Context(), engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 6}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Response.Status != 201 {
		t.Errorf("switch did not take the big branch: %+v", res.Response)
	}
}

func TestStartRefusals(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, echoFlow)
	ctx := t.Context()

	if _, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "nope", Caller: alice}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown flow: %v", err)
	}
	if _, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 1}, Caller: bob}); !errors.Is(err, engine.ErrForbidden) {
		t.Errorf("bob may not start: %v", err)
	}
	admin := bob
	admin.Admin = true
	if _, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 1}, Caller: admin}); err != nil {
		t.Errorf("admin start: %v", err)
	}
	_, err := e.StartInstance(ctx, engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": "x"}, Caller: alice})
	var ie *flow.InputError
	if !errors.As(err, &ie) || ie.Field != "input.n" {
		t.Errorf("bad input: %v", err)
	}
	list, _, err := s.ListInstances(ctx, store.InstanceFilter{StartedBy: alice.ID}, store.Page{})
	if err != nil || len(list) != 0 {
		t.Errorf("refused starts left instances: %d %v", len(list), err)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, echoFlow)
	req := engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 1}, Caller: alice, IdempotencyKey: "k1"}
	first, err := e.StartInstance(t.Context(), req)
	if err != nil || first.Existing {
		t.Fatalf("first: %+v %v", first, err)
	}
	again, err := e.StartInstance(t.Context(), req)
	if err != nil || !again.Existing || again.Instance.ID != first.Instance.ID {
		t.Fatalf("replay: %+v %v", again, err)
	}
	req.Input = map[string]any{"n": 2}
	if _, err := e.StartInstance(t.Context(), req); !errors.Is(err, store.ErrIdempotencyMismatch) {
		t.Fatalf("reuse with other input: %v", err)
	}
	// Another caller's identical key is their own.
	other := alice
	other.ID = "user:carol"
	other.Admin = true
	o, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "echo", Input: map[string]any{"n": 1}, Caller: other, IdempotencyKey: "k1"})
	if err != nil || o.Existing {
		t.Fatalf("other caller: %+v %v", o, err)
	}
}

const taskFlow = `
name: approve
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: approve
    type: task
    title: "Approve ${{ input.amount }}"
    assignees: ["role:approver"]
    actions: [Approve, Reject]
    form:
      comment: {type: string, required: true}
    next: {Approve: ok, Reject: no}
  - id: ok
    type: return
    body: {approved: true, comment: "${{ vars.comment }}"}
  - id: no
    type: fail
    error: "rejected: ${{ vars.comment }}"
`

func TestTaskActionResumesAndSecondActionConflicts(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, taskFlow)
	ctx := t.Context()
	res, err := e.Invoke(ctx, engine.StartRequest{Workflow: "approve", Input: map[string]any{"amount": 50}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done || res.Instance.Status != store.StatusWaiting {
		t.Fatalf("invoke of a task flow should answer when it waits for a person: %+v", res.Instance)
	}
	tasks, _, err := e.ListTasks(ctx, bob, false, "", store.Page{})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("bob's worklist: %v %v", tasks, err)
	}
	task := tasks[0]
	if task.Title != "Approve 50" || task.InstanceID != res.Instance.ID {
		t.Errorf("task = %+v", task)
	}
	if mine, _, _ := e.ListTasks(ctx, alice, false, "", store.Page{}); len(mine) != 0 {
		t.Errorf("alice is not an assignee but sees %d tasks", len(mine))
	}
	if _, err := e.Act(ctx, task.Serial, "Approve", map[string]any{"comment": "fine"}, alice); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("non-assignee act: %v", err)
	}
	if _, err := e.Act(ctx, task.Serial, "Maybe", map[string]any{"comment": "x"}, bob); !errors.Is(err, engine.ErrNoAction) {
		t.Errorf("unknown action: %v", err)
	}
	if _, err := e.Act(ctx, task.Serial, "Approve", map[string]any{}, bob); err == nil || !strings.Contains(err.Error(), "data.comment") {
		t.Errorf("missing form field: %v", err)
	}

	// Two acts at once: exactly one wins.
	var wg sync.WaitGroup
	var ok, conflict atomic.Int32
	for _, action := range []string{"Approve", "Reject"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Act(ctx, task.Serial, action, map[string]any{"comment": "c"}, bob)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, engine.ErrTaskClosed):
				conflict.Add(1)
			default:
				t.Errorf("act: %v", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || conflict.Load() != 1 {
		t.Fatalf("ok=%d conflict=%d", ok.Load(), conflict.Load())
	}
	inst := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	closed, err := s.GetTask(ctx, task.Serial)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"Approve": store.StatusCompleted, "Reject": store.StatusFailed}[closed.Action]
	if inst.Status != want || closed.ActedBy != bob.ID || closed.Status != store.TaskDone {
		t.Errorf("instance %s after %s by %s", inst.Status, closed.Action, closed.ActedBy)
	}
	for _, r := range history(t, s, res.Instance.ID) {
		if r.StepID == "approve" && (!strings.Contains(string(r.Input), "Approve 50") || !r.StartedAt.Before(r.EndedAt) || r.Status != store.StepCompleted) {
			t.Errorf("the task's record lost its start or input when it ended: %+v", r)
		}
	}
	if _, err := e.Act(ctx, task.Serial, "Approve", map[string]any{"comment": "late"}, bob); !errors.Is(err, engine.ErrTaskClosed) {
		t.Errorf("act after close: %v", err)
	}
}

func TestWaitResumesAfterDeadline(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: nap
permissions: {start: ["role:employee"]}
steps:
  - id: nap
    type: wait
    duration: 300ms
  - id: done
    type: return
    body: {waited: "${{ steps.nap.output.waited_ms }}"}
`)
	start := time.Now()
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "nap", Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.Response == nil {
		t.Fatalf("not done: %+v", res.Instance)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("ended after %v, before the wait's 300ms", d)
	}
	for _, r := range history(t, s, res.Instance.ID) {
		if r.StepID == "nap" && (!strings.Contains(string(r.Input), "until") || !r.StartedAt.Before(r.EndedAt)) {
			t.Errorf("the wait's record lost its start or input when it ended: %+v", r)
		}
	}
	waited, _ := res.Response.Body.(map[string]any)["waited"].(float64)
	if waited < 300 {
		t.Errorf("waited_ms = %v", res.Response.Body)
	}
}

func TestHTTPStepRetriesWithOneIdempotencyKey(t *testing.T) {
	var calls atomic.Int32
	keys := make(chan string, 10)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys <- r.Header.Get("Idempotency-Key")
		if calls.Add(1) < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"hello": "` + r.URL.Query().Get("name") + `"}`))
	}))
	defer target.Close()

	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: call
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
    query: {name: alice}
    headers: {Authorization: "Bearer s3cret"}
    retry: {attempts: 3, backoff: 50ms}
  - id: done
    type: return
    body: "${{ steps.call.output.body }}"
`)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "call", Input: map[string]any{"url": target.URL}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Done || res.Response == nil {
		t.Fatalf("not done: %+v", res.Instance)
	}
	if b, _ := json.Marshal(res.Response.Body); string(b) != `{"hello":"alice"}` {
		t.Errorf("body = %s", b)
	}
	if calls.Load() != 3 {
		t.Errorf("calls = %d", calls.Load())
	}
	k1, k2, k3 := <-keys, <-keys, <-keys
	if k1 == "" || k1 != k2 || k2 != k3 {
		t.Errorf("Idempotency-Keys differ across retries: %q %q %q", k1, k2, k3)
	}
	recs := history(t, s, res.Instance.ID)
	var attempts []string
	for _, r := range recs {
		if r.StepID == "call" {
			attempts = append(attempts, r.Status)
			if strings.Contains(string(r.Input), "s3cret") {
				t.Errorf("the monitor shows the Authorization header: %s", r.Input)
			}
		}
	}
	if strings.Join(attempts, ",") != "failed,failed,completed" {
		t.Errorf("attempts = %v", attempts)
	}
}

func TestHTTPStepFailureFailsInstance(t *testing.T) {
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	}))
	defer target.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: broken
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
  - id: done
    type: return
`)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "broken", Input: map[string]any{"url": target.URL}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance.Status != store.StatusFailed || !strings.Contains(res.Instance.Error, `step "call"`) || !strings.Contains(res.Instance.Error, "500") {
		t.Fatalf("instance = %s %q", res.Instance.Status, res.Instance.Error)
	}
}

func TestCancelWaitingInstance(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, taskFlow)
	st, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "approve", Input: map[string]any{"amount": 5}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, st.Instance.ID, store.StatusWaiting)
	if _, err := e.Cancel(t.Context(), st.Instance.ID, bob); !errors.Is(err, engine.ErrForbidden) {
		t.Errorf("bob cancels alice's instance: %v", err)
	}
	inst, err := e.Cancel(t.Context(), st.Instance.ID, alice)
	if err != nil || inst.Status != store.StatusCancelled {
		t.Fatalf("cancel: %+v %v", inst, err)
	}
	if tasks, _, _ := e.ListTasks(t.Context(), bob, false, "", store.Page{}); len(tasks) != 0 {
		t.Errorf("a cancelled instance's task is still open")
	}
	if _, err := e.Cancel(t.Context(), st.Instance.ID, alice); !errors.Is(err, engine.ErrEnded) {
		t.Errorf("second cancel: %v", err)
	}
}

func TestVersionsStayPut(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	v1 := deploy(t, e, strings.Replace(taskFlow, "approved: true", "approved: v1", 1))
	st, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "approve", Input: map[string]any{"amount": 5}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	v2 := deploy(t, e, strings.Replace(taskFlow, "approved: true", "approved: v2", 1))
	if v1.Version != 1 || v2.Version != 2 {
		t.Fatalf("versions %d %d", v1.Version, v2.Version)
	}
	if _, again, _ := e.Deploy(t.Context(), []byte(strings.Replace(taskFlow, "approved: true", "approved: v2", 1)), "x.yaml", "t"); again {
		t.Errorf("identical source made a new version")
	}
	tasks, _, _ := e.ListTasks(t.Context(), bob, false, "", store.Page{})
	if len(tasks) != 1 {
		t.Fatalf("tasks: %v", tasks)
	}
	if _, err := e.Act(t.Context(), tasks[0].Serial, "Approve", map[string]any{"comment": "ok"}, bob); err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, s, st.Instance.ID, store.StatusCompleted)
	if !strings.Contains(string(inst.Output), `"approved":"v1"`) || inst.Version != 1 {
		t.Errorf("instance started on v1 finished with %s (version %d)", inst.Output, inst.Version)
	}
}

// A server that dies mid-step leaves its lease to run out; another engine
// on the same database takes the instance over and runs the step again
// as a new attempt.
func TestTakeoverAfterOwnerDies(t *testing.T) {
	var calls atomic.Int32
	release, sent := make(chan struct{}), make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			close(sent)
			<-release // the first server "dies" while this call hangs
		}
		_, _ = w.Write([]byte("ok"))
	}))
	defer target.Close()
	defer close(release)

	s := openStore(t)
	// The dying engine: its heartbeat and queue never run (NoQueue), as
	// if the process were gone after sending the request.
	dead := newEngine(t, s, engine.Config{NoQueue: true, Lease: time.Second})
	deploy(t, dead, `
name: slow
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
    timeout: 1m
  - id: done
    type: return
    body: "${{ steps.call.output.body }}"
`)
	st, err := dead.StartInstance(t.Context(), engine.StartRequest{Workflow: "slow", Input: map[string]any{"url": target.URL}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	<-sent // the other engine starts once the call is out
	newEngine(t, s, engine.Config{Lease: time.Second, Sweep: 200 * time.Millisecond})
	inst := waitStatus(t, s, st.Instance.ID, store.StatusCompleted)
	if string(inst.Output) == "" {
		t.Errorf("no output")
	}
	var statuses []string
	for _, r := range history(t, s, st.Instance.ID) {
		if r.StepID == "call" {
			statuses = append(statuses, r.Status)
		}
	}
	if strings.Join(statuses, ",") != "failed,completed" {
		t.Errorf("call attempts = %v (want the interrupted one failed, then one success)", statuses)
	}
}
