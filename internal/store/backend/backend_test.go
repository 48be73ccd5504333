package backend_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

func TestOpenSQLite(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		"sqlite:" + filepath.Join(dir, "a.db"),
		"sqlite://" + filepath.Join(dir, "b.db"), // sqlite:///abs/path
	} {
		s, err := backend.Open(t.Context(), dsn, store.Options{Sealer: storetest.NewSealer(t)})
		if err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		if s.Backend() != "sqlite" {
			t.Errorf("%s: Backend() = %q", dsn, s.Backend())
		}
		if err := s.CreateUser(t.Context(), store.User{Username: "alice"}); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, filepath.Base(dsn)+".bak")
		if err := backend.Backup(t.Context(), s, dest); err != nil {
			t.Errorf("Backup: %v", err)
		}
		_ = s.Close()
		b, err := backend.Open(t.Context(), "sqlite:"+dest, store.Options{Sealer: storetest.NewSealer(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetUser(t.Context(), "alice"); err != nil {
			t.Errorf("backup lacks the user: %v", err)
		}
		_ = b.Close()
	}
}

func TestOpenUnsupported(t *testing.T) {
	for dsn, want := range map[string]string{
		"mysql://root:pa55word@db/flowgate": `"mysql"`,
		"flowgate.db":                       "(none)",
		"sqlite:":                           "file path",
		"":                                  "(none)",
	} {
		_, err := backend.Open(t.Context(), dsn, store.Options{Sealer: storetest.NewSealer(t)})
		if err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
			continue
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open(%q) = %v, want it to mention %s", dsn, err, want)
		}
		if strings.Contains(err.Error(), "pa55word") {
			t.Errorf("Open(%q) leaks the password: %v", dsn, err)
		}
	}
}

// MustExist opens a database Flowgate made and refuses, creating nothing,
// a file that is not there or holds no Flowgate schema.
func TestOpenMustExist(t *testing.T) {
	dir := t.TempDir()
	opts := store.Options{Sealer: storetest.NewSealer(t), MustExist: true}
	missing := filepath.Join(dir, "missing.db")
	if _, err := backend.Open(t.Context(), "sqlite:"+missing, opts); !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("refusing created the file: %v", err)
	}
	empty := filepath.Join(dir, "empty.db")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := backend.Open(t.Context(), "sqlite:"+empty, opts); !errors.Is(err, store.ErrNoDatabase) {
		t.Errorf("empty file: %v", err)
	}
	made := filepath.Join(dir, "made.db")
	s, err := backend.Open(t.Context(), "sqlite:"+made, store.Options{Sealer: opts.Sealer})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s, err = backend.Open(t.Context(), "sqlite:"+made, opts)
	if err != nil {
		t.Fatalf("a migrated database: %v", err)
	}
	_ = s.Close()
}
