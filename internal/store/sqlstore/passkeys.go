package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

const passkeyColumns = `id, username, name, public_key, sign_count, credential, created_at, last_used_at`

func scanPasskey(sc interface{ Scan(...any) error }) (store.Passkey, error) {
	var (
		p              store.Passkey
		count          int64
		cred           string
		created, lastU int64
	)
	if err := sc.Scan(&p.ID, &p.User, &p.Name, &p.PublicKey, &count, &cred, &created, &lastU); err != nil {
		return store.Passkey{}, err
	}
	p.SignCount, p.Credential, p.CreatedAt = uint32(count), []byte(cred), fromMicros(created)
	if lastU != 0 {
		p.LastUsedAt = fromMicros(lastU)
	}
	return p, nil
}

// AddPasskey inserts only for an existing user; when nothing was written
// a read says why.
func (s *Store) AddPasskey(ctx context.Context, p store.Passkey) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO user_passkeys (`+passkeyColumns+`)
		SELECT ?, username, ?, ?, ?, ?, ?, 0 FROM users WHERE username = ?`),
		p.ID, p.Name, p.PublicKey, int64(p.SignCount), string(p.Credential), micros(p.CreatedAt), p.User)
	if err != nil {
		if s.dialect.IsUniqueViolation(err) {
			return fmt.Errorf("add passkey for %q: credential already stored: %w", p.User, store.ErrConflict)
		}
		return fmt.Errorf("add passkey for %q: %w", p.User, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add passkey for %q: %w", p.User, err)
	} else if n == 0 {
		return fmt.Errorf("add passkey: no user %q: %w", p.User, store.ErrNotFound)
	}
	return nil
}

// ListPasskeys lists the user's passkeys, oldest first.
func (s *Store) ListPasskeys(ctx context.Context, user string) ([]store.Passkey, error) {
	rows, err := s.read.QueryContext(ctx, s.q.rebind(`SELECT `+passkeyColumns+` FROM user_passkeys WHERE username = ? ORDER BY created_at, id`), user)
	if err != nil {
		return nil, fmt.Errorf("list passkeys %q: %w", user, err)
	}
	defer rows.Close()
	var out []store.Passkey
	for rows.Next() {
		p, err := scanPasskey(rows)
		if err != nil {
			return nil, fmt.Errorf("list passkeys %q: %w", user, err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list passkeys %q: %w", user, err)
	}
	return out, nil
}

// GetPasskey reads one passkey by credential ID.
func (s *Store) GetPasskey(ctx context.Context, id []byte) (store.Passkey, error) {
	p, err := scanPasskey(s.read.QueryRowContext(ctx, s.q.rebind(`SELECT `+passkeyColumns+` FROM user_passkeys WHERE id = ?`), id))
	if err != nil {
		return store.Passkey{}, fmt.Errorf("get passkey: %w", notFound(err))
	}
	return p, nil
}

// UsePasskey records a sign-in with the passkey.
func (s *Store) UsePasskey(ctx context.Context, id []byte, signCount uint32, credential []byte, at time.Time) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`UPDATE user_passkeys SET sign_count = ?, credential = ?, last_used_at = ? WHERE id = ?`),
		int64(signCount), string(credential), micros(at), id)
	if err != nil {
		return fmt.Errorf("use passkey: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("use passkey: %w", err)
	} else if n == 0 {
		return fmt.Errorf("use passkey: %w", store.ErrNotFound)
	}
	return nil
}

// DeletePasskey removes the passkey only when it is the user's.
func (s *Store) DeletePasskey(ctx context.Context, user string, id []byte) (bool, error) {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM user_passkeys WHERE username = ? AND id = ?`), user, id)
	if err != nil {
		return false, fmt.Errorf("delete passkey of %q: %w", user, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("delete passkey of %q: %w", user, err)
	}
	return n > 0, nil
}

// PutPasskeyChallenge stores a ceremony's state; expired ones are swept
// on the way, so the table stays small without a janitor.
func (s *Store) PutPasskeyChallenge(ctx context.Context, id string, data []byte, expires time.Time) error {
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM passkey_challenges WHERE expires_at < ?`), micros(time.Now())); err != nil {
		return fmt.Errorf("put passkey challenge: %w", err)
	}
	if _, err := s.write.ExecContext(ctx, s.q.rebind(`INSERT INTO passkey_challenges (id, data, expires_at) VALUES (?, ?, ?)`),
		id, data, micros(expires)); err != nil {
		if s.dialect.IsUniqueViolation(err) {
			return fmt.Errorf("put passkey challenge: %w", store.ErrConflict)
		}
		return fmt.Errorf("put passkey challenge: %w", err)
	}
	return nil
}

// TakePasskeyChallenge is one DELETE … RETURNING: of two requests with
// the same challenge only one gets it.
func (s *Store) TakePasskeyChallenge(ctx context.Context, id string, now time.Time) ([]byte, error) {
	var (
		data    []byte
		expires int64
	)
	err := s.write.QueryRowContext(ctx, s.q.rebind(`DELETE FROM passkey_challenges WHERE id = ? RETURNING data, expires_at`), id).Scan(&data, &expires)
	if err != nil {
		return nil, fmt.Errorf("take passkey challenge: %w", notFound(err))
	}
	if micros(now) > expires {
		return nil, fmt.Errorf("take passkey challenge: expired: %w", store.ErrNotFound)
	}
	return data, nil
}
