package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"testing"
	"time"
)

const forkFlow = `
name: fork
permissions: {start: ["client:robot"]}
input:
  base: {type: string, required: true}
steps:
  - id: both
    type: parallel
    branches:
      call:
        - {id: fetch, type: http, url: "${{ input.base }}/fast"}
      review:
        - {id: approve, type: task, title: "Approve", assignees: ["client:robot"], actions: [OK]}
  - id: done
    type: return
    body: {branches: "${{ steps.both.output.branches }}"}
`

// branchStatuses maps each branch instance of a parent to its status.
func branchStatuses(t *testing.T, base, token, parent string) map[string]string {
	t.Helper()
	code, body := apiCall(t, http.MethodGet, base+"/api/v1/instances/"+parent, token, nil)
	if code != http.StatusOK {
		t.Fatalf("instance %s: %d %v", parent, code, body)
	}
	out := map[string]string{}
	kids, _ := body["children"].([]any)
	for _, k := range kids {
		id := fmt.Sprint(k)
		code, kid := apiCall(t, http.MethodGet, base+"/api/v1/instances/"+id, token, nil)
		if code != http.StatusOK {
			t.Fatalf("branch instance %s: %d %v", id, code, kid)
		}
		out[id] = fmt.Sprint(kid["status"])
	}
	return out
}

// kill -9 while the parents of a parallel step wait, one branch done (an
// http call) and the other at a task; after a restart the tasks are acted
// on through the API and every parent joins once, with the call made once.
func TestKill9DuringParallel(t *testing.T) {
	t.Parallel()
	o := newOneServer(t, map[string]string{"fork": forkFlow}, 0)
	tg := o.tg
	const n = 3

	s := o.start(t)
	token := clientToken(t, s.base, "robot", robotSecret, "workflows.read workflows.start tasks")
	var ids []string
	for range n {
		ids = append(ids, startInstance(t, s.base, token, "fork", map[string]any{"base": tg.srv.URL}))
	}
	// Each parent parked, its call branch completed, its review waiting.
	for _, id := range ids {
		deadline := time.Now().Add(30 * time.Second)
		for {
			inst := waitInstance(t, s.base, token, id, 30*time.Second, "waiting")
			st := branchStatuses(t, s.base, token, id)
			got := map[string]int{}
			for _, v := range st {
				got[v]++
			}
			if inst["current_step"] == "both" && got["completed"] == 1 && got["waiting"] == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("instance %s at %v, branch instances %v\n%s", id, inst["current_step"], st, tail(s.stderr.String()))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	kill9(t, s)

	s = o.start(t)
	token = clientToken(t, s.base, "robot", robotSecret, "workflows.read workflows.start tasks")
	code, list := apiCall(t, http.MethodGet, s.base+"/api/v1/tasks", token, nil)
	if code != http.StatusOK {
		t.Fatalf("tasks: %d %v", code, list)
	}
	items, _ := list["items"].([]any)
	if len(items) != n {
		t.Fatalf("%d open tasks after the restart, want %d: %v", len(items), n, items)
	}
	for _, it := range items {
		task := it.(map[string]any)
		if task["step"] != "approve" {
			t.Errorf("task at %v, want approve", task["step"])
		}
		u := fmt.Sprintf("%s/api/v1/tasks/%v/actions/OK", s.base, task["serial"])
		if code, body := apiCall(t, http.MethodPost, u, token, map[string]any{}); code != http.StatusOK {
			t.Fatalf("act on task %v: %d %v", task["serial"], code, body)
		}
	}
	for _, id := range ids {
		inst := waitInstance(t, s.base, token, id, 60*time.Second, "completed", "failed")
		if inst["status"] != "completed" {
			t.Fatalf("instance %s ended %v: %v\n%s", id, inst["status"], inst["error"], tail(s.stderr.String()))
		}
		out, _ := json.Marshal(inst["output"])
		if !strings.Contains(string(out), `"call":{"output":{"body":{"ok":true,"query":""}`) ||
			!strings.Contains(string(out), `"review":{"output":{"action":"OK"`) {
			t.Errorf("instance %s output %s", id, out)
		}
		if done, hist := completedSteps(t, s.base, token, id); fmt.Sprint(done) != "map[approve:1 both:1 done:1 fetch:1]" {
			// The merged history: the join once, each branch's steps once.
			t.Errorf("instance %s completed records = %v (history %v)", id, done, hist)
		}
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.calls) != n {
		t.Errorf("%d distinct calls reached the target, want %d: %v", len(tg.calls), n, tg.calls)
	}
	for k, c := range tg.calls {
		// The branch had ended before the kill: nothing was in flight.
		if !strings.HasPrefix(k, "/fast ") || c != 1 {
			t.Errorf("%q reached the target %d times", k, c)
		}
	}
}

const fanoutFlow = `
name: fanout
permissions: {start: ["client:robot"]}
input:
  base: {type: string, required: true}
  items: {type: array, required: true}
steps:
  - id: each
    type: foreach
    items: "${{ input.items }}"
    concurrency: 4
    steps:
      - {id: call, type: http, url: "${{ input.base }}/slow?n=${{ item }}", timeout: 1m}
      - {id: keep, type: set, vars: {n: "${{ item }}", answer: "${{ steps.call.output.body.query }}"}}
  - id: done
    type: return
    body: {items: "${{ steps.each.output.items }}"}
`

// kill -9 while items of a foreach are in flight at a slow target: after a
// restart every item reaches the target once (a call cut by the kill is
// repeated under its own key only), and the parent joins once, with the
// items' outputs in item order.
func TestKill9DuringForeach(t *testing.T) {
	t.Parallel()
	o := newOneServer(t, map[string]string{"fanout": fanoutFlow}, 300*time.Millisecond)
	tg := o.tg
	const n = 12
	var items []any
	for i := range n {
		items = append(items, 100+i)
	}

	s := o.start(t)
	token := robotToken(t, s.base)
	id := startInstance(t, s.base, token, "fanout", map[string]any{"base": tg.srv.URL, "items": items})
	// The first four calls, and then two more: items in flight, items done,
	// items not started.
	for range 6 {
		select {
		case <-tg.slowIn:
		case <-time.After(30 * time.Second):
			t.Fatalf("the items did not reach the target\n%s", tail(s.stderr.String()))
		}
	}
	kill9(t, s)
	tg.mu.Lock()
	before := maps.Clone(tg.calls)
	tg.mu.Unlock()

	s = o.start(t)
	token = robotToken(t, s.base)
	inst := waitInstance(t, s.base, token, id, 90*time.Second, "completed", "failed")
	if inst["status"] != "completed" {
		t.Fatalf("instance ended %v: %v\n%s", inst["status"], inst["error"], tail(s.stderr.String()))
	}
	got, _ := json.Marshal(inst["output"].(map[string]any)["body"].(map[string]any)["items"])
	var want []string
	for _, it := range items {
		want = append(want, fmt.Sprintf(`{"answer":"n=%v","n":%v}`, it, it))
	}
	if string(got) != "["+strings.Join(want, ",")+"]" {
		t.Errorf("items %s", got)
	}
	if done, hist := completedSteps(t, s.base, token, id); fmt.Sprint(done) != "map[call:12 done:1 each:1 keep:12]" {
		// The merged history: the foreach once, each item's steps once.
		t.Errorf("completed records = %v (history %v)", done, hist)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	if len(tg.calls) != n {
		t.Errorf("%d distinct calls reached the target, want one per item (%d): %v", len(tg.calls), n, tg.calls)
	}
	repeats := 0
	for k, c := range tg.calls {
		if !strings.HasPrefix(k, "/slow ") {
			t.Errorf("call %q", k)
		}
		// Only a call made before the kill can be made again, under the
		// same key: a call cut short by it.
		if c > 1 {
			repeats++
			if before[k] == 0 || c > before[k]+1 {
				t.Errorf("%q reached the target %d times (%d before the kill)", k, c, before[k])
			}
		}
	}
	t.Logf("%d of %d calls made before the kill, %d repeated after it", len(before), n, repeats)
}
