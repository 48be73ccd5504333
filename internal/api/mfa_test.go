package api_test

import (
	"errors"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// TestResetUserMFA: the admin API removes a user's second factor
// (secret and recovery codes), audited with who did it; an unknown user
// is a 404 naming them; only administrators may.
func TestResetUserMFA(t *testing.T) {
	backends(t, func(t *testing.T, e *env) {
		const path = "/api/v1/admin/users/alice/mfa/reset"
		e.authMatrix("POST", path, nil)
		e.user("alice", "correct horse")
		if err := e.st.PutTOTP(t.Context(), "alice", "JBSWY3DPEHPK3PXP", time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := e.st.ConfirmTOTP(t.Context(), "alice", 1, []string{"h1", "h2"}); err != nil {
			t.Fatal(err)
		}
		if r := e.as("POST", path, nil); r.status != 204 {
			t.Fatalf("reset: %d %s, want 204", r.status, r.body)
		}
		if _, err := e.st.GetTOTP(t.Context(), "alice"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("secret after reset: %v, want none", err)
		}
		if n, _ := e.st.CountRecoveryCodes(t.Context(), "alice"); n != 0 {
			t.Fatalf("%d recovery codes after reset", n)
		}
		if d := e.audit.details(audit.UserMFAReset, "user:admin"); len(d) != 1 || d[0] != "user alice" {
			t.Fatalf("audit of the reset: %q", d)
		}
		want(t, e.as("POST", "/api/v1/admin/users/nobody/mfa/reset", nil), 404, "not_found", `"nobody"`)
	})
}
