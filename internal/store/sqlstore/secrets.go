package sqlstore

import (
	"context"
	"fmt"
)

// secretAAD binds a sealed value to its row, so a ciphertext copied under
// another name does not open.
func secretAAD(name string) []byte { return []byte("secret:" + name) }

// PutSecret seals value and creates or replaces the named secret.
func (s *Store) PutSecret(ctx context.Context, name string, value []byte) error {
	sealed, err := s.sealer.Seal(value, secretAAD(name))
	if err != nil {
		return fmt.Errorf("put secret %q: seal: %w", name, err)
	}
	if _, err := s.write.ExecContext(ctx, s.q.putSecret, name, sealed, micros(now())); err != nil {
		return fmt.Errorf("put secret %q: %w", name, err)
	}
	return nil
}

// GetSecret reads and opens the named secret.
func (s *Store) GetSecret(ctx context.Context, name string) ([]byte, error) {
	var sealed []byte
	if err := s.read.QueryRowContext(ctx, s.q.getSecret, name).Scan(&sealed); err != nil {
		return nil, fmt.Errorf("get secret %q: %w", name, notFound(err))
	}
	value, err := s.sealer.Open(sealed, secretAAD(name))
	if err != nil {
		return nil, fmt.Errorf("get secret %q: open: %w", name, err)
	}
	return value, nil
}
