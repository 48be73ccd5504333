// Package sqlite is Flowgate's embedded backend: one SQLite file in WAL
// mode through modernc.org/sqlite (pure Go, no cgo).
//
// SQLite allows one writer at a time. Rather than let concurrent writers
// collide and retry on SQLITE_BUSY, all writes go through a single
// connection, so database/sql queues them in the process; busy_timeout
// only covers other processes (admin commands run while the server is up).
// Reads use a separate pool and, thanks to WAL, never wait for the writer.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/jobqueue"
	"github.com/flowgate/flowgate/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

const (
	// busyTimeoutMS is how long a statement waits for another process's
	// lock before failing with SQLITE_BUSY.
	busyTimeoutMS = "5000"
	// common pragmas for every connection. foreign_keys is per connection
	// in SQLite and off by default.
	commonParams = "_pragma=busy_timeout(" + busyTimeoutMS + ")&_pragma=foreign_keys(1)"
	// The writer also switches the file to WAL (persistent, so readers
	// need not) and to synchronous=NORMAL, which in WAL mode cannot
	// corrupt the database and loses at most the last commits on power
	// failure. _txlock=immediate takes the write lock at BEGIN, so a
	// transaction never fails half-way on a lock upgrade.
	writerParams = commonParams + "&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
)

// Store is the SQLite store.Store, with online backup on top.
type Store struct {
	*sqlstore.Store
	path string
}

// Open opens (creating if needed) the SQLite database at path and applies
// pending migrations.
func Open(ctx context.Context, path string, opts store.Options) (*Store, error) {
	if opts.Sealer == nil {
		return nil, errors.New("open sqlite database: options need a Sealer")
	}
	if err := checkPath(path, opts.MustExist); err != nil {
		return nil, err
	}

	write, err := sql.Open("sqlite", path+"?"+writerParams)
	if err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	if opts.MustExist {
		// A file that exists but holds no schema (empty, or another
		// program's) is not a Flowgate database yet either.
		if err := sqlstore.CheckMigrated(ctx, write, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?"); err != nil {
			_ = write.Close()
			return nil, fmt.Errorf("sqlite database %s: %w", path, err)
		}
	}
	migrate := sqlstore.Migrate
	if opts.NoMigrate {
		migrate = sqlstore.MigratedVersion
	}
	version, err := migrate(ctx, write, goose.DialectSQLite3, fsys)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}

	read, err := sql.Open("sqlite", path+"?"+commonParams)
	if err != nil {
		_ = write.Close()
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	read.SetConnMaxIdleTime(0)

	s, err := sqlstore.New(ctx, sqlstore.Config{
		Read:  read,
		Write: write,
		Dialect: sqlstore.Dialect{
			Name:              "sqlite",
			IsUniqueViolation: isUniqueViolation,
			Prepare:           true,
		},
		Sealer:        opts.Sealer,
		GroupCommit:   true,
		SchemaVersion: version,
	})
	if err != nil {
		_ = read.Close()
		_ = write.Close()
		return nil, fmt.Errorf("sqlite database %s: %w", path, err)
	}
	return &Store{Store: s, path: path}, nil
}

// checkPath turns the usual ways a path cannot hold a database into one
// error that names it, before SQLite reports "unable to open database
// file (14)" without saying which. With mustExist a missing file is
// store.ErrNoDatabase, and no file is created.
func checkPath(path string, mustExist bool) error {
	if path == "" {
		return errors.New("sqlite database: empty path")
	}
	if strings.ContainsAny(path, "?#") {
		// modernc splits the DSN at '?'; refuse rather than open a
		// different file than the one named.
		return fmt.Errorf("sqlite database %s: path must not contain '?' or '#'", path)
	}
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("sqlite database %s: directory %s does not exist", path, dir)
	case err != nil:
		return fmt.Errorf("sqlite database %s: %w", path, unwrapPath(err))
	case !st.IsDir():
		return fmt.Errorf("sqlite database %s: %s is not a directory", path, dir)
	}
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return fmt.Errorf("sqlite database %s: is a directory", path)
	}
	// Opening for writing is the only reliable test: permissions, a
	// read-only mount, ACLs. SQLite would create the file anyway.
	flags := os.O_RDWR | os.O_CREATE
	if mustExist {
		flags = os.O_RDWR
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if mustExist && errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sqlite database %s: %w", path, store.ErrNoDatabase)
	}
	if err != nil {
		return fmt.Errorf("sqlite database %s: cannot open for writing: %w", path, unwrapPath(err))
	}
	return f.Close()
}

// unwrapPath drops the *fs.PathError wrapper, whose message repeats the
// path the caller's message already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// Backup writes an online, consistent copy of the database to dest, which
// must not exist yet. Writers keep going while it runs: VACUUM INTO reads
// one WAL snapshot on a reader connection. The copy is written beside
// dest and renamed into place only when complete, so dest never holds a
// partial database.
func (s *Store) Backup(ctx context.Context, dest string) error {
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("backup to %s: file already exists", dest)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup to %s: %w", dest, unwrapPath(err))
	}
	dir := filepath.Dir(dest)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("backup to %s: directory %s does not exist", dest, dir)
	}
	tmp := filepath.Join(dir, "."+filepath.Base(dest)+".tmp-"+rand.Text()[:8])
	if strings.ContainsAny(tmp, "?#") {
		return fmt.Errorf("backup to %s: path must not contain '?' or '#'", dest)
	}
	if _, err := s.ReadDB().ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	// VACUUM INTO creates the file as any new file (0644 under the usual
	// umask); the copy holds what the database holds, so it gets the
	// database's permissions.
	if err := copyMode(s.path, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if err := syncFile(tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("backup to %s: %w", dest, unwrapPath(err))
	}
	if err := syncFile(dir); err != nil {
		return fmt.Errorf("backup to %s: sync directory: %w", dest, err)
	}
	return nil
}

// copyMode gives dst the permission bits of src.
func copyMode(src, dst string) error {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.Chmod(dst, st.Mode().Perm())
}

// syncFile flushes a file or directory to stable storage: VACUUM INTO
// does not, and a backup that vanishes on power loss is not one.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}

// Checkpoint moves the WAL into the main file and truncates it; tests use
// it to look at the bytes on disk, operators after a bulk import.
func (s *Store) Checkpoint(ctx context.Context) error {
	if _, err := s.WriteDB().ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return fmt.Errorf("checkpoint %s: %w", s.path, err)
	}
	return nil
}

// queuePollInterval is how often the job queue looks for due jobs: SQLite
// cannot notify it of new ones. Jobs are only timers, whose precision the
// engine's local timers already set.
const queuePollInterval = 500 * time.Millisecond

// OpenQueue migrates the job queue's tables and builds the queue on the
// single writer, so a wake is inserted in the transaction of the commit
// that asks for it. The store schedules its commits' wakes with the queue
// opened last.
func (s *Store) OpenQueue(ctx context.Context, log *slog.Logger) (*jobqueue.Queue, error) {
	driver := riversqlite.New(s.WriteDB())
	if err := jobqueue.Migrate(ctx, driver); err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", s.path, err)
	}
	q, err := jobqueue.New(jobqueue.Config{Driver: driver, Logger: log, PollInterval: queuePollInterval})
	if err != nil {
		return nil, fmt.Errorf("sqlite database %s: %w", s.path, err)
	}
	s.SetScheduler(q)
	return q, nil
}
