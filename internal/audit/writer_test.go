package audit_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openStore opens a real, migrated store through backend.Open, the way the
// server does, and closes it when the test ends.
func openStore(tb testing.TB, dsn string) store.Store {
	tb.Helper()
	st, err := backend.Open(context.Background(), dsn, store.Options{Sealer: storetest.NewSealer(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = st.Close() })
	return st
}

func sqliteDSN(tb testing.TB) string {
	return "sqlite:" + filepath.Join(tb.TempDir(), "flowgate.db")
}

// eachBackend runs f on a fresh SQLite database and a fresh PostgreSQL
// database.
func eachBackend(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("sqlite", func(t *testing.T) { f(t, openStore(t, sqliteDSN(t))) })
	t.Run("postgres", func(t *testing.T) { f(t, openStore(t, pgtest.DSN(t))) })
}

// listAll pages through every event matching f.
func listAll(t *testing.T, st store.AuditLog, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	f.Page = store.Page{Limit: store.MaxLimit}
	var all []store.AuditEvent
	for {
		events, next, err := st.ListAudit(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, events...)
		if next == "" {
			return all
		}
		f.Page.Cursor = next
	}
}

// counting is a thin wrapper over a real store that counts AppendAudit
// calls and can make them fail or wait, to watch the writer's behaviour
// from the outside.
type counting struct {
	store.AuditLog
	calls    atomic.Int64
	maxBatch atomic.Int64
	// failures makes the next failures calls fail without writing.
	failures atomic.Int64
	// gate, when set, holds every call until it is closed or the call's
	// context ends; entered receives one value per held call.
	gate    chan struct{}
	entered chan struct{}
}

var errInjected = errors.New("injected failure")

func (c *counting) AppendAudit(ctx context.Context, events ...store.AuditEvent) error {
	c.calls.Add(1)
	for {
		m := c.maxBatch.Load()
		if int64(len(events)) <= m || c.maxBatch.CompareAndSwap(m, int64(len(events))) {
			break
		}
	}
	if c.gate != nil {
		select {
		case c.entered <- struct{}{}:
		default:
		}
		select {
		case <-c.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if c.failures.Add(-1) >= 0 {
		return errInjected
	}
	return c.AuditLog.AppendAudit(ctx, events...)
}

func TestConcurrentRecordsAllWrittenOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, st store.Store) {
		const goroutines, each = 16, 500
		w := audit.NewWriter(st, nil, audit.Options{})
		var wg sync.WaitGroup
		for g := range goroutines {
			wg.Go(func() {
				for i := range each {
					w.Record(t.Context(), store.AuditEvent{Event: audit.TokenIssued, User: fmt.Sprintf("user-%d", g),
						Client: "portal", RemoteAddr: "192.0.2.1", Detail: fmt.Sprintf("%d/%d", g, i)})
				}
			})
		}
		wg.Wait()
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, e := range listAll(t, st, store.AuditFilter{}) {
			seen[e.Detail]++
			if e.Outcome != audit.OutcomeSuccess {
				t.Fatalf("outcome %q, want the default for %s", e.Outcome, e.Event)
			}
		}
		if len(seen) != goroutines*each {
			t.Fatalf("%d distinct events stored, want %d", len(seen), goroutines*each)
		}
		for d, n := range seen {
			if n != 1 {
				t.Fatalf("event %s stored %d times", d, n)
			}
		}
		s := w.Stats()
		if s.Written != goroutines*each || s.Dropped != 0 || s.Lost != 0 || s.WriteErrors != 0 {
			t.Fatalf("stats %+v", s)
		}
	})
}

func TestGroupCommit(t *testing.T) {
	eachBackend(t, func(t *testing.T, st store.Store) {
		const events = 10_000
		c := &counting{AuditLog: st}
		// Under the race detector on a loaded 2-core machine the queue
		// can stay full past the default FullWait, and Record would drop
		// (TestFullQueueWaitsThenDrops covers that policy). This test is about
		// batching, so Record waits instead.
		w := audit.NewWriter(c, nil, audit.Options{FullWait: 30 * time.Second})
		var wg sync.WaitGroup
		for g := range 50 {
			wg.Go(func() {
				for i := range events / 50 {
					w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "alice", Detail: fmt.Sprint(g, i)})
				}
			})
		}
		wg.Wait()
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		calls := c.calls.Load()
		t.Logf("%d events in %d AppendAudit calls (largest batch %d)", events, calls, c.maxBatch.Load())
		if calls >= events/10 {
			t.Fatalf("%d AppendAudit calls for %d events: no group commit", calls, events)
		}
		if m := c.maxBatch.Load(); m > 512 {
			t.Fatalf("batch of %d events, over MaxBatch 512", m)
		}
		if n := len(listAll(t, st, store.AuditFilter{})); n != events {
			t.Fatalf("%d events stored, want %d", n, events)
		}
		if s := w.Stats(); s.Batches != uint64(calls) {
			t.Fatalf("Stats.Batches %d, AppendAudit calls %d", s.Batches, calls)
		}
	})
}

// writtenWithin waits until the writer has written n events, or fails.
func writtenWithin(t *testing.T, w *audit.Writer, n uint64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for w.Stats().Written < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d events written after %v, want %d (stats %+v)", w.Stats().Written, d, n, w.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// A busy writer (events arrived during its last commit) lets the next
// batch gather for CommitDelay instead of committing a trickle.
func TestCommitDelayGathersWhenBusy(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := audit.NewWriter(c, nil, audit.Options{CommitDelay: 500 * time.Millisecond})
	defer w.Close(t.Context())
	rec := func(n int) {
		for i := range n {
			w.Record(t.Context(), store.AuditEvent{Event: audit.TokenIssued, Client: fmt.Sprint("c", i)})
		}
	}
	rec(1)
	<-c.entered // the first event, written at once, is held in its commit
	rec(10)
	close(c.gate)
	rec(20) // while the writer gathers
	writtenWithin(t, w, 31, 5*time.Second)
	if n := c.calls.Load(); n != 2 {
		t.Fatalf("31 events in %d AppendAudit calls, want 2 (the first alone, then one batch)", n)
	}
}

// An event reaching an idle writer is written at once, whatever the
// CommitDelay; and neither Close nor a full queue waits for it.
func TestCommitDelayNeverHoldsUp(t *testing.T) {
	t.Run("idle", func(t *testing.T) {
		w := audit.NewWriter(openStore(t, sqliteDSN(t)), nil, audit.Options{CommitDelay: time.Hour})
		defer w.Close(t.Context())
		w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "alice"})
		writtenWithin(t, w, 1, 5*time.Second)
		time.Sleep(20 * time.Millisecond) // idle again
		w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "bob"})
		writtenWithin(t, w, 2, 5*time.Second)
	})
	busy := func(t *testing.T, queue int) (*audit.Writer, *counting) {
		st := openStore(t, sqliteDSN(t))
		c := &counting{AuditLog: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
		w := audit.NewWriter(c, nil, audit.Options{CommitDelay: time.Hour, QueueSize: queue, FullWait: time.Minute})
		w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "first"})
		<-c.entered
		for range 3 {
			w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "queued"})
		}
		close(c.gate)
		// The writer is busy now: it took one of the queued events and
		// gathers more for an hour.
		writtenWithin(t, w, 1, 5*time.Second)
		for w.Stats().Queued != 2 {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		return w, c
	}
	t.Run("close", func(t *testing.T) {
		w, _ := busy(t, 100)
		start := time.Now()
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Close took %v", d)
		}
		if s := w.Stats(); s.Written != 4 || s.Lost != 0 {
			t.Fatalf("stats %+v after Close, want 4 written", s)
		}
	})
	t.Run("full queue", func(t *testing.T) {
		w, _ := busy(t, 4)
		start := time.Now()
		for range 10 { // more than the queue holds: Record would wait a minute
			w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "more"})
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("Records on a full queue took %v", d)
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if s := w.Stats(); s.Written != 14 || s.Dropped != 0 {
			t.Fatalf("stats %+v, want 14 written", s)
		}
	})
}

func TestCloseFlushes(t *testing.T) {
	eachBackend(t, func(t *testing.T, st store.Store) {
		w := audit.NewWriter(st, nil, audit.Options{})
		for i := range 2000 {
			w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: fmt.Sprint("u", i)})
		}
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := len(listAll(t, st, store.AuditFilter{})); n != 2000 {
			t.Fatalf("%d events after Close, want 2000", n)
		}
		// After Close: dropped and counted, never stored; Close again is fine.
		w.Record(t.Context(), store.AuditEvent{Event: audit.Logout, User: "late"})
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := listAll(t, st, store.AuditFilter{User: "late"}); len(got) != 0 {
			t.Fatal("an event recorded after Close was stored")
		}
		if s := w.Stats(); s.Dropped != 1 {
			t.Fatalf("Dropped = %d, want 1", s.Dropped)
		}
	})
}

func TestSanitizedAndTimedWhenStored(t *testing.T) {
	eachBackend(t, func(t *testing.T, st store.Store) {
		w := audit.NewWriter(st, nil, audit.Options{})
		before := time.Now()
		ua := "Mozilla/5.0\r\nX-Injected: 1\x00\x1b[31m\u202eevil " + strings.Repeat("é", 600)
		w.Record(t.Context(), store.AuditEvent{Event: audit.LoginFailure, User: "bob\n", RemoteAddr: "192.0.2.7",
			UserAgent: ua, Detail: "bad password \xff\xfe"})
		// An event of another instant and zone keeps its instant, in UTC.
		at := time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("CEST", 2*3600))
		w.Record(t.Context(), store.AuditEvent{Time: at, Event: audit.ConsentDenied, User: "carol"})
		if err := w.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		after := time.Now()

		got := listAll(t, st, store.AuditFilter{Event: audit.LoginFailure})
		if len(got) != 1 {
			t.Fatalf("%d login failures stored, want 1", len(got))
		}
		e := got[0]
		if e.Time.Before(before.Add(-time.Millisecond)) || e.Time.After(after) || e.Time.Location() != time.UTC {
			t.Errorf("Time %v not filled with the time of Record in UTC (%v..%v)", e.Time, before, after)
		}
		if e.Outcome != audit.OutcomeFailure {
			t.Errorf("Outcome %q, want failure", e.Outcome)
		}
		if e.User != "bob " {
			t.Errorf("User %q", e.User)
		}
		if len(e.UserAgent) > audit.MaxTextLen || !utf8.ValidString(e.UserAgent) || !strings.HasSuffix(e.UserAgent, "…") {
			t.Errorf("UserAgent not truncated to %d valid bytes: %d bytes %q…", audit.MaxTextLen, len(e.UserAgent), e.UserAgent[:40])
		}
		if !strings.HasPrefix(e.UserAgent, "Mozilla/5.0  X-Injected: 1[31mevil é") {
			t.Errorf("UserAgent %q", e.UserAgent[:40])
		}
		if e.Detail != "bad password \uFFFD\uFFFD" {
			t.Errorf("Detail %q", e.Detail)
		}
		got = listAll(t, st, store.AuditFilter{Event: audit.ConsentDenied})
		if len(got) != 1 || !got[0].Time.Equal(at) || got[0].Time.Location() != time.UTC || got[0].Outcome != audit.OutcomeFailure {
			t.Fatalf("explicit time: %+v", got)
		}
	})
}

func TestDisabledWritesNothing(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st}
	w := audit.NewWriter(c, nil, audit.Options{Disabled: true})
	if w.Enabled() {
		t.Fatal("disabled writer says enabled")
	}
	w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "alice"})
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if c.calls.Load() != 0 || len(listAll(t, st, store.AuditFilter{})) != 0 {
		t.Fatal("a disabled writer wrote")
	}
	// A nil writer is a disabled one, so optional wiring needs no checks.
	var nw *audit.Writer
	nw.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess})
	if err := nw.Close(t.Context()); err != nil || nw.Enabled() || nw.Stats() != (audit.Stats{}) {
		t.Fatal("nil writer misbehaves")
	}
}

func TestWriteRetriesThenGivesUp(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st}
	c.failures.Store(2)
	w := audit.NewWriter(c, nil, audit.Options{RetryBackoff: time.Millisecond})
	w.Record(t.Context(), store.AuditEvent{Event: audit.TokenRevoked, User: "alice"})
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := len(listAll(t, st, store.AuditFilter{})); n != 1 {
		t.Fatalf("%d events after two transient failures, want 1", n)
	}
	if s := w.Stats(); s.WriteErrors != 2 || s.Written != 1 || s.Lost != 0 {
		t.Fatalf("stats %+v", s)
	}

	c2 := &counting{AuditLog: st}
	c2.failures.Store(1 << 30)
	w2 := audit.NewWriter(c2, nil, audit.Options{Retries: 2, RetryBackoff: time.Millisecond})
	w2.Record(t.Context(), store.AuditEvent{Event: audit.TokenRevoked, User: "bob"})
	_ = w2.Close(t.Context())
	if s := w2.Stats(); s.WriteErrors != 3 || s.Lost != 1 || s.Written != 0 {
		t.Fatalf("stats after persistent failure %+v, want 3 attempts and 1 lost", s)
	}
}

func TestFullQueueWaitsThenDrops(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := audit.NewWriter(c, nil, audit.Options{QueueSize: 2, FullWait: 300 * time.Millisecond})
	rec := func(u string) { w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: u}) }
	rec("first")
	<-c.entered // the writer holds "first" in a write that waits on the gate
	rec("q1")
	rec("q2")
	start := time.Now()
	rec("overflow")
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("Record on a full queue returned after %v, want it to wait FullWait", d)
	}
	if s := w.Stats(); s.Dropped != 1 || s.Queued != 2 {
		t.Fatalf("stats %+v", s)
	}
	// A Record that waits is served as soon as the writer makes room.
	go func() {
		time.Sleep(5 * time.Millisecond)
		close(c.gate)
	}()
	rec("waited")
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, e := range listAll(t, st, store.AuditFilter{}) {
		users = append(users, e.User)
	}
	if len(users) != 4 || strings.Contains(strings.Join(users, ","), "overflow") {
		t.Fatalf("stored %v, want first, q1, q2, waited", users)
	}
}

func TestCloseTimesOut(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	c := &counting{AuditLog: st, gate: make(chan struct{}), entered: make(chan struct{}, 1)}
	w := audit.NewWriter(c, nil, audit.Options{})
	w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess, User: "stuck"})
	<-c.entered
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	err := w.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "1 events not written") {
		t.Fatalf("Close = %v, want a deadline error counting the lost event", err)
	}
	if s := w.Stats(); s.Lost != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMetrics(t *testing.T) {
	st := openStore(t, sqliteDSN(t))
	reg := prometheus.NewRegistry()
	w := audit.NewWriter(st, nil, audit.Options{Registerer: reg})
	for range 3 {
		w.Record(t.Context(), store.AuditEvent{Event: audit.LoginSuccess})
	}
	if err := w.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			got[mf.GetName()] = c.GetValue()
		} else {
			got[mf.GetName()] = m.GetGauge().GetValue()
		}
	}
	want := map[string]float64{
		"flowgate_audit_events_written_total": 3, "flowgate_audit_events_dropped_total": 0,
		"flowgate_audit_events_lost_total": 0, "flowgate_audit_write_errors_total": 0,
		"flowgate_audit_queue_length": 0, "flowgate_audit_queue_capacity": 8192, "flowgate_audit_healthy": 1,
	}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
	if got["flowgate_audit_batches_total"] < 1 {
		t.Errorf("batches_total = %v", got["flowgate_audit_batches_total"])
	}
}

func TestSanitize(t *testing.T) {
	e := audit.Sanitize(store.AuditEvent{Event: audit.Logout, User: "alice", UserAgent: "curl/8.0"})
	if e.Time.IsZero() || e.Time.Location() != time.UTC || e.User != "alice" || e.UserAgent != "curl/8.0" || e.Outcome != audit.OutcomeSuccess {
		t.Fatalf("%+v", e)
	}
	cases := []struct{ in, want string }{
		{"plain", "plain"},
		{"tab\there", "tab here"},
		{"nul\x00bell\x07del\x7f", "nulbelldel"},
		{"c1\u0085\u009bx", "c1 x"},
		{"bidi\u202e\u2066txt", "biditxt"},
		{"bad\xc3", "bad\uFFFD"},
		{"ünïcödé", "ünïcödé"},
	}
	for _, tc := range cases {
		if got := audit.Sanitize(store.AuditEvent{Detail: tc.in}).Detail; got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	exact := strings.Repeat("a", audit.MaxTextLen)
	if got := audit.Sanitize(store.AuditEvent{Detail: exact}).Detail; got != exact {
		t.Error("a value of exactly the limit was changed")
	}
	for _, long := range []string{strings.Repeat("a", 5000), strings.Repeat("€", 5000), strings.Repeat("a", audit.MaxTextLen) + "\x00"} {
		got := audit.Sanitize(store.AuditEvent{UserAgent: long, User: long}).UserAgent
		if len(got) > audit.MaxTextLen || !utf8.ValidString(got) {
			t.Errorf("truncated to %d bytes, valid %v", len(got), utf8.ValidString(got))
		}
		if long[len(long)-1] == 0 {
			if got != long[:len(long)-1] {
				t.Error("a value that fits once cleaned was truncated")
			}
		} else if !strings.HasSuffix(got, "…") {
			t.Error("truncation not marked")
		}
	}
	if u := audit.Sanitize(store.AuditEvent{User: strings.Repeat("u", 1000)}).User; len(u) > audit.MaxNameLen {
		t.Errorf("user %d bytes, want at most %d", len(u), audit.MaxNameLen)
	}
}

func TestFromRequest(t *testing.T) {
	cases := []struct{ remote, want string }{
		{"192.0.2.1:4711", "192.0.2.1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"192.0.2.9", "192.0.2.9"}, // no port: kept as is
		{"@", "@"},                 // a unix socket peer
	}
	for _, tc := range cases {
		r := httptest.NewRequest("GET", "/login", nil)
		r.RemoteAddr = tc.remote
		r.Header.Set("User-Agent", "Browser\r\n1.0")
		r.Header.Set("X-Forwarded-For", "203.0.113.66")
		r.Header.Set("Forwarded", "for=203.0.113.66")
		addr, ua := audit.FromRequest(r)
		if addr != tc.want {
			t.Errorf("FromRequest(%q) address = %q, want %q (forwarding headers are not trusted)", tc.remote, addr, tc.want)
		}
		if ua != "Browser  1.0" {
			t.Errorf("user agent %q", ua)
		}
	}
}
