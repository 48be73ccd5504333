// Package account holds what happens to a user's access when their account
// changes, so the CLI and the admin API do it the same way.
package account

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// Store is what this package needs of the store.
type Store interface {
	store.Users
	store.AuditLog
	RevokeUserRefreshTokens(ctx context.Context, user string) (int64, error)
	DeleteUserSessions(ctx context.Context, user string) error
}

// SetDisabled disables or re-enables a user and returns the updated record.
// Disabling also ends the user's access (EndAccess), so it takes effect at
// once rather than when tokens expire. The change is audited.
func SetDisabled(ctx context.Context, st Store, username string, disabled bool) (store.User, error) {
	u, err := st.GetUser(ctx, username)
	if err != nil {
		return store.User{}, err
	}
	if u.Disabled != disabled {
		u.Disabled = disabled
		u.UpdatedAt = time.Now().UTC()
		if err := st.UpdateUser(ctx, u); err != nil {
			return store.User{}, err
		}
	}
	event := audit.UserEnabled
	if disabled {
		event = audit.UserDisabled
		if err := EndAccess(ctx, st, username); err != nil {
			return u, err
		}
	}
	return u, st.AppendAudit(ctx, store.AuditEvent{Time: time.Now().UTC(), Event: event, User: username, Outcome: audit.OutcomeSuccess})
}

// EndAccess ends a user's sessions and revokes their refresh tokens. Access
// tokens already issued are refused by the APIs, which look the user up on
// every call.
func EndAccess(ctx context.Context, st Store, username string) error {
	n, err := st.RevokeUserRefreshTokens(ctx, username)
	if err != nil {
		return fmt.Errorf("revoking %q's refresh tokens: %w", username, err)
	}
	if err := st.DeleteUserSessions(ctx, username); err != nil {
		return fmt.Errorf("ending %q's sessions: %w", username, err)
	}
	if n > 0 {
		return st.AppendAudit(ctx, store.AuditEvent{Time: time.Now().UTC(), Event: audit.TokenRevoked, User: username,
			Outcome: audit.OutcomeSuccess, Detail: fmt.Sprintf("user disabled: %d refresh tokens", n)})
	}
	return nil
}
