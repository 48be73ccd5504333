package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"io/fs"

	"github.com/pressly/goose/v3"

	"github.com/flowgate/flowgate/internal/store"
)

// Migrate applies every pending migration in fsys (SQL files named
// NNNNN_name.sql at its root) and returns the newest version there, which
// is what Config.SchemaVersion should be. Each migration runs in its own
// transaction unless the file says otherwise.
func Migrate(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, opts ...goose.ProviderOption) (int64, error) {
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	// p.Close would close db, which belongs to the caller.
	if _, err := p.Up(ctx); err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	var latest int64
	for _, src := range p.ListSources() {
		latest = max(latest, src.Version)
	}
	return latest, nil
}

// MigratedVersion is the newest migration applied to db, applying
// nothing: Migrate's result for a database opened with NoMigrate.
func MigratedVersion(ctx context.Context, db *sql.DB, dialect goose.Dialect, fsys fs.FS, opts ...goose.ProviderOption) (int64, error) {
	p, err := goose.NewProvider(dialect, db, fsys, opts...)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	v, err := p.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: %w", err)
	}
	return v, nil
}

// CheckMigrated reports store.ErrNoDatabase when db has no migration table,
// that is when Flowgate never migrated it. query counts the tables named
// by its one parameter, in the backend's catalog.
func CheckMigrated(ctx context.Context, db *sql.DB, query string) error {
	var n int
	if err := db.QueryRowContext(ctx, query, goose.DefaultTablename).Scan(&n); err != nil {
		return fmt.Errorf("looking for the schema: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("%w (never migrated: it has no Flowgate schema)", store.ErrNoDatabase)
	}
	return nil
}
