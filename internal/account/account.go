// Package account holds the changes to user accounts and what they mean for
// the user's access, so the CLI and the admin API (and later the pages) do
// them the same way; each change is audited with who made it.
package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// Store is what this package needs of the store.
type Store interface {
	store.Users
	RevokeUserRefreshTokens(ctx context.Context, user string) (int64, error)
	DeleteUserSessions(ctx context.Context, user string) error
}

// Password bounds for passwords an administrator sets (the admin API and
// the management site): at least 8 characters as NIST SP 800-63B asks (and
// as `flowgate user passwd` applies), at most 1024 bytes so a request
// cannot make argon2 chew on megabytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// ErrPasswordPolicy is a password outside the bounds above.
var ErrPasswordPolicy = errors.New("password must be 8 to 1024 characters")

// CheckPassword applies the password policy; ErrPasswordPolicy when pw
// does not meet it.
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return ErrPasswordPolicy
	}
	return nil
}

// Create creates u, audited as user.created by by (a principal, see
// audit.Change).
func Create(ctx context.Context, st Store, rec audit.Recorder, by string, u store.User) error {
	if err := st.CreateUser(ctx, u); err != nil {
		return err
	}
	audit.Change{Event: audit.UserCreated, By: by, Detail: "user " + u.Username}.Record(ctx, rec)
	return nil
}

// Update writes next, the changed copy of cur, as the user's record. It is
// audited as user.updated naming the fields that changed (a new password as
// "password", never its hash), and a change of Disabled as user.disabled or
// user.enabled; disabling also ends the user's access (EndAccess). Nothing
// is written or recorded when nothing changed. It returns the record as
// written.
func Update(ctx context.Context, st Store, rec audit.Recorder, by string, cur, next store.User) (store.User, error) {
	changed := changedFields(cur, next)
	if len(changed) == 0 {
		return cur, nil
	}
	next.UpdatedAt = time.Now().UTC()
	if err := st.UpdateUser(ctx, next); err != nil {
		return store.User{}, err
	}
	var err error
	if i := slices.Index(changed, "disabled"); i >= 0 {
		changed = slices.Delete(changed, i, i+1)
		event := audit.UserEnabled
		if next.Disabled {
			event = audit.UserDisabled
			err = EndAccess(ctx, st, rec, next.Username)
		}
		audit.Change{Event: event, By: by, Detail: "user " + next.Username}.Record(ctx, rec)
	}
	if len(changed) > 0 {
		audit.Change{Event: audit.UserUpdated, By: by, Detail: "user " + next.Username + ": " + strings.Join(changed, ", ")}.Record(ctx, rec)
	}
	return next, err
}

// changedFields names the fields of a user that differ, in a fixed order.
func changedFields(a, b store.User) []string {
	var out []string
	add := func(differ bool, name string) {
		if differ {
			out = append(out, name)
		}
	}
	add(a.Email != b.Email || a.EmailVerified != b.EmailVerified, "email")
	add(a.Name != b.Name, "name")
	add(!slices.Equal(a.Roles, b.Roles), "roles")
	add(a.PasswordHash != b.PasswordHash, "password")
	add(a.Disabled != b.Disabled, "disabled")
	return out
}

// SetDisabled disables or re-enables a user and returns the updated record
// (see Update). Disabling a user who is already disabled ends their access
// again, and records nothing.
func SetDisabled(ctx context.Context, st Store, rec audit.Recorder, by, username string, disabled bool) (store.User, error) {
	u, err := st.GetUser(ctx, username)
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled == disabled {
		if disabled {
			return u, EndAccess(ctx, st, rec, username)
		}
		return u, nil
	}
	next := u
	next.Disabled = disabled
	return Update(ctx, st, rec, by, u, next)
}

// EndAccess ends a user's sessions and revokes their refresh tokens. Access
// tokens already issued are refused by the APIs, which look the user up on
// every call.
func EndAccess(ctx context.Context, st Store, rec audit.Recorder, username string) error {
	n, err := st.RevokeUserRefreshTokens(ctx, username)
	if err != nil {
		return fmt.Errorf("revoking %q's refresh tokens: %w", username, err)
	}
	if err := st.DeleteUserSessions(ctx, username); err != nil {
		return fmt.Errorf("ending %q's sessions: %w", username, err)
	}
	if n > 0 && rec != nil {
		rec.Record(ctx, store.AuditEvent{Event: audit.TokenRevoked, User: username,
			Outcome: audit.OutcomeSuccess, Detail: fmt.Sprintf("user disabled: %d refresh tokens", n)})
	}
	return nil
}
