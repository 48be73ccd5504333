package odata_test

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the PostgreSQL driver, for the bulk insert
	_ "modernc.org/sqlite"             // the SQLite driver, for the bulk insert

	"github.com/flowgate/flowgate/internal/store"
)

const largeRows = 100_000

// TestDataAPILargeTable reads filtered pages of a 100,000-instance table
// through the independent client on both backends: every matching row
// arrives once, the database answers each page (its plan is logged and
// must use an index), and the rows per second are logged.
func TestDataAPILargeTable(t *testing.T) {
	if testing.Short() {
		t.Skip("inserts 100,000 instances")
	}
	for name, database := range backends(t) {
		t.Run(name, func(t *testing.T) {
			dsn := database(t, t.TempDir())
			e := start(t, dsn)
			boss := e.token(t, "boss", "data.read admin")
			base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			began := time.Now()
			bulkInsert(t, name, dsn, base)
			t.Logf("%s: inserted %d instances in %v", name, largeRows, time.Since(began).Round(time.Millisecond))

			// Instance n: status completed when n%10 is 1, 2 or 3;
			// started base + n ms; amount n.
			from := 10_000
			wantCompleted := 0
			for n := from; n < largeRows; n++ {
				if m := n % 10; m >= 1 && m <= 3 {
					wantCompleted++
				}
			}
			since := base.Add(time.Duration(from) * time.Millisecond)
			filter := map[string]any{"Status": "completed", "StartedAt": map[string]any{"ge": map[string]any{"$date": since.Format(time.RFC3339Nano)}}}
			odataURL := e.base + "/odata/v4"
			res := peer(t, []req{
				{Name: "filtered", Base: odataURL, Token: boss, Path: "expense_report", Follow: true, Summary: true,
					Query: map[string]any{"filter": filter, "select": []string{"Id", "amount", "Status"}, "count": true}},
				{Name: "all", Base: odataURL, Token: boss, Path: "expense_report", Follow: true, Summary: true,
					Query: map[string]any{"filter": map[string]any{"amount": map[string]any{"ge": 0}}, "select": []string{"Id", "amount"}}},
				{Name: "count", Base: odataURL, Token: boss, Path: "Instances/$count",
					Query: map[string]any{"filter": map[string]any{"Status": "failed"}}},
			})
			r := res["filtered"]
			if r.Status != 200 || r.RowCount != wantCompleted || r.Distinct != wantCompleted || r.Count == nil || int(*r.Count) != wantCompleted {
				t.Fatalf("filtered read: %d, %d rows (%d distinct), count %v; want %d", r.Status, r.RowCount, r.Distinct, r.Count, wantCompleted)
			}
			for i, c := range r.PageCounts {
				if int(c) != wantCompleted {
					t.Errorf("filtered read: page %d says @odata.count %v, want %d", i+1, c, wantCompleted)
					break
				}
			}
			if want := (wantCompleted + 999) / 1000; r.Pages != want {
				t.Errorf("filtered read: %d pages, want %d of at most 1,000 rows", r.Pages, want)
			}
			t.Logf("%s: filtered read of the %d-instance table: %d rows in %d pages, %d ms, %.0f rows/s",
				name, largeRows, r.RowCount, r.Pages, r.Ms, float64(r.RowCount)/(float64(max(r.Ms, 1))/1000))
			a := res["all"]
			if a.Status != 200 || a.RowCount != largeRows || a.Distinct != largeRows || a.Pages != largeRows/1000 {
				t.Fatalf("read of every row: %d, %d rows (%d distinct) in %d pages", a.Status, a.RowCount, a.Distinct, a.Pages)
			}
			t.Logf("%s: filtered read of all %d instances (a filter on an input field): %d pages, %d ms, %.0f rows/s",
				name, largeRows, a.Pages, a.Ms, float64(a.RowCount)/(float64(max(a.Ms, 1))/1000))
			if c := res["count"]; c.Count == nil || int(*c.Count) != largeRows/10 {
				t.Errorf("/$count of failed instances: %v, want %d", c.Count, largeRows/10)
			}

			// The plan of a filtered page in the middle, as the service asks it.
			plan, err := e.srv.Store.ExplainData(context.Background(), store.DataQuery{
				Set: store.DataInstances, Workflow: "expense-report",
				Filter: store.DataAnd{L: store.DataCompare{Field: "Status", Op: store.OpEq, Value: "completed"},
					R: store.DataCompare{Field: "StartedAt", Op: store.OpGe, Value: since}},
				Select: []string{"Id", "Status"}, Limit: 1001, After: []any{"01940000-0000-7000-8000-000000050000"},
				Scope: store.DataScope{All: true}})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: query plan of a filtered page:\n%s", name, plan)
			if !strings.Contains(strings.ToLower(plan), "index") {
				t.Errorf("the filtered page does not use an index:\n%s", plan)
			}
		})
	}
}

// bulkInsert writes largeRows instances of expense-report straight into
// the database, in multi-row INSERTs in one transaction.
func bulkInsert(t *testing.T, backend, dsn string, base time.Time) {
	t.Helper()
	driver, source := "pgx", dsn
	if backend == "sqlite" {
		driver, source = "sqlite", strings.TrimPrefix(dsn, "sqlite:")+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	const chunk = 500
	const cols = 8
	for startN := 0; startN < largeRows; startN += chunk {
		var b strings.Builder
		b.WriteString(`INSERT INTO instances (id, workflow, version, status, started_by, input, started_at, updated_at) VALUES `)
		args := make([]any, 0, chunk*cols)
		for n := startN; n < startN+chunk; n++ {
			if n > startN {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for c := range cols {
				if c > 0 {
					b.WriteString(", ")
				}
				if backend == "sqlite" {
					b.WriteString("?")
				} else {
					b.WriteString("$" + strconv.Itoa(len(args)+c+1))
				}
			}
			b.WriteString(")")
			status := store.StatusWaiting
			switch n % 10 {
			case 0:
				status = store.StatusFailed
			case 1, 2, 3:
				status = store.StatusCompleted
			}
			at := base.Add(time.Duration(n) * time.Millisecond).UnixMicro()
			args = append(args, fmt.Sprintf("01940000-0000-7000-8000-%012d", n), "expense-report", 1, status, "client:other",
				fmt.Sprintf(`{"amount": %d, "items": %d, "note": "bulk-%d", "urgent": %t}`, n, n%7, n, n%2 == 0), at, at)
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			t.Fatalf("insert at %d: %v", startN, err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	// Fresh statistics, as autovacuum would have them after a while.
	if backend == "sqlite" {
		_, err = db.ExecContext(ctx, "ANALYZE")
	} else {
		_, err = db.ExecContext(ctx, "ANALYZE instances")
	}
	if err != nil {
		t.Fatal(err)
	}
}
