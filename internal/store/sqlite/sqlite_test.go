package sqlite_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

func open(tb testing.TB, path string) *sqlite.Store {
	tb.Helper()
	s, err := sqlite.Open(context.Background(), path, store.Options{Sealer: storetest.NewSealer(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(tb testing.TB) *sqlite.Store {
	return open(tb, filepath.Join(tb.TempDir(), "flowgate.db"))
}

func TestConformance(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) store.Store { return newStore(t) })
}

func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return newStore(b) })
}

func TestPragmas(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	for _, db := range []*sql.DB{s.ReadDB(), s.WriteDB()} {
		var mode string
		var fk, busy int
		if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA foreign_keys").Scan(&fk); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "PRAGMA busy_timeout").Scan(&busy); err != nil {
			t.Fatal(err)
		}
		if mode != "wal" || fk != 1 || busy < 1000 {
			t.Errorf("journal_mode=%s foreign_keys=%d busy_timeout=%d; want wal, 1, >=1000", mode, fk, busy)
		}
	}
	var sync int
	if err := s.WriteDB().QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	if sync != 1 {
		t.Errorf("writer synchronous = %d, want 1 (NORMAL)", sync)
	}
	if n := s.WriteDB().Stats().MaxOpenConnections; n != 1 {
		t.Errorf("writer MaxOpenConnections = %d, want 1", n)
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	sealer := storetest.NewSealer(t)
	ctx := t.Context()
	s, err := sqlite.Open(ctx, path, store.Options{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateUser(ctx, store.User{Username: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSecret(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Migrations already applied must not run again.
	s, err = sqlite.Open(ctx, path, store.Options{Sealer: sealer})
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.GetUser(ctx, "alice"); err != nil {
		t.Error(err)
	}
	if v, err := s.GetSecret(ctx, "k"); err != nil || string(v) != "v" {
		t.Errorf("GetSecret = %q, %v", v, err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Error(err)
	}
}

func TestOpenErrorsNameThePath(t *testing.T) {
	dir := t.TempDir()
	notADB := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(notADB, bytes.Repeat([]byte("this is not a database "), 500), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing directory", filepath.Join(dir, "no", "such", "dir", "f.db"), "does not exist"},
		{"path is a directory", dir, "is a directory"},
		{"parent is a file", filepath.Join(notADB, "f.db"), "not a directory"},
		{"not a database", notADB, "not a database"},
		{"question mark", filepath.Join(dir, "a?b.db"), "must not contain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := sqlite.Open(t.Context(), tc.path, store.Options{Sealer: storetest.NewSealer(t)})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q: want the path %s and %q", err, tc.path, tc.want)
			}
			if strings.Count(err.Error(), tc.path) > 1 {
				t.Errorf("error %q repeats the path", err)
			}
		})
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(dir, "ro.db")
		if err := os.WriteFile(ro, nil, 0o400); err != nil {
			t.Fatal(err)
		}
		_, err := sqlite.Open(t.Context(), ro, store.Options{Sealer: storetest.NewSealer(t)})
		if err == nil || !strings.Contains(err.Error(), ro) || !strings.Contains(err.Error(), "cannot open for writing") {
			t.Errorf("read-only file: %v", err)
		}
	}
	if _, err := sqlite.Open(t.Context(), filepath.Join(dir, "x.db"), store.Options{}); err == nil {
		t.Error("Open without a Sealer succeeded")
	}
}

// TestSecretsAtRest looks at the raw bytes on disk: the main file after a
// checkpoint, and the WAL before one.
func TestSecretsAtRest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f.db")
	s := open(t, path)
	ctx := t.Context()
	const plain = "PLAINTEXT-MARKER-7f3a9c-do-not-store"
	if err := s.PutSecret(ctx, "marker", []byte(plain)); err != nil {
		t.Fatal(err)
	}
	// Check the WAL first: the secret is there before any checkpoint.
	wal, err := os.ReadFile(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if len(wal) == 0 {
		t.Fatal("WAL is empty: the test would not see the write")
	}
	if bytes.Contains(wal, []byte(plain)) {
		t.Error("plaintext secret found in the -wal file")
	}
	if err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(db, []byte("marker")) {
		t.Fatal("the secret's name is not in the database file: the checkpoint did not happen and the test proves nothing")
	}
	if bytes.Contains(db, []byte(plain)) {
		t.Error("plaintext secret found in the database file")
	}

	// The sealed value is bound to its name: copied under another name it
	// must not open.
	if _, err := s.WriteDB().ExecContext(ctx,
		"INSERT INTO secrets (name, sealed, updated_at) SELECT 'stolen', sealed, updated_at FROM secrets WHERE name = 'marker'"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSecret(ctx, "stolen"); err == nil {
		t.Errorf("a ciphertext copied to another name opened: %q", v)
	}
}

// TestBackupWhileWriting copies the database while a writer keeps
// appending, then checks the copy is a whole, consistent database.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := open(t, filepath.Join(dir, "live.db"))
	ctx := t.Context()
	for range 20 {
		batch := make([]store.AuditEvent, 50)
		for i := range batch {
			batch[i] = store.AuditEvent{Event: "seed", User: "alice", Outcome: "success"}
		}
		if err := s.AppendAudit(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}

	var (
		stop    atomic.Bool
		written atomic.Int64
		wg      sync.WaitGroup
		werr    error
	)
	wg.Go(func() {
		for !stop.Load() {
			batch := []store.AuditEvent{{Event: "live", User: "bob"}, {Event: "live", User: "carol"}}
			if err := s.AppendAudit(ctx, batch...); err != nil {
				werr = err
				return
			}
			written.Add(2)
		}
	})
	// Let the writer get going, so the backup really races it.
	for written.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	dest := filepath.Join(dir, "backup.db")
	berr := s.Backup(ctx, dest)
	during := written.Load()
	stop.Store(true)
	wg.Wait()
	if werr != nil {
		t.Fatalf("writer: %v", werr)
	}
	if berr != nil {
		t.Fatalf("Backup: %v", berr)
	}
	if during == 0 {
		t.Fatal("no writes happened")
	}

	if err := s.Backup(ctx, dest); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("Backup over an existing file: %v, want an error", err)
	}
	if err := s.Backup(ctx, filepath.Join(dir, "nope", "b.db")); err == nil {
		t.Error("Backup into a missing directory succeeded")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".backup.db.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left behind: %v", leftovers)
	}

	// The copy opens with the backend (migrations see it as current).
	b := open(t, dest)
	var integrity string
	if err := b.ReadDB().QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&integrity); err != nil {
		t.Fatal(err)
	}
	if integrity != "ok" {
		t.Errorf("integrity_check = %q", integrity)
	}
	var total, live, seed, maxID int64
	if err := b.ReadDB().QueryRowContext(ctx,
		"SELECT COUNT(*), COALESCE(SUM(event = 'live'), 0), COALESCE(SUM(event = 'seed'), 0), COALESCE(MAX(id), 0) FROM audit_events").
		Scan(&total, &live, &seed, &maxID); err != nil {
		t.Fatal(err)
	}
	if seed != 1000 {
		t.Errorf("backup has %d seed rows, want all 1000", seed)
	}
	// Consistent: batches are atomic, so live rows come in pairs, and a
	// snapshot has no holes in the id sequence.
	if live%2 != 0 {
		t.Errorf("backup has %d live rows: half a transaction", live)
	}
	if total != maxID {
		t.Errorf("backup has %d rows but ids up to %d", total, maxID)
	}
	var liveTotal int64
	if err := s.ReadDB().QueryRowContext(ctx, "SELECT COUNT(*) FROM audit_events").Scan(&liveTotal); err != nil {
		t.Fatal(err)
	}
	if total > liveTotal || total == 0 {
		t.Errorf("backup has %d rows, live database %d", total, liveTotal)
	}
	t.Logf("backup: %d rows (%d live) while the writer wrote %d", total, live, during)
}

func TestBackupErrorsOnClosedStore(t *testing.T) {
	s := newStore(t)
	_ = s.Close()
	err := s.Backup(t.Context(), filepath.Join(t.TempDir(), "b.db"))
	if err == nil {
		t.Fatal("Backup on a closed store succeeded")
	}
	if !errors.Is(err, sql.ErrConnDone) && !strings.Contains(err.Error(), "closed") {
		t.Logf("error: %v", err)
	}
}

// NoMigrate opens a database as it is: a migration it lacks stays
// unapplied (config check changes nothing), and the schema version says so.
func TestNoMigrateAppliesNothing(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "f.db")
	sealer := storetest.NewSealer(t)
	s, err := sqlite.Open(ctx, path, store.Options{Sealer: sealer})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Make the database look one migration behind.
	var latest int64
	if err := db.QueryRow(`SELECT max(version_id) FROM goose_db_version`).Scan(&latest); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM goose_db_version WHERE version_id = ?`, latest); err != nil {
		t.Fatal(err)
	}
	s, err = sqlite.Open(ctx, path, store.Options{Sealer: sealer, MustExist: true, NoMigrate: true})
	if err != nil {
		t.Fatalf("open as it is: %v", err)
	}
	s.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM goose_db_version WHERE version_id = ?`, latest).Scan(&n); err != nil || n != 0 {
		t.Errorf("migration %d applied by an open with NoMigrate (%d rows, %v)", latest, n, err)
	}
}
