package engine_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
)

// deadlineFlow: a task due after DUE that goes to late (an http call the
// test counts, then a return) when nobody acts, escalating to user:boss
// after ESC.
func deadlineFlow(due, esc string) string {
	return `
name: deadline
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: approve
    type: task
    title: Approve
    assignees: ["user:bob"]
    actions: [Yes]
    due: ` + due + `
    escalate: {after: ` + esc + `, to: ["user:boss", "user:bob"]}
    on_due: late
    next: {Yes: done}
  - {id: done, type: return, body: {ok: true}}
  - id: late
    type: http
    url: "${{ input.url }}"
  - {id: timed-out, type: return, status: 200, body: {late: "${{ steps.approve.output.action }}"}}
`
}

// counter counts the calls of the late path.
func counter(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func openTaskOf(t *testing.T, s store.Store, id string) store.Task {
	t.Helper()
	tasks, _, err := s.ListTasks(t.Context(), store.TaskFilter{All: true, InstanceID: id, Status: ""}, store.Page{})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("open tasks of %s: %v %v", id, tasks, err)
	}
	return tasks[0]
}

// The task escalates (boss added, escalated set, bob kept once), then
// times out: closed with the action "timeout" by nobody, and the instance
// runs the on_due path once.
func TestTaskDeadlineEscalatesThenTimesOut(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		e := newEngine(t, stores[0], engine.Config{})
		for _, s := range stores[1:] {
			newEngine(t, s, engine.Config{}) // a second server races for every wake
		}
		s := stores[0]
		srv, calls := counter(t)
		deploy(t, e, deadlineFlow("3s", "1s"))
		start := time.Now()
		st, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "deadline", Input: map[string]any{"url": srv.URL}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		task := openTaskOf(t, s, st.Instance.ID)
		if task.DueAt.Sub(start) < 2*time.Second || task.DueAt.Sub(start) > 4*time.Second || task.Escalated {
			t.Fatalf("new task: due %v (started %v), escalated %v", task.DueAt, start, task.Escalated)
		}
		// Escalated after a second, still open.
		deadline := time.Now().Add(10 * time.Second)
		for {
			task = openTaskOf(t, s, st.Instance.ID)
			if task.Escalated || time.Now().After(deadline) {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		if !task.Escalated || !slices.Equal(task.Assignees, []string{"user:bob", "user:boss"}) || task.Status != store.TaskOpen {
			t.Fatalf("after escalate: %+v", task)
		}
		boss := engine.Caller{User: aliceLike("user:boss")}
		if list, _, err := e.ListTasks(t.Context(), boss, false, "", store.Page{}); err != nil || len(list) != 1 {
			t.Fatalf("boss's worklist: %v %v", list, err)
		}
		inst := waitStatus(t, s, st.Instance.ID, store.StatusCompleted)
		if string(inst.Output) == "" || !contains(string(inst.Output), `"late":"timeout"`) {
			t.Errorf("output %s", inst.Output)
		}
		done, err := s.GetTask(t.Context(), task.Serial)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status != store.TaskDone || done.Action != "timeout" || done.ActedBy != "" {
			t.Errorf("timed-out task: %+v", done)
		}
		if since := time.Since(start); since < 3*time.Second {
			t.Errorf("timed out after %v, before its due time", since)
		}
		time.Sleep(500 * time.Millisecond)
		if n := calls.Load(); n != 1 {
			t.Errorf("on_due path ran %d times, want 1", n)
		}
	})
}

// An action before the due time wins: the deadline does nothing after.
func TestTaskDeadlineActionFirst(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	srv, calls := counter(t)
	deploy(t, e, deadlineFlow("1s", "10m"))
	st, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "deadline", Input: map[string]any{"url": srv.URL}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	task := openTaskOf(t, s, st.Instance.ID)
	if _, err := e.Act(t.Context(), task.Serial, "Yes", nil, bob); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, st.Instance.ID, store.StatusCompleted)
	time.Sleep(1500 * time.Millisecond)
	if calls.Load() != 0 {
		t.Error("the on_due path ran after an action")
	}
	if got, _ := s.GetTask(t.Context(), task.Serial); got.Action != "Yes" {
		t.Errorf("task %+v", got)
	}
}

// The server that opened the task stops before it is due; the one that
// starts afterwards (another process on the same database) times it out,
// once.
func TestTaskDeadlineSurvivesRestart(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		srv, calls := counter(t)
		first, err := engine.New(t.Context(), engine.Config{Store: s, Queue: openQueue(t, s), Egress: loopback(), Lease: 2 * time.Second, Sweep: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		deploy(t, first, deadlineFlow("2s", "1h"))
		st, err := first.StartInstance(t.Context(), engine.StartRequest{Workflow: "deadline", Input: map[string]any{"url": srv.URL}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := first.Close(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		time.Sleep(2500 * time.Millisecond) // due passes while no server runs
		for _, s2 := range stores {
			newEngine(t, s2, engine.Config{})
		}
		waitStatus(t, s, st.Instance.ID, store.StatusCompleted)
		time.Sleep(500 * time.Millisecond)
		if n := calls.Load(); n != 1 {
			t.Errorf("on_due path ran %d times, want 1", n)
		}
		n := 0
		for _, r := range history(t, s, st.Instance.ID) {
			if r.StepID == "approve" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d records of the task step, want 1", n)
		}
	})
}

// forEachBackend runs f on one SQLite store, and on two PostgreSQL store
// handles on one database, as two servers have (skipped without
// PostgreSQL, as every PostgreSQL test is).
func forEachBackend(t *testing.T, f func(t *testing.T, stores []backend.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, []backend.Store{openStore(t)}) })
	t.Run("postgres", func(t *testing.T) {
		pg := openPostgresStores(t)
		f(t, pg[:])
	})
}

func loopback() *egress.Policy { return egresstest.Loopback() }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func aliceLike(id string) flow.User {
	return flow.User{ID: id, Kind: "user", Subject: strings.TrimPrefix(id, "user:"), Issuer: "flowgate"}
}

// fail_on_status: a 404 fails the step (and the instance) instead of
// being data; without it the flow reads the status.
func TestHTTPFailOnStatus(t *testing.T) {
	target := httptest.NewServer(http.NotFoundHandler())
	defer target.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	for _, fail := range []bool{true, false} {
		name := "strict"
		if !fail {
			name = "lenient"
		}
		deploy(t, e, `
name: `+name+`
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
    fail_on_status: `+map[bool]string{true: "true", false: "false"}[fail]+`
  - {id: done, type: return, body: {status: "${{ steps.call.output.status }}"}}
`)
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: name, Input: map[string]any{"url": target.URL}, Caller: alice}, false)
		if err != nil {
			t.Fatal(err)
		}
		if fail {
			if res.Instance.Status != store.StatusFailed || !contains(res.Instance.Error, `step "call"`) || !contains(res.Instance.Error, "404") {
				t.Errorf("strict: %s %q", res.Instance.Status, res.Instance.Error)
			}
			recs := history(t, s, res.Instance.ID)
			if len(recs) != 1 || recs[0].Status != store.StepFailed {
				t.Errorf("strict history %+v", recs)
			}
		} else if res.Instance.Status != store.StatusCompleted || res.Response == nil || !contains(string(res.Instance.Output), "404") {
			t.Errorf("lenient: %s %s", res.Instance.Status, res.Instance.Output)
		}
	}
}

// A webhook secret written ${NAME} is read from the server's environment
// at each request; unset, the webhook refuses (and starts nothing).
func TestWebhookSecretFromEnvironment(t *testing.T) {
	s := openStore(t)
	env := map[string]string{}
	e := newEngine(t, s, engine.Config{Getenv: func(k string) (string, bool) { v, ok := env[k]; return v, ok }})
	deploy(t, e, `
name: envhook
triggers:
  - {webhook: gh, secret: "${HOOK_SECRET}", signature: github}
steps:
  - {id: done, type: return}
`)
	body := []byte(`{"zen":"Design for failure."}`)
	req := engine.WebhookRequest{Workflow: "envhook", Hook: "gh", Body: body,
		Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hmacHex("env-secret-value", body)}}}
	if _, err := e.Webhook(t.Context(), req); !errors.Is(err, engine.ErrHookSecret) {
		t.Fatalf("unset: %v", err)
	}
	env["HOOK_SECRET"] = "env-secret-value"
	st, err := e.Webhook(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	if st.Instance.StartedBy != "webhook:envhook/gh" {
		t.Errorf("started by %s", st.Instance.StartedBy)
	}
}

func hmacHex(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}
