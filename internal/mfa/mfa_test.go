package mfa_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

// otplib computes a code with the otp peer (test/peers/otp).
func otplib(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v", err)
	}
	dir, err := prereq.PeerDir("otp")
	if err != nil {
		prereq.Missing(t, "%v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "otplib")); err != nil {
		prereq.Missing(t, "otp peer not installed: run `npm ci --prefix test/peers/otp` (%v)", err)
	}
	out, err := exec.Command(node, filepath.Join(dir, "totp.js"), secret, strconv.FormatInt(at.Unix(), 10)).Output()
	if err != nil {
		t.Fatalf("otplib: %v", err)
	}
	return strings.TrimSpace(string(out))
}

func newService(t *testing.T, policy string, now *time.Time) (*mfa.Service, store.Store) {
	t.Helper()
	text, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fg.db"), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.CreateUser(t.Context(), store.User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	return mfa.New(mfa.Options{Store: st, Ring: ring, Policy: policy, Now: func() time.Time { return *now }}), st
}

// TestCodesAndSkew: a code of the current step or one step either side is
// accepted, two steps off is not; each step once; the policy decides what
// a sign-in needs.
func TestCodesAndSkew(t *testing.T) {
	now := time.Unix(1_800_000_015, 0)
	m, st := newService(t, config.MFAOptional, &now)
	ctx := t.Context()
	if need, _ := m.Needed(ctx, "alice", false); need != "" {
		t.Fatalf("optional, not enrolled: need %q", need)
	}
	if need, _ := m.Needed(ctx, "alice", true); need != "enrol" {
		t.Fatalf("optional, asked by the client: need %q, want enrol", need)
	}
	secret, err := m.Begin(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Verify(ctx, "alice", otplib(t, secret, now)); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("Verify before confirming: %v, want ErrNotEnrolled", err)
	}
	if _, err := m.Confirm(ctx, "alice", otplib(t, secret, now.Add(-90*time.Second))); !errors.Is(err, mfa.ErrWrongCode) {
		t.Fatalf("Confirm with a code three steps old: %v, want ErrWrongCode", err)
	}
	codes, err := m.Confirm(ctx, "alice", otplib(t, secret, now.Add(-30*time.Second)))
	if err != nil || len(codes) != 10 {
		t.Fatalf("Confirm with last step's code: %d codes, %v", len(codes), err)
	}
	if _, err := m.Begin(ctx, "alice"); !errors.Is(err, mfa.ErrEnrolled) {
		t.Fatalf("Begin when enrolled: %v, want ErrEnrolled", err)
	}
	if need, _ := m.Needed(ctx, "alice", false); need != "verify" {
		t.Fatalf("enrolled: need %q, want verify", need)
	}
	for _, tc := range []struct {
		at   time.Duration
		want error
	}{
		{-60 * time.Second, mfa.ErrWrongCode}, // two steps back
		{-30 * time.Second, mfa.ErrWrongCode}, // used to confirm
		{+30 * time.Second, nil},              // one step ahead
		{0, mfa.ErrWrongCode},                 // earlier than the last used
		{+60 * time.Second, mfa.ErrWrongCode}, // two steps ahead
	} {
		amr, err := m.Verify(ctx, "alice", otplib(t, secret, now.Add(tc.at)))
		if !errors.Is(err, tc.want) || (err == nil && strings.Join(amr, " ") != "otp mfa") {
			t.Errorf("code at %v: %q, %v; want %v", tc.at, amr, err, tc.want)
		}
	}
	// Recovery codes: any case, with or without the dash, once.
	if _, err := m.Verify(ctx, "alice", strings.ToUpper(strings.ReplaceAll(codes[3], "-", ""))); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if _, err := m.Verify(ctx, "alice", codes[3]); !errors.Is(err, mfa.ErrWrongCode) {
		t.Fatalf("recovery code twice: %v", err)
	}
	if n, _ := m.RecoveryCodesLeft(ctx, "alice"); n != 9 {
		t.Fatalf("%d codes left, want 9", n)
	}
	// The confirmed secret is the one the enrolment showed.
	if tot, err := st.GetTOTP(ctx, "alice"); err != nil || tot.Secret != secret || !tot.Confirmed {
		t.Fatalf("GetTOTP: %+v, %v", tot, err)
	}

	// off: nothing is asked, even of an enrolled user or by a client.
	off := mfa.New(mfa.Options{Store: st, Policy: config.MFAOff})
	if need, _ := off.Needed(ctx, "alice", true); need != "" || off.Offered() {
		t.Fatalf("off: need %q", need)
	}
	// required: a user without a factor enrols.
	if err := st.CreateUser(ctx, store.User{Username: "bob"}); err != nil {
		t.Fatal(err)
	}
	req := mfa.New(mfa.Options{Store: st, Policy: config.MFARequired})
	if need, _ := req.Needed(ctx, "bob", false); need != "enrol" {
		t.Fatalf("required, not enrolled: need %q, want enrol", need)
	}
	if err := req.Reset(ctx, "cli:root", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Reset of an unknown user: %v", err)
	}
}
