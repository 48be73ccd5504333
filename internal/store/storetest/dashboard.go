package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runDashboardConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"DashboardInstanceTotals", testDashboardInstanceTotals},
		{"DashboardInstanceBuckets", testDashboardInstanceBuckets},
		{"DashboardOpenTasks", testDashboardOpenTasks},
		{"DashboardOverdueTasks", testDashboardOverdueTasks},
		{"DashboardAuditBuckets", testDashboardAuditBuckets},
		{"AuditClientOutcomeFilters", testAuditClientOutcomeFilters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// dashInstance is an instance of flow "expense" started at start with
// status, ended at end (zero: not ended).
func dashInstance(n int, status string, start, end time.Time) store.Instance {
	in := fullInstance(instanceID(n), "expense", 1)
	in.Status, in.StartedAt, in.UpdatedAt, in.EndedAt = status, start, start, end
	if status != store.StatusRunning {
		in.Owner, in.LeaseUntil = "", time.Time{}
	}
	if !end.IsZero() {
		in.CurrentStep = ""
	}
	return in
}

func createInstances(t *testing.T, s store.Store, ins ...store.Instance) {
	t.Helper()
	for _, in := range ins {
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
			t.Fatal(err)
		}
	}
}

func testDashboardInstanceTotals(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	if got, err := s.InstanceTotals(ctx(t), time.Now()); err != nil || got != (store.InstanceTotals{}) {
		t.Fatalf("empty InstanceTotals = %+v, %v", got, err)
	}
	day := time.Date(2025, 3, 2, 0, 0, 0, 0, time.UTC)
	createInstances(t, s,
		dashInstance(1, store.StatusRunning, day.Add(-time.Hour), time.Time{}),
		dashInstance(2, store.StatusRunning, day.Add(time.Hour), time.Time{}),
		dashInstance(3, store.StatusWaiting, day.Add(-48*time.Hour), time.Time{}),
		// Failed just before the day, exactly at its start, and during it.
		dashInstance(4, store.StatusFailed, day.Add(-2*time.Hour), day.Add(-time.Microsecond)),
		dashInstance(5, store.StatusFailed, day.Add(-2*time.Hour), day),
		dashInstance(6, store.StatusFailed, day.Add(time.Hour), day.Add(2*time.Hour)),
		dashInstance(7, store.StatusCompleted, day.Add(time.Hour), day.Add(2*time.Hour)),
		dashInstance(8, store.StatusCancelled, day.Add(time.Hour), day.Add(2*time.Hour)),
	)
	got, err := s.InstanceTotals(ctx(t), day.In(time.FixedZone("UTC+9", 9*3600)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.InstanceTotals{Running: 2, Waiting: 1, Failed: 2}); got != want {
		t.Errorf("InstanceTotals = %+v, want %+v", got, want)
	}
}

func testDashboardInstanceBuckets(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	since := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	until := since.Add(3 * 24 * time.Hour)
	if got, err := s.InstanceBuckets(ctx(t), since, until, 24*time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("empty InstanceBuckets = %+v, %v", got, err)
	}
	d := func(day int, h time.Duration) time.Time { return since.Add(time.Duration(day)*24*time.Hour + h) }
	createInstances(t, s,
		dashInstance(1, store.StatusCompleted, d(-1, 23*time.Hour), d(0, time.Hour)), // before since: not counted
		dashInstance(2, store.StatusCompleted, d(0, 0), d(0, time.Hour)),             // at since: counted
		dashInstance(3, store.StatusCompleted, d(0, 23*time.Hour), d(1, time.Hour)),
		dashInstance(4, store.StatusFailed, d(0, 5*time.Hour), d(0, 6*time.Hour)),
		dashInstance(5, store.StatusFailed, d(2, 5*time.Hour), d(2, 6*time.Hour)),
		dashInstance(6, store.StatusWaiting, d(2, 6*time.Hour), time.Time{}),
		dashInstance(7, store.StatusCompleted, d(2, 24*time.Hour-time.Microsecond), d(3, time.Hour)),
		dashInstance(8, store.StatusCompleted, d(3, 0), d(3, time.Hour)), // at until: not counted
	)
	got, err := s.InstanceBuckets(ctx(t), since, until, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Bucket{
		{Start: d(0, 0), Key: store.StatusCompleted, Count: 2},
		{Start: d(0, 0), Key: store.StatusFailed, Count: 1},
		{Start: d(2, 0), Key: store.StatusCompleted, Count: 1},
		{Start: d(2, 0), Key: store.StatusFailed, Count: 1},
		{Start: d(2, 0), Key: store.StatusWaiting, Count: 1},
	}
	if !sameBuckets(got, want) {
		t.Errorf("InstanceBuckets by day =\n%v\nwant\n%v", got, want)
	}
	// Hours, from a start that is not midnight.
	got, err = s.InstanceBuckets(ctx(t), d(0, 5*time.Hour), d(0, 24*time.Hour), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want = []store.Bucket{
		{Start: d(0, 5*time.Hour), Key: store.StatusFailed, Count: 1},
		{Start: d(0, 23*time.Hour), Key: store.StatusCompleted, Count: 1},
	}
	if !sameBuckets(got, want) {
		t.Errorf("InstanceBuckets by hour =\n%v\nwant\n%v", got, want)
	}
	if _, err := s.InstanceBuckets(ctx(t), since, until, 0); err == nil {
		t.Error("InstanceBuckets with width 0 did not fail")
	}
}

func sameBuckets(got, want []store.Bucket) bool {
	return slices.EqualFunc(got, want, func(a, b store.Bucket) bool {
		return a.Start.Equal(b.Start) && a.Key == b.Key && a.Count == b.Count
	})
}

func testDashboardOpenTasks(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	if n, err := s.CountOpenTasks(ctx(t)); err != nil || n != 0 {
		t.Fatalf("empty CountOpenTasks = %d, %v", n, err)
	}
	var serials []int64
	for i := range 3 {
		in := dashInstance(i+1, store.StatusWaiting, ts(1_700_000_000), time.Time{})
		tasks := []*store.Task{
			{StepID: "a", Seq: 1, Type: store.TaskTypeTask, Title: "A", Assignees: []string{"user:bob"}},
			{StepID: "b", Seq: 1, Type: store.TaskTypeTask, Title: "B", Assignees: []string{"role:approver"}},
		}
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: tasks}); err != nil {
			t.Fatal(err)
		}
		serials = append(serials, tasks[0].Serial)
	}
	// One task is acted on, and one instance cancelled with its tasks.
	if err := s.CloseTask(ctx(t), store.TaskAct{Serial: serials[0], Action: "ok", ActedBy: "user:bob"}); err != nil {
		t.Fatal(err)
	}
	in := getInstance(t, s, instanceID(2))
	in.Status, in.EndedAt = store.StatusCancelled, ts(1_700_000_100)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, CancelTasks: true}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountOpenTasks(ctx(t)); err != nil || n != 3 {
		t.Errorf("CountOpenTasks = %d, %v; want 3", n, err)
	}
}

func testDashboardOverdueTasks(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	now := ts(1_700_010_000)
	if n, err := s.CountOverdueTasks(ctx(t), now); err != nil || n != 0 {
		t.Fatalf("empty CountOverdueTasks = %d, %v", n, err)
	}
	// Open: one long past due, one due a second ago, one due later, one
	// without a due time; and a past-due task acted on.
	tasks := []*store.Task{
		{StepID: "a", Seq: 1, Type: store.TaskTypeTask, Title: "A", Assignees: []string{"user:bob"}, DueAt: ts(1_700_000_000)},
		{StepID: "b", Seq: 1, Type: store.TaskTypeTask, Title: "B", Assignees: []string{"user:bob"}, DueAt: ts(1_700_009_999)},
		{StepID: "c", Seq: 1, Type: store.TaskTypeTask, Title: "C", Assignees: []string{"user:bob"}, DueAt: ts(1_700_010_001)},
		{StepID: "d", Seq: 1, Type: store.TaskTypeTask, Title: "D", Assignees: []string{"user:bob"}},
		{StepID: "e", Seq: 1, Type: store.TaskTypeTask, Title: "E", Assignees: []string{"user:bob"}, DueAt: ts(1_700_000_000)},
	}
	in := dashInstance(1, store.StatusWaiting, ts(1_699_999_000), time.Time{})
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: tasks}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseTask(ctx(t), store.TaskAct{Serial: tasks[4].Serial, Action: "ok", ActedBy: "user:bob"}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.CountOverdueTasks(ctx(t), now); err != nil || n != 2 {
		t.Errorf("CountOverdueTasks = %d, %v; want 2", n, err)
	}
	// A task due exactly now is not overdue yet.
	if n, err := s.CountOverdueTasks(ctx(t), ts(1_700_009_999)); err != nil || n != 1 {
		t.Errorf("CountOverdueTasks at the second task's due time = %d, %v; want 1", n, err)
	}
}

func testDashboardAuditBuckets(t *testing.T, s store.Store) {
	since := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	until := since.Add(24 * time.Hour)
	events := []string{"login.success", "login.failure"}
	if got, err := s.AuditBuckets(ctx(t), events, since, until, time.Hour); err != nil || len(got) != 0 {
		t.Fatalf("empty AuditBuckets = %+v, %v", got, err)
	}
	at := func(h time.Duration) time.Time { return since.Add(h) }
	var log []store.AuditEvent
	add := func(when time.Time, event, outcome string, n int) {
		for range n {
			log = append(log, store.AuditEvent{Time: when, Event: event, Outcome: outcome, User: "alice", Detail: fmt.Sprint(len(log))})
		}
	}
	add(at(-time.Microsecond), "login.success", "success", 1) // before since
	add(at(0), "login.success", "success", 2)
	add(at(30*time.Minute), "login.failure", "failure", 3)
	add(at(5*time.Hour+59*time.Minute), "login.success", "success", 1)
	add(at(5*time.Hour), "token.issued", "success", 4) // another event
	add(until, "login.failure", "failure", 1)          // at until
	if err := s.AppendAudit(ctx(t), log...); err != nil {
		t.Fatal(err)
	}
	got, err := s.AuditBuckets(ctx(t), events, since, until, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.Bucket{
		{Start: at(0), Key: "failure", Count: 3},
		{Start: at(0), Key: "success", Count: 2},
		{Start: at(5 * time.Hour), Key: "success", Count: 1},
	}
	if !sameBuckets(got, want) {
		t.Errorf("AuditBuckets =\n%v\nwant\n%v", got, want)
	}
	got, err = s.AuditBuckets(ctx(t), []string{"token.issued"}, since, until, 24*time.Hour)
	if want := []store.Bucket{{Start: since, Key: "success", Count: 4}}; err != nil || !sameBuckets(got, want) {
		t.Errorf("AuditBuckets of one event = %v, %v; want %v", got, err, want)
	}
	if got, err := s.AuditBuckets(ctx(t), nil, since, until, time.Hour); err != nil || len(got) != 0 {
		t.Errorf("AuditBuckets of no event = %v, %v", got, err)
	}
}

func testAuditClientOutcomeFilters(t *testing.T, s store.Store) {
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var events []store.AuditEvent
	for i := range 30 {
		events = append(events, store.AuditEvent{
			Time:    base.Add(time.Duration(i) * time.Minute),
			Event:   []string{"token.issued", "client_auth.failure", "login.success"}[i%3],
			Client:  []string{"portal", "batch", ""}[i%3],
			Outcome: []string{"success", "failure"}[i%2],
			Detail:  fmt.Sprint(i),
		})
	}
	if err := s.AppendAudit(ctx(t), events...); err != nil {
		t.Fatal(err)
	}
	for _, f := range []store.AuditFilter{
		{Client: "portal"},
		{Outcome: "failure"},
		{Client: "batch", Outcome: "success", Since: base.Add(5 * time.Minute)},
		{Client: "nobody"},
	} {
		var want []string
		for i := len(events) - 1; i >= 0; i-- {
			e := events[i]
			if (f.Client != "" && e.Client != f.Client) || (f.Outcome != "" && e.Outcome != f.Outcome) ||
				(!f.Since.IsZero() && e.Time.Before(f.Since)) {
				continue
			}
			want = append(want, e.Detail)
		}
		f.Page.Limit = 4
		var got []string
		for _, e := range listAllAudit(t, s, f) {
			got = append(got, e.Detail)
		}
		if !slices.Equal(got, want) {
			t.Errorf("filter %+v: got %v, want %v", f, got, want)
		}
	}
}
