package pgtest_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestDSNGivesFreshDatabases(t *testing.T) {
	var names []string
	for range 2 {
		dsn := pgtest.DSN(t)
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimPrefix(u.Path, "/")
		names = append(names, name)
		conn, err := pgx.Connect(t.Context(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		var current string
		var tables int
		err = conn.QueryRow(t.Context(), `SELECT current_database(),
			(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public')`).Scan(&current, &tables)
		conn.Close(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if current != name || tables != 0 {
			t.Errorf("connected to %q with %d tables; want %q, empty", current, tables, name)
		}
	}
	if names[0] == names[1] {
		t.Errorf("two DSN calls gave the same database %q", names[0])
	}
}

func TestDatabaseDroppedAfterTest(t *testing.T) {
	var name string
	t.Run("inner", func(t *testing.T) {
		u, _ := url.Parse(pgtest.DSN(t))
		name = strings.TrimPrefix(u.Path, "/")
	})
	conn, err := pgx.Connect(t.Context(), pgtest.ClusterDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT COUNT(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test", name)
	}
}
