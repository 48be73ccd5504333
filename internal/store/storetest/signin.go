package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runSignInConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SignInFailuresCount", testSignInFailuresCount},
		{"SignInFailuresExpire", testSignInFailuresExpire},
		{"SignInFailuresAddressAccounts", testSignInFailuresAddressAccounts},
		{"SignInFailuresClear", testSignInFailuresClear},
		{"SignInFailuresDeleteExpired", testSignInFailuresDeleteExpired},
		{"SignInFailuresConcurrent", testSignInFailuresConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// signInNow is the "now" of the sign-in tests; pairs they record are kept
// for a day.
var signInNow = ts(1_700_000_000)

func recordSignInFailure(t *testing.T, s store.Store, account, addr string, at time.Time) int {
	t.Helper()
	n, err := s.RecordSignInFailure(ctx(t), account, addr, at, at.Add(24*time.Hour))
	if err != nil {
		t.Fatalf("RecordSignInFailure(%s, %s): %v", account, addr, err)
	}
	return n
}

func getSignInFailures(t *testing.T, s store.Store, account, addr string, at, windowStart time.Time) (store.SignInPair, int) {
	t.Helper()
	p, n, err := s.GetSignInFailures(ctx(t), account, addr, at, windowStart)
	if err != nil {
		t.Fatalf("GetSignInFailures(%s, %s): %v", account, addr, err)
	}
	return p, n
}

func testSignInFailuresCount(t *testing.T, s store.Store) {
	if p, n := getSignInFailures(t, s, "alice", "192.0.2.1", signInNow, signInNow.Add(-time.Hour)); p.Failures != 0 || !p.LastFailedAt.IsZero() || n != 0 {
		t.Fatalf("fresh store: pair %+v, %d accounts, want nothing", p, n)
	}
	var last time.Time
	for i := range 3 {
		last = signInNow.Add(time.Duration(i) * time.Second)
		if n := recordSignInFailure(t, s, "alice", "192.0.2.1", last); n != i+1 {
			t.Fatalf("failure %d: count %d, want %d", i+1, n, i+1)
		}
	}
	p, n := getSignInFailures(t, s, "alice", "192.0.2.1", last, last.Add(-time.Hour))
	if p.Failures != 3 || n != 1 {
		t.Errorf("after 3 failures: pair %+v, %d accounts, want 3 failures, 1 account", p, n)
	}
	wantTime(t, "LastFailedAt", p.LastFailedAt, last)
	// Other pairs are untouched: the same account elsewhere, another
	// account at the same address, and an account whose name differs
	// only in case.
	for _, o := range [][2]string{{"alice", "192.0.2.2"}, {"bob", "192.0.2.1"}, {"Alice", "192.0.2.1"}} {
		if p, _ := getSignInFailures(t, s, o[0], o[1], last, last.Add(-time.Hour)); p.Failures != 0 {
			t.Errorf("pair %v: %d failures, want 0", o, p.Failures)
		}
	}
}

func testSignInFailuresExpire(t *testing.T, s store.Store) {
	at := signInNow
	recordSignInFailure(t, s, "alice", "192.0.2.1", at)
	recordSignInFailure(t, s, "alice", "192.0.2.1", at)
	expiry := at.Add(24 * time.Hour)
	if p, _ := getSignInFailures(t, s, "alice", "192.0.2.1", expiry.Add(-time.Microsecond), at); p.Failures != 2 {
		t.Errorf("just before expiry: %d failures, want 2", p.Failures)
	}
	if p, n := getSignInFailures(t, s, "alice", "192.0.2.1", expiry, at); p.Failures != 0 || n != 0 {
		t.Errorf("at expiry: pair %+v, %d accounts, want nothing", p, n)
	}
	// An expired pair that fails again starts from one, not three.
	if n := recordSignInFailure(t, s, "alice", "192.0.2.1", expiry); n != 1 {
		t.Errorf("failure after expiry: count %d, want 1", n)
	}
}

func testSignInFailuresAddressAccounts(t *testing.T, s store.Store) {
	for i, acct := range []string{"a", "b", "c", "d"} {
		recordSignInFailure(t, s, acct, "198.51.100.7", signInNow.Add(time.Duration(i)*time.Minute))
	}
	recordSignInFailure(t, s, "a", "198.51.100.7", signInNow.Add(5*time.Minute)) // a again: still one account
	recordSignInFailure(t, s, "e", "198.51.100.8", signInNow)                    // another address
	at := signInNow.Add(5 * time.Minute)
	for _, c := range []struct {
		since time.Time
		want  int
	}{
		{signInNow, 4},
		{signInNow.Add(time.Minute), 4}, // a's last failure is at +5 min
		{signInNow.Add(2 * time.Minute), 3},
		{signInNow.Add(4 * time.Minute), 1},
		{signInNow.Add(6 * time.Minute), 0},
	} {
		if _, n := getSignInFailures(t, s, "zed", "198.51.100.7", at, c.since); n != c.want {
			t.Errorf("accounts failed since %v: %d, want %d", c.since.Sub(signInNow), n, c.want)
		}
	}
}

func testSignInFailuresClear(t *testing.T, s store.Store) {
	recordSignInFailure(t, s, "alice", "192.0.2.1", signInNow)
	recordSignInFailure(t, s, "alice", "192.0.2.2", signInNow)
	if err := s.ClearSignInFailures(ctx(t), "alice", "192.0.2.1"); err != nil {
		t.Fatalf("ClearSignInFailures: %v", err)
	}
	if p, _ := getSignInFailures(t, s, "alice", "192.0.2.1", signInNow, signInNow); p.Failures != 0 {
		t.Errorf("cleared pair: %d failures, want 0", p.Failures)
	}
	if p, _ := getSignInFailures(t, s, "alice", "192.0.2.2", signInNow, signInNow); p.Failures != 1 {
		t.Errorf("the same account at another address: %d failures, want 1 (not cleared)", p.Failures)
	}
	if err := s.ClearSignInFailures(ctx(t), "nobody", "192.0.2.1"); err != nil {
		t.Errorf("clearing a pair that never failed: %v", err)
	}
}

func testSignInFailuresDeleteExpired(t *testing.T, s store.Store) {
	for i := range 3 {
		at := signInNow.Add(time.Duration(i) * time.Hour)
		if _, err := s.RecordSignInFailure(ctx(t), "u", "192.0.2."+string(rune('1'+i)), at, at.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// Expiries are +1 h, +2 h, +3 h: at +2 h two have passed.
	n, err := s.DeleteExpiredSignInFailures(ctx(t), signInNow.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSignInFailures = %d, %v; want 2", n, err)
	}
	if p, _ := getSignInFailures(t, s, "u", "192.0.2.3", signInNow.Add(2*time.Hour), signInNow); p.Failures != 1 {
		t.Errorf("the live pair: %d failures, want 1", p.Failures)
	}
	if n, err := s.DeleteExpiredSignInFailures(ctx(t), signInNow.Add(2*time.Hour)); err != nil || n != 0 {
		t.Errorf("second prune = %d, %v; want 0", n, err)
	}
}

// Failures of one pair arriving together are all counted: the count is
// incremented by the database, not read and written back.
func testSignInFailuresConcurrent(t *testing.T, s store.Store) {
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := s.RecordSignInFailure(ctx(t), "alice", "192.0.2.1", signInNow, signInNow.Add(time.Hour)); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent RecordSignInFailure: %v", err)
	}
	if p, _ := getSignInFailures(t, s, "alice", "192.0.2.1", signInNow, signInNow); p.Failures != n {
		t.Errorf("%d concurrent failures counted as %d", n, p.Failures)
	}
}
