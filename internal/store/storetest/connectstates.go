package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runConnectStatesConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ConnectStateRoundTrip", testConnectStateRoundTrip},
		{"ConnectStateTakenOnce", testConnectStateTakenOnce},
		{"ConnectStateWrongSession", testConnectStateWrongSession},
		{"ConnectStateExpired", testConnectStateExpired},
		{"ConnectStateConflict", testConnectStateConflict},
		{"ConnectStateDeleteExpired", testConnectStateDeleteExpired},
		{"ConnectStateVerifierSealed", testConnectStateVerifierSealed},
		{"ConnectStateConcurrentTakes", testConnectStateConcurrentTakes},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

// connectNow is the "now" the connect-state tests take at; their states
// expire ten minutes later.
var connectNow = ts(1_700_000_000)

func fullConnectState(hash string) store.ConnectState {
	return store.ConnectState{
		StateHash:   hash,
		InstanceID:  "inst-" + hash,
		StepID:      "login",
		Seq:         7,
		TaskSerial:  1_234_567_890_123,
		Principal:   "user:alice",
		SessionHash: "session-" + hash,
		Server:      "graph",
		Verifier:    "verifier-" + hash + "-dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
		Scopes:      []string{"User.Read", "offline_access"},
		ExpiresAt:   connectNow.Add(10 * time.Minute),
		CreatedAt:   connectNow.Add(-time.Second),
	}
}

func createConnectState(t *testing.T, s store.Store, c store.ConnectState) {
	t.Helper()
	if err := s.CreateConnectState(ctx(t), c); err != nil {
		t.Fatal(err)
	}
}

func takeConnectState(t *testing.T, s store.Store, c store.ConnectState) store.ConnectState {
	t.Helper()
	got, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, connectNow)
	if err != nil {
		t.Fatalf("TakeConnectState(%s): %v", c.StateHash, err)
	}
	return got
}

func sameConnectState(t *testing.T, got, want store.ConnectState) {
	t.Helper()
	if got.StateHash != want.StateHash || got.InstanceID != want.InstanceID || got.StepID != want.StepID ||
		got.Seq != want.Seq || got.TaskSerial != want.TaskSerial || got.Principal != want.Principal ||
		got.SessionHash != want.SessionHash || got.Server != want.Server || got.Verifier != want.Verifier ||
		!slices.Equal(got.Scopes, want.Scopes) {
		t.Errorf("connect state:\n got %+v\nwant %+v", got, want)
	}
	wantTime(t, "ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func testConnectStateRoundTrip(t *testing.T, s store.Store) {
	full := fullConnectState("3f9a")
	createConnectState(t, s, full)
	got := takeConnectState(t, s, full)
	sameConnectState(t, got, full)
	wantTime(t, "CreatedAt", got.CreatedAt, full.CreatedAt)

	// Zero values survive: no instance to resume, no task, no verifier,
	// the server's scopes; a zero CreatedAt is now.
	before := time.Now().Add(-time.Second)
	bare := store.ConnectState{StateHash: "77b0", StepID: "login", Principal: "entra:0f1e", SessionHash: "s",
		Server: "graph", ExpiresAt: connectNow.Add(time.Minute)}
	createConnectState(t, s, bare)
	got = takeConnectState(t, s, bare)
	sameConnectState(t, got, bare)
	if got.Scopes != nil {
		t.Errorf("Scopes = %#v, want nil", got.Scopes)
	}
	if got.CreatedAt.Location() != time.UTC || got.CreatedAt.Before(before) || got.CreatedAt.After(time.Now().Add(time.Second)) {
		t.Errorf("CreatedAt = %v, want now in UTC", got.CreatedAt)
	}

	if _, err := s.TakeConnectState(ctx(t), "unknown", "s", connectNow); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("TakeConnectState(unknown) = %v, want ErrNotFound", err)
	}
}

func testConnectStateTakenOnce(t *testing.T, s store.Store) {
	c := fullConnectState("a1")
	other := fullConnectState("b2")
	createConnectState(t, s, c)
	createConnectState(t, s, other)
	takeConnectState(t, s, c)
	if _, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, connectNow); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second TakeConnectState = %v, want ErrNotFound", err)
	}
	// Taking one state leaves the others alone.
	sameConnectState(t, takeConnectState(t, s, other), other)
}

func testConnectStateWrongSession(t *testing.T, s store.Store) {
	c := fullConnectState("c3")
	createConnectState(t, s, c)
	for _, session := range []string{"session-of-mallory", ""} {
		if _, err := s.TakeConnectState(ctx(t), c.StateHash, session, connectNow); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TakeConnectState from session %q = %v, want ErrNotFound", session, err)
		}
	}
	// The foreign callbacks did not burn the owner's pending login.
	sameConnectState(t, takeConnectState(t, s, c), c)
}

func testConnectStateExpired(t *testing.T, s store.Store) {
	c := fullConnectState("d4")
	createConnectState(t, s, c)
	for _, at := range []time.Time{c.ExpiresAt, c.ExpiresAt.Add(time.Microsecond), c.ExpiresAt.Add(time.Hour)} {
		if _, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, at); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("TakeConnectState at %v, expiry %v = %v, want ErrNotFound", at, c.ExpiresAt, err)
		}
	}
	// A microsecond before its expiry it is still there.
	got, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, c.ExpiresAt.Add(-time.Microsecond))
	if err != nil {
		t.Fatalf("TakeConnectState just before expiry: %v", err)
	}
	sameConnectState(t, got, c)
}

func testConnectStateConflict(t *testing.T, s store.Store) {
	c := fullConnectState("e5")
	createConnectState(t, s, c)
	dup := fullConnectState("e5")
	dup.Principal, dup.Verifier, dup.SessionHash = "user:mallory", "mallory's verifier", "session-of-mallory"
	if err := s.CreateConnectState(ctx(t), dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate CreateConnectState = %v, want ErrConflict", err)
	}
	sameConnectState(t, takeConnectState(t, s, c), c)
}

func testConnectStateDeleteExpired(t *testing.T, s store.Store) {
	if n, err := s.DeleteExpiredConnectStates(ctx(t), connectNow); err != nil || n != 0 {
		t.Fatalf("DeleteExpiredConnectStates on an empty store = %d, %v", n, err)
	}
	var states []store.ConnectState
	for i, expires := range []time.Duration{-time.Hour, -time.Minute, -time.Microsecond, 0, time.Microsecond, time.Minute} {
		c := fullConnectState(fmt.Sprintf("f%d", i))
		c.ExpiresAt = connectNow.Add(expires)
		createConnectState(t, s, c)
		states = append(states, c)
	}
	// Everything TakeConnectState would no longer find at connectNow goes:
	// expiry at or before it.
	n, err := s.DeleteExpiredConnectStates(ctx(t), connectNow)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("DeleteExpiredConnectStates = %d, want 4", n)
	}
	if n, err := s.DeleteExpiredConnectStates(ctx(t), connectNow); err != nil || n != 0 {
		t.Errorf("second DeleteExpiredConnectStates = %d, %v, want 0", n, err)
	}
	// The expired ones are gone even for a "now" at which they were valid.
	for _, c := range states[:4] {
		if _, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, c.ExpiresAt.Add(-time.Second)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("pruned state %s: %v, want ErrNotFound", c.StateHash, err)
		}
	}
	for _, c := range states[4:] {
		sameConnectState(t, takeConnectState(t, s, c), c)
	}
}

// testConnectStateVerifierSealed reads the raw verifier column: no
// verifier is stored in plaintext, and one copied to another state's row
// does not open.
func testConnectStateVerifierSealed(t *testing.T, s store.Store) {
	db, ok := s.(rawDB)
	if !ok {
		t.Skipf("%T gives no access to its database", s)
	}
	const marker = "VERIFIER-MARKER-9d41c7"
	c := fullConnectState("a7")
	c.Verifier = marker
	createConnectState(t, s, c)
	createConnectState(t, s, fullConnectState("b8"))
	var v []byte
	if err := db.ReadDB().QueryRowContext(ctx(t), "SELECT verifier FROM connect_states WHERE state_hash = 'a7'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if len(v) <= len(marker) || bytes.Contains(v, []byte(marker)) {
		t.Errorf("verifier stored as %q: want ciphertext", v)
	}
	// Nowhere else in the row either.
	var row string
	if err := db.ReadDB().QueryRowContext(ctx(t), `SELECT state_hash || instance_id || step_id || principal ||
		session_hash || server || scopes FROM connect_states WHERE state_hash = 'a7'`).Scan(&row); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains([]byte(row), []byte("MARKER")) {
		t.Errorf("the verifier leaked into the row: %q", row)
	}
	// a7's verifier copied to b8's row does not open there.
	if _, err := db.WriteDB().ExecContext(ctx(t),
		"UPDATE connect_states SET verifier = (SELECT verifier FROM connect_states WHERE state_hash = 'a7') WHERE state_hash = 'b8'"); err != nil {
		t.Fatal(err)
	}
	b8 := fullConnectState("b8")
	if got, err := s.TakeConnectState(ctx(t), b8.StateHash, b8.SessionHash, connectNow); err == nil {
		t.Errorf("a verifier copied to another state opened: %q", got.Verifier)
	}
	sameConnectState(t, takeConnectState(t, s, c), c)
}

// testConnectStateConcurrentTakes presents one state from many goroutines
// at once: exactly one gets it.
func testConnectStateConcurrentTakes(t *testing.T, s store.Store) {
	c := fullConnectState("c9")
	createConnectState(t, s, c)
	const n = 16
	var won, lost atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			<-start
			got, err := s.TakeConnectState(ctx(t), c.StateHash, c.SessionHash, connectNow)
			switch {
			case err == nil:
				won.Add(1)
				sameConnectState(t, got, c)
			case errors.Is(err, store.ErrNotFound):
				lost.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	if won.Load() != 1 || lost.Load() != n-1 {
		t.Errorf("%d concurrent takes: %d got the state, %d ErrNotFound; want 1 and %d", n, won.Load(), lost.Load(), n-1)
	}
}
