package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func open(tb testing.TB, dsn string) *postgres.Store {
	tb.Helper()
	s, err := postgres.Open(context.Background(), dsn, store.Options{Sealer: storetest.NewSealer(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunConformance(t, func(t *testing.T) store.Store { return open(t, pgtest.DSN(t)) })
}

func BenchmarkStore(b *testing.B) {
	storetest.RunBenchmarks(b, func(b *testing.B) store.Store { return open(b, pgtest.DSN(b)) })
}

// TestConcurrentOpen starts several "servers" on one empty database at
// once: the migration lock must let exactly one migrate.
func TestConcurrentOpen(t *testing.T) {
	dsn := pgtest.DSN(t)
	const n = 4
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	for i := range n {
		wg.Go(func() {
			stores[i], errs[i] = postgres.Open(t.Context(), dsn, store.Options{Sealer: storetest.NewSealer(t)})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("server %d: %v", i, err)
			continue
		}
		defer stores[i].Close()
		if err := stores[i].Ping(t.Context()); err != nil {
			t.Errorf("server %d Ping: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	var applied int
	if err := stores[0].Pool().QueryRow(t.Context(),
		"SELECT COUNT(*) FROM goose_db_version WHERE version_id = 1").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	if applied != 1 {
		t.Errorf("migration 1 recorded %d times, want once", applied)
	}
}

func TestPing(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Ping notices a database whose migrations were rolled back.
	if _, err := s.Pool().Exec(t.Context(), "DELETE FROM goose_db_version WHERE version_id > 0"); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(t.Context()); err == nil || !strings.Contains(err.Error(), "migrations") {
		t.Errorf("Ping on an unmigrated schema = %v, want a migrations error", err)
	}
}

func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close() // nothing listens there now

	const password = "hunter2-sekrit"
	for _, dsn := range []string{
		"postgres://flowgate:" + password + "@127.0.0.1:" + port + "/flowgate?sslmode=disable",
		"postgresql://flowgate:" + password + "@127.0.0.1:" + port + "/flowgate?connect_timeout=2",
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		_, err := backend.Open(ctx, dsn, store.Options{Sealer: storetest.NewSealer(t)})
		cancel()
		if err == nil {
			t.Fatal("Open succeeded")
		}
		msg := err.Error()
		if !strings.Contains(msg, "127.0.0.1:"+port) {
			t.Errorf("error %q does not name host:port", msg)
		}
		if strings.Contains(msg, password) {
			t.Errorf("error %q leaks the password", msg)
		}
	}
	// A malformed DSN must not echo its password either.
	_, err = postgres.Open(t.Context(), "postgres://flowgate:"+password+"@[::1/db", store.Options{Sealer: storetest.NewSealer(t)})
	if err == nil || strings.Contains(err.Error(), password) {
		t.Errorf("malformed DSN: %v", err)
	}
}

func TestBackupUnsupported(t *testing.T) {
	s := open(t, pgtest.DSN(t))
	err := backend.Backup(t.Context(), s, "/tmp/never-written.db")
	if !errors.Is(err, postgres.ErrBackupUnsupported) || !strings.Contains(err.Error(), "pg_dump") {
		t.Errorf("Backup = %v, want ErrBackupUnsupported mentioning pg_dump", err)
	}
}

// TestSecretsAtRest reads the secrets table over a separate connection,
// as someone with a database dump would.
func TestSecretsAtRest(t *testing.T) {
	dsn := pgtest.DSN(t)
	s := open(t, dsn)
	ctx := t.Context()
	const plain = "PLAINTEXT-MARKER-7f3a9c-do-not-store"
	if err := s.PutSecret(ctx, "marker", []byte(plain)); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var raw []byte
	var asText, wholeRow string
	if err := conn.QueryRow(ctx, "SELECT sealed, encode(sealed, 'escape'), s::text FROM secrets s WHERE name = 'marker'").
		Scan(&raw, &asText, &wholeRow); err != nil {
		t.Fatal(err)
	}
	if len(raw) < len(plain) {
		t.Fatalf("sealed value is %d bytes, shorter than the secret", len(raw))
	}
	for what, b := range map[string][]byte{"bytea": raw, "escaped text": []byte(asText), "row text": []byte(wholeRow)} {
		if bytes.Contains(b, []byte(plain)) {
			t.Errorf("plaintext secret found in the %s", what)
		}
	}
	// Nothing else in the database holds it either (pg_dump's view).
	var hits int
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM users u WHERE u::text LIKE '%' || $1 || '%') +
		(SELECT COUNT(*) FROM clients c WHERE c::text LIKE '%' || $1 || '%') +
		(SELECT COUNT(*) FROM audit_events a WHERE a::text LIKE '%' || $1 || '%')`, plain).Scan(&hits); err != nil {
		t.Fatal(err)
	}
	if hits != 0 {
		t.Errorf("plaintext found in %d other rows", hits)
	}

	if _, err := conn.Exec(ctx,
		"INSERT INTO secrets (name, sealed, updated_at) SELECT 'stolen', sealed, updated_at FROM secrets WHERE name = 'marker'"); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSecret(ctx, "stolen"); err == nil {
		t.Errorf("a ciphertext copied to another name opened: %q", v)
	}
}

func TestBackendDispatch(t *testing.T) {
	dsn := pgtest.DSN(t)
	s, err := backend.Open(t.Context(), strings.Replace(dsn, "postgres://", "postgresql://", 1), store.Options{Sealer: storetest.NewSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Backend() != "postgres" {
		t.Errorf("Backend() = %q", s.Backend())
	}
	if _, ok := s.(interface{ Pool() any }); ok {
		t.Log("unexpected Pool() any")
	}
	if ps, ok := s.(*postgres.Store); !ok || ps.Pool() == nil {
		t.Errorf("backend.Open returned %T, want *postgres.Store with a pool", s)
	}
}
