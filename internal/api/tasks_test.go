package api_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

func TestTasks(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(approvalFlow)

		inst := want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 50}), 201, "", "")
		id := inst["id"].(string)
		if inst["status"] != "waiting" || inst["current_step"] != "approve" {
			t.Fatalf("instance = %v", inst)
		}

		// The worklist: bob by role, dave by name; not alice or carol.
		if got := e.list("alice", "/api/v1/tasks"); len(got) != 0 {
			t.Errorf("alice's worklist = %v", got)
		}
		if got := e.list("carol", "/api/v1/tasks"); len(got) != 0 {
			t.Errorf("carol's worklist = %v", got)
		}
		if got := e.list("dave", "/api/v1/tasks"); len(got) != 1 {
			t.Errorf("dave's worklist = %v", got)
		}
		bobs := e.list("bob", "/api/v1/tasks")
		if len(bobs) != 1 {
			t.Fatalf("bob's worklist = %v", bobs)
		}
		task := bobs[0]
		serial := fmt.Sprint(task["serial"])
		if task["type"] != "task" || task["title"] != "Approve 50" || task["instance"] != id || task["workflow"] != "approval" ||
			task["step"] != "approve" || task["status"] != "open" || task["connect_url"] != nil || task["action"] != nil ||
			fmt.Sprint(task["assignees"]) != "[role:approver user:dave]" || fmt.Sprint(task["actions"]) != "[Approve Reject]" {
			t.Errorf("task = %v", task)
		}
		form, _ := json.Marshal(task["form"])
		if string(form) != `{"comment":{"required":true,"type":"string"},"score":{"required":false,"type":"integer"}}` {
			t.Errorf("form = %s", form)
		}

		// One task: assignees see it, others get 404 (so does a serial that
		// is no number, or no task).
		path := "/api/v1/tasks/" + serial
		want(t, e.do("GET", path, e.bearer("dave"), nil), 200, "", "")
		want(t, e.do("GET", path, e.bearer("admin"), nil), 200, "", "")
		want(t, e.do("GET", path, e.bearer("carol"), nil), 404, "not_found", `"`+serial+`"`)
		want(t, e.do("POST", path+"/actions/Approve", e.bearer("carol"), map[string]any{"comment": "x"}), 404, "not_found", serial)
		want(t, e.do("GET", "/api/v1/tasks/abc", e.bearer("bob"), nil), 404, "not_found", `"abc"`)
		want(t, e.do("GET", "/api/v1/tasks/987654", e.bearer("bob"), nil), 404, "not_found", `"987654"`)
		// The assignee sees the instance the task belongs to.
		want(t, e.do("GET", "/api/v1/instances/"+id, e.bearer("bob"), nil), 200, "", "")
		want(t, e.do("GET", "/api/v1/instances/"+id, e.bearer("carol"), nil), 404, "not_found", id)

		// Form problems, every one named; an unknown action names itself.
		want(t, e.send("POST", path+"/actions/Approve", e.bearer("bob"), nil, nil), 400, "invalid_request", "data.comment")
		m := want(t, e.do("POST", path+"/actions/Approve", e.bearer("bob"), map[string]any{"comment": 5, "score": 1.5, "extra": true}), 400, "invalid_request", "data.comment")
		if got := problemFields(t, m); !slices.Equal(got, []string{"data.comment", "data.score", "data.extra"}) {
			t.Errorf("form problems = %v", got)
		}
		want(t, e.do("POST", path+"/actions/Maybe", e.bearer("bob"), map[string]any{"comment": "x"}), 404, "not_found", `"Maybe"`)
		want(t, e.do("POST", path+"/actions/Approve", "Bearer "+e.token("bob", "workflows.read"), map[string]any{"comment": "x"}), 403, "insufficient_scope", "tasks")

		// Bob acts through his role: 200, the task done; the instance runs on
		// with the data in its vars.
		m = want(t, e.do("POST", path+"/actions/Approve", e.bearer("bob"), map[string]any{"comment": "fine", "score": 3}), 200, "", "")
		if m["status"] != "done" || m["action"] != "Approve" || m["acted_by"] != "user:bob" || m["acted_at"] == nil {
			t.Errorf("acted task = %v", m)
		}
		if d, _ := json.Marshal(m["data"]); string(d) != `{"comment":"fine","score":3}` {
			t.Errorf("task data = %s", d)
		}
		done := e.waitInstance("alice", id, "completed", "failed")
		out, _ := json.Marshal(done["output"])
		if done["status"] != "completed" || string(out) != `{"body":{"approved":true,"by":"user:bob","comment":"fine"},"status":200}` {
			t.Errorf("instance after the action = %v (output %s)", done, out)
		}
		if vars, _ := json.Marshal(done["vars"]); string(vars) != `{"comment":"fine","score":3}` {
			t.Errorf("vars = %s", vars)
		}

		// A second action, by anyone, is a conflict.
		want(t, e.do("POST", path+"/actions/Reject", e.bearer("dave"), map[string]any{"comment": "no"}), 409, "conflict", "already done")
		want(t, e.do("POST", path+"/actions/Approve", e.bearer("bob"), map[string]any{"comment": "again"}), 409, "conflict", "")

		// Closed tasks by ?status=; everyone's only for an admin.
		if got := e.list("bob", "/api/v1/tasks"); len(got) != 0 {
			t.Errorf("bob's open tasks after acting = %v", got)
		}
		closed := e.list("bob", "/api/v1/tasks?status=done")
		if len(closed) != 1 || closed[0]["action"] != "Approve" || closed[0]["acted_by"] != "user:bob" {
			t.Errorf("bob's done tasks = %v", closed)
		}
		want(t, e.do("GET", "/api/v1/tasks?status=finished", e.bearer("bob"), nil), 400, "invalid_request", `"finished"`)
		want(t, e.do("GET", "/api/v1/tasks?all=true", e.bearer("bob"), nil), 403, "forbidden", "role admin")
		want(t, e.do("GET", "/api/v1/tasks?all=yes-please", e.bearer("admin"), nil), 400, "invalid_request", "all")
		if got := e.list("admin", "/api/v1/tasks?all=true&status=done"); len(got) != 1 {
			t.Errorf("admin's done tasks = %v", got)
		}
		if got := e.list("admin", "/api/v1/tasks?status=done"); len(got) != 0 {
			t.Errorf("admin's own done tasks = %v (admin is no assignee)", got)
		}

		// A user assignee acts too; Reject leads to the other return.
		inst2 := want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 7}), 201, "", "")
		dave := e.list("dave", "/api/v1/tasks")
		if len(dave) != 1 || dave[0]["instance"] != inst2["id"] {
			t.Fatalf("dave's tasks = %v", dave)
		}
		want(t, e.do("POST", fmt.Sprintf("/api/v1/tasks/%v/actions/Reject", dave[0]["serial"]), e.bearer("dave"), map[string]any{"comment": "no"}), 200, "", "")
		done = e.waitInstance("alice", inst2["id"].(string), "completed", "failed")
		if out := done["output"].(map[string]any); out["status"] != 403.0 {
			t.Errorf("rejected instance output = %v", out)
		}

		// Paging the worklist.
		for range 3 {
			want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 1}), 201, "", "")
		}
		m = want(t, e.do("GET", "/api/v1/tasks?limit=2", e.bearer("bob"), nil), 200, "", "")
		if len(m["items"].([]any)) != 2 || m["next_cursor"] == nil {
			t.Fatalf("first page = %v", m)
		}
		m = want(t, e.do("GET", "/api/v1/tasks?limit=2&cursor="+m["next_cursor"].(string), e.bearer("bob"), nil), 200, "", "")
		if len(m["items"].([]any)) != 1 || m["next_cursor"] != nil {
			t.Errorf("second page = %v", m)
		}
	})
}

// A task without a form takes any JSON object as the action's data: it
// becomes the step's output, and the instance's vars stay as they were.
// Anything but an object is still refused, naming what was sent.
func TestTaskWithoutFormTakesAnyObject(t *testing.T) {
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(`
name: noform
permissions: {start: ["role:employee"]}
steps:
  - id: keep
    type: set
    vars: {kept: 1}
  - id: ack
    type: task
    title: Acknowledge
    assignees: ["user:bob"]
    actions: [OK]
    next: {OK: done}
  - id: done
    type: return
    body: {note: "${{ steps.ack.output.data.note }}", n: "${{ steps.ack.output.data.nested.n }}"}
`)
	inst := want(t, e.do("POST", "/api/v1/workflows/noform/instances", e.bearer("alice"), map[string]any{}), 201, "", "")
	id := inst["id"].(string)
	tasks := e.list("bob", "/api/v1/tasks")
	if len(tasks) != 1 {
		t.Fatalf("bob's worklist = %v", tasks)
	}
	path := fmt.Sprintf("/api/v1/tasks/%v/actions/OK", tasks[0]["serial"])
	want(t, e.do("POST", path, e.bearer("bob"), []any{1, 2}), 400, "invalid_request", "JSON object, not an array")
	want(t, e.do("POST", path, e.bearer("bob"), "x"), 400, "invalid_request", "")
	want(t, e.do("POST", path, e.bearer("bob"), `"just a string"`), 400, "invalid_request", "not a string")

	m := want(t, e.do("POST", path, e.bearer("bob"), map[string]any{"note": "seen", "nested": map[string]any{"n": 2}}), 200, "", "")
	if d, _ := json.Marshal(m["data"]); string(d) != `{"nested":{"n":2},"note":"seen"}` {
		t.Errorf("task data = %s", d)
	}
	done := e.waitInstance("alice", id, "completed", "failed")
	if out, _ := json.Marshal(done["output"]); done["status"] != "completed" || string(out) != `{"body":{"n":2,"note":"seen"},"status":200}` {
		t.Errorf("instance = %v (output %s)", done, out)
	}
	if vars, _ := json.Marshal(done["vars"]); string(vars) != `{"kept":1}` {
		t.Errorf("vars = %s, want the data kept out of them", vars)
	}
}
