package engine_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

const reviewFlow = `
name: review
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
steps:
  - id: reviews
    type: parallel
    join: %s
    branches:
      legal:
        - {id: legal-ok, type: task, title: "Legal review", assignees: ["role:legal"], actions: [OK, Reject]}
        - {id: legal-note, type: set, vars: {legal: "${{ steps[\"legal-ok\"].output.action }}"}}
      finance:
        - {id: finance-ok, type: task, title: "Finance review of ${{ input.amount }}", assignees: ["role:finance"], actions: [OK, Reject], next: {Reject: finance-no}}
        - {id: finance-yes, type: set, vars: {finance: approved}}
        - {id: finance-done, type: return, body: {finance: approved}}
        - {id: finance-no, type: fail, error: "finance said no"}
  - id: done
    type: return
    body:
      branches: "${{ steps.reviews.output.branches }}"
      winner: "${{ steps.reviews.output.winner }}"
      legal: "${{ vars.legal }}"
      finance: "${{ vars.finance }}"
      after: "${{ steps[\"legal-note\"].output }}"
`

var (
	legalist = engine.Caller{User: aliceLike("user:lea")}
	financer = engine.Caller{User: aliceLike("user:fin")}
)

func init() {
	legalist.Roles = []string{"legal"}
	financer.Roles = []string{"finance"}
}

// openTaskOf waits for the one open task of role's worklist in one of
// the instance's branches.
func branchTask(t *testing.T, e *engine.Engine, c engine.Caller, step string) store.Task {
	t.Helper()
	for range 500 {
		tasks, _, err := e.ListTasks(t.Context(), c, false, "", store.Page{})
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tasks {
			if tk.StepID == step {
				return tk
			}
		}
		sleepBriefly()
	}
	t.Fatalf("no open task at %s for %s", step, c.ID)
	return store.Task{}
}

func TestParallelTasksInEitherOrder(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, fmt.Sprintf(reviewFlow, "all"))
		for _, order := range [][]string{{"legal", "finance"}, {"finance", "legal"}} {
			t.Run(strings.Join(order, "-then-"), func(t *testing.T) {
				res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 700}, Caller: alice})
				if err != nil {
					t.Fatal(err)
				}
				parent := waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
				lt, ft := branchTask(t, e, legalist, "legal-ok"), branchTask(t, e, financer, "finance-ok")
				if ft.Title != "Finance review of 700" {
					t.Errorf("finance task title %q", ft.Title)
				}
				kids, _, err := s.ListInstances(t.Context(), store.InstanceFilter{Parent: parent.ID}, store.Page{})
				if err != nil || len(kids) != 2 {
					t.Fatalf("branch instances %v %v", kids, err)
				}
				labels := []string{kids[0].Branch, kids[1].Branch}
				slices.Sort(labels)
				if !slices.Equal(labels, []string{"reviews/finance", "reviews/legal"}) {
					t.Errorf("branch labels %v", labels)
				}
				// Branch instances are not listed as instances of their own.
				all, _, _ := s.ListInstances(t.Context(), store.InstanceFilter{}, store.Page{Limit: store.MaxLimit})
				for _, in := range all {
					if in.Branch != "" {
						t.Errorf("listed branch instance %s", in.ID)
					}
				}
				act := map[string]func(){
					"legal":   func() { mustAct(t, e, lt.Serial, "OK", legalist) },
					"finance": func() { mustAct(t, e, ft.Serial, "OK", financer) },
				}
				act[order[0]]()
				if in := waitStatus(t, s, parent.ID, store.StatusWaiting, store.StatusCompleted); in.Status != store.StatusWaiting {
					t.Fatalf("after one branch the parent is %s", in.Status)
				}
				act[order[1]]()
				parent = waitStatus(t, s, parent.ID, store.StatusCompleted, store.StatusFailed)
				if parent.Status != store.StatusCompleted {
					t.Fatalf("parent %s %q", parent.Status, parent.Error)
				}
				b := responseBody(t, parent)
				br, _ := json.Marshal(b["branches"])
				if string(br) != `{"finance":{"output":{"body":{"finance":"approved"},"status":200},"status":"completed"},"legal":{"output":{"legal":"OK"},"status":"completed"}}` {
					t.Errorf("branches %s", br)
				}
				if b["legal"] != "OK" || b["finance"] != "approved" || b["winner"] != nil {
					t.Errorf("vars after the join: %v", b)
				}
				if after, _ := json.Marshal(b["after"]); string(after) != `{"legal":"OK"}` {
					t.Errorf("a branch step's output after the join: %s", after)
				}
				// The join happened once.
				var steps []string
				for _, r := range history(t, s, parent.ID) {
					steps = append(steps, r.StepID+":"+r.Status)
				}
				if !slices.Equal(steps, []string{"reviews:completed", "done:completed"}) {
					t.Errorf("parent history %v", steps)
				}
			})
		}
	})
}

func mustAct(t *testing.T, e *engine.Engine, serial int64, action string, c engine.Caller) {
	t.Helper()
	if _, err := e.Act(t.Context(), serial, action, nil, c); err != nil {
		t.Fatalf("act %s on task %d: %v", action, serial, err)
	}
}

func TestParallelJoinAnyCancelsTheLoser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		deploy(t, e, fmt.Sprintf(reviewFlow, "any"))
		res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 5}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		lt, ft := branchTask(t, e, legalist, "legal-ok"), branchTask(t, e, financer, "finance-ok")
		mustAct(t, e, lt.Serial, "OK", legalist)
		parent := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
		b := responseBody(t, parent)
		if parent.Status != store.StatusCompleted || b["winner"] != "legal" || b["legal"] != "OK" || b["finance"] != nil {
			t.Fatalf("parent %s %q, body %v", parent.Status, parent.Error, b)
		}
		br, _ := json.Marshal(b["branches"])
		if string(br) != `{"finance":{"output":null,"status":"cancelled"},"legal":{"output":{"legal":"OK"},"status":"completed"}}` {
			t.Errorf("branches %s", br)
		}
		// The loser's task is closed and its instance cancelled.
		if got, err := s.GetTask(t.Context(), ft.Serial); err != nil || got.Status != store.TaskCancelled {
			t.Errorf("finance task %s %v", got.Status, err)
		}
		if _, err := e.Act(t.Context(), ft.Serial, "OK", nil, financer); err == nil {
			t.Error("acting on the loser's task went through")
		}
		kids, _, _ := s.ListInstances(t.Context(), store.InstanceFilter{Parent: parent.ID}, store.Page{})
		for _, k := range kids {
			want := map[string]string{"reviews/legal": store.StatusCompleted, "reviews/finance": store.StatusCancelled}[k.Branch]
			if k.Status != want {
				t.Errorf("branch %s is %s, want %s", k.Branch, k.Status, want)
			}
		}
	})
}

func TestParallelBranchFailureCaughtByOnError(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	src := strings.Replace(fmt.Sprintf(reviewFlow, "all"), "    join: all\n", "    join: all\n    on_error: rejected\n", 1) +
		"  - {id: rejected, type: return, status: 409, body: {why: \"${{ steps.reviews.error.message }}\", type: \"${{ steps.reviews.error.type }}\"}}\n"
	deploy(t, e, src)
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 5}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	lt, ft := branchTask(t, e, legalist, "legal-ok"), branchTask(t, e, financer, "finance-ok")
	mustAct(t, e, ft.Serial, "Reject", financer)
	parent := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	b := responseBody(t, parent)
	if parent.Status != store.StatusCompleted || b["type"] != "branch" || !contains(fmt.Sprint(b["why"]), "branch finance") ||
		!contains(fmt.Sprint(b["why"]), "finance said no") {
		t.Fatalf("parent %s %q, body %v", parent.Status, parent.Error, b)
	}
	// The branch still running when the other failed is cancelled.
	if got, _ := s.GetTask(t.Context(), lt.Serial); got.Status != store.TaskCancelled {
		t.Errorf("legal task %s", got.Status)
	}
}

// itemTarget records the order items reach it and counts calls per item.
type itemTarget struct {
	mu      sync.Mutex
	order   []int
	calls   map[int]int
	running int
	most    int
	// gate, when set, holds every call until gateAt calls are in flight
	// at once: only items that truly run at the same time get through.
	gate   chan struct{}
	gateAt int
}

func (it *itemTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n, _ := strconv.Atoi(r.URL.Query().Get("n"))
	it.mu.Lock()
	it.order = append(it.order, n)
	it.calls[n]++
	it.running++
	it.most = max(it.most, it.running)
	if it.gate != nil && it.running == it.gateAt {
		close(it.gate)
		it.gate = nil
	}
	gate := it.gate
	it.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-time.After(10 * time.Second):
			// Never as many at once: the test's count says so.
		}
	}
	it.mu.Lock()
	it.running--
	it.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"price": %d}`, n*10)
}

const priceFlow = `
name: price
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
  lines: {type: array, required: true}
steps:
  - id: each-line
    type: foreach
    items: "${{ input.lines }}"
    as: line
    concurrency: %d
    steps:
      - {id: price, type: http, url: "${{ input.url }}?n=${{ line.n }}&i=${{ line_index }}", fail_on_status: true}
      - {id: total, type: set, vars: {"last": "${{ line.n }}"}}
      - {id: keep, type: set, vars: {"p": "${{ steps.price.output.body.price }}", "i": "${{ line_index }}"}}
  - id: done
    type: return
    body: {items: "${{ steps[\"each-line\"].output.items }}", last: "${{ vars.last }}"}
`

func TestForeachConcurrency(t *testing.T) {
	forEachBackend(t, func(t *testing.T, stores []backend.Store) {
		s := stores[0]
		e := newEngine(t, s, engine.Config{})
		for _, conc := range []int{1, 4} {
			t.Run("concurrency-"+strconv.Itoa(conc), func(t *testing.T) {
				target := &itemTarget{calls: map[int]int{}}
				if conc > 1 {
					target.gate, target.gateAt = make(chan struct{}), conc
				}
				srv := httptest.NewServer(target)
				defer srv.Close()
				deploy(t, e, fmt.Sprintf(priceFlow, conc))
				var lines []any
				for i := range 10 {
					lines = append(lines, map[string]any{"n": i + 1})
				}
				res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "price", Input: map[string]any{"url": srv.URL, "lines": lines}, Caller: alice})
				if err != nil {
					t.Fatal(err)
				}
				parent := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
				if parent.Status != store.StatusCompleted {
					t.Fatalf("parent %s %q", parent.Status, parent.Error)
				}
				b := responseBody(t, parent)
				items, _ := json.Marshal(b["items"])
				want := `[`
				for i := range 10 {
					if i > 0 {
						want += ","
					}
					want += fmt.Sprintf(`{"i":%d,"p":%d}`, i, (i+1)*10)
				}
				if string(items) != want+`]` {
					t.Errorf("items %s", items)
				}
				target.mu.Lock()
				defer target.mu.Unlock()
				for i := 1; i <= 10; i++ {
					if target.calls[i] != 1 {
						t.Errorf("item %d called the target %d times", i, target.calls[i])
					}
				}
				if conc == 1 {
					if !slices.IsSorted(target.order) || target.most != 1 {
						t.Errorf("concurrency 1: order %v, at most %d at once", target.order, target.most)
					}
					if b["last"] != float64(10) {
						t.Errorf("vars.last = %v, want the last item's", b["last"])
					}
				}
				if conc > 1 && target.most != conc {
					t.Errorf("concurrency %d: at most %d items ran at once", conc, target.most)
				}
				kids, _, _ := s.ListInstances(t.Context(), store.InstanceFilter{Parent: parent.ID}, store.Page{Limit: store.MaxLimit})
				if len(kids) != 10 {
					t.Errorf("%d item instances, want 10", len(kids))
				}
			})
		}
	})
}

func TestForeachItemFailureAndEmptyList(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: checks
permissions: {start: ["role:employee"]}
input:
  xs: {type: array, required: true}
steps:
  - id: each
    type: foreach
    items: "${{ input.xs }}"
    concurrency: 2
    steps:
      - {id: check, type: switch, cases: [{when: "${{ item < 0 }}", next: bad}]}
      - {id: good, type: set, vars: {seen: "${{ item }}"}}
      - {id: stop, type: return, body: {ok: "${{ item }}"}}
      - {id: bad, type: fail, error: "negative at ${{ item_index }}"}
  - id: done
    type: return
    body: "${{ steps.each.output.items }}"
`)
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "checks", Input: map[string]any{"xs": []any{}}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	if in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed); in.Status != store.StatusCompleted || !contains(string(in.Output), `"body":[]`) {
		t.Errorf("empty list: %s %q %s", in.Status, in.Error, in.Output)
	}
	res, err = e.StartInstance(t.Context(), engine.StartRequest{Workflow: "checks", Input: map[string]any{"xs": []any{1, 2, -3, 4}}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if in.Status != store.StatusFailed || !contains(in.Error, `step "each"`) || !contains(in.Error, "item 2") || !contains(in.Error, "negative at 2") {
		t.Errorf("failing item: %s %q", in.Status, in.Error)
	}
	deploy(t, e, `
name: not-a-list
permissions: {start: ["role:employee"]}
steps:
  - {id: each, type: foreach, items: "${{ 'abc' }}", steps: [{id: s, type: set, vars: {x: 1}}]}
`)
	res, err = e.StartInstance(t.Context(), engine.StartRequest{Workflow: "not-a-list", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	in = waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if in.Status != store.StatusFailed || !contains(in.Error, "items: want a list, got a string") {
		t.Errorf("a string as items: %s %q", in.Status, in.Error)
	}
}

func sleepBriefly() { time.Sleep(20 * time.Millisecond) }

// The parallel example of docs/flows.md runs as written: both reviews
// approve, in whichever order, and the answer carries a branch's var.
func TestParallelDocExample(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, docExamples(t, "### `parallel` — run branches at the same time")[0])
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "large-expense", Input: map[string]any{"amount": 12000}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	ft, lt := branchTask(t, e, financer, "finance-ok"), branchTask(t, e, legalist, "legal-ok")
	if lt.Title != "Legal: 12000" {
		t.Errorf("legal task %q", lt.Title)
	}
	mustAct(t, e, ft.Serial, "OK", financer)
	mustAct(t, e, lt.Serial, "OK", legalist)
	in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if b := responseBody(t, in); in.Status != store.StatusCompleted || b["approved"] != true || b["budget_checked"] != true {
		t.Errorf("%s %q %v", in.Status, in.Error, b)
	}
}

// The foreach example of docs/flows.md runs as written against a local
// price service: four lines priced at once, totals in line order.
func TestForeachDocExample(t *testing.T) {
	prices := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		unit := map[string]int{"/price/A-1": 3, "/price/B-2": 5, "/price/C-3": 7, "/price/D-4": 11}[r.URL.Path]
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"unit": %d}`, unit)
	}))
	defer prices.Close()
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, docExamples(t, "### `foreach` — run steps for each item of a list")[0])
	sales := engine.Caller{User: aliceLike("user:sam")}
	sales.Roles = []string{"sales"}
	lines := []any{
		map[string]any{"sku": "A-1", "qty": 2}, map[string]any{"sku": "B-2", "qty": 1},
		map[string]any{"sku": "C-3", "qty": 3}, map[string]any{"sku": "D-4", "qty": 10}, map[string]any{"sku": "A-1", "qty": 1},
	}
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "price-order", Input: map[string]any{"prices": prices.URL, "lines": lines}, Caller: sales})
	if err != nil {
		t.Fatal(err)
	}
	in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if b, _ := json.Marshal(responseBody(t, in)["totals"]); in.Status != store.StatusCompleted || string(b) != "[6,5,21,110,3]" {
		t.Errorf("%s %q totals %s", in.Status, in.Error, b)
	}
}

// An invoke of a flow whose parallel step waits for a person answers at
// once, as it does for a task of the instance's own, rather than after
// the invoke wait.
func TestInvokeAnswersWhenABranchWaitsForAPerson(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{InvokeWait: time.Minute})
	deploy(t, e, fmt.Sprintf(reviewFlow, "all"))
	done := make(chan engine.InvokeResult, 1)
	go func() {
		res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 1}, Caller: alice}, false)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	select {
	case res := <-done:
		if res.Done || res.Instance.Status != store.StatusWaiting {
			t.Errorf("invoke answered %s, done %v", res.Instance.Status, res.Done)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the invoke still waits while the branches wait for people")
	}
}

// Cancelling an instance whose parallel step waits cancels its branches:
// their tasks close.
func TestCancelReachesBranches(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, fmt.Sprintf(reviewFlow, "all"))
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 1}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	lt, ft := branchTask(t, e, legalist, "legal-ok"), branchTask(t, e, financer, "finance-ok")
	waitStatus(t, s, res.Instance.ID, store.StatusWaiting)
	if _, err := e.Cancel(t.Context(), res.Instance.ID, alice); err != nil {
		t.Fatal(err)
	}
	for _, serial := range []int64{lt.Serial, ft.Serial} {
		if got, _ := s.GetTask(t.Context(), serial); got.Status != store.TaskCancelled {
			t.Errorf("task %d is %s", serial, got.Status)
		}
	}
	kids, _, _ := s.ListInstances(t.Context(), store.InstanceFilter{Parent: res.Instance.ID}, store.Page{})
	for _, k := range kids {
		if k.Status != store.StatusCancelled {
			t.Errorf("branch %s is %s", k.Branch, k.Status)
		}
	}
	if len(kids) != 2 {
		t.Errorf("%d branch instances", len(kids))
	}
}

// A foreach inside a parallel branch inside a foreach: each level's item
// names reach the innermost steps, and outputs come back in order.
func TestNestedForks(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: nested
permissions: {start: ["role:employee"]}
steps:
  - id: rows
    type: foreach
    items: "${{ ['a', 'b'] }}"
    as: row
    concurrency: 2
    steps:
      - id: sides
        type: parallel
        branches:
          left:
            - id: cols
              type: foreach
              items: "${{ [1, 2, 3] }}"
              as: col
              steps: [{id: cell, type: set, vars: {cell: "${{ row }}${{ col }}/${{ row_index }}${{ col_index }}"}}]
          right: [{id: mark, type: set, vars: {side: "${{ row }}"}}]
  - {id: done, type: return, body: "${{ steps.rows.output.items }}"}
`)
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "nested", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if in.Status != store.StatusCompleted {
		t.Fatalf("%s %q", in.Status, in.Error)
	}
	var out struct {
		Body []map[string]map[string]map[string]any
	}
	if err := json.Unmarshal(in.Output, &out); err != nil || len(out.Body) != 2 {
		t.Fatalf("output %s: %v", in.Output, err)
	}
	for i, row := range out.Body {
		left, _ := json.Marshal(row["branches"]["left"]["output"])
		want := fmt.Sprintf(`{"items":[{"cell":"%[1]s1/%[2]d0"},{"cell":"%[1]s2/%[2]d1"},{"cell":"%[1]s3/%[2]d2"}]}`, []string{"a", "b"}[i], i)
		if string(left) != want {
			t.Errorf("row %d left %s, want %s", i, left, want)
		}
	}
	// The history of the outer instance holds every cell, marked.
	recs, _, err := e.History(t.Context(), in.ID, store.Page{Limit: store.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	cells := 0
	for _, r := range recs {
		if r.StepID == "cell" && r.Fork == "cols" && r.Item >= 0 {
			cells++
		}
	}
	if cells != 6 {
		t.Errorf("%d cell records in the merged history, want 6", cells)
	}
}

// An assignee of a branch's task may see the instance the branch is of,
// as an assignee of its own task may; someone else may not.
func TestBranchAssigneeSeesTheInstance(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, fmt.Sprintf(reviewFlow, "all"))
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 1}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	branchTask(t, e, legalist, "legal-ok")
	if _, err := e.VisibleInstance(t.Context(), res.Instance.ID, legalist); err != nil {
		t.Errorf("the legal reviewer may not see the instance: %v", err)
	}
	if _, err := e.VisibleInstance(t.Context(), res.Instance.ID, bob); err == nil {
		t.Error("bob, assigned nothing in it, sees the instance")
	}
	// Who may see the instance may see what it started: the legal
	// reviewer sees the finance branch too; bob sees neither.
	kids, err := e.ChildInstances(t.Context(), res.Instance.ID)
	if err != nil || len(kids) != 2 {
		t.Fatalf("children %v %v", kids, err)
	}
	for _, k := range kids {
		if _, err := e.VisibleInstance(t.Context(), k.ID, legalist); err != nil {
			t.Errorf("the legal reviewer may not see branch %s: %v", k.Branch, err)
		}
		if _, err := e.VisibleInstance(t.Context(), k.ID, bob); err == nil {
			t.Errorf("bob sees branch %s", k.Branch)
		}
	}
}

// A branch sees what the instance saw before the fork: a step's output
// and a caught error.
func TestBranchSeesEarlierSteps(t *testing.T) {
	s := openStore(t)
	e := newEngine(t, s, engine.Config{})
	deploy(t, e, `
name: before
permissions: {start: ["role:employee"]}
steps:
  - {id: first, type: set, vars: {x: 1}}
  - {id: broken, type: fail, error: "no luck", on_error: fork}
  - id: fork
    type: parallel
    branches:
      only: [{id: look, type: set, vars: {seen: "${{ steps.first.output.x }} ${{ steps.broken.error.message }}"}}]
  - {id: done, type: return, body: "${{ vars.seen }}"}
`)
	res, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "before", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	in := waitStatus(t, s, res.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if in.Status != store.StatusCompleted || !contains(string(in.Output), `"body":"1 no luck"`) {
		t.Errorf("%s %q %s", in.Status, in.Error, in.Output)
	}
}
