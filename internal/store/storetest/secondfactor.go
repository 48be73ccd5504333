package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

func runSecondFactorConformance(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"TOTPEnrolment", testTOTPEnrolment},
		{"TOTPStepOnce", testTOTPStepOnce},
		{"RecoveryCodeOnce", testRecoveryCodeOnce},
		{"SecondFactorsDelete", testSecondFactorsDelete},
		{"AuthRequestACRValues", testAuthRequestACRValues},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

func enrolTOTP(t *testing.T, s store.Store, user string, codes ...string) {
	t.Helper()
	if err := s.CreateUser(ctx(t), store.User{Username: user}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutTOTP(ctx(t), user, "JBSWY3DPEHPK3PXP", ts(1_700_000_000)); err != nil {
		t.Fatalf("PutTOTP: %v", err)
	}
	if err := s.ConfirmTOTP(ctx(t), user, 100, codes); err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
}

func testTOTPEnrolment(t *testing.T, s store.Store) {
	if err := s.PutTOTP(ctx(t), "nobody", "AAAA", ts(1)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("PutTOTP for an unknown user: %v, want ErrNotFound", err)
	}
	if _, err := s.GetTOTP(ctx(t), "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTOTP before enrolment: %v, want ErrNotFound", err)
	}
	if err := s.CreateUser(ctx(t), store.User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.ConfirmTOTP(ctx(t), "alice", 1, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConfirmTOTP without a secret: %v, want ErrNotFound", err)
	}
	for _, secret := range []string{"FIRSTSECRET", "SECONDSECRET"} {
		if err := s.PutTOTP(ctx(t), "alice", secret, ts(1_700_000_000)); err != nil {
			t.Fatalf("PutTOTP(%s): %v", secret, err)
		}
	}
	got, err := s.GetTOTP(ctx(t), "alice")
	if err != nil || got.Secret != "SECONDSECRET" || got.Confirmed || !got.CreatedAt.Equal(ts(1_700_000_000).Truncate(time.Microsecond)) {
		t.Fatalf("GetTOTP = %+v, %v; want the second secret, unconfirmed", got, err)
	}
	if err := s.ConfirmTOTP(ctx(t), "alice", 42, []string{"h1", "h2"}); err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	if got, _ := s.GetTOTP(ctx(t), "alice"); !got.Confirmed || got.LastStep != 42 || got.Secret != "SECONDSECRET" {
		t.Fatalf("after confirm: %+v", got)
	}
	if n, err := s.CountRecoveryCodes(ctx(t), "alice"); err != nil || n != 2 {
		t.Fatalf("CountRecoveryCodes = %d, %v; want 2", n, err)
	}
	if err := s.PutTOTP(ctx(t), "alice", "THIRD", ts(2)); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("PutTOTP over a confirmed secret: %v, want ErrConflict", err)
	}
	if err := s.ConfirmTOTP(ctx(t), "alice", 50, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ConfirmTOTP twice: %v, want ErrNotFound", err)
	}
}

func testTOTPStepOnce(t *testing.T, s store.Store) {
	enrolTOTP(t, s, "alice")
	if ok, err := s.UseTOTPStep(ctx(t), "alice", 100); err != nil || ok {
		t.Fatalf("UseTOTPStep(the confirming step) = %v, %v; want refused", ok, err)
	}
	if ok, err := s.UseTOTPStep(ctx(t), "alice", 101); err != nil || !ok {
		t.Fatalf("UseTOTPStep(101) = %v, %v; want accepted", ok, err)
	}
	if ok, _ := s.UseTOTPStep(ctx(t), "alice", 101); ok {
		t.Fatal("the same step was accepted twice")
	}
	if ok, _ := s.UseTOTPStep(ctx(t), "alice", 99); ok {
		t.Fatal("an earlier step was accepted")
	}
	if ok, _ := s.UseTOTPStep(ctx(t), "bob", 500); ok {
		t.Fatal("a user without a secret had a step accepted")
	}
	// Concurrent uses of one step: exactly one wins.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if ok, err := s.UseTOTPStep(ctx(t), "alice", 200); err == nil && ok {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent uses of one step won, want 1", wins.Load())
	}
}

func testRecoveryCodeOnce(t *testing.T, s store.Store) {
	enrolTOTP(t, s, "alice", "hash-a", "hash-b")
	enrolTOTP(t, s, "bob", "hash-c")
	if ok, _ := s.UseRecoveryCode(ctx(t), "alice", "hash-c", ts(5)); ok {
		t.Fatal("bob's code was accepted for alice")
	}
	if ok, err := s.UseRecoveryCode(ctx(t), "alice", "hash-a", ts(5)); err != nil || !ok {
		t.Fatalf("UseRecoveryCode = %v, %v; want accepted", ok, err)
	}
	if ok, _ := s.UseRecoveryCode(ctx(t), "alice", "hash-a", ts(6)); ok {
		t.Fatal("a recovery code was accepted twice")
	}
	if n, _ := s.CountRecoveryCodes(ctx(t), "alice"); n != 1 {
		t.Fatalf("%d unused codes, want 1", n)
	}
}

func testSecondFactorsDelete(t *testing.T, s store.Store) {
	enrolTOTP(t, s, "alice", "hash-a")
	enrolTOTP(t, s, "bob", "hash-b")
	if removed, err := s.DeleteSecondFactors(ctx(t), "alice"); err != nil || !removed {
		t.Fatalf("DeleteSecondFactors = %v, %v; want removed", removed, err)
	}
	if removed, _ := s.DeleteSecondFactors(ctx(t), "alice"); removed {
		t.Fatal("a second delete removed something")
	}
	if _, err := s.GetTOTP(ctx(t), "alice"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetTOTP after delete: %v", err)
	}
	if n, _ := s.CountRecoveryCodes(ctx(t), "alice"); n != 0 {
		t.Fatalf("%d codes left after delete", n)
	}
	if _, err := s.GetTOTP(ctx(t), "bob"); err != nil {
		t.Fatalf("bob's secret went too: %v", err)
	}
	// A new enrolment may start after a reset.
	if err := s.PutTOTP(ctx(t), "alice", "NEW", ts(9)); err != nil {
		t.Fatalf("PutTOTP after reset: %v", err)
	}
}

func testAuthRequestACRValues(t *testing.T, s store.Store) {
	now := time.Now()
	for id, acr := range map[string][]string{"with": {"mfa", "urn:x"}, "without": nil} {
		if err := s.CreateAuthRequest(ctx(t), store.AuthRequest{ID: id, ClientID: "c", RedirectURI: "https://rp.example/cb",
			ResponseType: "code", MaxAge: -1, ACRValues: acr, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}); err != nil {
			t.Fatalf("CreateAuthRequest: %v", err)
		}
		got, err := s.GetAuthRequest(ctx(t), id, now)
		if err != nil {
			t.Fatalf("GetAuthRequest: %v", err)
		}
		if len(got.ACRValues) != len(acr) || (len(acr) > 0 && (got.ACRValues[0] != "mfa" || got.ACRValues[1] != "urn:x")) {
			t.Fatalf("ACRValues = %q, want %q", got.ACRValues, acr)
		}
	}
}
