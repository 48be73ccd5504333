package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// GetSignInFailures reads the pair and counts the address's accounts in
// one statement on the reader pool: it runs before every sign-in, the
// successful ones included, and must not wait on the writer.
func (s *Store) GetSignInFailures(ctx context.Context, account, addr string, at, windowStart time.Time) (store.SignInPair, int, error) {
	var (
		failures   int
		last       int64
		addrCount  int
		nowMicros  = micros(at)
		pairFilter = `FROM sign_in_failures WHERE addr = ? AND account = ? AND expires_at > ?`
	)
	err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT
		COALESCE((SELECT failures `+pairFilter+`), 0),
		COALESCE((SELECT last_failed_at `+pairFilter+`), 0),
		(SELECT COUNT(*) FROM sign_in_failures WHERE addr = ? AND last_failed_at >= ? AND expires_at > ?)`),
		addr, account, nowMicros, addr, account, nowMicros, addr, micros(windowStart), nowMicros).
		Scan(&failures, &last, &addrCount)
	if err != nil {
		return store.SignInPair{}, 0, fmt.Errorf("get sign-in failures: %w", err)
	}
	return store.SignInPair{Failures: failures, LastFailedAt: fromMicrosOrZero(last)}, addrCount, nil
}

// RecordSignInFailure is one upsert: the count is incremented by the
// database, so failures arriving together on several servers are all
// counted.
func (s *Store) RecordSignInFailure(ctx context.Context, account, addr string, at, expiresAt time.Time) (int, error) {
	var n int
	err := s.write.QueryRowContext(ctx, s.q.rebind(`INSERT INTO sign_in_failures (addr, account, failures, last_failed_at, expires_at)
		VALUES (?, ?, 1, ?, ?)
		ON CONFLICT (addr, account) DO UPDATE SET
			failures = CASE WHEN sign_in_failures.expires_at > excluded.last_failed_at THEN sign_in_failures.failures + 1 ELSE 1 END,
			last_failed_at = excluded.last_failed_at, expires_at = excluded.expires_at
		RETURNING failures`),
		addr, account, micros(at), micros(expiresAt)).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("record sign-in failure: %w", err)
	}
	return n, nil
}

// ClearSignInFailures deletes the pair.
func (s *Store) ClearSignInFailures(ctx context.Context, account, addr string) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM sign_in_failures WHERE addr = ? AND account = ?`), addr, account); err != nil {
		return fmt.Errorf("clear sign-in failures: %w", err)
	}
	return nil
}

// DeleteExpiredSignInFailures deletes the pairs GetSignInFailures would
// no longer see at now.
func (s *Store) DeleteExpiredSignInFailures(ctx context.Context, at time.Time) (int, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM sign_in_failures WHERE expires_at <= ?`), micros(at))
	if err != nil {
		return 0, fmt.Errorf("delete expired sign-in failures: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("delete expired sign-in failures: %w", err)
	}
	return int(n), nil
}
