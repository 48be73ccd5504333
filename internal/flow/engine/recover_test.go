package engine_test

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// A wait whose deadline passed while no server ran, and whose wake job is
// gone, still ends: the starting engine finds it in the store. Its sweep
// is an hour, so only the scan at start can do it.
func TestOverdueWaitResumesAtStartWithoutItsJob(t *testing.T) {
	s := openStore(t)
	first, err := engine.New(t.Context(), engine.Config{Store: s, Queue: openQueue(t, s), Lease: 2 * time.Second, Sweep: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	deploy(t, first, `
name: nap
permissions: {start: ["role:employee"]}
steps:
  - id: nap
    type: wait
    duration: 200ms
  - id: done
    type: return
    body: {waited: "${{ steps.nap.output.waited_ms }}"}
`)
	st, err := first.StartInstance(t.Context(), engine.StartRequest{Workflow: "nap", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, s, st.Instance.ID, store.StatusWaiting)
	// The server stops before the deadline (its timer with it), and the
	// queue has lost the wake.
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	db := s.(interface{ WriteDB() *sql.DB }).WriteDB()
	if res, err := db.ExecContext(t.Context(), `DELETE FROM river_job WHERE kind = 'flow_wake'`); err != nil {
		t.Fatal(err)
	} else if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("deleted %d wake jobs, want the one", n)
	}
	time.Sleep(300 * time.Millisecond)

	newEngine(t, s, engine.Config{Sweep: time.Hour})
	inst := waitStatus(t, s, st.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if inst.Status != store.StatusCompleted || !strings.Contains(string(inst.Output), `"waited"`) {
		t.Errorf("instance %s: %s %q %s", inst.ID, inst.Status, inst.Error, inst.Output)
	}
}

// Two engines race for one instance: the first stalls with its http call
// out (no heartbeat: its lease runs out), the second takes the instance
// over and finishes it, then the first's call answers. The first engine's
// commit must be refused by the owner fence: the finished instance stays
// as the second engine left it, and the step after the call runs once.
func TestStalledEngineCommitIsFencedOut(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		s := openStore(t)
		testStalledEngineFencedOut(t, s, s)
	})
	t.Run("postgres", func(t *testing.T) {
		stores := openPostgresStores(t)
		testStalledEngineFencedOut(t, stores[0], stores[1])
	})
}

func testStalledEngineFencedOut(t *testing.T, stalledStore, otherStore backend.Store) {
	var slowCalls, afterCalls atomic.Int32
	release, sent := make(chan struct{}), make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			if slowCalls.Add(1) == 1 {
				close(sent)
				<-release
				_, _ = w.Write([]byte(`"stalled"`))
				return
			}
			_, _ = w.Write([]byte(`"taken-over"`))
		case "/after":
			afterCalls.Add(1)
			_, _ = w.Write([]byte(`"after"`))
		}
	}))
	defer target.Close()
	var releaseOnce sync.Once
	defer releaseOnce.Do(func() { close(release) })

	// The stalled engine has no heartbeat and no queue (NoQueue): alive,
	// but its lease runs out as if the process were paused.
	stalledLog := &syncbuf.Buffer{}
	stalled := newEngine(t, stalledStore, engine.Config{NoQueue: true, Lease: time.Second,
		Logger: slog.New(slog.NewTextHandler(stalledLog, nil))})
	deploy(t, stalled, `
name: contended
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}/slow"
    timeout: 1m
  - id: after
    type: http
    url: "${{ input.url }}/after"
  - id: done
    type: return
    body: {call: "${{ steps.call.output.body }}"}
`)
	st, err := stalled.StartInstance(t.Context(), engine.StartRequest{Workflow: "contended", Input: map[string]any{"url": target.URL}, Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	<-sent
	newEngine(t, otherStore, engine.Config{Lease: time.Second, Sweep: 100 * time.Millisecond})
	done := waitStatus(t, otherStore, st.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if done.Status != store.StatusCompleted || !strings.Contains(string(done.Output), "taken-over") {
		t.Fatalf("after the takeover: %s %q %s", done.Status, done.Error, done.Output)
	}
	before := history(t, otherStore, st.Instance.ID)

	// The stalled call answers now; the run tries to commit it.
	releaseOnce.Do(func() { close(release) })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := stalled.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if !strings.Contains(stalledLog.String(), "another server took the instance over") {
		t.Errorf("the stalled engine's commit was not refused; its log:\n%s", stalledLog.String())
	}
	after, err := otherStore.GetInstance(t.Context(), st.Instance.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.Status != store.StatusCompleted || after.Seq != done.Seq || string(after.Output) != string(done.Output) || !after.UpdatedAt.Equal(done.UpdatedAt) {
		t.Errorf("the stalled engine's commit changed the instance: %s seq %d %s, was %s seq %d %s",
			after.Status, after.Seq, after.Output, done.Status, done.Seq, done.Output)
	}
	if h := history(t, otherStore, st.Instance.ID); len(h) != len(before) {
		t.Errorf("the stalled engine's commit wrote step records: %d records, were %d", len(h), len(before))
	}
	if n := afterCalls.Load(); n != 1 {
		t.Errorf("the step after the contended call ran %d times, want once", n)
	}
	if n := slowCalls.Load(); n != 2 {
		t.Errorf("the contended call was sent %d times, want twice (the stalled attempt and the takeover's)", n)
	}
}
