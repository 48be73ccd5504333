package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// A write that panics fails alone: its caller gets an error, the writes
// grouped with it are committed, and the committer goes on serving.
func TestGroupCommitSurvivesAPanickingWrite(t *testing.T) {
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "g.db")+"?_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(`CREATE TABLE t (n INTEGER PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	g := newGroupCommitter(db)
	t.Cleanup(g.close)
	insert := func(n int) txWork {
		return func(ctx context.Context, tx *sql.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO t (n) VALUES (?)`, n)
			return err
		}
	}
	errs := make([]error, 10)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			work := insert(i)
			if i == 3 {
				work = func(context.Context, *sql.Tx) error { panic("a bug") }
			}
			errs[i] = g.do(t.Context(), work)
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case i == 3 && (err == nil || !strings.Contains(err.Error(), "a bug")):
			t.Errorf("the panicking write answered %v", err)
		case i != 3 && err != nil:
			t.Errorf("write %d: %v", i, err)
		}
	}
	if err := g.do(t.Context(), insert(100)); err != nil {
		t.Fatalf("a write after the panic: %v", err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 10 {
		t.Errorf("%d rows, %v; want 10 (nine writes and the one after)", n, err)
	}
	// A write handed over after close is refused, not left waiting.
	g.close()
	if err := g.do(t.Context(), insert(200)); !errors.Is(err, errStoreClosed) {
		t.Errorf("a write after close: %v, want errStoreClosed", err)
	}
}
