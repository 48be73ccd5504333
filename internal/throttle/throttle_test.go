package throttle

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

// The numbers in these tests are the documented policy written out, not
// the package's constants: changing a constant must break a test.

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock                   { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }
func openStore(t *testing.T, path string) store.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path, store.Options{Sealer: storetest.NewSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newThrottle(t *testing.T) (*Throttle, *clock) {
	c := newClock()
	return New(openStore(t, filepath.Join(t.TempDir(), "fg.db")), Options{Now: c.now}), c
}

// try begins an attempt and reports its wait; when it may go ahead and
// fail is set, it records a failure.
func try(t *testing.T, th *Throttle, account, addr string, fail bool) time.Duration {
	t.Helper()
	a, err := th.Begin(t.Context(), account, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.End()
	if a.Wait == 0 && fail {
		if err := a.Fail(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	return a.Wait
}

func TestPairDelayInNumbers(t *testing.T) {
	th, c := newThrottle(t)
	for i := range 5 {
		if d := try(t, th, "alice", "192.0.2.1", true); d != 0 {
			t.Fatalf("failure %d of the free 5 refused: wait %v", i+1, d)
		}
	}
	// After 5 failures, the 6th attempt within 1 s is refused.
	c.advance(999 * time.Millisecond)
	if d := try(t, th, "alice", "192.0.2.1", false); d != time.Millisecond {
		t.Fatalf("6th attempt 999 ms after the 5th failure: wait %v, want 1ms", d)
	}
	// Then the wait doubles with each failure: 1 s, 2 s, 4 s, … .
	want := time.Second
	c.advance(time.Millisecond)
	for n := 6; n <= 14; n++ {
		if d := try(t, th, "alice", "192.0.2.1", true); d != 0 {
			t.Fatalf("attempt %d once its wait was over: wait %v", n, d)
		}
		want *= 2
		if d := try(t, th, "alice", "192.0.2.1", false); d != want {
			t.Fatalf("right after failure %d: wait %v, want %v", n, d, want)
		}
		c.advance(want)
	}
	// 14 failures: 512 s; the 15th would make 1024 s, capped at 15 min.
	if want != 512*time.Second {
		t.Fatalf("test arithmetic: %v", want)
	}
	for n := 15; n <= 17; n++ {
		if d := try(t, th, "alice", "192.0.2.1", true); d != 0 {
			t.Fatalf("attempt %d: wait %v", n, d)
		}
		if d := try(t, th, "alice", "192.0.2.1", false); d != 15*time.Minute {
			t.Fatalf("after failure %d: wait %v, want 15m0s (the cap)", n, d)
		}
		c.advance(15 * time.Minute)
	}
	// A pair is forgotten 24 h after its last failure: 5 free failures
	// again.
	c.advance(24*time.Hour - 15*time.Minute)
	for i := range 5 {
		if d := try(t, th, "alice", "192.0.2.1", true); d != 0 {
			t.Fatalf("a day later, failure %d refused: wait %v", i+1, d)
		}
	}
	if d := try(t, th, "alice", "192.0.2.1", false); d != time.Second {
		t.Fatalf("a day later, after 5 failures: wait %v, want 1s", d)
	}
}

func TestOtherAddressesAreNeverLockedOut(t *testing.T) {
	th, c := newThrottle(t)
	for range 20 {
		c.advance(16 * time.Minute)
		try(t, th, "alice", "203.0.113.66", true)
	}
	if d := try(t, th, "alice", "203.0.113.66", false); d == 0 {
		t.Fatal("the failing address is not slowed down")
	}
	if d := try(t, th, "alice", "192.0.2.1", false); d != 0 {
		t.Fatalf("alice from an address that has not failed: wait %v, want none", d)
	}
	// Nor is the failing address locked out of other accounts.
	if d := try(t, th, "bob", "203.0.113.66", false); d != 0 {
		t.Fatalf("bob from alice's attacker's address: wait %v, want none", d)
	}
}

func TestSprayingAddress(t *testing.T) {
	th, c := newThrottle(t)
	const spray = "198.51.100.9"
	accounts := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"}
	for _, acct := range accounts[:9] {
		try(t, th, acct, spray, true)
		c.advance(time.Minute)
	}
	// 9 accounts within 15 minutes: a second guess on each is allowed.
	if d := try(t, th, "a", spray, false); d != 0 {
		t.Fatalf("9 accounts failed: a second guess on one waits %v, want none", d)
	}
	try(t, th, "j", spray, true) // 10 accounts within 10 minutes
	for _, acct := range accounts {
		if d := try(t, th, acct, spray, false); d != 15*time.Minute {
			t.Fatalf("10 accounts failed within 15 min: %s again waits %v, want 15m0s", acct, d)
		}
	}
	// An account it has not failed on is still checked: its user, behind
	// the same address, signs in with the right password.
	if d := try(t, th, "zoe", spray, false); d != 0 {
		t.Fatalf("an account the address never failed on: wait %v, want none", d)
	}
	// Once the failures age out of the 15-minute window the address is no
	// longer spraying: "a" had one failure, far below 5. The first failure
	// was at +0, the 10th at +9 min; at +15 min + 1 µs "a" is out of the
	// window, so 9 accounts remain.
	c.advance(15*time.Minute - 9*time.Minute + time.Microsecond)
	if d := try(t, th, "a", spray, false); d != 0 {
		t.Fatalf("9 accounts left in the window: wait %v, want none", d)
	}
}

// The state is in the store: another Throttle (another server, or this one
// restarted) on the same database refuses the 6th attempt too.
func TestStateSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fg.db")
	c := newClock()
	first := New(openStore(t, path), Options{Now: c.now})
	for range 5 {
		try(t, first, "alice", "192.0.2.1", true)
	}
	second := New(openStore(t, path), Options{Now: c.now})
	if d := try(t, second, "alice", "192.0.2.1", false); d != time.Second {
		t.Fatalf("6th attempt on another throttle: wait %v, want 1s", d)
	}
}

// countingStore counts the throttle's writes on a real store.
type countingStore struct {
	store.SignInFailures
	writes atomic.Int32
}

func (s *countingStore) RecordSignInFailure(ctx context.Context, account, addr string, at, expiresAt time.Time) (int, error) {
	s.writes.Add(1)
	return s.SignInFailures.RecordSignInFailure(ctx, account, addr, at, expiresAt)
}

func (s *countingStore) ClearSignInFailures(ctx context.Context, account, addr string) error {
	s.writes.Add(1)
	return s.SignInFailures.ClearSignInFailures(ctx, account, addr)
}

func TestSuccessWritesOnlyToClearFailures(t *testing.T) {
	c := newClock()
	st := &countingStore{SignInFailures: openStore(t, filepath.Join(t.TempDir(), "fg.db"))}
	th := New(st, Options{Now: c.now})
	succeed := func() {
		t.Helper()
		a, err := th.Begin(t.Context(), "alice", "192.0.2.1")
		if err != nil || a.Wait != 0 {
			t.Fatalf("Begin: %v, wait %v", err, a.Wait)
		}
		if err := a.Succeed(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	succeed()
	if n := st.writes.Load(); n != 0 {
		t.Fatalf("a success without failures wrote %d times", n)
	}
	for range 4 {
		try(t, th, "alice", "192.0.2.1", true)
	}
	succeed()
	if n := st.writes.Load(); n != 5 {
		t.Fatalf("4 failures and a success wrote %d times, want 5", n)
	}
	// The success cleared the pair: 5 free failures again.
	for i := range 5 {
		if d := try(t, th, "alice", "192.0.2.1", true); d != 0 {
			t.Fatalf("failure %d after the success: wait %v", i+1, d)
		}
	}
}

// A burst of concurrent guesses on one pair gets the 5 free failures and
// no more: attempts of a pair run one at a time.
func TestConcurrentBurst(t *testing.T) {
	th, _ := newThrottle(t)
	var (
		wg      sync.WaitGroup
		allowed atomic.Int32
	)
	for range 30 {
		wg.Go(func() {
			a, err := th.Begin(context.Background(), "alice", "192.0.2.1")
			if err != nil {
				t.Error(err)
				return
			}
			defer a.End()
			if a.Wait == 0 {
				allowed.Add(1)
				if err := a.Fail(context.Background()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != 5 {
		t.Fatalf("%d of 30 concurrent guesses were checked, want 5", n)
	}
	if n := len(th.inFlight); n != 0 {
		t.Fatalf("%d pairs left in flight", n)
	}
}

// A name longer than any username is counted under its first 128 bytes,
// cut on a character boundary (PostgreSQL refuses invalid UTF-8).
func TestLongAccountNames(t *testing.T) {
	th, _ := newThrottle(t)
	long := strings.Repeat("é", 100) // 200 bytes; byte 128 is inside a character
	for range 5 {
		try(t, th, long+"-a", "192.0.2.1", true)
	}
	if d := try(t, th, long+"-b", "192.0.2.1", false); d != time.Second {
		t.Fatalf("same first 128 bytes: wait %v, want 1s", d)
	}
}

// Attempts of a pair without failures run side by side, up to 5 (a busy
// HTTP Basic integration is not made to verify one call at a time); the
// 6th waits for one of them.
func TestCleanPairAttemptsRunInParallel(t *testing.T) {
	th, _ := newThrottle(t)
	var held []*Attempt
	for i := range 5 {
		a, err := th.Begin(t.Context(), "svc-user", "192.0.2.1")
		if err != nil || a.Wait != 0 {
			t.Fatalf("attempt %d: %v, wait %v", i+1, err, a.Wait)
		}
		held = append(held, a)
	}
	sixth := make(chan *Attempt)
	go func() {
		a, err := th.Begin(context.Background(), "svc-user", "192.0.2.1")
		if err != nil {
			t.Error(err)
		}
		sixth <- a
	}()
	select {
	case <-sixth:
		t.Fatal("a 6th attempt began while 5 were in flight")
	case <-time.After(100 * time.Millisecond):
	}
	if err := held[0].Succeed(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case a := <-sixth:
		a.End()
	case <-time.After(5 * time.Second):
		t.Fatal("the 6th attempt still waits after one ended")
	}
	for _, a := range held[1:] {
		a.End()
	}
	// A waiting attempt gives up with its context.
	for range 5 {
		a, err := th.Begin(t.Context(), "svc-user", "192.0.2.1")
		if err != nil {
			t.Fatal(err)
		}
		defer a.End()
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := th.Begin(ctx, "svc-user", "192.0.2.1"); err == nil {
		t.Fatal("Begin returned while every slot was taken")
	}
}
