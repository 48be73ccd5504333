package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// allScopes are the Workflow REST API's scopes: what a user token of the
// tests grants unless a test says otherwise.
const allScopes = "workflows.read workflows.start tasks flows.invoke"

const pureFlow = `
name: pure
title: Pure sums
permissions: {start: ["role:employee"]}
input:
  n: {type: number, required: true}
  note: {type: string}
steps:
  - id: double
    type: set
    vars: {twice: "${{ input.n * 2 }}"}
  - id: check
    type: switch
    cases:
      - when: "${{ vars.twice > 100 }}"
        next: big
  - id: small
    type: return
    status: 200
    headers: {X-Size: small}
    body: {twice: "${{ vars.twice }}", who: "${{ user.id }}"}
  - id: big
    type: return
    status: 201
    headers: {X-Size: big, Location: /somewhere}
    body: {big: true}
`

const approvalFlow = `
name: approval
title: Approval
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: approve
    type: task
    title: "Approve ${{ input.amount }}"
    assignees: ["role:approver", "user:dave"]
    actions: [Approve, Reject]
    form:
      comment: {type: string, required: true}
      score: {type: integer}
    next: {Approve: approved, Reject: rejected}
  - id: approved
    type: return
    status: 200
    body: {approved: true, comment: "${{ vars.comment }}", by: "${{ steps.approve.output.by }}"}
  - id: rejected
    type: return
    status: 403
    body: {approved: false}
`

const failingFlow = `
name: failing
permissions: {start: ["role:employee"]}
input:
  reason: {type: string, default: nothing}
steps:
  - id: prepare
    type: set
    vars: {x: 1}
  - id: explode
    type: fail
    error: "secret detail: ${{ input.reason }}"
`

const slowFlow = `
name: slow
permissions: {start: ["role:employee"]}
steps:
  - id: nap
    type: wait
    duration: 1h
  - id: done
    type: return
    body: {slept: true}
`

const restrictedFlow = `
name: restricted
permissions: {start: ["user:nobody"]}
steps:
  - id: done
    type: return
    body: {ok: true}
`

// callerFlow calls target with a credential the monitor must not show.
func callerFlow(target string) string {
	return `
name: caller
permissions: {start: ["role:employee"]}
input:
  q: {type: string, required: true}
steps:
  - id: call
    type: http
    method: POST
    url: "` + target + `/echo"
    headers: {Authorization: "Bearer secret-token-123", X-Trace: visible}
    body: {q: "${{ input.q }}"}
  - id: answer
    type: return
    status: 200
    body: {got: "${{ steps.call.output.body }}", status: "${{ steps.call.output.status }}"}
`
}

// echoTarget is the system an http step calls: it answers with what it
// received and remembers the Authorization header.
type echoTarget struct {
	*httptest.Server
	mu   sync.Mutex
	auth []string
}

func newEchoTarget(t *testing.T) *echoTarget {
	et := &echoTarget{}
	et.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var in map[string]any
		_ = json.NewDecoder(r.Body).Decode(&in)
		et.mu.Lock()
		et.auth = append(et.auth, r.Header.Get("Authorization"))
		et.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"echo": in["q"], "path": r.URL.Path})
	}))
	t.Cleanup(et.Close)
	return et
}

func (et *echoTarget) seen() []string {
	et.mu.Lock()
	defer et.mu.Unlock()
	return slices.Clone(et.auth)
}

// flowUsers creates the people of the flow tests: alice and bob are
// employees (bob also approves), carol has no role, dave is named as an
// assignee by user.
func (e *env) flowUsers() {
	e.t.Helper()
	e.user("alice", "alice-password", "employee")
	e.user("bob", "bob-password", "employee", "approver")
	e.user("carol", "carol-password")
	e.user("dave", "dave-password")
}

// bearer is an Authorization header for user with every workflow scope;
// the administrator's also grants scope admin, without which the role
// admin gives no powers beyond the caller's own.
func (e *env) bearer(user string) string {
	if user == "admin" {
		return "Bearer " + e.token(user, allScopes+" admin")
	}
	return "Bearer " + e.token(user, allScopes)
}

// deploy deploys a definition through the admin API.
func (e *env) deploy(src string) map[string]any {
	e.t.Helper()
	r := e.send("POST", "/api/v1/admin/flows", "Bearer "+e.admin, src, map[string]string{"Content-Type": "application/yaml"})
	if r.status != 201 && r.status != 200 {
		e.t.Fatalf("deploy: %d %s", r.status, r.body)
	}
	return r.json(e.t)
}

// waitInstance polls an instance as user until it has one of statuses.
func (e *env) waitInstance(user, id string, statuses ...string) map[string]any {
	e.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		m := want(e.t, e.do("GET", "/api/v1/instances/"+id, e.bearer(user), nil), 200, "", "")
		if slices.Contains(statuses, m["status"].(string)) {
			return m
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("instance %s is %v, want one of %v: %v", id, m["status"], statuses, m)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// list GETs a list as user and returns its items.
func (e *env) list(user, path string) []map[string]any {
	e.t.Helper()
	r := e.do("GET", path, e.bearer(user), nil)
	if r.status != 200 {
		e.t.Fatalf("GET %s as %s: %d %s", path, user, r.status, r.body)
	}
	var l struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal(r.body, &l); err != nil {
		e.t.Fatal(err)
	}
	return l.Items
}

// field is a string field of each item.
func field(items []map[string]any, name string) []string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprint(it[name])
	}
	return out
}

// problemFields lists the field of each problem of a 400.
func problemFields(t *testing.T, m map[string]any) []string {
	t.Helper()
	ps, ok := m["problems"].([]any)
	if !ok {
		t.Fatalf("no problems list: %v", m)
	}
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprint(p.(map[string]any)["field"]))
	}
	return out
}

func TestWorkflowsListAndGet(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	for _, src := range []string{pureFlow, approvalFlow, failingFlow, slowFlow, restrictedFlow} {
		e.deploy(src)
	}

	// Alice sees what her role may start; admin sees everything.
	if got := field(e.list("alice", "/api/v1/workflows"), "name"); !slices.Equal(got, []string{"approval", "failing", "pure", "slow"}) {
		t.Errorf("alice's workflows = %v", got)
	}
	if got := field(e.list("carol", "/api/v1/workflows"), "name"); len(got) != 0 {
		t.Errorf("carol (no role) sees %v", got)
	}
	if got := field(e.list("admin", "/api/v1/workflows"), "name"); !slices.Equal(got, []string{"approval", "failing", "pure", "restricted", "slow"}) {
		t.Errorf("admin's workflows = %v", got)
	}

	// Paging through a filtered list: pages of at most limit, every flow
	// once, in name order.
	var names []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		u := "/api/v1/workflows?limit=2"
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		m := want(t, e.do("GET", u, e.bearer("alice"), nil), 200, "", "")
		items := m["items"].([]any)
		if len(items) > 2 {
			t.Fatalf("page of %d with limit 2", len(items))
		}
		for _, it := range items {
			names = append(names, it.(map[string]any)["name"].(string))
		}
		if m["next_cursor"] == nil {
			break
		}
		cursor = m["next_cursor"].(string)
	}
	if !slices.Equal(names, []string{"approval", "failing", "pure", "slow"}) {
		t.Errorf("paged workflows = %v", names)
	}

	// One flow: its input fields in order and its definition.
	r := e.do("GET", "/api/v1/workflows/pure", e.bearer("alice"), nil)
	m := want(t, r, 200, "", "")
	if m["name"] != "pure" || m["title"] != "Pure sums" || m["version"] != 1.0 {
		t.Errorf("workflow = %v", m)
	}
	// Declaration order, which a map would lose.
	if !strings.Contains(string(r.body), `"input":{"n":{"type":"number","required":true},"note":{"type":"string","required":false}}`) {
		t.Errorf("input fields: %s", r.body)
	}
	def, _ := m["definition"].(map[string]any)
	if steps, _ := def["steps"].([]any); len(steps) != 4 {
		t.Errorf("definition = %v", def)
	}
	// Not startable reads as absent; absent names the flow.
	want(t, e.do("GET", "/api/v1/workflows/restricted", e.bearer("alice"), nil), 404, "not_found", `"restricted"`)
	want(t, e.do("GET", "/api/v1/workflows/restricted", "Bearer "+e.token("admin", "workflows.read admin"), nil), 200, "", "")
	want(t, e.do("GET", "/api/v1/workflows/restricted", "Bearer "+e.token("admin", "workflows.read"), nil), 404, "not_found", `"restricted"`)
	want(t, e.do("GET", "/api/v1/workflows/nope", e.bearer("alice"), nil), 404, "not_found", `"nope"`)

	// Scopes: none → 401, the wrong one → 403 naming the one needed.
	want(t, e.do("GET", "/api/v1/workflows", "", nil), 401, "unauthorized", "")
	want(t, e.do("GET", "/api/v1/workflows", "Bearer "+e.token("alice", "tasks"), nil), 403, "insufficient_scope", "workflows.read")
	want(t, e.do("GET", "/api/v1/workflows?limit=0", e.bearer("alice"), nil), 400, "invalid_request", "limit")
	want(t, e.do("GET", "/api/v1/workflows?cursor=***", e.bearer("alice"), nil), 400, "invalid_request", "cursor")
}

func TestStartInstance(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	e.deploy(pureFlow)
	e.deploy(restrictedFlow)
	alice := e.bearer("alice")

	// A flow without outside effects has ended by the time 201 comes.
	r := e.do("POST", "/api/v1/workflows/pure/instances", alice, map[string]any{"n": 4, "note": "hi"})
	m := want(t, r, 201, "", "")
	id, _ := m["id"].(string)
	if loc := r.header.Get("Location"); loc != "/api/v1/instances/"+id || id == "" {
		t.Errorf("Location %q for instance %q", loc, id)
	}
	if m["status"] != "completed" || m["workflow"] != "pure" || m["version"] != 1.0 || m["started_by"] != "user:alice" ||
		m["ended_at"] == nil || m["current_step"] != nil || m["error"] != nil {
		t.Errorf("started instance = %v", m)
	}
	out, _ := json.Marshal(m["output"])
	if string(out) != `{"body":{"twice":8,"who":"user:alice"},"headers":{"X-Size":"small"},"status":200}` {
		t.Errorf("output = %s", out)
	}
	if vars, _ := json.Marshal(m["vars"]); string(vars) != `{"twice":8}` {
		t.Errorf("vars = %s", vars)
	}
	if got := want(t, e.do("GET", r.header.Get("Location"), alice, nil), 200, "", ""); got["id"] != id || got["status"] != "completed" {
		t.Errorf("GET Location = %v", got)
	}
	if r.header.Get("Idempotent-Replayed") != "" {
		t.Error("a first start says it was replayed")
	}

	// An empty body is {}: here the required n is missing.
	m = want(t, e.send("POST", "/api/v1/workflows/pure/instances", alice, nil, nil), 400, "invalid_request", "input.n")
	if got := problemFields(t, m); !slices.Equal(got, []string{"input.n"}) {
		t.Errorf("problems = %v", got)
	}
	// Every input problem at once.
	m = want(t, e.do("POST", "/api/v1/workflows/pure/instances", alice, map[string]any{"n": "four", "colour": "red"}), 400, "invalid_request", "input.n")
	if got := problemFields(t, m); !slices.Equal(got, []string{"input.n", "input.colour"}) {
		t.Errorf("problems = %v: %v", got, m)
	}

	// A scope is not a right: carol has workflows.start, but no role the
	// flow names; the admin role may start anything.
	want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("carol"), map[string]any{"n": 1}), 403, "forbidden", "may not start workflow \"pure\"")
	want(t, e.do("POST", "/api/v1/workflows/restricted/instances", alice, nil), 403, "forbidden", "user:alice may not start")
	want(t, e.do("POST", "/api/v1/workflows/restricted/instances", e.bearer("admin"), nil), 201, "", "")
	want(t, e.do("POST", "/api/v1/workflows/pure/instances", "Bearer "+e.token("alice", "workflows.read"), map[string]any{"n": 1}),
		403, "insufficient_scope", "workflows.start")
	want(t, e.do("POST", "/api/v1/workflows/nope/instances", alice, map[string]any{}), 404, "not_found", `"nope"`)
}

func TestIdempotency(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(pureFlow)
		e.deploy(failingFlow)
		start := func(user, key string, body any) resp {
			return e.send("POST", "/api/v1/workflows/pure/instances", e.bearer(user), body, map[string]string{"Idempotency-Key": key})
		}
		first := want(t, start("alice", "k-1", map[string]any{"n": 1}), 201, "", "")

		r := start("alice", "k-1", map[string]any{"n": 1})
		again := want(t, r, 200, "", "")
		if again["id"] != first["id"] || r.header.Get("Idempotent-Replayed") != "true" || r.header.Get("Location") != "/api/v1/instances/"+first["id"].(string) {
			t.Errorf("replay: %v %v, first %v", r.header, again, first["id"])
		}
		// Same key, other input; same key, other flow: refused.
		want(t, start("alice", "k-1", map[string]any{"n": 2}), 422, "idempotency_key_reused", "Idempotency-Key")
		want(t, e.send("POST", "/api/v1/workflows/failing/instances", e.bearer("alice"), nil, map[string]string{"Idempotency-Key": "k-1"}),
			422, "idempotency_key_reused", "")
		// Keys are the caller's own: bob's k-1 is another request.
		if m := want(t, start("bob", "k-1", map[string]any{"n": 1}), 201, "", ""); m["id"] == first["id"] {
			t.Error("bob's key replayed alice's instance")
		}
		// Without a key, every request starts one.
		a := want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("alice"), map[string]any{"n": 1}), 201, "", "")
		b := want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("alice"), map[string]any{"n": 1}), 201, "", "")
		if a["id"] == b["id"] {
			t.Error("two starts without a key gave one instance")
		}
		want(t, start("alice", strings.Repeat("k", 256), map[string]any{"n": 1}), 400, "invalid_request", "Idempotency-Key")
		want(t, start("alice", "tab\there", map[string]any{"n": 1}), 400, "invalid_request", "Idempotency-Key")
	})
}

func TestListInstances(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(pureFlow)
		e.deploy(failingFlow)
		var aliceIDs []string
		for _, n := range []int{1, 2} {
			m := want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("alice"), map[string]any{"n": n}), 201, "", "")
			aliceIDs = append(aliceIDs, m["id"].(string))
		}
		failed := want(t, e.do("POST", "/api/v1/workflows/failing/instances", e.bearer("alice"), nil), 201, "", "")
		bobs := want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("bob"), map[string]any{"n": 3}), 201, "", "")

		// Newest first; only one's own, all for an admin.
		mine := e.list("alice", "/api/v1/instances")
		if got := field(mine, "id"); !slices.Equal(got, []string{failed["id"].(string), aliceIDs[1], aliceIDs[0]}) {
			t.Errorf("alice's instances = %v", got)
		}
		if got := field(mine, "started_by"); slices.ContainsFunc(got, func(s string) bool { return s != "user:alice" }) {
			t.Errorf("alice sees others' instances: %v", got)
		}
		if got := field(e.list("bob", "/api/v1/instances"), "id"); !slices.Equal(got, []string{bobs["id"].(string)}) {
			t.Errorf("bob's instances = %v", got)
		}
		if got := e.list("admin", "/api/v1/instances"); len(got) != 4 {
			t.Errorf("admin sees %d instances, want 4", len(got))
		}

		// Filters.
		if got := field(e.list("alice", "/api/v1/instances?status=failed"), "id"); !slices.Equal(got, []string{failed["id"].(string)}) {
			t.Errorf("alice's failed instances = %v", got)
		}
		if got := e.list("alice", "/api/v1/instances?workflow=pure&status=completed"); len(got) != 2 {
			t.Errorf("alice's completed pure instances: %d", len(got))
		}
		if got := e.list("admin", "/api/v1/instances?workflow=failing"); len(got) != 1 {
			t.Errorf("failing instances: %d", len(got))
		}
		want(t, e.do("GET", "/api/v1/instances?status=finished", e.bearer("alice"), nil), 400, "invalid_request", `"finished"`)

		// Paging: two pages of two.
		m := want(t, e.do("GET", "/api/v1/instances?limit=2", e.bearer("admin"), nil), 200, "", "")
		next, _ := m["next_cursor"].(string)
		if len(m["items"].([]any)) != 2 || next == "" {
			t.Fatalf("first page: %v", m)
		}
		m = want(t, e.do("GET", "/api/v1/instances?limit=2&cursor="+next, e.bearer("admin"), nil), 200, "", "")
		if len(m["items"].([]any)) != 2 || m["next_cursor"] != nil {
			t.Errorf("second page: %v", m)
		}
		want(t, e.do("GET", "/api/v1/instances?cursor=%21", e.bearer("admin"), nil), 400, "invalid_request", "cursor")

		// One instance: its starter and admin see it, others get 404.
		id := aliceIDs[0]
		want(t, e.do("GET", "/api/v1/instances/"+id, e.bearer("admin"), nil), 200, "", "")
		want(t, e.do("GET", "/api/v1/instances/"+id, e.bearer("bob"), nil), 404, "not_found", id)
		want(t, e.do("GET", "/api/v1/instances/"+id+"/history", e.bearer("bob"), nil), 404, "not_found", id)
		want(t, e.do("GET", "/api/v1/instances/no-such-id", e.bearer("admin"), nil), 404, "not_found", "no-such-id")
		want(t, e.do("GET", "/api/v1/instances/no-such-id/history", e.bearer("admin"), nil), 404, "not_found", "no-such-id")

		// A failed instance keeps the step it failed at and says why.
		f := want(t, e.do("GET", "/api/v1/instances/"+failed["id"].(string), e.bearer("alice"), nil), 200, "", "")
		if f["status"] != "failed" || f["current_step"] != "explode" || !strings.Contains(fmt.Sprint(f["error"]), "secret detail: nothing") || f["output"] != nil {
			t.Errorf("failed instance = %v", f)
		}
	})
}

func TestHistory(t *testing.T) {
	t.Parallel()
	e := newFlowEnv(t, flowOpts{})
	e.flowUsers()
	target := newEchoTarget(t)
	e.deploy(callerFlow(target.URL))
	m := want(t, e.do("POST", "/api/v1/workflows/caller/instances", e.bearer("alice"), map[string]any{"q": "hello"}), 201, "", "")
	id := m["id"].(string)
	done := e.waitInstance("alice", id, "completed", "failed")
	if done["status"] != "completed" {
		t.Fatalf("instance = %v", done)
	}
	if got := target.seen(); !slices.Equal(got, []string{"Bearer secret-token-123"}) {
		t.Errorf("the target saw Authorization %v", got)
	}

	r := e.do("GET", "/api/v1/instances/"+id+"/history", e.bearer("alice"), nil)
	h := want(t, r, 200, "", "")
	if strings.Contains(string(r.body), "secret-token-123") {
		t.Errorf("the monitor shows the credential: %s", r.body)
	}
	items := h["items"].([]any)
	if len(items) != 2 {
		t.Fatalf("history = %s", r.body)
	}
	call, answer := items[0].(map[string]any), items[1].(map[string]any)
	if call["seq"] != 1.0 || call["step"] != "call" || call["type"] != "http" || call["status"] != "completed" || call["attempt"] != 1.0 {
		t.Errorf("first entry = %v", call)
	}
	if answer["seq"] != 2.0 || answer["step"] != "answer" || answer["type"] != "return" || answer["status"] != "completed" {
		t.Errorf("second entry = %v", answer)
	}
	headers := call["input"].(map[string]any)["headers"].(map[string]any)
	if headers["Authorization"] != "****" || headers["X-Trace"] != "visible" {
		t.Errorf("recorded request headers = %v", headers)
	}
	if body := call["output"].(map[string]any)["body"].(map[string]any); body["echo"] != "hello" {
		t.Errorf("recorded answer = %v", call["output"])
	}
	for _, it := range items {
		st, _ := time.Parse(time.RFC3339Nano, it.(map[string]any)["started_at"].(string))
		en, _ := time.Parse(time.RFC3339Nano, it.(map[string]any)["ended_at"].(string))
		d, ok := it.(map[string]any)["duration_ms"].(float64)
		if st.IsZero() || en.Before(st) || !ok || d != float64(en.Sub(st).Milliseconds()) {
			t.Errorf("times of %v", it)
		}
	}
	if !strings.HasPrefix(call["started_at"].(string), time.Now().UTC().Format("2006-01-02")) || call["started_at"].(string) > answer["started_at"].(string) {
		t.Errorf("entries out of order: %v then %v", call["started_at"], answer["started_at"])
	}
	// Paged: one entry per page, in the same order.
	m = want(t, e.do("GET", "/api/v1/instances/"+id+"/history?limit=1", e.bearer("alice"), nil), 200, "", "")
	if its := m["items"].([]any); len(its) != 1 || its[0].(map[string]any)["step"] != "call" || m["next_cursor"] == nil {
		t.Fatalf("first page = %v", m)
	}
	m = want(t, e.do("GET", "/api/v1/instances/"+id+"/history?limit=1&cursor="+m["next_cursor"].(string), e.bearer("alice"), nil), 200, "", "")
	if its := m["items"].([]any); len(its) != 1 || its[0].(map[string]any)["step"] != "answer" {
		t.Errorf("second page = %v", m)
	}
	want(t, e.do("GET", "/api/v1/instances/"+id+"/history?limit=x", e.bearer("alice"), nil), 400, "invalid_request", "limit")
}

func TestCancel(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(slowFlow)
		e.deploy(approvalFlow)

		slow := want(t, e.do("POST", "/api/v1/workflows/slow/instances", e.bearer("alice"), nil), 201, "", "")
		id := slow["id"].(string)
		if slow["status"] != "waiting" || slow["current_step"] != "nap" {
			t.Errorf("slow instance = %v", slow)
		}
		// Someone who cannot see it: 404; needs workflows.start.
		want(t, e.do("POST", "/api/v1/instances/"+id+"/cancel", e.bearer("bob"), nil), 404, "not_found", id)
		want(t, e.do("POST", "/api/v1/instances/"+id+"/cancel", "Bearer "+e.token("alice", "workflows.read"), nil), 403, "insufficient_scope", "workflows.start")
		m := want(t, e.do("POST", "/api/v1/instances/"+id+"/cancel", e.bearer("alice"), nil), 200, "", "")
		if m["status"] != "cancelled" || m["ended_at"] == nil || !strings.Contains(fmt.Sprint(m["error"]), "user:alice") {
			t.Errorf("cancelled = %v", m)
		}
		want(t, e.do("POST", "/api/v1/instances/"+id+"/cancel", e.bearer("alice"), nil), 409, "conflict", "cancelled")
		want(t, e.do("POST", "/api/v1/instances/no-such/cancel", e.bearer("alice"), nil), 404, "not_found", "no-such")
		h := e.list("alice", "/api/v1/instances/"+id+"/history")
		if len(h) != 1 || h[0]["step"] != "nap" || h[0]["status"] != "cancelled" {
			t.Errorf("history after cancel = %v", h)
		}

		// An assignee sees the instance but may not cancel it; an admin may,
		// and the task is cancelled with it.
		ap := want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 5}), 201, "", "")
		aid := ap["id"].(string)
		want(t, e.do("GET", "/api/v1/instances/"+aid, e.bearer("bob"), nil), 200, "", "")
		want(t, e.do("POST", "/api/v1/instances/"+aid+"/cancel", e.bearer("bob"), nil), 403, "forbidden", "starter or an administrator")
		tasks := e.list("bob", "/api/v1/tasks")
		if len(tasks) != 1 {
			t.Fatalf("bob's tasks = %v", tasks)
		}
		want(t, e.do("POST", "/api/v1/instances/"+aid+"/cancel", e.bearer("admin"), nil), 200, "", "")
		task := want(t, e.do("GET", fmt.Sprintf("/api/v1/tasks/%v", tasks[0]["serial"]), e.bearer("bob"), nil), 200, "", "")
		if task["status"] != "cancelled" {
			t.Errorf("task after cancel = %v", task)
		}
		want(t, e.do("POST", fmt.Sprintf("/api/v1/tasks/%v/actions/Approve", tasks[0]["serial"]), e.bearer("bob"), map[string]any{"comment": "late"}), 409, "conflict", "")
		// A cancelled task is still the assignee's: the instance stays visible.
		want(t, e.do("GET", "/api/v1/instances/"+aid, e.bearer("bob"), nil), 200, "", "")
	})
}

// TestAdminRoleNeedsAdminScope: the role admin widens what a caller sees
// and does only with a token that grants scope admin. root holds the role;
// with the workflow scopes alone it is any user.
func TestAdminRoleNeedsAdminScope(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.user("root", "root-password", "admin", "employee")
		for _, src := range []string{pureFlow, slowFlow, approvalFlow, restrictedFlow} {
			e.deploy(src)
		}
		own := want(t, e.do("POST", "/api/v1/workflows/pure/instances", e.bearer("root"), map[string]any{"n": 1}), 201, "", "")
		alices := want(t, e.do("POST", "/api/v1/workflows/slow/instances", e.bearer("alice"), nil), 201, "", "")["id"].(string)
		want(t, e.do("POST", "/api/v1/workflows/approval/instances", e.bearer("alice"), map[string]any{"amount": 5}), 201, "", "")

		root := e.bearer("root") // role admin, no scope admin
		if got := field(e.list("root", "/api/v1/instances"), "id"); !slices.Equal(got, []string{own["id"].(string)}) {
			t.Errorf("root without scope admin lists %v, want only its own instance", got)
		}
		want(t, e.do("GET", "/api/v1/instances/"+alices, root, nil), 404, "not_found", alices)
		want(t, e.do("GET", "/api/v1/instances/"+alices+"/history", root, nil), 404, "not_found", alices)
		want(t, e.do("POST", "/api/v1/instances/"+alices+"/cancel", root, nil), 404, "not_found", alices)
		want(t, e.do("GET", "/api/v1/tasks?all=true", root, nil), 403, "forbidden", "scope admin")
		want(t, e.do("GET", "/api/v1/workflows/restricted", root, nil), 404, "not_found", `"restricted"`)
		want(t, e.do("POST", "/api/v1/workflows/restricted/instances", root, nil), 403, "forbidden", "may not start")
		want(t, e.do("GET", "/api/v1/admin/users", root, nil), 403, "insufficient_scope", "admin")
		if got := e.list("alice", "/api/v1/instances"); len(got) != 2 {
			t.Fatalf("alice's instances = %d, want 2 (nothing cancelled)", len(got))
		}

		// The same user with scope admin administers.
		admin := "Bearer " + e.token("root", allScopes+" admin")
		m := want(t, e.do("GET", "/api/v1/instances", admin, nil), 200, "", "")
		if n := len(m["items"].([]any)); n != 3 {
			t.Errorf("root with scope admin lists %d instances, want 3", n)
		}
		want(t, e.do("GET", "/api/v1/tasks?all=true", admin, nil), 200, "", "")
		want(t, e.do("GET", "/api/v1/admin/users", admin, nil), 200, "", "")
		want(t, e.do("POST", "/api/v1/instances/"+alices+"/cancel", admin, nil), 200, "", "")
	})
}

// A flow step's child names its parent, and the parent its children.
func TestInstanceParentAndChildren(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(pureFlow)
		e.deploy(`
name: outer
permissions: {start: ["role:employee"]}
steps:
  - {id: inner, type: flow, flow: pure, input: {n: 3}}
  - {id: done, type: return, body: "${{ steps.inner.output.output.body }}"}
`)
		alice := e.bearer("alice")
		outer := want(t, e.do("POST", "/api/v1/workflows/outer/instances", alice, nil), 201, "", "")
		id, _ := outer["id"].(string)
		var got map[string]any
		for range 100 {
			if got = want(t, e.do("GET", "/api/v1/instances/"+id, alice, nil), 200, "", ""); got["status"] == "completed" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		kids, _ := got["children"].([]any)
		if got["status"] != "completed" || got["parent"] != nil || len(kids) != 1 {
			t.Fatalf("outer = %v", got)
		}
		child := want(t, e.do("GET", "/api/v1/instances/"+kids[0].(string), alice, nil), 200, "", "")
		if child["parent"] != id || child["workflow"] != "pure" || child["started_by"] != "user:alice" {
			t.Errorf("child = %v", child)
		}
		if c, _ := child["children"].([]any); c == nil || len(c) != 0 {
			t.Errorf("child's children = %v, want []", child["children"])
		}
	})
}

// A parallel step's branches show as the instance's current steps while
// they wait, and their records in its history, marked with the branch;
// a foreach's items with their index.
func TestParallelAndForeachInTheAPI(t *testing.T) {
	flowBackends(t, flowOpts{}, func(t *testing.T, e *env) {
		e.flowUsers()
		e.deploy(`
name: fan
permissions: {start: ["role:employee"]}
steps:
  - id: both
    type: parallel
    branches:
      left: [{id: ask, type: task, title: Left, assignees: ["role:approver"], actions: [OK]}]
      right: [{id: note, type: set, vars: {right: done}}]
  - id: each
    type: foreach
    items: "${{ [10, 20] }}"
    as: n
    steps: [{id: twice, type: set, vars: {last: "${{ n * 2 }}"}}]
  - {id: done, type: return, body: {items: "${{ steps.each.output.items }}", right: "${{ vars.right }}"}}
`)
		alice, bob := e.bearer("alice"), e.bearer("bob")
		started := want(t, e.do("POST", "/api/v1/workflows/fan/instances", alice, nil), 201, "", "")
		id, _ := started["id"].(string)
		var got map[string]any
		for range 200 {
			got = want(t, e.do("GET", "/api/v1/instances/"+id, alice, nil), 200, "", "")
			if cs, _ := got["current_steps"].([]any); len(cs) == 2 && got["status"] == "waiting" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		cs, _ := got["current_steps"].([]any)
		if len(cs) != 2 {
			t.Fatalf("current_steps = %v", got["current_steps"])
		}
		first, _ := cs[0].(map[string]any)
		second, _ := cs[1].(map[string]any)
		if first["step"] != "both" || first["instance"] != id || second["step"] != "ask" || second["branch"] != "left" || second["status"] != "waiting" {
			t.Errorf("current_steps = %v", cs)
		}
		// Branch instances are the parent's children, not instances of
		// their own in the listing.
		if kids, _ := got["children"].([]any); len(kids) != 2 {
			t.Errorf("children = %v", got["children"])
		}
		for _, in := range e.list("alice", "/api/v1/instances") {
			if in["branch"] != nil {
				t.Errorf("listed branch instance %v", in)
			}
		}
		tasks := e.list("bob", "/api/v1/tasks")
		if len(tasks) != 1 {
			t.Fatalf("bob's tasks = %v", tasks)
		}
		serial := fmt.Sprint(tasks[0]["serial"])
		want(t, e.do("POST", "/api/v1/tasks/"+serial+"/actions/OK", bob, nil), 200, "", "")
		for range 200 {
			if got = want(t, e.do("GET", "/api/v1/instances/"+id, alice, nil), 200, "", ""); got["status"] == "completed" {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got["status"] != "completed" || len(got["current_steps"].([]any)) != 0 {
			t.Fatalf("instance = %v", got)
		}
		if out, _ := json.Marshal(got["output"]); !strings.Contains(string(out), `"items":[{"last":20},{"last":40}]`) || !strings.Contains(string(out), `"right":"done"`) {
			t.Errorf("output %s", out)
		}
		var marks []string
		var all []map[string]any
		for path := "/api/v1/instances/" + id + "/history?limit=3"; path != ""; {
			page := want(t, e.do("GET", path, alice, nil), 200, "", "")
			items, _ := page["items"].([]any)
			for _, it := range items {
				all = append(all, it.(map[string]any))
			}
			path = ""
			if next, ok := page["next_cursor"].(string); ok {
				path = "/api/v1/instances/" + id + "/history?limit=3&cursor=" + next
			}
		}
		for _, h := range all {
			m := fmt.Sprint(h["step"])
			if b, ok := h["branch"]; ok {
				m += "@" + fmt.Sprint(h["fork"]) + "/" + fmt.Sprint(b)
			}
			if i, ok := h["item"]; ok {
				m += "@" + fmt.Sprint(h["fork"]) + "[" + fmt.Sprint(i) + "]"
			}
			marks = append(marks, m)
		}
		slices.Sort(marks)
		if strings.Join(marks, " ") != "ask@both/left both done each note@both/right twice@each[0] twice@each[1]" {
			t.Errorf("history = %v", marks)
		}
	})
}
