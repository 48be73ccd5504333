package store

import (
	"context"
	"time"
)

// NamedSecret describes a secret flows read as ${{ secrets.NAME }}. It
// never carries the value: only GetNamedSecret gives that, to the engine.
type NamedSecret struct {
	Name      string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// NamedSecrets stores the secrets administrators set for flows. Values
// are sealed with Options.Sealer, bound to the name, before they are
// written.
type NamedSecrets interface {
	// SetNamedSecret creates or replaces a named secret at the time at
	// (now when zero) and returns it as stored; created reports that
	// there was none before.
	SetNamedSecret(ctx context.Context, name string, value []byte, at time.Time) (secret NamedSecret, created bool, err error)
	// GetNamedSecret reads and opens a named secret's value; ErrNotFound
	// when there is none.
	GetNamedSecret(ctx context.Context, name string) ([]byte, error)
	// ListNamedSecrets pages through the secrets ordered by name, without
	// their values.
	ListNamedSecrets(ctx context.Context, p Page) (secrets []NamedSecret, nextCursor string, err error)
	// DeleteNamedSecret removes a named secret; ErrNotFound when there is
	// none.
	DeleteNamedSecret(ctx context.Context, name string) error
}
