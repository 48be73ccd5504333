package storetest

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlstore"
)

// runFlowsConformance covers flow definitions, instances, their history,
// tasks, idempotency keys and the scheduler hand-off.
func runFlowsConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"FlowDeployVersions", testFlowDeployVersions},
		{"FlowDeployConcurrent", testFlowDeployConcurrent},
		{"FlowList", testFlowList},
		{"InstanceRoundTrip", testInstanceRoundTrip},
		{"InstanceDefaults", testInstanceDefaults},
		{"InstanceErrors", testInstanceErrors},
		{"InstanceIdempotency", testInstanceIdempotency},
		{"InstanceIdempotencyConcurrent", testInstanceIdempotencyConcurrent},
		{"InstanceWritesConcurrent", testInstanceWritesConcurrent},
		{"InstanceFencing", testInstanceFencing},
		{"InstanceClaim", testInstanceClaim},
		{"InstanceLeases", testInstanceLeases},
		{"InstanceList", testInstanceList},
		{"InstanceHistory", testInstanceHistory},
		{"InstanceStateSealed", testInstanceStateSealed},
		{"InstanceConcurrentOwners", testInstanceConcurrentOwners},
		{"TaskVisibility", testTaskVisibility},
		{"TaskActAndCancel", testTaskActAndCancel},
		{"CloseTask", testCloseTask},
		{"TaskRoundTrip", testTaskRoundTrip},
		{"WakeInTransaction", testWakeInTransaction},
		{"OverdueWakes", testOverdueWakes},
		{"WakeFailureRollsBack", testWakeFailureRollsBack},
		{"WakeWithoutScheduler", testWakeWithoutScheduler},
		{"TaskDeadlineAndEscalation", testTaskDeadlineAndEscalation},
		{"ScheduleClaims", testScheduleClaims},
		{"WebhookReplays", testWebhookReplays},
		{"MailOutbox", testMailOutbox},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// rawDB is how the tests reach the database under a SQL backend, to look
// at what is stored. Both backends have it through sqlstore.Store.
type rawDB interface {
	ReadDB() *sql.DB
	WriteDB() *sql.DB
}

func deploy(t *testing.T, s store.Store, name string) store.FlowVersion {
	t.Helper()
	v, err := s.DeployFlow(ctx(t), store.FlowVersion{Name: name, Title: "The " + name + " flow",
		Source: []byte("name: " + name + "\nsteps: []\n"), Filename: name + ".yaml", DeployedBy: "user:admin"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// instanceID makes ids that sort like UUIDv7s: by n.
func instanceID(n int) string { return fmt.Sprintf("0190f3a0-0000-7000-8000-%012d", n) }

func fullInstance(id, workflow string, version int) store.Instance {
	return store.Instance{
		ID:          id,
		Workflow:    workflow,
		Version:     version,
		Status:      store.StatusRunning,
		StartedBy:   "user:alice",
		Starter:     []byte(`{"name":"alice","roles":["employee"]}`),
		Input:       []byte(`{"amount":120}`),
		Vars:        []byte(`{"n":1}`),
		CurrentStep: "fetch",
		Seq:         1,
		State:       []byte(`{"fetch":{"token":"eyJ-not-a-real-token"}}`),
		Owner:       "server-a",
		LeaseUntil:  ts(1_700_000_600),
		StartedAt:   ts(1_700_000_000),
		UpdatedAt:   ts(1_700_000_010),
		Depth:       3,
	}
}

func wantTimeOrZero(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want the zero time", what, got)
		}
		return
	}
	wantTime(t, what, got, want)
}

// wantDoc compares documents and tells nil (NULL) from empty.
func wantDoc(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if (got == nil) != (want == nil) || !bytes.Equal(got, want) {
		t.Errorf("%s = %q (nil %t), want %q (nil %t)", what, got, got == nil, want, want == nil)
	}
}

func sameInstance(t *testing.T, got, want store.Instance) {
	t.Helper()
	if got.ID != want.ID || got.Workflow != want.Workflow || got.Version != want.Version || got.Status != want.Status ||
		got.StartedBy != want.StartedBy || got.Error != want.Error || got.CurrentStep != want.CurrentStep ||
		got.Seq != want.Seq || got.Owner != want.Owner || got.Depth != want.Depth {
		t.Errorf("instance:\n got %+v\nwant %+v", got, want)
	}
	wantDoc(t, "Starter", got.Starter, want.Starter)
	wantDoc(t, "Input", got.Input, want.Input)
	wantDoc(t, "Vars", got.Vars, want.Vars)
	wantDoc(t, "Output", got.Output, want.Output)
	if len(want.State) == 0 {
		if len(got.State) != 0 {
			t.Errorf("State = %q, want empty", got.State)
		}
	} else if !bytes.Equal(got.State, want.State) {
		t.Errorf("State = %q, want %q", got.State, want.State)
	}
	wantTimeOrZero(t, "LeaseUntil", got.LeaseUntil, want.LeaseUntil)
	wantTime(t, "StartedAt", got.StartedAt, want.StartedAt)
	wantTime(t, "UpdatedAt", got.UpdatedAt, want.UpdatedAt)
	wantTimeOrZero(t, "EndedAt", got.EndedAt, want.EndedAt)
}

func sameStep(t *testing.T, got, want store.StepRecord) {
	t.Helper()
	if got.InstanceID != want.InstanceID || got.Seq != want.Seq || got.StepID != want.StepID || got.Type != want.Type ||
		got.Status != want.Status || got.Attempt != want.Attempt || got.Error != want.Error {
		t.Errorf("step record:\n got %+v\nwant %+v", got, want)
	}
	wantTime(t, "step StartedAt", got.StartedAt, want.StartedAt)
	wantTimeOrZero(t, "step EndedAt", got.EndedAt, want.EndedAt)
	wantDoc(t, "step Input", got.Input, want.Input)
	wantDoc(t, "step Output", got.Output, want.Output)
}

func sameTask(t *testing.T, got, want store.Task) {
	t.Helper()
	if got.Serial != want.Serial || got.InstanceID != want.InstanceID || got.Workflow != want.Workflow ||
		got.StepID != want.StepID || got.Seq != want.Seq || got.Type != want.Type || got.Title != want.Title ||
		!slices.Equal(got.Assignees, want.Assignees) || !slices.Equal(got.Actions, want.Actions) ||
		got.ConnectURL != want.ConnectURL || got.Status != want.Status || got.Action != want.Action ||
		got.ActedBy != want.ActedBy {
		t.Errorf("task:\n got %+v\nwant %+v", got, want)
	}
	wantDoc(t, "task Form", got.Form, want.Form)
	wantDoc(t, "task Data", got.Data, want.Data)
	wantTime(t, "task CreatedAt", got.CreatedAt, want.CreatedAt)
	wantTimeOrZero(t, "task ActedAt", got.ActedAt, want.ActedAt)
}

func getInstance(t *testing.T, s store.Store, id string) store.Instance {
	t.Helper()
	in, err := s.GetInstance(ctx(t), id)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func history(t *testing.T, s store.Store, id string) []store.StepRecord {
	t.Helper()
	steps, next, err := s.History(ctx(t), id, store.Page{Limit: store.MaxLimit})
	if err != nil || next != "" {
		t.Fatalf("History(%s) = %v, %q, %v", id, steps, next, err)
	}
	return steps
}

// --- flow definitions ---

func testFlowDeployVersions(t *testing.T, s store.Store) {
	if _, err := s.GetFlow(ctx(t), "expense", 0); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetFlow of an unknown flow: %v, want ErrNotFound", err)
	}
	v1 := store.FlowVersion{Name: "expense", Title: "Expenses", Source: []byte("name: expense\n# v1\n"),
		Filename: "expense.yaml", DeployedBy: "user:admin", DeployedAt: ts(1_700_000_000)}
	got, err := s.DeployFlow(ctx(t), v1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Version != 1 {
		t.Errorf("first deploy: version %d, want 1", got.Version)
	}
	wantTime(t, "returned DeployedAt", got.DeployedAt, v1.DeployedAt)
	before := time.Now().Add(-time.Second)
	v2, err := s.DeployFlow(ctx(t), store.FlowVersion{Name: "expense", Source: []byte(`{"name":"expense"}`), Filename: "expense.json"})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Version != 2 {
		t.Errorf("second deploy: version %d, want 2", v2.Version)
	}
	if v2.DeployedAt.Before(before) || v2.DeployedAt.Location() != time.UTC {
		t.Errorf("default DeployedAt = %v, want now in UTC", v2.DeployedAt)
	}
	if other := deploy(t, s, "leave"); other.Version != 1 {
		t.Errorf("another name starts at version %d, want 1", other.Version)
	}

	one, err := s.GetFlow(ctx(t), "expense", 1)
	if err != nil {
		t.Fatal(err)
	}
	if one.Name != "expense" || one.Version != 1 || one.Title != v1.Title || !bytes.Equal(one.Source, v1.Source) ||
		one.Filename != v1.Filename || one.DeployedBy != v1.DeployedBy {
		t.Errorf("GetFlow(expense, 1) = %+v, want %+v", one, v1)
	}
	wantTime(t, "DeployedAt", one.DeployedAt, v1.DeployedAt)
	latest, err := s.GetFlow(ctx(t), "expense", 0)
	if err != nil {
		t.Fatal(err)
	}
	if latest.Version != 2 || string(latest.Source) != `{"name":"expense"}` || latest.Filename != "expense.json" {
		t.Errorf("GetFlow(expense, latest) = %+v", latest)
	}
	if _, err := s.GetFlow(ctx(t), "expense", 3); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetFlow of a missing version: %v, want ErrNotFound", err)
	}
	if _, err := s.DeployFlow(ctx(t), store.FlowVersion{Source: []byte("x")}); err == nil {
		t.Error("DeployFlow without a name succeeded")
	}
}

// testFlowDeployConcurrent deploys one name from several goroutines (on
// PostgreSQL, several connections): every deploy gets a version of its own.
func testFlowDeployConcurrent(t *testing.T, s store.Store) {
	const workers, each = 8, 5
	versions := make([][]int, workers)
	errs := make([]error, workers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for i := range each {
				v, err := s.DeployFlow(ctx(t), store.FlowVersion{Name: "race", Source: []byte(fmt.Sprintf("# %d.%d\n", w, i))})
				if err != nil {
					errs[w] = err
					return
				}
				versions[w] = append(versions[w], v.Version)
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	all := slices.Concat(versions...)
	slices.Sort(all)
	for i, v := range all {
		if v != i+1 {
			t.Fatalf("versions %v, want 1…%d each once", all, workers*each)
		}
	}
}

func testFlowList(t *testing.T, s store.Store) {
	if fs, next, err := s.ListFlows(ctx(t), store.Page{}); err != nil || len(fs) != 0 || next != "" {
		t.Fatalf("empty ListFlows = %v, %q, %v", fs, next, err)
	}
	var names []string
	for i := range 11 {
		name := fmt.Sprintf("flow-%02d", i)
		names = append(names, name)
		for range i%3 + 1 {
			deploy(t, s, name)
		}
	}
	for _, limit := range []int{1, 3, 11, 100} {
		all, _ := pageAll(t, limit, func(p store.Page) ([]store.FlowVersion, string, error) {
			return s.ListFlows(ctx(t), p)
		})
		var got []string
		for i, v := range all {
			got = append(got, v.Name)
			if v.Version != i%3+1 {
				t.Errorf("limit %d: %s listed at version %d, want the latest, %d", limit, v.Name, v.Version, i%3+1)
			}
		}
		if !slices.Equal(got, names) {
			t.Errorf("limit %d: listed %v, want %v", limit, got, names)
		}
	}
	if _, _, err := s.ListFlows(ctx(t), store.Page{Cursor: "***"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

// --- instances ---

func testInstanceRoundTrip(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	steps := []store.StepRecord{
		{InstanceID: in.ID, Seq: 1, StepID: "fetch", Type: "http", Status: store.StepCompleted, Attempt: 2,
			StartedAt: ts(1_700_000_001), EndedAt: ts(1_700_000_002), Input: []byte(`{"url":"https://x.example"}`),
			Output: []byte(`{"status":200}`), Error: ""},
		// Not ended, no input or output: NULLs.
		{Seq: 2, StepID: "approve", Type: "task", Status: store.StepRunning, Attempt: 1, StartedAt: ts(1_700_000_003)},
	}
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Steps: steps}); err != nil || id != "" {
		t.Fatalf("CreateInstance = %q, %v", id, err)
	}
	steps[1].InstanceID = in.ID
	sameInstance(t, getInstance(t, s, in.ID), in)
	got := history(t, s, in.ID)
	if len(got) != 2 {
		t.Fatalf("history has %d records, want 2", len(got))
	}
	for i := range got {
		sameStep(t, got[i], steps[i])
	}

	// The end: step 2 replaced, output set, state emptied, lease released.
	// Fields fixed at creation are not written again, even when the
	// commit carries other values.
	end := in
	end.Status = store.StatusCompleted
	end.Output = []byte(`{"status":201,"body":{"ok":true}}`)
	end.Vars = []byte(`{"n":2}`)
	end.CurrentStep = ""
	end.Seq = 2
	end.State = nil
	end.Owner = ""
	end.LeaseUntil = time.Time{}
	end.UpdatedAt = ts(1_700_000_020)
	end.EndedAt = ts(1_700_000_020)
	end.Error = "none really"
	sent := end
	sent.Input, sent.Starter, sent.StartedBy, sent.Depth = nil, nil, "user:mallory", 7
	step2 := steps[1]
	step2.Status = store.StepCompleted
	step2.EndedAt = ts(1_700_000_019)
	step2.Output = []byte(`{"action":"approve"}`)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: sent, ExpectOwner: "server-a",
		Steps: []store.StepRecord{step2}}); err != nil {
		t.Fatal(err)
	}
	sameInstance(t, getInstance(t, s, in.ID), end)
	got = history(t, s, in.ID)
	if len(got) != 2 {
		t.Fatalf("history has %d records after the replace, want 2", len(got))
	}
	sameStep(t, got[0], steps[0])
	sameStep(t, got[1], step2)
}

func testInstanceDefaults(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	before := time.Now().Add(-time.Second)
	in := store.Instance{ID: instanceID(1), Workflow: "expense", Version: 1, Status: store.StatusWaiting, StartedBy: "client:portal"}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in,
		Steps: []store.StepRecord{{Seq: 1, StepID: "wait", Type: "wait", Status: store.StepWaiting}}}); err != nil {
		t.Fatal(err)
	}
	got := getInstance(t, s, in.ID)
	for what, doc := range map[string][]byte{"Starter": got.Starter, "Input": got.Input, "Vars": got.Vars} {
		if string(doc) != "{}" {
			t.Errorf("%s = %q, want {} for nil", what, doc)
		}
	}
	if got.Output != nil || got.State != nil || !got.LeaseUntil.IsZero() || !got.EndedAt.IsZero() || got.Owner != "" {
		t.Errorf("unset fields read back as %+v", got)
	}
	if got.Depth != 1 {
		t.Errorf("Depth = %d, want 1 for an unset depth", got.Depth)
	}
	if got.StartedAt.Before(before) || !got.UpdatedAt.Equal(got.StartedAt) || got.StartedAt.Location() != time.UTC {
		t.Errorf("StartedAt %v, UpdatedAt %v: want now, equal, in UTC", got.StartedAt, got.UpdatedAt)
	}
	h := history(t, s, in.ID)
	if len(h) != 1 || h[0].StartedAt.Before(before) || h[0].Input != nil || h[0].Output != nil || !h[0].EndedAt.IsZero() {
		t.Errorf("history %+v: want one record started now with NULL input, output and end", h)
	}
}

func testInstanceErrors(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second CreateInstance with one id: %v, want ErrConflict", err)
	}
	if _, err := s.GetInstance(ctx(t), instanceID(2)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetInstance of a missing id: %v, want ErrNotFound", err)
	}
	missing := fullInstance(instanceID(2), "expense", 1)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: missing, ExpectOwner: "server-a"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("CommitInstance of a missing id: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(3), "expense", 9)}); err == nil {
		t.Error("CreateInstance of an undeployed version succeeded")
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: store.Instance{Workflow: "expense", Version: 1}}); err == nil {
		t.Error("CreateInstance without an id succeeded")
	}
	if _, err := s.GetTask(ctx(t), 424242); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetTask of a missing serial: %v, want ErrNotFound", err)
	}
}

func testInstanceIdempotency(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	key := &store.Idempotency{Principal: "client:portal", Key: "k-1", RequestHash: "h-1"}
	first := fullInstance(instanceID(1), "expense", 1)
	first.StartedAt = time.Now().Add(-time.Hour)
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: first, Idempotency: key}); err != nil || id != "" {
		t.Fatalf("first CreateInstance = %q, %v", id, err)
	}
	again := fullInstance(instanceID(2), "expense", 1)
	again.StartedAt = time.Now() // its key is recent: pruning keeps it
	steps := []store.StepRecord{{Seq: 1, StepID: "a", Type: "set", Status: store.StepCompleted, StartedAt: ts(1_700_000_000)}}
	tasks := []*store.Task{{StepID: "a", Seq: 1, Type: store.TaskTypeTask, Title: "t", Assignees: []string{"user:x"}}}
	id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: again, Steps: steps, NewTasks: tasks, Idempotency: key})
	if !errors.Is(err, store.ErrConflict) || id != first.ID {
		t.Errorf("same key, same request: %q, %v; want %q and ErrConflict", id, err, first.ID)
	}
	other := *key
	other.RequestHash = "h-2"
	id, err = s.CreateInstance(ctx(t), store.InstanceCommit{Instance: again, Steps: steps, Idempotency: &other})
	if !errors.Is(err, store.ErrIdempotencyMismatch) || id != first.ID {
		t.Errorf("same key, other request: %q, %v; want %q and ErrIdempotencyMismatch", id, err, first.ID)
	}
	// Neither wrote anything.
	if _, err := s.GetInstance(ctx(t), again.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a refused CreateInstance left an instance: %v", err)
	}
	if h, _, err := s.History(ctx(t), again.ID, store.Page{}); err != nil || len(h) != 0 {
		t.Errorf("a refused CreateInstance left step records: %v, %v", h, err)
	}
	if tasks[0].Serial != 0 {
		t.Errorf("a refused CreateInstance filled in serial %d", tasks[0].Serial)
	}
	if tl, _, err := s.ListTasks(ctx(t), store.TaskFilter{All: true}, store.Page{}); err != nil || len(tl) != 0 {
		t.Errorf("a refused CreateInstance left tasks: %v, %v", tl, err)
	}
	// Keys belong to their principal.
	byOther := &store.Idempotency{Principal: "client:other", Key: "k-1", RequestHash: "h-1"}
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: again, Idempotency: byOther}); err != nil || id != "" {
		t.Fatalf("same key, other principal: %q, %v", id, err)
	}

	// Pruning forgets the old key only; then it can start a new instance.
	n, err := s.PruneIdempotency(ctx(t), time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("PruneIdempotency = %d, %v; want 1", n, err)
	}
	third := fullInstance(instanceID(3), "expense", 1)
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: third, Idempotency: key}); err != nil || id != "" {
		t.Errorf("pruned key: CreateInstance = %q, %v", id, err)
	}
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(4), "expense", 1),
		Idempotency: byOther}); !errors.Is(err, store.ErrConflict) || id != again.ID {
		t.Errorf("a recent key was pruned: %q, %v", id, err)
	}
}

// testInstanceIdempotencyConcurrent retries one request with one key from
// several goroutines at once: exactly one instance starts, and every other
// call learns its id.
func testInstanceIdempotencyConcurrent(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	const n = 8
	key := &store.Idempotency{Principal: "client:portal", Key: "retry", RequestHash: "h"}
	ids := make([]string, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			ids[i], errs[i] = s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(i), "expense", 1),
				Steps:       []store.StepRecord{{Seq: 1, StepID: "a", Type: "set", Status: store.StepCompleted}},
				Idempotency: key})
		})
	}
	close(start)
	wg.Wait()
	winner := ""
	for i, err := range errs {
		if err == nil {
			if winner != "" {
				t.Fatalf("two instances started with one key: %s and %s", winner, instanceID(i))
			}
			winner = instanceID(i)
		}
	}
	if winner == "" {
		t.Fatalf("no instance started: %v", errs)
	}
	for i, err := range errs {
		if err != nil && (!errors.Is(err, store.ErrConflict) || ids[i] != winner) {
			t.Errorf("call %d: %q, %v; want %q and ErrConflict", i, ids[i], err, winner)
		}
	}
	all, _, err := s.ListInstances(ctx(t), store.InstanceFilter{}, store.Page{})
	if err != nil || len(all) != 1 {
		t.Errorf("%d instances, %v; want 1", len(all), err)
	}
}

// Concurrent writes that a backend may group into one transaction keep
// each caller's own outcome: a duplicate id, a lost lease or a task that
// is not open fails alone and leaves nothing, and every other write is
// there, with its task serial filled in.
func testInstanceWritesConcurrent(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	// Instances 1000-1003 exist, owned by server-a, with an open task each.
	for i := range 4 {
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(1000+i), "expense", 1),
			NewTasks: []*store.Task{{StepID: "approve", Seq: 1, Type: store.TaskTypeTask, Title: "t", Assignees: []string{"user:x"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	const n = 24
	type call struct {
		name    string
		write   func() error
		task    *store.Task
		wantErr error // nil: must succeed
	}
	var calls []call
	for i := range n {
		task := &store.Task{StepID: "approve", Seq: 1, Type: store.TaskTypeTask, Title: "t", Assignees: []string{"user:x"}}
		c := store.InstanceCommit{Instance: fullInstance(instanceID(i), "expense", 1), NewTasks: []*store.Task{task},
			Steps: []store.StepRecord{{Seq: 1, StepID: "fetch", Type: "http", Status: store.StepCompleted}}}
		calls = append(calls, call{name: "new " + instanceID(i), task: task,
			write: func() error { _, err := s.CreateInstance(ctx(t), c); return err }})
	}
	// A new instance under an id already taken.
	dup := fullInstance(instanceID(1000), "expense", 1)
	dup.Vars = []byte(`{"dup":true}`)
	calls = append(calls, call{name: "duplicate id", wantErr: store.ErrConflict,
		write: func() error {
			_, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: dup,
				Steps: []store.StepRecord{{Seq: 1, StepID: "dup", Type: "set", Status: store.StepCompleted}}})
			return err
		}})
	// A commit by a server that does not own the instance.
	stale := fullInstance(instanceID(1001), "expense", 1)
	stale.Seq, stale.Vars = 2, []byte(`{"stale":true}`)
	calls = append(calls, call{name: "lost lease", wantErr: store.ErrLeaseLost,
		write: func() error {
			return s.CommitInstance(ctx(t), store.InstanceCommit{Instance: stale, ExpectOwner: "server-b",
				Steps: []store.StepRecord{{Seq: 2, StepID: "stale", Type: "set", Status: store.StepCompleted}}})
		}})
	// An action on a task that is not the instance's: refused after the
	// instance row was updated in the same transaction.
	acted := fullInstance(instanceID(1002), "expense", 1)
	acted.Seq, acted.Vars = 2, []byte(`{"acted":true}`)
	calls = append(calls, call{name: "act on a missing task", wantErr: store.ErrConflict,
		write: func() error {
			return s.CommitInstance(ctx(t), store.InstanceCommit{Instance: acted, ExpectOwner: "server-a",
				Act:   &store.TaskAct{Serial: 987654, Action: "approve", ActedBy: "user:x"},
				Steps: []store.StepRecord{{Seq: 2, StepID: "acted", Type: "set", Status: store.StepCompleted}}})
		}})
	// And a good commit to an existing instance.
	moved := fullInstance(instanceID(1003), "expense", 1)
	moved.Seq, moved.Vars = 2, []byte(`{"moved":true}`)
	calls = append(calls, call{name: "commit",
		write: func() error {
			return s.CommitInstance(ctx(t), store.InstanceCommit{Instance: moved, ExpectOwner: "server-a"})
		}})

	errs := make([]error, len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range calls {
		wg.Go(func() {
			<-start
			errs[i] = c.write()
		})
	}
	close(start)
	wg.Wait()
	serials := map[int64]bool{}
	for i, c := range calls {
		switch {
		case c.wantErr == nil && errs[i] != nil:
			t.Errorf("%s: %v", c.name, errs[i])
		case c.wantErr != nil && !errors.Is(errs[i], c.wantErr):
			t.Errorf("%s: %v, want %v", c.name, errs[i], c.wantErr)
		}
		if c.task != nil && errs[i] == nil {
			if c.task.Serial == 0 || serials[c.task.Serial] {
				t.Errorf("%s: task serial %d, want a new one", c.name, c.task.Serial)
			}
			serials[c.task.Serial] = true
		}
	}
	for i := range n {
		if _, err := s.GetInstance(ctx(t), instanceID(i)); err != nil {
			t.Errorf("instance %d: %v", i, err)
		}
	}
	if got := len(serials); got != n {
		t.Errorf("%d new tasks with serials, want %d", got, n)
	}
	tl, _, err := s.ListTasks(ctx(t), store.TaskFilter{All: true}, store.Page{Limit: 100})
	if err != nil || len(tl) != n+4 {
		t.Errorf("%d tasks, %v; want %d", len(tl), err, n+4)
	}
	// The refused writes left nothing; the good commit is there.
	for id, want := range map[string]string{instanceID(1000): `{"n":1}`, instanceID(1001): `{"n":1}`,
		instanceID(1002): `{"n":1}`, instanceID(1003): `{"moved":true}`} {
		in, err := s.GetInstance(ctx(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if string(in.Vars) != want {
			t.Errorf("instance %s has vars %s, want %s", id, in.Vars, want)
		}
	}
	for _, id := range []string{instanceID(1000), instanceID(1001), instanceID(1002)} {
		if h, _, err := s.History(ctx(t), id, store.Page{}); err != nil || len(h) != 0 {
			t.Errorf("a refused commit of %s left step records: %v, %v", id, h, err)
		}
	}
}

func testInstanceFencing(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	// Another server's commit writes nothing.
	next := in
	next.Seq, next.CurrentStep, next.UpdatedAt = 2, "approve", ts(1_700_000_020)
	err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-b",
		Steps:    []store.StepRecord{{Seq: 2, StepID: "approve", Type: "task", Status: store.StepWaiting, StartedAt: ts(1_700_000_020)}},
		NewTasks: []*store.Task{{StepID: "approve", Seq: 2, Type: store.TaskTypeTask, Title: "Approve", Assignees: []string{"user:bob"}}}})
	if !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("commit by a server that does not own the instance: %v, want ErrLeaseLost", err)
	}
	sameInstance(t, getInstance(t, s, in.ID), in)
	if h := history(t, s, in.ID); len(h) != 0 {
		t.Errorf("a fenced commit wrote step records: %+v", h)
	}
	if tl, _, _ := s.ListTasks(ctx(t), store.TaskFilter{All: true}, store.Page{}); len(tl) != 0 {
		t.Errorf("a fenced commit wrote tasks: %+v", tl)
	}

	// The heartbeat moves the lease on; a commit carrying the engine's
	// older lease does not move it back.
	later := ts(1_700_000_900)
	if n, err := s.ExtendLeases(ctx(t), "server-a", later); err != nil || n != 1 {
		t.Fatalf("ExtendLeases = %d, %v", n, err)
	}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a"}); err != nil {
		t.Fatal(err)
	}
	got := getInstance(t, s, in.ID)
	wantTime(t, "LeaseUntil after a commit with an older lease", got.LeaseUntil, later)
	if got.Seq != 2 {
		t.Errorf("Seq = %d, want 2", got.Seq)
	}
	// A later one does move it.
	next.LeaseUntil = ts(1_700_001_000)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a"}); err != nil {
		t.Fatal(err)
	}
	wantTime(t, "LeaseUntil after a commit with a later lease", getInstance(t, s, in.ID).LeaseUntil, next.LeaseUntil)

	// Releasing the instance (waiting, no owner) clears the lease; the
	// old owner is fenced out from then on.
	wait := next
	wait.Status, wait.Owner, wait.LeaseUntil = store.StatusWaiting, "", time.Time{}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: wait, ExpectOwner: "server-a"}); err != nil {
		t.Fatal(err)
	}
	got = getInstance(t, s, in.ID)
	if got.Owner != "" || !got.LeaseUntil.IsZero() || got.Status != store.StatusWaiting {
		t.Errorf("released instance: owner %q, lease %v, status %s", got.Owner, got.LeaseUntil, got.Status)
	}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a"}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("commit after release: %v, want ErrLeaseLost", err)
	}
}

func testInstanceClaim(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	now := ts(1_700_000_500)
	if _, err := s.ClaimInstance(ctx(t), instanceID(9), 1, "server-a", now, now.Add(10*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of a missing instance: %v, want ErrNotFound", err)
	}
	in := fullInstance(instanceID(1), "expense", 1)
	in.Status, in.Owner, in.LeaseUntil, in.Seq = store.StatusWaiting, "", time.Time{}, 3
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimInstance(ctx(t), in.ID, 2, "server-a", now, now.Add(10*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim of a waiting instance at the wrong seq (a stale wake): %v, want ErrConflict", err)
	}
	got, err := s.ClaimInstance(ctx(t), in.ID, 3, "server-a", now, now.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := in
	want.Status, want.Owner, want.LeaseUntil, want.UpdatedAt = store.StatusRunning, "server-a", now.Add(10*time.Second), now
	sameInstance(t, got, want)
	sameInstance(t, getInstance(t, s, in.ID), want)

	// Running on a live lease: nobody else gets it, whatever the seq.
	for _, seq := range []int{0, 3} {
		if _, err := s.ClaimInstance(ctx(t), in.ID, seq, "server-b", now.Add(5*time.Second), now.Add(15*time.Second)); !errors.Is(err, store.ErrConflict) {
			t.Errorf("claim of a live lease (seq %d): %v, want ErrConflict", seq, err)
		}
	}
	// At the very end of the lease it still holds (expired means before now).
	if _, err := s.ClaimInstance(ctx(t), in.ID, 0, "server-b", now.Add(10*time.Second), now.Add(20*time.Second)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim at the lease's last instant: %v, want ErrConflict", err)
	}
	// Expired: a takeover, seq ignored.
	took := now.Add(11 * time.Second)
	got, err = s.ClaimInstance(ctx(t), in.ID, 0, "server-b", took, took.Add(10*time.Second))
	if err != nil {
		t.Fatalf("takeover of an expired lease: %v", err)
	}
	if got.Owner != "server-b" || got.Status != store.StatusRunning || !bytes.Equal(got.State, in.State) {
		t.Errorf("takeover returned %+v", got)
	}
	wantTime(t, "LeaseUntil after takeover", got.LeaseUntil, took.Add(10*time.Second))
	// The old owner is fenced out.
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: want, ExpectOwner: "server-a"}); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("commit by the previous owner after a takeover: %v, want ErrLeaseLost", err)
	}

	// An ended instance cannot be claimed.
	end := got
	end.Status, end.Owner, end.LeaseUntil, end.EndedAt = store.StatusCompleted, "", time.Time{}, took
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: end, ExpectOwner: "server-b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimInstance(ctx(t), in.ID, end.Seq, "server-a", took.Add(time.Hour), took.Add(2*time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("claim of a completed instance: %v, want ErrConflict", err)
	}
}

func testInstanceLeases(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	base := ts(1_700_000_000)
	mk := func(n int, status, owner string, lease time.Time) {
		in := fullInstance(instanceID(n), "expense", 1)
		in.Status, in.Owner, in.LeaseUntil = status, owner, lease
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
			t.Fatal(err)
		}
	}
	mk(1, store.StatusRunning, "server-a", base.Add(30*time.Second))
	mk(2, store.StatusRunning, "server-a", base.Add(10*time.Second))
	mk(3, store.StatusRunning, "server-b", base.Add(20*time.Second))
	mk(4, store.StatusWaiting, "", time.Time{})
	mk(5, store.StatusCompleted, "", time.Time{})
	mk(6, store.StatusRunning, "server-b", base.Add(5*time.Second))

	if ids, err := s.ExpiredLeases(ctx(t), base, 10); err != nil || len(ids) != 0 {
		t.Errorf("ExpiredLeases before any expiry = %v, %v", ids, err)
	}
	ids, err := s.ExpiredLeases(ctx(t), base.Add(25*time.Second), 10)
	if want := []string{instanceID(6), instanceID(2), instanceID(3)}; err != nil || !slices.Equal(ids, want) {
		t.Errorf("ExpiredLeases = %v, %v; want %v (longest expired first, running only)", ids, err, want)
	}
	if ids, err := s.ExpiredLeases(ctx(t), base.Add(25*time.Second), 2); err != nil || len(ids) != 2 {
		t.Errorf("ExpiredLeases with limit 2 = %v, %v", ids, err)
	}

	n, err := s.ExtendLeases(ctx(t), "server-a", base.Add(60*time.Second))
	if err != nil || n != 2 {
		t.Fatalf("ExtendLeases(server-a) = %d, %v; want 2", n, err)
	}
	ids, err = s.ExpiredLeases(ctx(t), base.Add(25*time.Second), 10)
	if want := []string{instanceID(6), instanceID(3)}; err != nil || !slices.Equal(ids, want) {
		t.Errorf("ExpiredLeases after extending server-a = %v, %v; want %v", ids, err, want)
	}
	wantTime(t, "extended lease", getInstance(t, s, instanceID(2)).LeaseUntil, base.Add(60*time.Second))
	if n, err := s.ExtendLeases(ctx(t), "server-z", base); err != nil || n != 0 {
		t.Errorf("ExtendLeases of an owner with nothing = %d, %v", n, err)
	}
	// Extending never touches instances that are not running.
	if n, err := s.ExtendLeases(ctx(t), "", base.Add(time.Hour)); err != nil || n != 0 {
		t.Errorf("ExtendLeases(\"\") = %d, %v; want 0", n, err)
	}
}

func testInstanceList(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	deploy(t, s, "leave")
	if l, next, err := s.ListInstances(ctx(t), store.InstanceFilter{}, store.Page{}); err != nil || len(l) != 0 || next != "" {
		t.Fatalf("empty ListInstances = %v, %q, %v", l, next, err)
	}
	var all, alices, leaves, waiting, children []string
	for i := range 23 {
		in := fullInstance(instanceID(i), "expense", 1)
		if i > 0 && i%5 == 0 {
			in.Parent = instanceID(0)
			children = append([]string{in.ID}, children...)
		}
		if i > 0 && i%10 == 0 {
			// A branch of instance 0's parallel step: listed only as
			// its child.
			in.Branch = "reviews/legal-" + strconv.Itoa(i)
		}
		if i%3 == 0 {
			in.Workflow = "leave"
		}
		if i%2 == 0 {
			in.StartedBy = "user:bob"
		}
		if i%4 == 1 {
			in.Status, in.Owner, in.LeaseUntil = store.StatusWaiting, "", time.Time{}
		}
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
			t.Fatal(err)
		}
		if in.Branch != "" {
			continue
		}
		all = append([]string{in.ID}, all...) // newest first
		if in.StartedBy == "user:alice" {
			alices = append([]string{in.ID}, alices...)
		}
		if in.Workflow == "leave" {
			leaves = append([]string{in.ID}, leaves...)
		}
		if in.Status == store.StatusWaiting && in.Workflow == "expense" {
			waiting = append([]string{in.ID}, waiting...)
		}
	}
	for _, tc := range []struct {
		f    store.InstanceFilter
		want []string
	}{
		{store.InstanceFilter{}, all},
		{store.InstanceFilter{StartedBy: "user:alice"}, alices},
		{store.InstanceFilter{Workflow: "leave"}, leaves},
		{store.InstanceFilter{Workflow: "expense", Status: store.StatusWaiting}, waiting},
		{store.InstanceFilter{StartedBy: "user:nobody"}, nil},
		{store.InstanceFilter{Parent: instanceID(0)}, children},
		{store.InstanceFilter{Parent: instanceID(1)}, nil},
	} {
		for _, limit := range []int{1, 4, 100} {
			got, _ := pageAll(t, limit, func(p store.Page) ([]store.Instance, string, error) {
				return s.ListInstances(ctx(t), tc.f, p)
			})
			var ids []string
			for _, in := range got {
				ids = append(ids, in.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("filter %+v, limit %d: listed %v, want %v", tc.f, limit, ids, tc.want)
			}
		}
	}
	got, _, err := s.ListInstances(ctx(t), store.InstanceFilter{}, store.Page{Limit: 1})
	if err != nil || len(got) != 1 || !bytes.Equal(got[0].State, fullInstance("", "", 0).State) {
		t.Errorf("listed instance %+v, %v: want its state opened", got, err)
	}
	if in, err := s.GetInstance(ctx(t), instanceID(5)); err != nil || in.Parent != instanceID(0) {
		t.Errorf("GetInstance(%s).Parent = %q, %v; want %s", instanceID(5), in.Parent, err, instanceID(0))
	}
	if in, err := s.GetInstance(ctx(t), instanceID(0)); err != nil || in.Parent != "" || in.Branch != "" {
		t.Errorf("GetInstance(%s).Parent, Branch = %q, %q, %v; want none", instanceID(0), in.Parent, in.Branch, err)
	}
	if in, err := s.GetInstance(ctx(t), instanceID(20)); err != nil || in.Branch != "reviews/legal-20" {
		t.Errorf("GetInstance(%s).Branch = %q, %v; want reviews/legal-20", instanceID(20), in.Branch, err)
	}
	if _, _, err := s.ListInstances(ctx(t), store.InstanceFilter{}, store.Page{Cursor: "***"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
}

func testInstanceHistory(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	var steps []store.StepRecord
	for seq := 1; seq <= 9; seq++ {
		steps = append(steps, store.StepRecord{Seq: seq, StepID: fmt.Sprintf("s%d", seq), Type: "set",
			Status: store.StepCompleted, Attempt: 1, StartedAt: ts(1_700_000_000 + int64(seq)), EndedAt: ts(1_700_000_000 + int64(seq))})
	}
	// Nine records in one commit: more than one statement's batch.
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Steps: steps[:7]}); err != nil {
		t.Fatal(err)
	}
	// A seq listed twice in one commit keeps its last record.
	dup := steps[7]
	dup.Status = store.StepRunning
	dup.EndedAt = time.Time{}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a",
		Steps: []store.StepRecord{dup, steps[8], steps[7]}}); err != nil {
		t.Fatal(err)
	}
	other := fullInstance(instanceID(2), "expense", 1)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: other,
		Steps: []store.StepRecord{{Seq: 1, StepID: "x", Type: "set", Status: store.StepRunning}}}); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{1, 2, 4, 100} {
		got, _ := pageAll(t, limit, func(p store.Page) ([]store.StepRecord, string, error) {
			return s.History(ctx(t), in.ID, p)
		})
		if len(got) != len(steps) {
			t.Fatalf("limit %d: %d records, want %d", limit, len(got), len(steps))
		}
		for i := range got {
			want := steps[i]
			want.InstanceID = in.ID
			sameStep(t, got[i], want)
		}
	}
	if h := history(t, s, instanceID(3)); len(h) != 0 {
		t.Errorf("history of a missing instance: %v", h)
	}
	if _, _, err := s.History(ctx(t), in.ID, store.Page{Cursor: "***"}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("bad cursor: %v, want ErrInvalidCursor", err)
	}
	if _, _, err := s.History(ctx(t), in.ID, store.Page{Cursor: store.EncodeCursor("x")}); !errors.Is(err, store.ErrInvalidCursor) {
		t.Errorf("non-numeric cursor: %v, want ErrInvalidCursor", err)
	}
}

// testInstanceStateSealed reads the raw state column: the resume state
// (step outputs, tokens among them) is never stored in plaintext, and a
// sealed state copied to another instance does not open.
func testInstanceStateSealed(t *testing.T, s store.Store) {
	db, ok := s.(rawDB)
	if !ok {
		t.Skipf("%T gives no access to its database", s)
	}
	deploy(t, s, "expense")
	const marker = "STATE-TOKEN-MARKER-4b1d9e"
	in := fullInstance(instanceID(1), "expense", 1)
	in.State = []byte(`{"fetch":{"access_token":"` + marker + `"}}`)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	empty := fullInstance(instanceID(2), "expense", 1)
	empty.State = nil
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: empty}); err != nil {
		t.Fatal(err)
	}
	raw := func(id string) []byte {
		var b []byte
		if err := db.ReadDB().QueryRowContext(ctx(t), "SELECT state FROM instances WHERE id = '"+id+"'").Scan(&b); err != nil {
			t.Fatal(err)
		}
		return b
	}
	sealed := raw(in.ID)
	if len(sealed) <= len(in.State) || bytes.Contains(sealed, []byte(marker)) || bytes.Contains(sealed, []byte("access_token")) {
		t.Errorf("state stored as %q: want ciphertext", sealed)
	}
	if b := raw(empty.ID); len(b) != 0 {
		t.Errorf("empty state stored as %d bytes, want none", len(b))
	}
	if got := getInstance(t, s, in.ID); !bytes.Equal(got.State, in.State) {
		t.Errorf("state reads back as %q", got.State)
	}
	// Commits reseal.
	in.State = []byte(`{"next":"` + marker + `-2"}`)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a"}); err != nil {
		t.Fatal(err)
	}
	if b := raw(in.ID); bytes.Contains(b, []byte(marker)) || bytes.Equal(b, sealed) {
		t.Errorf("committed state stored as %q", b)
	}
	if got := getInstance(t, s, in.ID); !bytes.Equal(got.State, in.State) {
		t.Errorf("committed state reads back as %q", got.State)
	}
	if _, err := db.WriteDB().ExecContext(ctx(t), "UPDATE instances SET state = (SELECT state FROM instances WHERE id = '"+
		in.ID+"') WHERE id = '"+empty.ID+"'"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetInstance(ctx(t), empty.ID); err == nil {
		t.Errorf("a state copied to another instance opened: %q", got.State)
	}
}

// testInstanceConcurrentOwners has two servers commit one instance at
// once: only the owner's commits land.
func testInstanceConcurrentOwners(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	const each = 20
	var (
		wg           sync.WaitGroup
		aErr, bErr   error
		bLost, bWins int
	)
	wg.Go(func() {
		for i := range each {
			c := in
			c.Seq = i + 2
			c.Vars = []byte(fmt.Sprintf(`{"by":"a","i":%d}`, i))
			if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: c, ExpectOwner: "server-a",
				Steps: []store.StepRecord{{Seq: c.Seq, StepID: "a", Type: "set", Status: store.StepCompleted}}}); err != nil {
				aErr = err
				return
			}
		}
	})
	wg.Go(func() {
		for i := range each {
			c := in
			c.Owner = "server-b"
			c.Seq = 1000 + i
			c.Vars = []byte(`{"by":"b"}`)
			err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: c, ExpectOwner: "server-b",
				Steps: []store.StepRecord{{Seq: c.Seq, StepID: "b", Type: "set", Status: store.StepCompleted}}})
			switch {
			case errors.Is(err, store.ErrLeaseLost):
				bLost++
			case err == nil:
				bWins++
			default:
				bErr = err
				return
			}
		}
	})
	wg.Wait()
	if aErr != nil || bErr != nil {
		t.Fatalf("owner: %v; other server: %v", aErr, bErr)
	}
	if bWins != 0 || bLost != each {
		t.Errorf("the other server's commits: %d written, %d refused; want none written", bWins, bLost)
	}
	got := getInstance(t, s, in.ID)
	if got.Owner != "server-a" || got.Seq != each+1 || string(got.Vars) != fmt.Sprintf(`{"by":"a","i":%d}`, each-1) {
		t.Errorf("instance after the race: owner %q, seq %d, vars %s", got.Owner, got.Seq, got.Vars)
	}
	h := history(t, s, in.ID)
	if len(h) != each {
		t.Errorf("%d step records, want %d", len(h), each)
	}
	for _, st := range h {
		if st.StepID != "a" {
			t.Errorf("step record %+v written by the server that does not own the instance", st)
		}
	}
}

// --- tasks ---

func testTaskVisibility(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	if tl, next, err := s.ListTasks(ctx(t), store.TaskFilter{All: true}, store.Page{}); err != nil || len(tl) != 0 || next != "" {
		t.Fatalf("empty ListTasks = %v, %q, %v", tl, next, err)
	}
	assignees := [][]string{
		{"user:alice"},
		{"role:approver"},
		{"user:bob", "role:approver"},
		{"user:carol"},
		{"user:alice", "user:alice"}, // listed twice: still one assignee
	}
	var serials []int64
	for i := range 3 {
		in := fullInstance(instanceID(i), "expense", 1)
		in.Status, in.Owner, in.LeaseUntil = store.StatusWaiting, "", time.Time{}
		var tasks []*store.Task
		for j, a := range assignees {
			tasks = append(tasks, &store.Task{StepID: fmt.Sprintf("t%d", j), Seq: 1, Type: store.TaskTypeTask,
				Title: "Approve", Assignees: a, Actions: []string{"approve", "reject"}})
		}
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: tasks}); err != nil {
			t.Fatal(err)
		}
		for _, task := range tasks {
			if task.Serial == 0 || (len(serials) > 0 && task.Serial <= serials[len(serials)-1]) {
				t.Fatalf("serials not filled in increasing: %d after %v", task.Serial, serials)
			}
			serials = append(serials, task.Serial)
		}
	}
	pick := func(idx ...int) []int64 {
		var out []int64
		for i := range 3 {
			for _, j := range idx {
				out = append(out, serials[i*len(assignees)+j])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.TaskFilter
		want []int64
	}{
		{"alice", store.TaskFilter{Assignees: []string{"user:alice"}}, pick(0, 4)},
		{"alice the approver", store.TaskFilter{Assignees: []string{"user:alice", "role:approver"}}, pick(0, 1, 2, 4)},
		{"bob", store.TaskFilter{Assignees: []string{"user:bob"}}, pick(2)},
		{"approvers", store.TaskFilter{Assignees: []string{"role:approver"}}, pick(1, 2)},
		{"nobody", store.TaskFilter{Assignees: []string{"user:mallory"}}, nil},
		{"no assignees", store.TaskFilter{}, nil},
		{"all", store.TaskFilter{All: true}, serials},
		{"all ignores assignees", store.TaskFilter{All: true, Assignees: []string{"user:bob"}}, serials},
		{"one instance", store.TaskFilter{All: true, InstanceID: instanceID(1)}, serials[5:10]},
		{"alice in one instance", store.TaskFilter{Assignees: []string{"user:alice"}, InstanceID: instanceID(2)},
			[]int64{serials[10], serials[14]}},
		{"done", store.TaskFilter{All: true, Status: store.TaskDone}, nil},
	} {
		for _, limit := range []int{1, 2, 100} {
			got, _ := pageAll(t, limit, func(p store.Page) ([]store.Task, string, error) {
				return s.ListTasks(ctx(t), tc.f, p)
			})
			var ids []int64
			for _, task := range got {
				ids = append(ids, task.Serial)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("%s, limit %d: listed %v, want %v", tc.name, limit, ids, tc.want)
			}
		}
	}
	for _, c := range []string{"***", store.EncodeCursor("x")} {
		if _, _, err := s.ListTasks(ctx(t), store.TaskFilter{All: true}, store.Page{Cursor: c}); !errors.Is(err, store.ErrInvalidCursor) {
			t.Errorf("bad cursor %q: %v, want ErrInvalidCursor", c, err)
		}
	}
}

func testTaskRoundTrip(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	full := &store.Task{InstanceID: in.ID, Workflow: "expense", StepID: "approve", Seq: 2, Type: store.TaskTypeConnect,
		Title: "Connect your calendar", Assignees: []string{"user:alice", "role:hr"}, Actions: []string{"done"},
		Form: []byte(`{"fields":[{"name":"comment","type":"text"}]}`), ConnectURL: "https://flowgate.example/connect/x",
		CreatedAt: ts(1_700_000_005)}
	// Nothing optional: NULL form, and defaults for workflow and status.
	bare := &store.Task{StepID: "bare", Seq: 3, Type: store.TaskTypeTask, Title: "Bare"}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{full, bare}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTask(ctx(t), full.Serial)
	if err != nil {
		t.Fatal(err)
	}
	want := *full
	want.Status = store.TaskOpen
	sameTask(t, got, want)
	got, err = s.GetTask(ctx(t), bare.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if got.InstanceID != in.ID || got.Workflow != "expense" || got.Status != store.TaskOpen || got.Form != nil ||
		got.Data != nil || !got.ActedAt.IsZero() || got.Assignees != nil || got.Actions != nil {
		t.Errorf("bare task reads back as %+v", got)
	}
	wantTime(t, "bare CreatedAt", got.CreatedAt, in.UpdatedAt)

	// Acting with data, and without (NULL data).
	act := &store.TaskAct{Serial: full.Serial, Action: "done", ActedBy: "user:alice", Data: []byte(`{"comment":"ok"}`), At: ts(1_700_000_050)}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a", Act: act}); err != nil {
		t.Fatal(err)
	}
	want.Status, want.Action, want.ActedBy, want.Data, want.ActedAt = store.TaskDone, "done", "user:alice", act.Data, act.At
	got, err = s.GetTask(ctx(t), full.Serial)
	if err != nil {
		t.Fatal(err)
	}
	sameTask(t, got, want)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a",
		Act: &store.TaskAct{Serial: bare.Serial, Action: "ok", ActedBy: "user:bob"}}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetTask(ctx(t), bare.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.TaskDone || got.Data != nil || got.ActedBy != "user:bob" {
		t.Errorf("task acted on without data: %+v", got)
	}
	wantTime(t, "default ActedAt", got.ActedAt, in.UpdatedAt)
}

func testTaskActAndCancel(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	tasks := []*store.Task{
		{StepID: "a", Seq: 1, Type: store.TaskTypeTask, Title: "A", Assignees: []string{"user:alice"}},
		{StepID: "b", Seq: 1, Type: store.TaskTypeTask, Title: "B", Assignees: []string{"user:alice"}},
		{StepID: "c", Seq: 1, Type: store.TaskTypeTask, Title: "C", Assignees: []string{"user:alice"}},
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: tasks}); err != nil {
		t.Fatal(err)
	}
	other := fullInstance(instanceID(2), "expense", 1)
	otherTask := &store.Task{StepID: "x", Seq: 1, Type: store.TaskTypeTask, Title: "X", Assignees: []string{"user:alice"}}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: other, NewTasks: []*store.Task{otherTask}}); err != nil {
		t.Fatal(err)
	}

	next := in
	next.Seq = 2
	act := &store.TaskAct{Serial: tasks[0].Serial, Action: "approve", ActedBy: "user:alice", At: ts(1_700_000_100)}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a", Act: act}); err != nil {
		t.Fatal(err)
	}
	// Acting twice: ErrConflict, and the whole commit is rolled back.
	again := next
	again.Seq = 3
	again.Vars = []byte(`{"again":true}`)
	newTask := &store.Task{StepID: "d", Seq: 3, Type: store.TaskTypeTask, Title: "D", Assignees: []string{"user:alice"}}
	err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: again, ExpectOwner: "server-a", Act: act,
		Steps:    []store.StepRecord{{Seq: 3, StepID: "d", Type: "task", Status: store.StepWaiting}},
		NewTasks: []*store.Task{newTask}, CancelTasks: true})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second action on a task: %v, want ErrConflict", err)
	}
	got := getInstance(t, s, in.ID)
	if got.Seq != 2 || string(got.Vars) != string(in.Vars) {
		t.Errorf("refused commit changed the instance: seq %d, vars %s", got.Seq, got.Vars)
	}
	if h := history(t, s, in.ID); len(h) != 0 {
		t.Errorf("refused commit wrote step records: %+v", h)
	}
	if newTask.Serial != 0 {
		t.Errorf("refused commit filled in serial %d", newTask.Serial)
	}
	open, _, err := s.ListTasks(ctx(t), store.TaskFilter{All: true, InstanceID: in.ID}, store.Page{})
	if err != nil || len(open) != 2 {
		t.Errorf("after a refused commit %d open tasks, %v; want 2 (nothing cancelled, nothing created)", len(open), err)
	}
	// A task of another instance cannot be closed by this one.
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a",
		Act: &store.TaskAct{Serial: otherTask.Serial, Action: "approve", ActedBy: "user:alice"}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("act on another instance's task: %v, want ErrConflict", err)
	}

	// Cancel the rest and open a new one in the same commit: the new one
	// stays open.
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: again, ExpectOwner: "server-a",
		CancelTasks: true, NewTasks: []*store.Task{newTask}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status string
		want   []int64
	}{
		{store.TaskOpen, []int64{newTask.Serial}},
		{store.TaskDone, []int64{tasks[0].Serial}},
		{store.TaskCancelled, []int64{tasks[1].Serial, tasks[2].Serial}},
	} {
		got, _, err := s.ListTasks(ctx(t), store.TaskFilter{Assignees: []string{"user:alice"}, InstanceID: in.ID, Status: tc.status}, store.Page{})
		var ids []int64
		for _, task := range got {
			ids = append(ids, task.Serial)
		}
		if err != nil || !slices.Equal(ids, tc.want) {
			t.Errorf("%s tasks: %v, %v; want %v", tc.status, ids, err, tc.want)
		}
	}
	if task, err := s.GetTask(ctx(t), otherTask.Serial); err != nil || task.Status != store.TaskOpen {
		t.Errorf("cancelling one instance's tasks touched another's: %+v, %v", task, err)
	}
	for status, want := range map[string]int{store.TaskOpen: 2, store.TaskDone: 1, store.TaskCancelled: 2} {
		if n, err := s.CountTasks(ctx(t), status); err != nil || n != want {
			t.Errorf("CountTasks(%s) = %d, %v; want %d", status, n, err, want)
		}
	}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: again, ExpectOwner: "server-a",
		Act: &store.TaskAct{Serial: tasks[1].Serial, Action: "approve"}}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("act on a cancelled task: %v, want ErrConflict", err)
	}
}

// --- wakes ---

// setScheduler installs sched as the store's job queue, as a backend's
// OpenQueue does. Both backends have SetScheduler through sqlstore.Store.
func setScheduler(t *testing.T, s store.Store, sched sqlstore.Scheduler) {
	t.Helper()
	host, ok := s.(interface{ SetScheduler(sqlstore.Scheduler) })
	if !ok {
		t.Fatalf("the %s store takes no scheduler", s.Backend())
	}
	host.SetScheduler(sched)
}

// recordingScheduler checks that it runs inside the commit's transaction
// (it sees the uncommitted instance row) and writes a row of its own in
// it, as a job queue would.
type recordingScheduler struct {
	mu    sync.Mutex
	calls []store.Wake
	seqs  []int
	fail  error
}

func (r *recordingScheduler) ScheduleTx(ctx context.Context, sqlTx *sql.Tx, w store.Wake) error {
	var seq int
	if err := sqlTx.QueryRowContext(ctx, "SELECT seq FROM instances WHERE id = '"+w.InstanceID+"'").Scan(&seq); err != nil {
		return err
	}
	name := fmt.Sprintf("wake:%s:%d", w.InstanceID, w.Seq)
	if _, err := sqlTx.ExecContext(ctx, "INSERT INTO settings (name, value, updated_at) VALUES ('"+name+"', 'scheduled', 0)"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, w)
	r.seqs = append(r.seqs, seq)
	return r.fail
}

func testWakeInTransaction(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	rec := &recordingScheduler{}
	setScheduler(t, s, rec)
	in := fullInstance(instanceID(1), "expense", 1)
	in.Status, in.Owner, in.LeaseUntil, in.Seq = store.StatusWaiting, "", time.Time{}, 1
	at := ts(1_700_003_600)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Wake: &store.Wake{InstanceID: in.ID, Seq: 1, At: at}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimInstance(ctx(t), in.ID, 1, "server-a", at, at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	next := in
	next.Seq, next.Status = 2, store.StatusWaiting
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a",
		Wake: &store.Wake{Seq: 2, At: at.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.calls) != 2 {
		t.Fatalf("scheduler called %d times, want 2", len(rec.calls))
	}
	if w := rec.calls[0]; w.InstanceID != in.ID || w.Seq != 1 || !w.At.Equal(at) {
		t.Errorf("first wake = %+v", w)
	}
	if w := rec.calls[1]; w.InstanceID != in.ID || w.Seq != 2 {
		t.Errorf("second wake = %+v: want the instance id filled in and seq 2", w)
	}
	if !slices.Equal(rec.seqs, []int{1, 2}) {
		t.Errorf("the scheduler saw seq %v in its transaction, want [1 2]: it did not run inside the commit", rec.seqs)
	}
	for seq := 1; seq <= 2; seq++ {
		if v, err := s.GetSetting(ctx(t), fmt.Sprintf("wake:%s:%d", in.ID, seq)); err != nil || v != "scheduled" {
			t.Errorf("the scheduler's own write for seq %d: %q, %v", seq, v, err)
		}
	}
}

// The instance row keeps its wake's time, so a server can find overdue
// waits without the job queue: only waiting instances with a due wake are
// listed, longest overdue first; a claim or a commit without a wake
// clears it.
func testOverdueWakes(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	setScheduler(t, s, &recordingScheduler{})
	base := ts(1_700_000_000)
	mk := func(n, seq int, wake *store.Wake) store.Instance {
		in := fullInstance(instanceID(n), "expense", 1)
		in.Status, in.Owner, in.LeaseUntil, in.Seq = store.StatusWaiting, "", time.Time{}, seq
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Wake: wake}); err != nil {
			t.Fatal(err)
		}
		return in
	}
	mk(1, 3, &store.Wake{Seq: 3, At: base.Add(20 * time.Second)})
	two := mk(2, 1, &store.Wake{Seq: 1, At: base.Add(10 * time.Second)})
	mk(3, 2, nil) // a task: waits for a person
	mk(4, 1, &store.Wake{Seq: 1, At: base.Add(time.Hour)})
	running := fullInstance(instanceID(5), "expense", 1) // running, with a wake recorded
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: running, Wake: &store.Wake{Seq: 1, At: base}}); err != nil {
		t.Fatal(err)
	}

	if w, err := s.OverdueWakes(ctx(t), base.Add(5*time.Second), 10); err != nil || len(w) != 0 {
		t.Errorf("OverdueWakes before any is due = %+v, %v", w, err)
	}
	w, err := s.OverdueWakes(ctx(t), base.Add(20*time.Second), 10)
	want := []store.Wake{{InstanceID: instanceID(2), Seq: 1, At: base.Add(10 * time.Second)},
		{InstanceID: instanceID(1), Seq: 3, At: base.Add(20 * time.Second)}}
	if err != nil || len(w) != len(want) {
		t.Fatalf("OverdueWakes = %+v, %v; want %+v (due ones, longest overdue first, waiting only)", w, err, want)
	}
	for i := range want {
		if w[i].InstanceID != want[i].InstanceID || w[i].Seq != want[i].Seq {
			t.Errorf("OverdueWakes[%d] = %+v, want %+v", i, w[i], want[i])
		}
		wantTime(t, "OverdueWakes At", w[i].At, want[i].At)
	}
	if w, err := s.OverdueWakes(ctx(t), base.Add(20*time.Second), 1); err != nil || len(w) != 1 || w[0].InstanceID != instanceID(2) {
		t.Errorf("OverdueWakes with limit 1 = %+v, %v", w, err)
	}

	// Claimed and parked again without a wake (now at a task): no longer due.
	if _, err := s.ClaimInstance(ctx(t), instanceID(2), 1, "server-a", base, base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if w, err := s.OverdueWakes(ctx(t), base.Add(time.Minute), 10); err != nil || len(w) != 1 || w[0].InstanceID != instanceID(1) {
		t.Errorf("OverdueWakes after claiming %s = %+v, %v; want only %s", instanceID(2), w, err, instanceID(1))
	}
	two.Seq = 2
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: two, ExpectOwner: "server-a"}); err != nil {
		t.Fatal(err)
	}
	if w, err := s.OverdueWakes(ctx(t), base.Add(2*time.Hour), 10); err != nil || len(w) != 2 ||
		w[0].InstanceID != instanceID(1) || w[1].InstanceID != instanceID(4) {
		t.Errorf("OverdueWakes after %s parked without a wake = %+v, %v; want %s and %s", instanceID(2), w, err, instanceID(1), instanceID(4))
	}
}

func testWakeFailureRollsBack(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	rec := &recordingScheduler{fail: errors.New("queue is full")}
	setScheduler(t, s, rec)
	in := fullInstance(instanceID(1), "expense", 1)
	task := &store.Task{StepID: "a", Seq: 1, Type: store.TaskTypeTask, Title: "A", Assignees: []string{"user:alice"}}
	key := &store.Idempotency{Principal: "user:alice", Key: "k", RequestHash: "h"}
	_, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{task}, Idempotency: key,
		Wake: &store.Wake{Seq: 1, At: ts(1_700_000_100)}})
	if err == nil || !strings.Contains(err.Error(), "queue is full") {
		t.Fatalf("CreateInstance with a failing scheduler: %v", err)
	}
	if _, err := s.GetInstance(ctx(t), in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("failed create left the instance: %v", err)
	}
	if _, err := s.GetSetting(ctx(t), "wake:"+in.ID+":1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the scheduler's own write survived the rollback: %v", err)
	}
	// The key was rolled back too: the retry goes through.
	rec.fail = nil
	if id, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{task}, Idempotency: key}); err != nil || id != "" {
		t.Fatalf("retry after a failed create: %q, %v", id, err)
	}

	rec.fail = errors.New("queue is down")
	next := in
	next.Seq, next.Vars = 2, []byte(`{"changed":true}`)
	err = s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a",
		Steps:       []store.StepRecord{{Seq: 2, StepID: "w", Type: "wait", Status: store.StepWaiting}},
		Act:         &store.TaskAct{Serial: task.Serial, Action: "ok", ActedBy: "user:alice"},
		CancelTasks: true,
		Wake:        &store.Wake{Seq: 2, At: ts(1_700_000_200)}})
	if err == nil || !strings.Contains(err.Error(), "queue is down") {
		t.Fatalf("CommitInstance with a failing scheduler: %v", err)
	}
	sameInstance(t, getInstance(t, s, in.ID), in)
	if h := history(t, s, in.ID); len(h) != 0 {
		t.Errorf("failed commit wrote step records: %+v", h)
	}
	if got, err := s.GetTask(ctx(t), task.Serial); err != nil || got.Status != store.TaskOpen {
		t.Errorf("failed commit closed the task: %+v, %v", got, err)
	}
}

func testWakeWithoutScheduler(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, Wake: &store.Wake{Seq: 1}}); err == nil {
		t.Fatal("CreateInstance with a wake and no scheduler succeeded")
	}
	if _, err := s.GetInstance(ctx(t), in.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("refused create left the instance: %v", err)
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in}); err != nil {
		t.Fatal(err)
	}
	next := in
	next.Seq = 2
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a", Wake: &store.Wake{Seq: 2}}); err == nil {
		t.Fatal("CommitInstance with a wake and no scheduler succeeded")
	}
	if got := getInstance(t, s, in.ID); got.Seq != 1 {
		t.Errorf("refused commit wrote seq %d", got.Seq)
	}
	// Removing the scheduler again is the same as never installing one.
	setScheduler(t, s, &recordingScheduler{})
	setScheduler(t, s, nil)
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: next, ExpectOwner: "server-a", Wake: &store.Wake{Seq: 2}}); err == nil {
		t.Error("CommitInstance after SetScheduler(nil) succeeded")
	}
}

// CloseTask closes an open task without its instance, once.
func testCloseTask(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	task := &store.Task{StepID: "call", Type: store.TaskTypeConnect, Title: "Reconnect to graph",
		Assignees: []string{"user:alice"}, ConnectURL: "/connect/x/call"}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{task}}); err != nil {
		t.Fatal(err)
	}
	act := store.TaskAct{Serial: task.Serial, Action: "connected", ActedBy: "user:alice", At: ts(1_700_000_200)}
	if err := s.CloseTask(ctx(t), act); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTask(ctx(t), task.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != store.TaskDone || got.Action != "connected" || got.ActedBy != "user:alice" {
		t.Errorf("closed task = %+v", got)
	}
	wantTime(t, "ActedAt", got.ActedAt, act.At)
	if inst := getInstance(t, s, in.ID); inst.Seq != in.Seq || inst.Status != in.Status {
		t.Errorf("CloseTask changed the instance: %+v", inst)
	}
	if err := s.CloseTask(ctx(t), act); !errors.Is(err, store.ErrConflict) {
		t.Errorf("closing twice: %v, want ErrConflict", err)
	}
	if err := s.CloseTask(ctx(t), store.TaskAct{Serial: task.Serial + 1000, Action: "x"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("closing a missing task: %v, want ErrNotFound", err)
	}
}
