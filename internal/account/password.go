package account

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// The account page's own operations: a user changing their password and
// ending one of their sessions.

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
