package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/prereq"
	"github.com/jackc/pgx/v5"
)

// EnvDSN names the variable that hands tests a running cluster.
const EnvDSN = "FLOWGATE_TEST_POSTGRES"

// private is the cluster this test binary started itself, once. It is the
// package's only state, guarded by its once; Main reads it to stop the
// cluster.
var private struct {
	once    sync.Once
	managed bool // set by Main before any test runs
	cluster *Cluster
	err     error
}

// Main runs the tests and stops the private cluster, if one was started.
// Use it as the package's TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M) { os.Exit(Run(m)) }

// Run is Main for a TestMain that has its own cleanup to do: it runs the
// tests, stops the private cluster and returns the exit code.
func Run(m *testing.M) int {
	private.managed = true
	code := m.Run()
	if private.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := private.cluster.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		cancel()
	}
	return code
}

// ClusterDSN returns the superuser DSN of the cluster tests use, starting
// the private one if needed. Without binaries it fails the test when
// CI=true and skips it otherwise.
func ClusterDSN(t testing.TB) string {
	t.Helper()
	if dsn := os.Getenv(EnvDSN); dsn != "" {
		return dsn
	}
	if !private.managed {
		t.Fatalf("pgtest: %s is unset and the test binary has no TestMain calling pgtest.Main, which would stop the cluster it starts", EnvDSN)
	}
	private.once.Do(func() {
		dir, err := os.MkdirTemp("", "pgtest-")
		if err != nil {
			private.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		private.cluster, private.err = Start(ctx, dir)
		if private.err != nil {
			_ = os.RemoveAll(dir)
		}
	})
	if errors.Is(private.err, ErrNoBinaries) {
		prereq.Missing(t, "skipping PostgreSQL test: %v; install PostgreSQL or set %s", private.err, EnvDSN)
	}
	if private.err != nil {
		t.Fatal(private.err)
	}
	return private.cluster.DSN
}

// DSN creates a fresh, empty database for this test and returns its DSN.
// The database is dropped when the test ends.
func DSN(t testing.TB) string {
	t.Helper()
	admin := ClusterDSN(t)
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("pgtest: %s must be a postgres:// URL", EnvDSN)
	}
	name := "flowgate_test_" + rand.Text()[:12]
	// rand.Text is upper-case base32; PostgreSQL folds unquoted names to
	// lower case, so quote it consistently instead.
	ident := pgx.Identifier{name}.Sanitize()

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := adminExec(ctx, admin, "CREATE DATABASE "+ident); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE ends connections a test forgot to close.
		if err := adminExec(ctx, admin, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			t.Logf("pgtest: drop database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	return u.String()
}

func adminExec(ctx context.Context, dsn, sql string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}
