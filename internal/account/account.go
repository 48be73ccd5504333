// Package account holds the changes to user accounts and what they mean for
// the user's access, so the CLI and the admin API (and later the pages) do
// them the same way; each change is audited with who made it.
package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// Password policy: at least MinPasswordLen characters (NIST SP 800-63B),
// at most MaxPasswordLen bytes, so that nobody makes argon2 chew on
// megabytes.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 1024
)

// ErrPasswordPolicy is the reason CheckPassword gives.
var ErrPasswordPolicy = errors.New("password must be 8 to 1024 characters")

// CheckPassword applies the password policy to a new password.
func CheckPassword(pw string) error {
	if utf8.RuneCountInString(pw) < MinPasswordLen || len(pw) > MaxPasswordLen {
		return ErrPasswordPolicy
	}
	return nil
}

// Hasher makes a password's stored hash (credential.Hasher).
type Hasher interface {
	Hash(password string) (string, error)
}

// SetPassword checks pw against the policy and stores its hash as the
// user's password, audited as user.updated ("password") by by (see
// Update). A refusal of the policy is ErrPasswordPolicy and writes
// nothing.
func SetPassword(ctx context.Context, st Store, rec audit.Recorder, hasher Hasher, by, username, pw string) error {
	if err := CheckPassword(pw); err != nil {
		return err
	}
	cur, err := st.GetUser(ctx, username)
	if err != nil {
		return err
	}
	hash, err := hasher.Hash(pw)
	if err != nil {
		return fmt.Errorf("hashing %q's password: %w", username, err)
	}
	next := cur
	next.PasswordHash = hash
	_, err = Update(ctx, st, rec, by, cur, next)
	return err
}

// SessionStore is what EndSession needs of the store.
type SessionStore interface {
	ListUserSessions(ctx context.Context, user string, now time.Time) ([]store.Session, error)
	DeleteSession(ctx context.Context, idHash string) error
}

// EndSession ends one of username's browser sessions, the one whose
// SessionHandle is handle, audited as a logout by by. It is
// store.ErrNotFound when the user has no live session with that handle
// (someone else's session included).
func EndSession(ctx context.Context, st SessionStore, rec audit.Recorder, by, username, handle string, now time.Time) error {
	sessions, err := st.ListUserSessions(ctx, username, now)
	if err != nil {
		return err
	}
	for _, s := range sessions {
		if SessionHandle(s) == handle {
			if err := st.DeleteSession(ctx, s.IDHash); err != nil {
				return err
			}
			audit.Change{Event: audit.Logout, By: by, Detail: "session of " + username + " ended (" + handle + ")"}.Record(ctx, rec)
			return nil
		}
	}
	return fmt.Errorf("session %s of %s: %w", handle, username, store.ErrNotFound)
}

// SessionHandle names a session on pages and in the audit log: a short
// hash of the stored hash of its cookie, which neither signs anyone in
// nor finds the session without the user's list.
func SessionHandle(s store.Session) string {
	sum := sha256.Sum256([]byte("flowgate session handle\x00" + s.IDHash))
	return hex.EncodeToString(sum[:8])
}
