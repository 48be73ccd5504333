package audit_test

import (
	"database/sql"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

// eventually polls cond every 5 ms for up to 10 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting until %s", what)
}

// With the database refusing audit inserts the writer reports itself
// unhealthy, keeps the events and retries; once inserts work again it
// writes them and is healthy again, by itself.
func TestHealthFollowsTheDatabase(t *testing.T) {
	eachBackend(t, func(t *testing.T, st store.Store) {
		w := audit.NewWriter(st, nil, audit.Options{RetryBackoff: 5 * time.Millisecond})
		t.Cleanup(func() { _ = w.Close(t.Context()) })
		if err := w.Healthy(); err != nil {
			t.Fatalf("a fresh writer: %v", err)
		}
		w.Record(t.Context(), store.AuditEvent{Event: audit.TokenIssued, Client: "before"})
		eventually(t, "the first event is written", func() bool { return w.Stats().Written == 1 })

		allow := storetest.RefuseAuditWrites(t, st.(interface {
			WriteDB() *sql.DB
			Backend() string
		}))
		if err := w.Healthy(); err != nil {
			t.Fatalf("nothing has failed yet: %v", err)
		}
		w.Record(t.Context(), store.AuditEvent{Event: audit.TokenIssued, Client: "during"})
		eventually(t, "the writer reports the failure", func() bool { return w.Healthy() != nil })
		// Well past the 3 quick retries (5 + 10 + 20 ms) it is still
		// retrying, not giving up: nothing is lost, and it stays unhealthy.
		eventually(t, "the quick retries are over", func() bool { return w.Stats().WriteErrors >= 5 })
		if s := w.Stats(); s.Lost != 0 || s.Written != 1 {
			t.Fatalf("while inserts fail: stats %+v, want nothing lost", s)
		}
		if err := w.Healthy(); err == nil {
			t.Fatal("healthy while inserts fail")
		}

		allow()
		eventually(t, "the writer recovers", func() bool { return w.Healthy() == nil })
		if s := w.Stats(); s.Written != 2 || s.Lost != 0 {
			t.Fatalf("after recovery: stats %+v, want both events written", s)
		}
		var clients []string
		for _, e := range listAll(t, st, store.AuditFilter{}) {
			clients = append(clients, e.Client)
		}
		if len(clients) != 2 || clients[0] != "during" || clients[1] != "before" {
			t.Fatalf("stored events of %v, want during, before", clients)
		}
	})
}

// A full queue is a backlog the database is not keeping up with: the
// writer is unhealthy until there is room again.
func TestHealthReportsAFullQueue(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := audit.NewWriter(c, nil, audit.Options{QueueSize: 2, FullWait: -1})
	t.Cleanup(func() { _ = w.Close(t.Context()) })
	w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "held"})
	<-c.entered
	w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "q1"})
	if err := w.Healthy(); err != nil {
		t.Fatalf("queue not full yet: %v", err)
	}
	w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "q2"})
	if err := w.Healthy(); err == nil {
		t.Fatal("healthy with a full queue")
	}
	close(c.gate)
	eventually(t, "the queue drains", func() bool { return w.Healthy() == nil && w.Stats().Written == 3 })
}
