// Package postgres is Flowgate's PostgreSQL backend, for several flowgate
// processes sharing one database behind a load balancer. It runs on a
// pgx connection pool; database/sql sits on top of that pool for the
// shared queries in package sqlstore, and the pool itself stays reachable
// for features that need pgx directly (LISTEN/NOTIFY, a job queue).
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/jobqueue"
	"github.com/flowgate/flowgate/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// defaultConnectTimeout bounds connecting when the DSN sets no
// connect_timeout, so an unreachable host fails start-up instead of
// hanging it.
const defaultConnectTimeout = 10 * time.Second

// uniqueViolation is SQLSTATE unique_violation.
const uniqueViolation = "23505"

// ErrBackupUnsupported is returned by Backup: a PostgreSQL database is
// backed up with PostgreSQL's own tools.
var ErrBackupUnsupported = errors.New("flowgate backup copies SQLite databases only; back up PostgreSQL with pg_dump, or continuous archiving and point-in-time recovery (pg_basebackup + WAL archiving)")

// Store is the PostgreSQL store.Store.
type Store struct {
	*sqlstore.Store
	pool *pgxpool.Pool
}

// Open connects to the database at dsn (postgres:// or postgresql://)
// and applies pending migrations. Several servers may open the same
// database at once: migrations run under a PostgreSQL advisory lock, so
// one applies them and the others wait.
func Open(ctx context.Context, dsn string, opts store.Options) (*Store, error) {
	if opts.Sealer == nil {
		return nil, errors.New("open postgres database: options need a Sealer")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres database: invalid DSN: %s", redact(err.Error(), dsn))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	where := describe(cfg)

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres database %s: %s", where, redact(err.Error(), dsn))
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres database %s: cannot connect: %w", where, redactedError{err, dsn})
	}

	// OpenDBFromPool keeps no idle database/sql connections: an idle one
	// would hold a pool connection that direct pool users then starve for.
	db := stdlib.OpenDBFromPool(pool)
	db.SetMaxOpenConns(int(cfg.MaxConns))

	fail := func(err error) (*Store, error) {
		_ = db.Close()
		pool.Close()
		return nil, fmt.Errorf("postgres database %s: %w", where, err)
	}
	// Poll for the lock every second (goose's default is every 5 s) for up
	// to the default 5 minutes: servers started together wait about as
	// long as the migration takes, not 5 s more.
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 300))
	if err != nil {
		return fail(err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fail(err)
	}
	if opts.MustExist {
		// The database itself exists (we are connected to it); one that
		// was never migrated holds nothing of Flowgate's yet.
		if err := sqlstore.CheckMigrated(ctx, db, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1"); err != nil {
			return fail(err)
		}
	}
	migrate := sqlstore.Migrate
	if opts.NoMigrate {
		migrate = sqlstore.MigratedVersion
	}
	version, err := migrate(ctx, db, goose.DialectPostgres, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fail(err)
	}
	s, err := sqlstore.New(ctx, sqlstore.Config{
		Read:  db,
		Write: db,
		Dialect: sqlstore.Dialect{
			Name:              "postgres",
			Rebind:            sqlstore.RebindDollar,
			IsUniqueViolation: isUniqueViolation,
			DataModifyingCTE:  true,
		},
		Sealer:        opts.Sealer,
		SchemaVersion: version,
	})
	if err != nil {
		return fail(err)
	}
	return &Store{Store: s, pool: pool}, nil
}

// Pool is the pgx pool under the store, for work that needs pgx itself.
// It is closed by Close.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// queueMigrationLock is the session advisory lock that serializes the job
// queue's migrations: any constant shared by all Flowgate servers, distinct
// from goose's lock.
const queueMigrationLock = 7302201

// OpenQueue migrates the job queue's tables and builds the queue: jobs go
// through database/sql, so a wake is inserted in the store's own commit
// transaction, and pgx only LISTENs, so jobs start without a poll. The
// store schedules its commits' wakes with the queue opened last.
func (s *Store) OpenQueue(ctx context.Context, log *slog.Logger) (*jobqueue.Queue, error) {
	driver := riverdatabasesql.NewWithPgxListener(s.WriteDB(), s.pool)
	if err := s.migrateQueue(ctx, driver); err != nil {
		return nil, fmt.Errorf("postgres database: %w", err)
	}
	q, err := jobqueue.New(jobqueue.Config{Driver: driver, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("postgres database: %w", err)
	}
	s.SetScheduler(q)
	return q, nil
}

// migrateQueue runs the job queue's migrations under a session advisory
// lock, held on a connection of its own, so servers starting together do
// not race: River's migrations cannot share one transaction (a later one
// uses an enum value an earlier one adds).
func (s *Store) migrateQueue(ctx context.Context, driver jobqueue.Driver) error {
	conn, err := s.WriteDB().Conn(ctx)
	if err != nil {
		return fmt.Errorf("job queue migrations: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock($1)", queueMigrationLock); err != nil {
		return fmt.Errorf("job queue migrations: lock: %w", err)
	}
	defer func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", queueMigrationLock)
	}()
	return jobqueue.Migrate(ctx, driver)
}

// Stats describes the pgx pool, which database/sql and direct pool users
// share, so it is the number that matters for exhaustion.
func (s *Store) Stats() store.PoolStats {
	st := s.pool.Stat()
	return store.PoolStats{
		MaxOpen:      int(st.MaxConns()),
		Open:         int(st.TotalConns()),
		InUse:        int(st.AcquiredConns()),
		Idle:         int(st.IdleConns()),
		WaitCount:    st.EmptyAcquireCount(),
		WaitDuration: st.EmptyAcquireWaitTime(),
	}
}

// Close closes the database/sql layer, then the pool under it.
func (s *Store) Close() error {
	err := s.Store.Close()
	s.pool.Close()
	return err
}

// Backup always fails: see ErrBackupUnsupported.
func (s *Store) Backup(ctx context.Context, dest string) error {
	return fmt.Errorf("backup to %s: %w", dest, ErrBackupUnsupported)
}

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == uniqueViolation
}

// describe names the server and database for error messages, never the
// password.
func describe(cfg *pgxpool.Config) string {
	c := cfg.ConnConfig
	host := c.Host
	if strings.HasPrefix(host, "/") {
		host = "unix:" + host
	}
	return fmt.Sprintf("%s (database %q, user %q)", net.JoinHostPort(host, strconv.Itoa(int(c.Port))), c.Database, c.User)
}

// redact removes the DSN's password from msg. pgx already masks
// passwords it recognises; this catches what its best-effort parser
// cannot, for a DSN that is malformed in an unexpected way.
func redact(msg, dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
			if esc := url.QueryEscape(pw); esc != pw {
				msg = strings.ReplaceAll(msg, esc, "xxxxx")
			}
		}
	}
	return msg
}

// redactedError keeps the error chain (errors.Is on context errors and
// net errors still works) while its message goes through redact.
type redactedError struct {
	err error
	dsn string
}

// Error is the wrapped message without the password.
func (e redactedError) Error() string { return redact(e.err.Error(), e.dsn) }

// Unwrap exposes the driver's error to errors.Is and errors.As.
func (e redactedError) Unwrap() error { return e.err }
