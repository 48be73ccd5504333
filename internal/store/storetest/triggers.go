package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// A task keeps its due time; an escalation replaces its assignees (the
// worklists of the new ones list it) and marks it, once, and only while
// it is open.
func testTaskDeadlineAndEscalation(t *testing.T, s store.Store) {
	deploy(t, s, "expense")
	in := fullInstance(instanceID(1), "expense", 1)
	task := &store.Task{StepID: "approve", Seq: 1, Type: store.TaskTypeTask, Title: "Approve",
		Assignees: []string{"role:approver"}, Actions: []string{"Yes"}, DueAt: ts(1_700_003_600)}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{task}}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTask(ctx(t), task.Serial)
	if err != nil {
		t.Fatal(err)
	}
	wantTime(t, "DueAt", got.DueAt, task.DueAt)
	if got.Escalated {
		t.Error("a new task reads back escalated")
	}
	esc := &store.TaskEscalation{Serial: task.Serial, Assignees: []string{"role:approver", "user:boss"}}
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a", Escalate: esc}); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetTask(ctx(t), task.Serial)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Escalated || !slices.Equal(got.Assignees, esc.Assignees) {
		t.Errorf("after escalation: escalated %v, assignees %v", got.Escalated, got.Assignees)
	}
	list, _, err := s.ListTasks(ctx(t), store.TaskFilter{Assignees: []string{"user:boss"}}, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Serial != task.Serial {
		t.Errorf("boss's worklist = %+v, want the escalated task", list)
	}
	// A closed task is not escalated, and the commit writes nothing.
	if err := s.CommitInstance(ctx(t), store.InstanceCommit{Instance: in, ExpectOwner: "server-a",
		Act: &store.TaskAct{Serial: task.Serial, Action: "Yes", ActedBy: "user:boss"}}); err != nil {
		t.Fatal(err)
	}
	before := getInstance(t, s, in.ID)
	moved := in
	moved.CurrentStep = "elsewhere"
	err = s.CommitInstance(ctx(t), store.InstanceCommit{Instance: moved, ExpectOwner: "server-a",
		Escalate: &store.TaskEscalation{Serial: task.Serial, Assignees: []string{"user:x"}}})
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("escalating a closed task: %v, want ErrConflict", err)
	}
	if after := getInstance(t, s, in.ID); after.CurrentStep != before.CurrentStep {
		t.Error("a refused escalation still wrote the instance row")
	}
}

// One instance per schedule and time, however many try at once; a
// refused claim writes no instance. The latest versions are listed
// without their sources.
func testScheduleClaims(t *testing.T, s store.Store) {
	deploy(t, s, "report")
	deploy(t, s, "another")
	v2 := deploy(t, s, "another")
	latest, err := s.LatestFlowVersions(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || latest[0].Name != "another" || latest[0].Version != 2 || latest[1].Name != "report" ||
		latest[1].Version != 1 || latest[0].Source != nil || latest[0].Title != "The another flow" {
		t.Fatalf("latest versions: %+v", latest)
	}
	wantTime(t, "DeployedAt", latest[0].DeployedAt, v2.DeployedAt)
	if last, err := s.LastScheduleClaim(ctx(t), "report", "* * * * *|UTC"); err != nil || !last.IsZero() {
		t.Fatalf("no claims yet: %v, %v", last, err)
	}
	at := ts(1_700_000_060)
	var wg sync.WaitGroup
	var mu sync.Mutex
	won, lost := 0, 0
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := fullInstance(instanceID(10+i), "report", 1)
			_, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in,
				ScheduleClaim: &store.ScheduleClaim{Workflow: "report", Schedule: "* * * * *|UTC", FireAt: at, Version: 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				won++
			case errors.Is(err, store.ErrConflict):
				lost++
				if _, gerr := s.GetInstance(ctx(t), in.ID); !errors.Is(gerr, store.ErrNotFound) {
					t.Errorf("a refused claim left instance %s: %v", in.ID, gerr)
				}
			default:
				t.Errorf("claim: %v", err)
			}
		}()
	}
	wg.Wait()
	if won != 1 || lost != 7 {
		t.Fatalf("won %d, lost %d; want 1 and 7", won, lost)
	}
	// Another schedule of the same flow, and a later time, are claims of their own.
	for i, c := range []store.ScheduleClaim{
		{Workflow: "report", Schedule: "0 * * * *|UTC", FireAt: at, Version: 1},
		{Workflow: "report", Schedule: "* * * * *|UTC", FireAt: at.Add(time.Minute), Version: 2},
	} {
		if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(30+i), "report", 1), ScheduleClaim: &c}); err != nil {
			t.Fatalf("claim %d: %v", i, err)
		}
	}
	last, err := s.LastScheduleClaim(ctx(t), "report", "* * * * *|UTC")
	if err != nil {
		t.Fatal(err)
	}
	wantTime(t, "last claim", last, at.Add(time.Minute))
}

// A signature is taken once while its guard lasts, and again after it
// ended; pruning forgets ended guards only.
func testWebhookReplays(t *testing.T, s store.Store) {
	deploy(t, s, "hook")
	future := time.Now().Add(time.Hour)
	create := func(n int, key string, until time.Time) error {
		_, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: fullInstance(instanceID(n), "hook", 1),
			Replay: &store.ReplayGuard{Key: key, Until: until}})
		return err
	}
	if err := create(1, "sig-a", future); err != nil {
		t.Fatal(err)
	}
	if err := create(2, "sig-a", future); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("replayed signature: %v, want ErrConflict", err)
	}
	if _, err := s.GetInstance(ctx(t), instanceID(2)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a replay left an instance: %v", err)
	}
	past := time.Now().Add(-time.Minute)
	if err := create(3, "sig-b", past); err != nil {
		t.Fatal(err)
	}
	if err := create(4, "sig-b", future); err != nil {
		t.Fatalf("a signature whose guard ended is taken again: %v", err)
	}
	if err := create(5, "sig-c", past); err != nil {
		t.Fatal(err)
	}
	n, err := s.PruneReplays(ctx(t), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("pruned %d, want 1 (sig-c)", n)
	}
	if err := create(6, "sig-a", future); !errors.Is(err, store.ErrConflict) {
		t.Errorf("pruning forgot a live guard: %v", err)
	}
}

// Mail is queued with its commit (a task notice gets the serial of the
// commit's new task), claimed by one caller at a time, retried when it
// failed, and done once sent.
func testMailOutbox(t *testing.T, s store.Store) {
	deploy(t, s, "mailer")
	in := fullInstance(instanceID(1), "mailer", 1)
	now := time.Now().UTC().Truncate(time.Millisecond)
	task := &store.Task{StepID: "approve", Seq: 1, Type: store.TaskTypeTask, Title: "Approve", Assignees: []string{"user:bob"}}
	mails := []store.Mail{
		{ID: "m1", Kind: store.MailEmail, To: []string{"a@example.com"}, Cc: []string{"c@example.com"}, Subject: "Hi",
			Text: "text", HTML: "<p>html</p>", MessageID: "m1@flowgate", NextAt: now},
		{ID: "m2", Kind: store.MailTaskAssigned, To: []string{"bob@example.com"}, MessageID: "m2@flowgate", NewTask: 1, NextAt: now},
	}
	if _, err := s.CreateInstance(ctx(t), store.InstanceCommit{Instance: in, NewTasks: []*store.Task{task}, Mails: mails}); err != nil {
		t.Fatal(err)
	}
	m2, err := s.GetMail(ctx(t), "m2")
	if err != nil {
		t.Fatal(err)
	}
	if m2.TaskSerial != task.Serial || m2.InstanceID != in.ID || !m2.SentAt.IsZero() {
		t.Errorf("task notice: %+v (task %d)", m2, task.Serial)
	}
	// Two claimers at once: each mail to one of them.
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ms, err := s.ClaimMails(ctx(t), now.Add(time.Second), now.Add(time.Minute), 10)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, m := range ms {
				got[m.ID]++
				if m.ID == "m1" && (m.Subject != "Hi" || m.Text != "text" || m.HTML != "<p>html</p>" ||
					!slices.Equal(m.To, []string{"a@example.com"}) || !slices.Equal(m.Cc, []string{"c@example.com"}) || m.Attempts != 1) {
					t.Errorf("claimed m1 = %+v", m)
				}
			}
		}()
	}
	wg.Wait()
	if got["m1"] != 1 || got["m2"] != 1 {
		t.Fatalf("claims: %v, want each mail once", got)
	}
	// Leased: not due again until the lease ends.
	if ms, _ := s.ClaimMails(ctx(t), now.Add(2*time.Second), now.Add(time.Minute), 10); len(ms) != 0 {
		t.Errorf("claimed again while leased: %v", ms)
	}
	if err := s.MailFailed(ctx(t), "m1", "connection refused", now.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := s.MailSent(ctx(t), "m2", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	ms, err := s.ClaimMails(ctx(t), now.Add(6*time.Second), now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].ID != "m1" || ms[0].Attempts != 2 || ms[0].LastError != "connection refused" {
		t.Fatalf("retry claim: %+v", ms)
	}
	if n, err := s.PruneMails(ctx(t), now.Add(2*time.Second)); err != nil || n != 1 {
		t.Errorf("prune: %d %v, want m2 only", n, err)
	}
	if _, err := s.GetMail(ctx(t), "m1"); err != nil {
		t.Errorf("unsent mail pruned: %v", err)
	}
	if err := s.MailSent(ctx(t), "nope", now); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown mail: %v", err)
	}
}
