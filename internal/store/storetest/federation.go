package storetest

import (
	"bytes"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runFederationConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"FederationStateTakenOnce", testFedStateTakenOnce},
		{"FederationStateWrongBrowserOrExpired", testFedStateWrongBrowser},
		{"FederationStateSealed", testFedStateSealed},
		{"FederationStateConcurrentTakes", testFedStateConcurrent},
		{"FederationStateDeleteExpired", testFedStateDeleteExpired},
		{"FederationLinkLifecycle", testFedLinkLifecycle},
		{"FederatedUserAtomic", testFederatedUserAtomic},
		{"UsersByEmail", testUsersByEmail},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

var fedNow = ts(1_700_000_000).Truncate(time.Microsecond)

func fedState(hash string) store.FederationState {
	return store.FederationState{
		StateHash: hash, BrowserHash: "browser-" + hash, Provider: "corp",
		Nonce: "nonce-" + hash, Verifier: "verifier-" + hash, ReturnTo: "/tasks",
		ExpiresAt: fedNow.Add(10 * time.Minute), CreatedAt: fedNow,
	}
}

func testFedStateTakenOnce(t *testing.T, s store.Store) {
	st := fedState("a1")
	st.Request, st.ReturnTo = "req-1", ""
	if err := s.CreateFederationState(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateFederationState(ctx(t), st); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
	got, err := s.TakeFederationState(ctx(t), st.StateHash, st.BrowserHash, fedNow)
	if err != nil {
		t.Fatal(err)
	}
	if got.Provider != "corp" || got.Nonce != st.Nonce || got.Verifier != st.Verifier || got.Request != "req-1" ||
		got.ReturnTo != "" || !got.ExpiresAt.Equal(st.ExpiresAt) || !got.CreatedAt.Equal(fedNow) {
		t.Errorf("taken %+v, want %+v", got, st)
	}
	if _, err := s.TakeFederationState(ctx(t), st.StateHash, st.BrowserHash, fedNow); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second take: %v, want ErrNotFound", err)
	}
}

func testFedStateWrongBrowser(t *testing.T, s store.Store) {
	st := fedState("b1")
	if err := s.CreateFederationState(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakeFederationState(ctx(t), st.StateHash, "another-browser", fedNow); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take from another browser: %v, want ErrNotFound", err)
	}
	if _, err := s.TakeFederationState(ctx(t), st.StateHash, st.BrowserHash, st.ExpiresAt); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("take at expiry: %v, want ErrNotFound", err)
	}
	// Neither burnt it.
	if _, err := s.TakeFederationState(ctx(t), st.StateHash, st.BrowserHash, fedNow); err != nil {
		t.Fatalf("owner's take after refusals: %v", err)
	}
}

func testFedStateSealed(t *testing.T, s store.Store) {
	db, ok := s.(rawDB)
	if !ok {
		t.Skipf("%T gives no access to its database", s)
	}
	st := fedState("c1")
	st.Nonce, st.Verifier = "NONCE-MARKER-51c2", "VERIFIER-MARKER-77e0"
	if err := s.CreateFederationState(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	var nonce, verifier []byte
	if err := db.ReadDB().QueryRowContext(ctx(t), "SELECT nonce, verifier FROM federation_states WHERE state_hash = 'c1'").Scan(&nonce, &verifier); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(nonce, []byte("MARKER")) || bytes.Contains(verifier, []byte("MARKER")) || len(nonce) == 0 {
		t.Errorf("nonce %q / verifier %q stored in the clear", nonce, verifier)
	}
	// The sealed nonce put where the verifier goes does not open.
	if _, err := db.WriteDB().ExecContext(ctx(t), "UPDATE federation_states SET verifier = nonce WHERE state_hash = 'c1'"); err != nil {
		t.Fatal(err)
	}
	if got, err := s.TakeFederationState(ctx(t), "c1", st.BrowserHash, fedNow); err == nil {
		t.Errorf("a nonce swapped into the verifier column opened: %q", got.Verifier)
	}
}

func testFedStateConcurrent(t *testing.T, s store.Store) {
	st := fedState("d1")
	if err := s.CreateFederationState(ctx(t), st); err != nil {
		t.Fatal(err)
	}
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.TakeFederationState(ctx(t), st.StateHash, st.BrowserHash, fedNow); err == nil {
				wins.Add(1)
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Errorf("%d takers got the state, want 1", wins.Load())
	}
}

func testFedStateDeleteExpired(t *testing.T, s store.Store) {
	a, b := fedState("e1"), fedState("e2")
	b.ExpiresAt = fedNow.Add(time.Hour)
	for _, st := range []store.FederationState{a, b} {
		if err := s.CreateFederationState(ctx(t), st); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpiredFederationStates(ctx(t), fedNow.Add(10*time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredFederationStates = %d, %v; want 1", n, err)
	}
	if _, err := s.TakeFederationState(ctx(t), "e2", b.BrowserHash, fedNow); err != nil {
		t.Errorf("the live state was deleted: %v", err)
	}
}

func testFedLinkLifecycle(t *testing.T, s store.Store) {
	l := store.FederationLink{Provider: "corp", Subject: "sub-1", Username: "alice", Email: "a@example.com",
		Roles: []string{"approver"}, CreatedAt: fedNow, LastLoginAt: fedNow}
	if err := s.CreateFederationLink(ctx(t), l); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("link to a missing user: %v, want ErrNotFound", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx(t), store.User{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateFederationLink(ctx(t), l); err != nil {
		t.Fatal(err)
	}
	dup := l
	dup.Username = "bob"
	if err := s.CreateFederationLink(ctx(t), dup); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("subject linked twice: %v, want ErrConflict", err)
	}
	other := store.FederationLink{Provider: "google", Subject: "g-1", Username: "alice"}
	if err := s.CreateFederationLink(ctx(t), other); err != nil {
		t.Fatal(err)
	}
	l.Roles, l.Email, l.LastLoginAt = []string{"employee"}, "alice@example.com", fedNow.Add(time.Hour)
	if err := s.UpdateFederationLink(ctx(t), l); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetFederationLink(ctx(t), "corp", "sub-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Username != "alice" || got.Email != "alice@example.com" || !slices.Equal(got.Roles, []string{"employee"}) ||
		!got.CreatedAt.Equal(fedNow) || !got.LastLoginAt.Equal(fedNow.Add(time.Hour)) {
		t.Errorf("link = %+v", got)
	}
	links, err := s.ListFederationLinks(ctx(t), "alice")
	if err != nil || len(links) != 2 || links[0].Provider != "corp" || links[1].Provider != "google" {
		t.Fatalf("alice's links = %+v, %v", links, err)
	}
	if links, _ := s.ListFederationLinks(ctx(t), "bob"); len(links) != 0 {
		t.Errorf("bob's links = %+v, want none", links)
	}
	if err := s.DeleteFederationLink(ctx(t), "corp", "sub-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteFederationLink(ctx(t), "corp", "sub-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}
	if _, err := s.GetFederationLink(ctx(t), "corp", "sub-1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("get deleted: %v", err)
	}
	if err := s.UpdateFederationLink(ctx(t), l); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("update deleted: %v", err)
	}
}

func testFederatedUserAtomic(t *testing.T, s store.Store) {
	u := store.User{Username: "carol", Email: "carol@example.com", EmailVerified: true, Roles: []string{"employee"}}
	l := store.FederationLink{Provider: "corp", Subject: "sub-c", Username: "carol"}
	if err := s.CreateFederatedUser(ctx(t), u, l); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetUser(ctx(t), "carol"); err != nil || !slices.Equal(got.Roles, u.Roles) || !got.EmailVerified {
		t.Fatalf("created user = %+v, %v", got, err)
	}
	// The subject is taken: the second user must not be left behind.
	u2 := store.User{Username: "carol2"}
	l2 := store.FederationLink{Provider: "corp", Subject: "sub-c", Username: "carol2"}
	if err := s.CreateFederatedUser(ctx(t), u2, l2); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second user for a linked subject: %v, want ErrConflict", err)
	}
	if _, err := s.GetUser(ctx(t), "carol2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("carol2 exists after the refused create: %v", err)
	}
	// A taken username leaves no link behind.
	l3 := store.FederationLink{Provider: "corp", Subject: "sub-x", Username: "carol"}
	if err := s.CreateFederatedUser(ctx(t), store.User{Username: "carol"}, l3); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("taken username: %v, want ErrConflict", err)
	}
	if _, err := s.GetFederationLink(ctx(t), "corp", "sub-x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("link left behind: %v", err)
	}
}

func testUsersByEmail(t *testing.T, s store.Store) {
	for _, u := range []store.User{{Username: "b", Email: "Pat@Example.com"}, {Username: "a", Email: "pat@example.com"}, {Username: "c", Email: "other@example.com"}} {
		if err := s.CreateUser(ctx(t), u); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.UsersByEmail(ctx(t), "PAT@example.COM")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Username != "a" || got[1].Username != "b" {
		t.Errorf("UsersByEmail = %+v, want a and b", got)
	}
	if got, _ := s.UsersByEmail(ctx(t), ""); len(got) != 0 {
		t.Errorf("empty address matched %d users", len(got))
	}
}
