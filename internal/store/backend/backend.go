// Package backend opens the store a DSN names, so that callers (the
// server, the admin commands) need not know which backends exist.
package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/jobqueue"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/sqlite"
)

// Backupper is a store that can copy itself while in use. Both backends
// implement it; only SQLite succeeds, PostgreSQL explains which tools to
// use instead.
type Backupper interface {
	// Backup writes a consistent copy of the database to dest, which
	// must not exist.
	Backup(ctx context.Context, dest string) error
}

// Store is a store.Store as Open returns it, with what only the backend
// can build on its own database.
type Store interface {
	store.Store
	Backupper
	// OpenQueue migrates the job queue's tables and builds the queue on
	// the store's database, with the River driver that fits its pool. The
	// store then inserts its commits' wakes through it, in the commit's
	// transaction; the flow engine starts and stops its worker. Each call
	// builds a new queue (one per engine); the last one opened schedules.
	OpenQueue(ctx context.Context, log *slog.Logger) (*jobqueue.Queue, error)
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// Open opens and migrates the database named by dsn:
//
//	sqlite:PATH              a SQLite file (sqlite://PATH is accepted too)
//	postgres://…             PostgreSQL
//	postgresql://…           PostgreSQL
func Open(ctx context.Context, dsn string, opts store.Options) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		// sqlite://x.db and sqlite:///abs/x.db are common spellings of
		// sqlite:x.db and sqlite:/abs/x.db.
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, errors.New("database DSN sqlite: needs a file path, e.g. sqlite:./flowgate.db")
		}
		s, err := sqlite.Open(ctx, path, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		s, err := postgres.Open(ctx, dsn, opts)
		if err != nil {
			return nil, err
		}
		return s, nil
	}
	// Only the scheme is echoed: the rest may hold a password.
	scheme, _, ok := strings.Cut(dsn, ":")
	if !ok || strings.ContainsAny(scheme, "/@ ") {
		scheme = "(none)"
	}
	return nil, fmt.Errorf("unsupported database DSN scheme %q: use sqlite:PATH or postgres://USER@HOST:PORT/DB", scheme)
}

// Backup copies s to dest when its backend can.
func Backup(ctx context.Context, s store.Store, dest string) error {
	b, ok := s.(Backupper)
	if !ok {
		return fmt.Errorf("backup: the %s backend cannot back itself up", s.Backend())
	}
	return b.Backup(ctx, dest)
}
