package api_test

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestInvoke(t *testing.T) {
	flowBackends(t, flowOpts{invokeWait: 3 * time.Second}, func(t *testing.T, e *env) {
		e.flowUsers()
		target := newEchoTarget(t)
		for _, src := range []string{pureFlow, approvalFlow, failingFlow, slowFlow, callerFlow(target.URL)} {
			e.deploy(src)
		}
		alice := e.bearer("alice")

		// Completed: the return step's status, headers and body, exactly.
		r := e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 3})
		if r.status != 200 || string(r.body) != `{"twice":6,"who":"user:alice"}`+"\n" || r.header.Get("X-Size") != "small" ||
			r.header.Get("Content-Type") != "application/json" || r.header.Get("X-Flowgate-Instance") == "" {
			t.Errorf("invoke: %d %v %s", r.status, r.header, r.body)
		}
		r = e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 60})
		if r.status != 201 || string(r.body) != `{"big":true}`+"\n" || r.header.Get("X-Size") != "big" || r.header.Get("Location") != "/somewhere" {
			t.Errorf("invoke, other branch: %d %v %s", r.status, r.header, r.body)
		}
		// The instance is the invoker's, and completed.
		inst := want(t, e.do("GET", "/api/v1/instances/"+r.header.Get("X-Flowgate-Instance"), alice, nil), 200, "", "")
		if inst["status"] != "completed" || inst["started_by"] != "user:alice" {
			t.Errorf("invoked instance = %v", inst)
		}

		// An http step against a real target, then its answer.
		r = e.do("POST", "/api/v1/flows/caller/invoke", alice, map[string]any{"q": "ping"})
		if r.status != 200 || string(r.body) != `{"got":{"echo":"ping","path":"/echo"},"status":200}`+"\n" {
			t.Errorf("invoke with an http step: %d %s", r.status, r.body)
		}
		if got := target.seen(); !slices.Equal(got, []string{"Bearer secret-token-123"}) {
			t.Errorf("target saw %v", got)
		}

		// async: 202 at once with where to follow it.
		r = e.do("POST", "/api/v1/flows/pure/invoke?async=true", alice, map[string]any{"n": 1})
		m := want(t, r, 202, "", "")
		in := m["instance"].(map[string]any)
		id, _ := in["id"].(string)
		if r.header.Get("Location") != "/api/v1/instances/"+id || m["url"] != "http://localhost:8080/api/v1/instances/"+id || in["workflow"] != "pure" {
			t.Errorf("async invoke: %v %v", r.header, m)
		}
		e.waitInstance("alice", id, "completed")
		want(t, e.do("POST", "/api/v1/flows/pure/invoke?async=perhaps", alice, map[string]any{"n": 1}), 400, "invalid_request", "async")

		// Waiting for a person: 202 without sitting out the wait.
		began := time.Now()
		m = want(t, e.do("POST", "/api/v1/flows/approval/invoke", alice, map[string]any{"amount": 9}), 202, "", "")
		if took := time.Since(began); took > 2500*time.Millisecond {
			t.Errorf("an invoke waiting on a task took %s", took)
		}
		if in := m["instance"].(map[string]any); in["status"] != "waiting" || in["current_step"] != "approve" {
			t.Errorf("invoke waiting on a task: %v", m)
		}
		// Longer than the wait (3 s here): 202.
		began = time.Now()
		m = want(t, e.do("POST", "/api/v1/flows/slow/invoke", alice, nil), 202, "", "")
		if took := time.Since(began); took < 3*time.Second {
			t.Errorf("invoke answered 202 after %s, before the wait was over", took)
		}
		if in := m["instance"].(map[string]any); in["status"] != "waiting" {
			t.Errorf("slow invoke: %v", m)
		}

		// Failed: 502 naming the instance and step; the error itself only
		// with detailed errors on.
		r = e.do("POST", "/api/v1/flows/failing/invoke", alice, map[string]any{"reason": "db password rejected"})
		m = want(t, r, 502, "flow_failed", `"explode"`)
		if m["step"] != "explode" || m["instance"] == nil || m["instance"] == "" || strings.Contains(string(r.body), "db password") {
			t.Errorf("failed invoke: %s", r.body)
		}
		failed := want(t, e.do("GET", "/api/v1/instances/"+m["instance"].(string), alice, nil), 200, "", "")
		if failed["status"] != "failed" {
			t.Errorf("failed invoke's instance = %v", failed)
		}

		// Cancelled (here: replayed by its Idempotency-Key after a cancel):
		// 502 too.
		key := map[string]string{"Idempotency-Key": "slow-1"}
		m = want(t, e.send("POST", "/api/v1/flows/slow/invoke?async=true", alice, nil, key), 202, "", "")
		sid := m["instance"].(map[string]any)["id"].(string)
		want(t, e.do("POST", "/api/v1/instances/"+sid+"/cancel", alice, nil), 200, "", "")
		r = e.send("POST", "/api/v1/flows/slow/invoke", alice, nil, key)
		m = want(t, r, 502, "flow_cancelled", "")
		if m["instance"] != sid || m["step"] != "nap" || r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("replayed cancelled invoke: %v %s", r.header, r.body)
		}

		// Idempotency: a replay answers the same, a different input is 422.
		key = map[string]string{"Idempotency-Key": "pure-1"}
		first := e.send("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 2}, key)
		again := e.send("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 2}, key)
		if first.status != 200 || again.status != 200 || string(first.body) != string(again.body) ||
			first.header.Get("X-Flowgate-Instance") != again.header.Get("X-Flowgate-Instance") ||
			first.header.Get("Idempotent-Replayed") != "" || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("invoke replay: %d %v %s / %d %v %s", first.status, first.header, first.body, again.status, again.header, again.body)
		}
		want(t, e.send("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": 3}, key), 422, "idempotency_key_reused", "")

		// Permission as for a start; unknown flows named; bad input.
		want(t, e.do("POST", "/api/v1/flows/pure/invoke", e.bearer("carol"), map[string]any{"n": 1}), 403, "forbidden", "may not start")
		want(t, e.do("POST", "/api/v1/flows/nope/invoke", alice, nil), 404, "not_found", `"nope"`)
		want(t, e.do("POST", "/api/v1/flows/pure/invoke", alice, map[string]any{"n": "x"}), 400, "invalid_request", "input.n")
		want(t, e.do("POST", "/api/v1/flows/pure/invoke", "Bearer "+e.token("alice", "workflows.start"), map[string]any{"n": 1}), 403, "insufficient_scope", "flows.invoke")
	})
}

func TestInvokeDetailedErrors(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{detailed: true})
	e.flowUsers()
	e.deploy(failingFlow)
	m := want(t, e.do("POST", "/api/v1/flows/failing/invoke", e.bearer("alice"), map[string]any{"reason": "db password rejected"}), 502, "flow_failed", "")
	// Each context once: the workflow, the step, the flow's own message.
	if desc := m["error_description"].(string); desc != `workflow "failing" failed: step "explode": secret detail: db password rejected` || m["step"] != "explode" {
		t.Errorf("detailed failure = %v", m)
	}
}
