package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// totpAAD binds a sealed TOTP secret to its user, so a sealed value
// copied to another user's row does not open.
func totpAAD(user string) []byte { return []byte("user_totp\x00" + user) }

// PutTOTP inserts only for an existing user, and replaces only an
// unconfirmed secret; when nothing was written a read says why.
func (s *Store) PutTOTP(ctx context.Context, user, secret string, at time.Time) error {
	sealed, err := s.sealer.Seal([]byte(secret), totpAAD(user))
	if err != nil {
		return fmt.Errorf("put totp %q: seal: %w", user, err)
	}
	res, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO user_totp (username, secret, confirmed, last_step, created_at)
		SELECT username, ?, ?, 0, ? FROM users WHERE username = ?
		ON CONFLICT (username) DO UPDATE SET secret = excluded.secret, created_at = excluded.created_at, last_step = 0
		WHERE user_totp.confirmed = ?`), sealed, false, micros(at), user, false)
	if err != nil {
		return fmt.Errorf("put totp %q: %w", user, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 1 {
		if err != nil {
			return fmt.Errorf("put totp %q: %w", user, err)
		}
		return nil
	}
	if _, err := s.GetUser(ctx, user); err != nil {
		return fmt.Errorf("put totp: %w", err)
	}
	return fmt.Errorf("put totp %q: a confirmed secret exists: %w", user, store.ErrConflict)
}

// GetTOTP reads and opens the user's secret.
func (s *Store) GetTOTP(ctx context.Context, user string) (store.TOTP, error) {
	var (
		sealed  []byte
		t       = store.TOTP{User: user}
		created int64
	)
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT secret, confirmed, last_step, created_at FROM user_totp WHERE username = ?`), user).
		Scan(&sealed, &t.Confirmed, &t.LastStep, &created)
	if err != nil {
		return store.TOTP{}, fmt.Errorf("get totp %q: %w", user, notFound(err))
	}
	plain, err := s.sealer.Open(sealed, totpAAD(user))
	if err != nil {
		return store.TOTP{}, fmt.Errorf("get totp %q: open: %w", user, err)
	}
	t.Secret, t.CreatedAt = string(plain), fromMicros(created)
	return t, nil
}

// ConfirmTOTP confirms the secret and replaces the recovery codes in one
// transaction, so an enrolment never ends with a factor but no codes.
func (s *Store) ConfirmTOTP(ctx context.Context, user string, step int64, recoveryHashes []string) (err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("confirm totp %q: %w", user, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	res, err := tx.ExecContext(ctx, s.q.rebind(`UPDATE user_totp SET confirmed = ?, last_step = ? WHERE username = ? AND confirmed = ?`), true, step, user, false)
	if err != nil {
		return fmt.Errorf("confirm totp %q: %w", user, err)
	}
	if err := affectedOne(res, "confirm totp", user); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, s.q.rebind(`DELETE FROM user_recovery_codes WHERE username = ?`), user); err != nil {
		return fmt.Errorf("confirm totp %q: %w", user, err)
	}
	for _, h := range recoveryHashes {
		if _, err := tx.ExecContext(ctx, s.q.rebind(`INSERT INTO user_recovery_codes (username, code_hash, used_at) VALUES (?, ?, 0)`), user, h); err != nil {
			return fmt.Errorf("confirm totp %q: recovery code: %w", user, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("confirm totp %q: %w", user, err)
	}
	return nil
}

// UseTOTPStep is one conditional update: of two requests with the same
// code, on any servers, one moves last_step and the other finds it moved.
func (s *Store) UseTOTPStep(ctx context.Context, user string, step int64) (bool, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE user_totp SET last_step = ? WHERE username = ? AND confirmed = ? AND last_step < ?`), step, user, true, step)
	if err != nil {
		return false, fmt.Errorf("use totp step %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use totp step %q: %w", user, err)
	}
	return n == 1, nil
}

// UseRecoveryCode is one conditional update, like UseTOTPStep.
func (s *Store) UseRecoveryCode(ctx context.Context, user, hash string, at time.Time) (bool, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE user_recovery_codes SET used_at = ? WHERE username = ? AND code_hash = ? AND used_at = 0`), micros(at), user, hash)
	if err != nil {
		return false, fmt.Errorf("use recovery code %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("use recovery code %q: %w", user, err)
	}
	return n == 1, nil
}

// CountRecoveryCodes counts the unused codes.
func (s *Store) CountRecoveryCodes(ctx context.Context, user string) (int, error) {
	var n int
	if err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT COUNT(*) FROM user_recovery_codes WHERE username = ? AND used_at = 0`), user).Scan(&n); err != nil {
		return 0, fmt.Errorf("count recovery codes %q: %w", user, err)
	}
	return n, nil
}

// DeleteSecondFactors deletes the TOTP secret, recovery codes and
// passkeys in one transaction.
func (s *Store) DeleteSecondFactors(ctx context.Context, user string) (removed bool, err error) {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("delete second factors %q: %w", user, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var total int64
	for _, q := range []string{`DELETE FROM user_totp WHERE username = ?`, `DELETE FROM user_recovery_codes WHERE username = ?`, `DELETE FROM user_passkeys WHERE username = ?`} {
		res, err := tx.ExecContext(ctx, s.q.rebind(q), user)
		if err != nil {
			return false, fmt.Errorf("delete second factors %q: %w", user, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, fmt.Errorf("delete second factors %q: %w", user, err)
		}
		total += n
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("delete second factors %q: %w", user, err)
	}
	return total > 0, nil
}
