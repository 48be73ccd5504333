package storetest

import (
	"bytes"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runPasskeyConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"PasskeyLifecycle", testPasskeyLifecycle},
		{"PasskeyChallengeOnce", testPasskeyChallengeOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func testPasskeyLifecycle(t *testing.T, s store.Store) {
	for _, u := range []string{"alice", "bob"} {
		if err := s.CreateUser(ctx(t), store.User{Username: u}); err != nil {
			t.Fatal(err)
		}
	}
	a1 := store.Passkey{ID: []byte{1, 2, 3}, User: "alice", Name: "laptop", PublicKey: []byte("pk1"), SignCount: 4, Credential: []byte(`{"x":1}`), CreatedAt: ts(1_700_000_000)}
	a2 := store.Passkey{ID: []byte{9, 0, 255}, User: "alice", Name: "phone", PublicKey: []byte("pk2"), Credential: []byte(`{}`), CreatedAt: ts(1_700_000_100)}
	for _, p := range []store.Passkey{a1, a2} {
		if err := s.AddPasskey(ctx(t), p); err != nil {
			t.Fatalf("AddPasskey(%s): %v", p.Name, err)
		}
	}
	if err := s.AddPasskey(ctx(t), store.Passkey{ID: []byte{1, 2, 3}, User: "bob", Name: "copy", PublicKey: []byte("x"), Credential: []byte(`{}`), CreatedAt: ts(1)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("AddPasskey with a stored credential ID: %v, want ErrConflict", err)
	}
	if err := s.AddPasskey(ctx(t), store.Passkey{ID: []byte{7}, User: "nobody", Name: "n", PublicKey: []byte("x"), Credential: []byte(`{}`), CreatedAt: ts(1)}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("AddPasskey for no user: %v, want ErrNotFound", err)
	}
	list, err := s.ListPasskeys(ctx(t), "alice")
	if err != nil || len(list) != 2 || list[0].Name != "laptop" || list[1].Name != "phone" {
		t.Fatalf("ListPasskeys = %+v, %v", list, err)
	}
	got := list[0]
	if !bytes.Equal(got.ID, a1.ID) || !bytes.Equal(got.PublicKey, a1.PublicKey) || got.SignCount != 4 || string(got.Credential) != `{"x":1}` ||
		!got.CreatedAt.Equal(a1.CreatedAt.Truncate(time.Microsecond)) || !got.LastUsedAt.IsZero() || got.User != "alice" {
		t.Fatalf("stored passkey = %+v, want %+v", got, a1)
	}
	if l, _ := s.ListPasskeys(ctx(t), "bob"); len(l) != 0 {
		t.Fatalf("bob has %d passkeys", len(l))
	}
	if err := s.UsePasskey(ctx(t), a1.ID, 5, []byte(`{"x":2}`), ts(1_700_001_000)); err != nil {
		t.Fatalf("UsePasskey: %v", err)
	}
	got, err = s.GetPasskey(ctx(t), a1.ID)
	if err != nil || got.SignCount != 5 || string(got.Credential) != `{"x":2}` || !got.LastUsedAt.Equal(ts(1_700_001_000).Truncate(time.Microsecond)) {
		t.Fatalf("GetPasskey after use = %+v, %v", got, err)
	}
	if _, err := s.GetPasskey(ctx(t), []byte{42}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPasskey(unknown): %v", err)
	}
	if removed, err := s.DeletePasskey(ctx(t), "bob", a1.ID); err != nil || removed {
		t.Fatalf("bob removed alice's passkey: %v, %v", removed, err)
	}
	if removed, err := s.DeletePasskey(ctx(t), "alice", a1.ID); err != nil || !removed {
		t.Fatalf("DeletePasskey = %v, %v", removed, err)
	}
	if _, err := s.GetPasskey(ctx(t), a1.ID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetPasskey after delete: %v", err)
	}
	if err := s.UsePasskey(ctx(t), a1.ID, 6, []byte(`{}`), ts(2)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UsePasskey after delete: %v", err)
	}
	// The administrators' reset removes passkeys too.
	if removed, err := s.DeleteSecondFactors(ctx(t), "alice"); err != nil || !removed {
		t.Fatalf("DeleteSecondFactors = %v, %v", removed, err)
	}
	if l, _ := s.ListPasskeys(ctx(t), "alice"); len(l) != 0 {
		t.Fatalf("%d passkeys left after reset", len(l))
	}
}

func testPasskeyChallengeOnce(t *testing.T, s store.Store) {
	now := time.Now()
	if err := s.PutPasskeyChallenge(ctx(t), "c1", []byte("state"), now.Add(time.Minute)); err != nil {
		t.Fatalf("PutPasskeyChallenge: %v", err)
	}
	var (
		wg  sync.WaitGroup
		won atomic.Int32
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if b, err := s.TakePasskeyChallenge(ctx(t), "c1", now); err == nil && string(b) == "state" {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("challenge taken %d times, want once", won.Load())
	}
	if err := s.PutPasskeyChallenge(ctx(t), "old", []byte("x"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TakePasskeyChallenge(ctx(t), "old", now.Add(2*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired challenge: %v, want ErrNotFound", err)
	}
}
