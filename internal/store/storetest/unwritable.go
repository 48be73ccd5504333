package storetest

import (
	"context"
	"database/sql"
	"testing"
)

// RefuseAuditWrites makes the database refuse every insert into the audit
// table, for real: a trigger that raises, on SQLite and on PostgreSQL, as
// a full disk, a read-only file or a revoked grant would. The returned
// function drops the trigger, so inserts work again. st must be one of
// the SQL backends (it has WriteDB and Backend).
func RefuseAuditWrites(tb testing.TB, st interface {
	WriteDB() *sql.DB
	Backend() string
}) (allow func()) {
	tb.Helper()
	ddl := []string{`CREATE TRIGGER storetest_refuse_audit BEFORE INSERT ON audit_events
		BEGIN SELECT RAISE(ABORT, 'audit_events refuses inserts'); END`}
	drop := []string{`DROP TRIGGER storetest_refuse_audit`}
	if st.Backend() == "postgres" {
		ddl = []string{
			`CREATE OR REPLACE FUNCTION storetest_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS
				$$ BEGIN RAISE EXCEPTION 'audit_events refuses inserts'; END $$`,
			`CREATE TRIGGER storetest_refuse_audit BEFORE INSERT ON audit_events
				FOR EACH ROW EXECUTE FUNCTION storetest_refuse_audit()`,
		}
		drop = []string{`DROP TRIGGER storetest_refuse_audit ON audit_events`, `DROP FUNCTION storetest_refuse_audit()`}
	}
	exec := func(stmts []string) {
		tb.Helper()
		for _, q := range stmts {
			if _, err := st.WriteDB().ExecContext(context.Background(), q); err != nil {
				tb.Fatalf("%s: %v", q, err)
			}
		}
	}
	exec(ddl)
	return func() { tb.Helper(); exec(drop) }
}
