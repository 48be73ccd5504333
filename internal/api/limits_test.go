package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// A flow that invokes itself through Flowgate's own API used to multiply
// without end. Each http step says how deep its instance is, and the
// start that would make a ninth is refused with 422 depth_limit_exceeded,
// which the eighth sees as its call's answer.
func TestSelfInvokingFlowStopsAtTheDepthLimit(t *testing.T) {
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	tok := e.token("alice", allScopes)
	e.deploy(`
name: again
permissions: {start: ["role:employee"]}
steps:
  - id: call
    type: http
    method: POST
    url: "` + e.srv.URL + `/api/v1/flows/again/invoke?async=true"
    headers: {Authorization: "Bearer ` + tok + `"}
    body: {}
  - id: done
    type: return
    body: {status: "${{ steps.call.output.status }}"}
`)
	want(t, e.do("POST", "/api/v1/flows/again/invoke?async=true", e.bearer("alice"), nil), 202, "", "")

	var items []map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for {
		items = e.list("alice", "/api/v1/instances?limit=100")
		done := 0
		for _, it := range items {
			if it["status"] == "completed" {
				done++
			}
		}
		if done >= 8 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a ninth, if one were started, would show by now
	items = e.list("alice", "/api/v1/instances?limit=100")
	if len(items) != 8 {
		t.Fatalf("%d instances, want 8", len(items))
	}
	byDepth := map[int]string{}
	for _, it := range items {
		inst, err := e.st.GetInstance(t.Context(), it["id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if inst.Status != store.StatusCompleted {
			t.Errorf("instance at depth %d is %s: %s", inst.Depth, inst.Status, inst.Error)
		}
		byDepth[inst.Depth] = inst.ID
	}
	for d := 1; d <= 8; d++ {
		if byDepth[d] == "" {
			t.Errorf("no instance at depth %d: %v", d, byDepth)
		}
	}
	// The deepest instance's call was refused, saying why.
	h := want(t, e.do("GET", "/api/v1/instances/"+byDepth[8]+"/history", e.bearer("alice"), nil), 200, "", "")
	out, _ := json.Marshal(h["items"].([]any)[0].(map[string]any)["output"])
	if !strings.Contains(string(out), `"status":422`) || !strings.Contains(string(out), `"error":"depth_limit_exceeded"`) {
		t.Errorf("the deepest call's output = %s", out)
	}
}

// The depth header on a start: a bad value is a 400 naming it; too deep is
// 422 depth_limit_exceeded, and nothing is started.
func TestStartDepthHeader(t *testing.T) {
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(pureFlow)
	start := func(depth string) resp {
		return e.send("POST", "/api/v1/workflows/pure/instances", e.bearer("alice"), map[string]any{"n": 1},
			map[string]string{"Flowgate-Depth": depth})
	}
	want(t, start("abc"), 400, "invalid_request", "Flowgate-Depth")
	want(t, start("-1"), 400, "invalid_request", "Flowgate-Depth")
	want(t, start("8"), 422, "depth_limit_exceeded", "9 deep")
	r := e.send("POST", "/api/v1/flows/pure/invoke", e.bearer("alice"), map[string]any{"n": 1}, map[string]string{"Flowgate-Depth": "12"})
	want(t, r, 422, "depth_limit_exceeded", "more than the limit of 8")
	if got := e.list("alice", "/api/v1/instances"); len(got) != 0 {
		t.Fatalf("refused starts left instances: %v", got)
	}
	m := want(t, start("7"), 201, "", "")
	if inst, err := e.st.GetInstance(t.Context(), m["id"].(string)); err != nil || inst.Depth != 8 {
		t.Errorf("instance started at caller depth 7: depth %d, %v", inst.Depth, err)
	}
}

// Form data that would make the instance's vars larger than the limit is
// refused with 422 vars_too_large; the task stays open for a smaller
// answer.
func TestTaskActionVarsLimit(t *testing.T) {
	e := newFlowEnv(t, flowOpts{maxVars: 200})
	e.flowUsers()
	e.deploy(approvalFlow)
	inst := want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 5}), 201, "", "")
	tasks := e.list("bob", "/api/v1/tasks")
	if len(tasks) != 1 {
		t.Fatalf("bob's tasks = %v", tasks)
	}
	path := "/api/v1/tasks/" + jsonNumber(tasks[0]["serial"]) + "/actions/Approve"
	want(t, e.do("POST", path, e.bearer("bob"), map[string]any{"comment": strings.Repeat("long ", 60)}), 422, "vars_too_large", "limits.max_vars (200 bytes)")
	if got := e.list("bob", "/api/v1/tasks"); len(got) != 1 {
		t.Fatalf("the task closed after a refused action: %v", got)
	}
	want(t, e.do("POST", path, e.bearer("bob"), map[string]any{"comment": "short"}), 200, "", "")
	done := e.waitInstance("alice", inst["id"].(string), "completed", "failed")
	if vars, _ := json.Marshal(done["vars"]); done["status"] != "completed" || string(vars) != `{"comment":"short"}` {
		t.Errorf("instance %v, vars %s", done["status"], vars)
	}
}

func jsonNumber(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
