// Package sqlstore is the one implementation of store.Store over
// database/sql. The SQLite and PostgreSQL backends differ only in how they
// open and migrate the database and in a small Dialect; every query is
// written once, here.
//
// Conventions shared by both schemas:
//
//   - Times are BIGINT unix microseconds (UTC by definition). One integer
//     type compares and orders identically in both databases, needs no
//     driver-specific time parsing (modernc's text time formats do not sort
//     correctly across fractional-second widths), and keeps the same
//     microsecond precision as PostgreSQL's TIMESTAMPTZ. Times come back as
//     time.Time in UTC, truncated to the microsecond.
//   - String lists (roles, scopes, redirect URIs…) are JSON arrays in TEXT
//     columns; nothing queries inside them.
//   - Keys that are listed in order (username, client id) use byte order
//     (PostgreSQL columns are COLLATE "C"), so pages come out the same on
//     both backends.
//   - Queries use ? placeholders; Dialect.Rebind turns them into $n once,
//     when the Store is built, not on every call.
package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/flowgate/flowgate/internal/store"
)

// Dialect is what differs between database engines at query time.
type Dialect struct {
	// Name is what store.Store.Backend reports: "sqlite" or "postgres".
	Name string
	// Rebind rewrites ? placeholders for the engine; nil keeps them.
	Rebind func(query string) string
	// IsUniqueViolation reports whether err is a primary-key or unique
	// constraint violation, which the store turns into store.ErrConflict.
	IsUniqueViolation func(err error) bool
	// Prepare makes the Store prepare its hot statements once. SQLite
	// wants this: modernc compiles every statement on every call
	// otherwise. pgx already caches prepared statements per connection,
	// and explicit ones would outlive a schema change made by a newer
	// server during a rolling upgrade, so PostgreSQL leaves it off.
	Prepare bool
	// DataModifyingCTE says the engine runs INSERT inside WITH
	// (PostgreSQL), which lets a new instance and its step records be
	// written by one statement.
	DataModifyingCTE bool
}

// Config is everything New needs.
type Config struct {
	// Read serves queries; Write serves every statement that changes data.
	// They are the same *sql.DB for PostgreSQL; SQLite uses a pool of
	// readers and a single writer connection.
	Read, Write *sql.DB
	Dialect     Dialect
	// Sealer encrypts secret values. Required.
	Sealer store.Sealer
	// GroupCommit makes the instance writes of concurrent callers share
	// one transaction. For a database that writes one transaction at a
	// time (SQLite), where it saves a commit per instance; PostgreSQL runs
	// concurrent transactions side by side and leaves it off.
	GroupCommit bool
	// SchemaVersion is the migration version this code needs; Ping fails
	// while the database is older.
	SchemaVersion int64
	// VersionTable is goose's bookkeeping table; empty means
	// "goose_db_version".
	VersionTable string
}

// Store implements store.Store. Its methods are safe for concurrent use.
type Store struct {
	read, write   *sql.DB
	dialect       Dialect
	sealer        store.Sealer
	schemaVersion int64
	q             queries
	// Prepared statements; nil unless Dialect.Prepare.
	getUserStmt, getClientStmt, insertAuditStmt *sql.Stmt
	// The commit statements of flows (see flows.go); upsertStepsStmt[n]
	// writes n step records, [0] is unused.
	insertInstanceStmt, updateInstanceStmt *sql.Stmt
	upsertStepsStmt                        [stepBatch + 1]*sql.Stmt
	// insertAuditRowsStmt[i] writes 2<<i audit events (see auditSizes).
	insertAuditRowsStmt [auditSizes]*sql.Stmt
	// scheduler is what SetScheduler installed; nil until then.
	scheduler atomic.Pointer[schedulerRef]
	// group batches instance writes; nil unless Config.GroupCommit.
	group *groupCommitter
}

var _ store.Store = (*Store)(nil)

// New builds a Store over databases whose schema is already migrated.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Read == nil || cfg.Write == nil {
		return nil, errors.New("sqlstore: read and write databases are required")
	}
	if cfg.Sealer == nil {
		return nil, errors.New("sqlstore: a sealer is required to store secrets")
	}
	if cfg.Dialect.Name == "" || cfg.Dialect.IsUniqueViolation == nil {
		return nil, errors.New("sqlstore: dialect needs a name and IsUniqueViolation")
	}
	table := cfg.VersionTable
	if table == "" {
		table = "goose_db_version"
	}
	s := &Store{
		read:          cfg.Read,
		write:         cfg.Write,
		dialect:       cfg.Dialect,
		sealer:        cfg.Sealer,
		schemaVersion: cfg.SchemaVersion,
		q:             buildQueries(cfg.Dialect.Rebind, table),
	}
	if cfg.Dialect.Prepare {
		var err error
		if s.getUserStmt, err = s.read.PrepareContext(ctx, s.q.getUser); err != nil {
			return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare get user: %w", err))
		}
		if s.getClientStmt, err = s.read.PrepareContext(ctx, s.q.getClient); err != nil {
			return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare get client: %w", err))
		}
		if s.insertAuditStmt, err = s.write.PrepareContext(ctx, s.q.insertAudit); err != nil {
			return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare insert audit: %w", err))
		}
		if s.insertInstanceStmt, err = s.write.PrepareContext(ctx, s.q.flows.insertInstance); err != nil {
			return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare insert instance: %w", err))
		}
		if s.updateInstanceStmt, err = s.write.PrepareContext(ctx, s.q.flows.updateInstance); err != nil {
			return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare update instance: %w", err))
		}
		for n := 1; n < len(s.upsertStepsStmt); n++ {
			if s.upsertStepsStmt[n], err = s.write.PrepareContext(ctx, s.q.flows.upsertSteps[n]); err != nil {
				return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare upsert steps: %w", err))
			}
		}
		for i, q := range s.q.insertAuditRows {
			if s.insertAuditRowsStmt[i], err = s.write.PrepareContext(ctx, q); err != nil {
				return nil, s.closeAfter(fmt.Errorf("sqlstore: prepare insert audit rows: %w", err))
			}
		}
	}
	if cfg.GroupCommit {
		s.group = newGroupCommitter(s.write)
	}
	return s, nil
}

// closeAfter closes any statements prepared so far and returns err; the
// databases belong to the caller until New succeeds.
func (s *Store) closeAfter(err error) error {
	s.closeStmts()
	return err
}

func (s *Store) closeStmts() {
	for _, st := range append([]*sql.Stmt{s.getUserStmt, s.getClientStmt, s.insertAuditStmt,
		s.insertInstanceStmt, s.updateInstanceStmt}, s.upsertStepsStmt[1:]...) {
		if st != nil {
			_ = st.Close()
		}
	}
	for _, st := range s.insertAuditRowsStmt {
		if st != nil {
			_ = st.Close()
		}
	}
}

// ReadDB is the database queries go to, for backend-specific extras.
func (s *Store) ReadDB() *sql.DB { return s.read }

// WriteDB is the database changes go to, for backend-specific extras.
func (s *Store) WriteDB() *sql.DB { return s.write }

// Backend names the engine.
func (s *Store) Backend() string { return s.dialect.Name }

// Ping checks that the database answers and that migrations up to the
// version this code needs have been applied. A newer schema is accepted:
// during a rolling upgrade an older server keeps running on it.
func (s *Store) Ping(ctx context.Context) error {
	var v sql.NullInt64
	if err := s.read.QueryRowContext(ctx, s.q.schemaVersion).Scan(&v); err != nil {
		return fmt.Errorf("ping %s database: %w", s.dialect.Name, err)
	}
	if v.Int64 < s.schemaVersion {
		return fmt.Errorf("ping %s database: schema version %d, need %d: migrations have not run", s.dialect.Name, v.Int64, s.schemaVersion)
	}
	return nil
}

// Stats adds up the reader and writer pools when they differ.
func (s *Store) Stats() store.PoolStats {
	st := poolStats(s.read.Stats())
	if s.write != s.read {
		w := poolStats(s.write.Stats())
		st.MaxOpen += w.MaxOpen
		st.Open += w.Open
		st.InUse += w.InUse
		st.Idle += w.Idle
		st.WaitCount += w.WaitCount
		st.WaitDuration += w.WaitDuration
	}
	return st
}

func poolStats(d sql.DBStats) store.PoolStats {
	return store.PoolStats{
		MaxOpen:      d.MaxOpenConnections,
		Open:         d.OpenConnections,
		InUse:        d.InUse,
		Idle:         d.Idle,
		WaitCount:    d.WaitCount,
		WaitDuration: d.WaitDuration,
	}
}

// Close closes the statements and both databases.
func (s *Store) Close() error {
	if s.group != nil {
		s.group.close()
	}
	s.closeStmts()
	err := s.read.Close()
	if s.write != s.read {
		err = errors.Join(err, s.write.Close())
	}
	return err
}

// conflict maps a unique violation to store.ErrConflict, keeping the
// driver error in the chain for logs.
func (s *Store) conflict(err error) error {
	if err != nil && s.dialect.IsUniqueViolation(err) {
		return fmt.Errorf("%w: %w", store.ErrConflict, err)
	}
	return err
}

// RebindDollar rewrites ? placeholders to PostgreSQL's $1, $2… It skips
// quoted literals and identifiers so that a literal question mark survives.
func RebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
