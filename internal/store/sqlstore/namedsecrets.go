package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// namedSecretAAD binds a sealed value to its name, so a ciphertext copied
// under another name does not open; the prefix keeps it apart from the
// server's own secrets table.
func namedSecretAAD(name string) []byte { return []byte("named_secret:" + name) }

// SetNamedSecret seals value and upserts it in one statement. RETURNING
// (SQLite 3.35+, PostgreSQL) gives the row's created_at: the time given
// here when the row is new, the old one when it was replaced.
func (s *Store) SetNamedSecret(ctx context.Context, name string, value []byte, at time.Time) (store.NamedSecret, bool, error) {
	sealed, err := s.sealer.Seal(value, namedSecretAAD(name))
	if err != nil {
		return store.NamedSecret{}, false, fmt.Errorf("set secret %q: seal: %w", name, err)
	}
	t := micros(nowOr(at, now()))
	var created int64
	err = s.write.QueryRowContext(ctx, s.q.rebind(`INSERT INTO named_secrets (name, sealed, created_at, updated_at)
		VALUES (?, ?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at
		RETURNING created_at`), name, sealed, t, t).Scan(&created)
	if err != nil {
		return store.NamedSecret{}, false, fmt.Errorf("set secret %q: %w", name, err)
	}
	return store.NamedSecret{Name: name, CreatedAt: fromMicros(created), UpdatedAt: fromMicros(t)}, created == t, nil
}

// GetNamedSecret reads and opens one secret.
func (s *Store) GetNamedSecret(ctx context.Context, name string) ([]byte, error) {
	var sealed []byte
	if err := s.read.QueryRowContext(ctx, s.q.rebind(`SELECT sealed FROM named_secrets WHERE name = ?`), name).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, notFound(err))
	}
	value, err := s.sealer.Open(sealed, namedSecretAAD(name))
	if err != nil {
		return nil, fmt.Errorf("get secret %q: open: %w", name, err)
	}
	return value, nil
}

// ListNamedSecrets pages through the names by byte order; the sealed
// values are not even read.
func (s *Store) ListNamedSecrets(ctx context.Context, p store.Page) ([]store.NamedSecret, string, error) {
	p = p.Normalize()
	after := ""
	if p.Cursor != "" {
		var err error
		if after, err = store.DecodeCursor(p.Cursor); err != nil {
			return nil, "", fmt.Errorf("list secrets: %w", err)
		}
	}
	out, next, err := queryPage(ctx, s, s.q.rebind(`SELECT name, created_at, updated_at FROM named_secrets
		WHERE name > ? ORDER BY name LIMIT ?`), []any{after}, p.Limit,
		func(sc scanner) (store.NamedSecret, error) {
			var n store.NamedSecret
			var created, updated int64
			if err := sc.Scan(&n.Name, &created, &updated); err != nil {
				return n, err
			}
			n.CreatedAt, n.UpdatedAt = fromMicros(created), fromMicros(updated)
			return n, nil
		}, func(n store.NamedSecret) string { return n.Name })
	if err != nil {
		return nil, "", fmt.Errorf("list secrets: %w", err)
	}
	return out, next, nil
}

// DeleteNamedSecret removes one secret.
func (s *Store) DeleteNamedSecret(ctx context.Context, name string) error {
	res, err := s.write.ExecContext(ctx, s.q.rebind(`DELETE FROM named_secrets WHERE name = ?`), name)
	if err != nil {
		return fmt.Errorf("delete secret %q: %w", name, err)
	}
	return affectedOne(res, "delete secret", name)
}
