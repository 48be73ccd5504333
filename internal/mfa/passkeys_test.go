package mfa_test

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/mfa"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
)

// TestPasskeyCeremonies: passkeys are offered only for a public URL that
// names a host; a ceremony's options are the library's, for this relying
// party; a ceremony is answered once; bad answers and names are refused
// with their own errors and nothing is stored. (The full ceremony with an
// authenticator is TestBrowserPasskey, in Chromium.)
func TestPasskeyCeremonies(t *testing.T) {
	text, _ := keyring.Generate()
	ring, err := keyring.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "fg.db"), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := st.CreateUser(t.Context(), store.User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for origin, want := range map[string]bool{"https://id.example.com": true, "http://localhost:8080": true, "http://127.0.0.1:8080": false, "http://[::1]:80": false, "": false} {
		m := mfa.New(mfa.Options{Store: st, Ring: ring, Origin: origin})
		if m.PasskeysOffered() != want {
			t.Errorf("origin %q: PasskeysOffered = %v, want %v", origin, !want, want)
		}
	}
	if mfa.New(mfa.Options{Store: st, Ring: ring, Origin: "https://id.example.com", Policy: config.MFAOff}).PasskeysOffered() {
		t.Error("passkeys offered with auth.mfa off")
	}
	m := mfa.New(mfa.Options{Store: st, Ring: ring, Origin: "https://id.example.com"})
	id, opts, err := m.BeginPasskeyEnrol(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	var creation struct {
		PublicKey struct {
			RP struct {
				ID string `json:"id"`
			} `json:"rp"`
			Challenge string `json:"challenge"`
			User      struct {
				Name string `json:"name"`
			} `json:"user"`
			AuthenticatorSelection struct {
				ResidentKey string `json:"residentKey"`
			} `json:"authenticatorSelection"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(opts, &creation); err != nil {
		t.Fatal(err)
	}
	if c := creation.PublicKey; c.RP.ID != "id.example.com" || len(c.Challenge) < 20 || c.User.Name != "alice" || c.AuthenticatorSelection.ResidentKey != "required" {
		t.Fatalf("creation options = %s", opts)
	}
	if err := m.FinishPasskeyEnrol(ctx, "alice", id, "  ", []byte(`{}`)); !errors.Is(err, mfa.ErrBadPasskeyName) {
		t.Fatalf("empty name: %v", err)
	}
	// A malformed answer spends the ceremony; a second try is refused
	// because it is gone.
	if err := m.FinishPasskeyEnrol(ctx, "alice", id, "Laptop", []byte(`{"id":"x"}`)); !errors.Is(err, mfa.ErrPasskeyRefused) {
		t.Fatalf("malformed answer: %v", err)
	}
	if err := m.FinishPasskeyEnrol(ctx, "alice", id, "Laptop", []byte(`{"id":"x"}`)); !errors.Is(err, mfa.ErrPasskeyRefused) {
		t.Fatalf("second answer to one ceremony: %v", err)
	}
	if list, _ := m.Passkeys(ctx, "alice"); len(list) != 0 {
		t.Fatalf("refused answers stored %d passkeys", len(list))
	}
	// A sign-in ceremony for a user without passkeys is not started; a
	// discoverable one is, and an unknown handle is refused.
	if _, _, err := m.BeginPasskeyLogin(ctx, "alice"); !errors.Is(err, mfa.ErrNotEnrolled) {
		t.Fatalf("second step without passkeys: %v", err)
	}
	// The discoverable ceremony the sign-in page offers anyone carries its
	// state sealed: opening the page writes nothing.
	rows := func() int {
		var n int
		if err := st.ReadDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM passkey_challenges").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := rows()
	var handle string
	for range 5 {
		if handle, _, err = m.BeginPasskeyLogin(ctx, ""); err != nil {
			t.Fatalf("discoverable sign-in: %v", err)
		}
	}
	if n := rows(); n != before {
		t.Errorf("five discoverable ceremonies stored %d rows", n-before)
	}
	if len(handle) > 1024 {
		// The sign-in form's handler reads at most 1,024 characters.
		t.Errorf("a sealed handle of %d characters", len(handle))
	}
	if _, _, err := m.FinishPasskeyLogin(ctx, "", "no-such-ceremony", []byte(`{}`)); !errors.Is(err, mfa.ErrPasskeyRefused) {
		t.Fatalf("unknown ceremony: %v", err)
	}
	// A sealed handle altered, or one whose five minutes are over, is
	// refused before the answer is looked at.
	if _, _, err := m.FinishPasskeyLogin(ctx, "", handle[:len(handle)-2]+"AA", []byte(`{}`)); !errors.Is(err, mfa.ErrPasskeyRefused) || !strings.Contains(err.Error(), "no such ceremony") {
		t.Fatalf("altered sealed ceremony: %v", err)
	}
	later := mfa.New(mfa.Options{Store: st, Ring: ring, Origin: "https://id.example.com", Now: func() time.Time { return time.Now().Add(6 * time.Minute) }})
	if _, _, err := later.FinishPasskeyLogin(ctx, "", handle, []byte(`{}`)); !errors.Is(err, mfa.ErrPasskeyRefused) || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("expired sealed ceremony: %v", err)
	}
	if removed, err := m.RemovePasskey(ctx, "alice", "!!not base64"); err != nil || removed {
		t.Fatalf("removing a malformed id: %v, %v", removed, err)
	}
}
