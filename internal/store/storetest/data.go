package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// runDataConformance covers the Data API's reads: filters, order, paging,
// counts, flow input fields and who sees which rows.
func runDataConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"DataFilters", testDataFilters},
		{"DataInputFields", testDataInputFields},
		{"DataScope", testDataScope},
		{"DataBadQueries", testDataBadQueries},
		{"DataKeysetPaging", testDataKeysetPaging},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// dataFixture makes 10 instances of "expense": even ones alice's, odd ones
// bob's; instance n started at 1_700_000_000+n s, input {"amount": n*10,
// "note": "item-n", "urgent": n%3 == 0}; instances 0..4 completed (ended
// one second after they started), the rest running. Each has one step
// record and one task assigned to its starter.
func dataFixture(t *testing.T, s store.Store) {
	t.Helper()
	deploy(t, s, "expense")
	for n := range 10 {
		in := fullInstance(instanceID(n), "expense", 1)
		in.StartedBy = "user:alice"
		if n%2 == 1 {
			in.StartedBy = "user:bob"
		}
		in.StartedAt = time.Unix(int64(1_700_000_000+n), 0).UTC()
		in.UpdatedAt = in.StartedAt
		in.Input = fmt.Appendf(nil, `{"amount": %d, "note": "item-%d", "urgent": %t}`, n*10, n, n%3 == 0)
		in.Owner, in.LeaseUntil = "", time.Time{}
		in.Status = store.StatusWaiting
		if n < 5 {
			in.Status, in.EndedAt, in.CurrentStep = store.StatusCompleted, in.StartedAt.Add(time.Second), ""
		}
		step := store.StepRecord{Seq: 1, StepID: "approve", Type: "task", Status: store.StepWaiting, Attempt: 1, StartedAt: in.StartedAt}
		task := &store.Task{StepID: "approve", Seq: 1, Type: store.TaskTypeTask, Title: fmt.Sprintf("Approve %d", n),
			Assignees: []string{in.StartedBy}, Actions: []string{"approve"}}
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Steps: []store.StepRecord{step}, NewTasks: []*store.Task{task}}); err != nil {
			t.Fatal(err)
		}
	}
}

func dataIDs(t *testing.T, s store.Store, q store.DataQuery) []string {
	t.Helper()
	rows, err := s.QueryData(ctx(t), q)
	if err != nil {
		t.Fatalf("QueryData(%+v): %v", q, err)
	}
	var out []string
	for _, r := range rows {
		id, _ := r["Id"].(string)
		out = append(out, strings.TrimLeft(strings.TrimPrefix(id, "0190f3a0-0000-7000-8000-"), "0"))
	}
	return out
}

func testDataFilters(t *testing.T, s store.Store) {
	dataFixture(t, s)
	all := store.DataScope{All: true}
	at := func(n int) time.Time { return time.Unix(int64(1_700_000_000+n), 0).UTC() }
	for _, tc := range []struct {
		name   string
		filter store.DataExpr
		want   string
	}{
		{"eq", store.DataCompare{Field: "Status", Op: store.OpEq, Value: "completed"}, "1 2 3 4"},
		{"ne", store.DataCompare{Field: "StartedBy", Op: store.OpNe, Value: "user:alice"}, "1 3 5 7 9"},
		{"gt time", store.DataCompare{Field: "StartedAt", Op: store.OpGt, Value: at(7)}, "8 9"},
		{"ge time", store.DataCompare{Field: "StartedAt", Op: store.OpGe, Value: at(7)}, "7 8 9"},
		{"lt", store.DataCompare{Field: "StartedAt", Op: store.OpLt, Value: at(2)}, "1"},
		{"le", store.DataCompare{Field: "StartedAt", Op: store.OpLe, Value: at(2)}, "1 2"},
		{"null", store.DataCompare{Field: "EndedAt", Op: store.OpEq, Value: nil}, "5 6 7 8 9"},
		{"not null", store.DataCompare{Field: "EndedAt", Op: store.OpNe, Value: nil}, "1 2 3 4"},
		{"and", store.DataAnd{L: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "completed"},
			R: store.DataCompare{Field: "StartedBy", Op: store.OpEq, Value: "user:bob"}}, "1 3"},
		{"or", store.DataOr{L: store.DataCompare{Field: "StartedAt", Op: store.OpLt, Value: at(2)},
			R: store.DataCompare{Field: "StartedAt", Op: store.OpGt, Value: at(8)}}, "1 9"},
		{"not", store.DataNot{X: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "waiting"}}, "1 2 3 4"},
		// not over a missing value: EndedAt gt x is unknown, so not(…) holds.
		{"not null compare", store.DataNot{X: store.DataCompare{Field: "EndedAt", Op: store.OpGt, Value: at(0)}}, "5 6 7 8 9"},
		{"contains", store.DataMatch{Func: store.MatchContains, Field: "Status", Value: "omple"}, "1 2 3 4"},
		{"contains is case-sensitive", store.DataMatch{Func: store.MatchContains, Field: "Status", Value: "OMPLE"}, ""},
		{"startswith", store.DataMatch{Func: store.MatchStartsWith, Field: "Status", Value: "wai"}, "5 6 7 8 9"},
		{"endswith", store.DataMatch{Func: store.MatchEndsWith, Field: "StartedBy", Value: ":bob"}, "1 3 5 7 9"},
		{"percent is literal", store.DataMatch{Func: store.MatchContains, Field: "Status", Value: "%"}, ""},
	} {
		got := strings.Join(dataIDs(t, s, store.DataQuery{Set: store.DataInstances, Filter: tc.filter, Scope: all}), " ")
		// Instance 0's id trims to "".
		got = strings.TrimSpace(got)
		if got != tc.want {
			t.Errorf("%s: ids %q, want %q", tc.name, got, tc.want)
		}
	}

	// Order, skip, limit and count.
	q := store.DataQuery{Set: store.DataInstances, Scope: all, OrderBy: []store.DataOrder{{Field: "StartedAt", Desc: true}},
		Skip: 2, Limit: 3, Select: []string{"Id", "StartedAt"}}
	if got := strings.Join(dataIDs(t, s, q), " "); got != "7 6 5" {
		t.Errorf("ordered page: %q, want 7 6 5", got)
	}
	rows, err := s.QueryData(ctx(t), q)
	if err != nil || len(rows) != 3 || len(rows[0]) != 2 || !rows[0]["StartedAt"].(time.Time).Equal(at(7)) {
		t.Errorf("selected fields: %v, %v", rows, err)
	}
	n, err := s.CountData(ctx(t), store.DataQuery{Set: store.DataInstances, Scope: all,
		Filter: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "waiting"}, Limit: 1})
	if err != nil || n != 5 {
		t.Errorf("CountData = %d, %v; want 5", n, err)
	}
	plan, err := s.ExplainData(ctx(t), q)
	if err != nil || plan == "" {
		t.Errorf("ExplainData = %q, %v", plan, err)
	}

	// The other sets.
	for set, want := range map[store.DataSet]int64{store.DataWorkflows: 1, store.DataTasks: 10, store.DataSteps: 10} {
		if n, err := s.CountData(ctx(t), store.DataQuery{Set: set, Scope: all}); err != nil || n != want {
			t.Errorf("CountData(%s) = %d, %v; want %d", set, n, err, want)
		}
	}
	steps, err := s.QueryData(ctx(t), store.DataQuery{Set: store.DataSteps, Scope: all,
		Filter: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "waiting"}, Limit: 1})
	if err != nil || len(steps) != 1 || steps[0]["Seq"] != int64(1) || steps[0]["DurationMs"] != nil {
		t.Errorf("steps: %v, %v", steps, err)
	}
	tasks, err := s.QueryData(ctx(t), store.DataQuery{Set: store.DataTasks, Scope: all,
		Filter: store.DataMatch{Func: store.MatchEndsWith, Field: "Title", Value: " 4"}})
	if err != nil || len(tasks) != 1 || tasks[0]["Title"] != "Approve 4" {
		t.Errorf("tasks: %v, %v", tasks, err)
	}
}

func testDataInputFields(t *testing.T, s store.Store) {
	dataFixture(t, s)
	inputs := []store.DataField{{Name: "amount", Type: store.DataFloat, InputKey: "amount"},
		{Name: "note", InputKey: "note"}, {Name: "urgent", Type: store.DataBool, InputKey: "urgent"},
		{Name: "missing", Type: store.DataInt, InputKey: "missing"}}
	q := func(f store.DataExpr) store.DataQuery {
		return store.DataQuery{Set: store.DataInstances, Workflow: "expense", Inputs: inputs, Filter: f, Scope: store.DataScope{All: true}}
	}
	for _, tc := range []struct {
		name   string
		filter store.DataExpr
		want   string
	}{
		{"number", store.DataCompare{Field: "amount", Op: store.OpGe, Value: int64(70)}, "7 8 9"},
		{"string", store.DataMatch{Func: store.MatchEndsWith, Field: "note", Value: "-3"}, "3"},
		{"bool", store.DataCompare{Field: "urgent", Op: store.OpEq, Value: true}, "3 6 9"},
		{"absent key", store.DataCompare{Field: "missing", Op: store.OpEq, Value: nil}, "1 2 3 4 5 6 7 8 9"},
	} {
		got := strings.TrimSpace(strings.Join(dataIDs(t, s, q(tc.filter)), " "))
		if got != tc.want {
			t.Errorf("%s: ids %q, want %q", tc.name, got, tc.want)
		}
	}
	rows, err := s.QueryData(ctx(t), store.DataQuery{Set: store.DataInstances, Workflow: "expense", Inputs: inputs,
		Scope: store.DataScope{All: true}, Skip: 3, Limit: 1})
	if err != nil || len(rows) != 1 {
		t.Fatalf("row: %v, %v", rows, err)
	}
	if r := rows[0]; r["amount"] != float64(30) || r["note"] != "item-3" || r["urgent"] != true || r["missing"] != nil {
		t.Errorf("typed input fields: %v", r)
	}
	if n, err := s.CountData(ctx(t), store.DataQuery{Set: store.DataInstances, Workflow: "other", Scope: store.DataScope{All: true}}); err != nil || n != 0 {
		t.Errorf("another flow's count = %d, %v", n, err)
	}
}

func testDataScope(t *testing.T, s store.Store) {
	dataFixture(t, s)
	alice := store.DataScope{StartedBy: "user:alice", Assignees: []string{"user:alice", "role:nobody"}, Workflows: []string{"expense"}}
	for set, want := range map[store.DataSet]int64{store.DataInstances: 5, store.DataTasks: 5, store.DataSteps: 5,
		store.DataWorkflows: 1, store.DataAudit: 0} {
		if n, err := s.CountData(ctx(t), store.DataQuery{Set: set, Scope: alice}); err != nil || n != want {
			t.Errorf("alice's CountData(%s) = %d, %v; want %d", set, n, err, want)
		}
		if n, err := s.CountData(ctx(t), store.DataQuery{Set: set}); err != nil || n != 0 {
			t.Errorf("the zero scope's CountData(%s) = %d, %v; want 0", set, n, err)
		}
	}
	rows, err := s.QueryData(ctx(t), store.DataQuery{Set: store.DataInstances, Scope: alice, Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r["StartedBy"] != "user:alice" {
			t.Errorf("alice sees %v", r)
		}
	}
	if n, err := s.CountData(ctx(t), store.DataQuery{Set: store.DataWorkflows, Scope: store.DataScope{StartedBy: "user:alice"}}); err != nil || n != 0 {
		t.Errorf("workflows outside the scope's list: %d, %v", n, err)
	}
	// A branch instance of one of alice's instances is part of its
	// parent's step: not a row of Instances.
	branch := fullInstance("f0000000-0000-7000-8000-0000000000b1", "expense", 1)
	branch.StartedBy, branch.Parent, branch.Branch = "user:alice", rows[0]["Id"].(string), "reviews/legal"
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: branch}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountData(ctx(t), store.DataQuery{Set: store.DataInstances, Scope: alice}); err != nil || n != 5 {
		t.Errorf("with a branch instance, alice's CountData(Instances) = %d, %v; want 5", n, err)
	}
}

func testDataBadQueries(t *testing.T, s store.Store) {
	dataFixture(t, s)
	all := store.DataScope{All: true}
	for name, q := range map[string]store.DataQuery{
		"unknown set":       {Set: "users", Scope: all},
		"unknown field":     {Set: store.DataInstances, Scope: all, Filter: store.DataCompare{Field: "Password", Op: store.OpEq, Value: "x"}},
		"wrong type":        {Set: store.DataInstances, Scope: all, Filter: store.DataCompare{Field: "Version", Op: store.OpEq, Value: "1"}},
		"null gt":           {Set: store.DataInstances, Scope: all, Filter: store.DataCompare{Field: "EndedAt", Op: store.OpGt, Value: nil}},
		"match on a number": {Set: store.DataInstances, Scope: all, Filter: store.DataMatch{Func: store.MatchContains, Field: "Version", Value: "1"}},
		"unknown select":    {Set: store.DataInstances, Scope: all, Select: []string{"Id", "state"}},
		"unknown order":     {Set: store.DataInstances, Scope: all, OrderBy: []store.DataOrder{{Field: "owner"}}},
		"inputs on tasks":   {Set: store.DataTasks, Scope: all, Inputs: []store.DataField{{Name: "x", InputKey: "x"}}},
		// A value that looks like SQL stays a value.
		"injection in a field name": {Set: store.DataInstances, Scope: all, Filter: store.DataCompare{Field: "Id; DROP TABLE instances", Op: store.OpEq, Value: "x"}},
	} {
		if _, err := s.QueryData(ctx(t), q); !errors.Is(err, store.ErrDataField) {
			t.Errorf("%s: QueryData error %v, want ErrDataField", name, err)
		}
	}
	ids := dataIDs(t, s, store.DataQuery{Set: store.DataInstances, Scope: all,
		Filter: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "x' OR '1'='1"}})
	if len(ids) != 0 {
		t.Errorf("a quote in a value matched %v", ids)
	}
	if n, err := s.CountData(ctx(t), store.DataQuery{Set: store.DataInstances, Scope: all}); err != nil || n != 10 || !slices.Contains([]int64{10}, n) {
		t.Errorf("instances after the bad queries: %d, %v", n, err)
	}
}

// testDataKeysetPaging walks each set a few rows at a time with After,
// the key of the previous page's last row, and finds every row once.
func testDataKeysetPaging(t *testing.T, s store.Store) {
	dataFixture(t, s)
	for _, set := range []store.DataSet{store.DataInstances, store.DataTasks, store.DataSteps} {
		want, err := s.CountData(ctx(t), store.DataQuery{Set: set, Scope: store.DataScope{All: true}})
		if err != nil {
			t.Fatal(err)
		}
		key := store.DataKey(set)
		var after []any
		seen := map[string]bool{}
		pages := 0
		for {
			rows, err := s.QueryData(ctx(t), store.DataQuery{Set: set, Scope: store.DataScope{All: true}, Limit: 3, After: after,
				Select: key, Filter: store.DataCompare{Field: "Status", Op: store.OpNe, Value: "nothing"}})
			if err != nil {
				t.Fatalf("%s page %d: %v", set, pages, err)
			}
			if len(rows) == 0 {
				break
			}
			pages++
			for _, r := range rows {
				k := fmt.Sprint(r[key[0]], r[key[len(key)-1]])
				if seen[k] {
					t.Fatalf("%s: row %s twice", set, k)
				}
				seen[k] = true
			}
			last := rows[len(rows)-1]
			after = after[:0:0]
			for _, k := range key {
				after = append(after, last[k])
			}
		}
		if n, err := s.CountData(ctx(t), store.DataQuery{Set: set, Scope: store.DataScope{All: true}, After: after}); err != nil || n != want {
			t.Errorf("%s: CountData with After = %d, %v; want the whole answer, %d", set, n, err, want)
		}
		if int64(len(seen)) != want || pages != int(want+2)/3 {
			t.Errorf("%s: %d rows in %d pages, want %d", set, len(seen), pages, want)
		}
	}
	for name, q := range map[string]store.DataQuery{
		"short key":  {Set: store.DataSteps, Scope: store.DataScope{All: true}, After: []any{instanceID(1)}},
		"with order": {Set: store.DataInstances, Scope: store.DataScope{All: true}, After: []any{instanceID(1)}, OrderBy: []store.DataOrder{{Field: "Status"}}},
		"wrong type": {Set: store.DataTasks, Scope: store.DataScope{All: true}, After: []any{"1"}},
	} {
		if _, err := s.QueryData(ctx(t), q); !errors.Is(err, store.ErrDataField) {
			t.Errorf("%s: %v, want ErrDataField", name, err)
		}
	}
}
