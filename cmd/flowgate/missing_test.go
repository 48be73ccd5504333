package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

// An admin command run where there is no database says so and creates
// nothing: no database file, no secret key. Only serve and migrate create.
func TestAdminCommandsDoNotCreateADatabase(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "echo.yaml"), []byte(deployEcho), 0o600); err != nil {
		t.Fatal(err)
	}
	const want = "flowgate: sqlite database ./flowgate.db: does not exist yet: `flowgate migrate` (or `flowgate serve`) creates it; or name the right one with --database or --config"
	for _, c := range []struct {
		stdin string
		args  []string
	}{
		{"", []string{"user", "list"}},
		{"a-long-password\n", []string{"user", "add", "eve", "--password-stdin"}},
		{"a-long-password\n", []string{"user", "passwd", "eve", "--password-stdin"}},
		{"", []string{"user", "disable", "eve"}},
		{"", []string{"client", "list"}},
		{"", []string{"client", "add", "x", "--redirect-uri", "http://127.0.0.1/cb"}},
		{"", []string{"client", "remove", "x"}},
		{"", []string{"keys", "rotate"}},
		{"", []string{"audit"}},
		{"", []string{"flow", "deploy", "echo.yaml"}},
		{"", []string{"backup", "copy.db"}},
	} {
		r := run(t, dir, c.stdin, nil, c.args...)
		if r.code != 1 || lastLine(r.stderr) != want {
			t.Errorf("%v: exit %d, last line %q\nwant %q", c.args, r.code, lastLine(r.stderr), want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "echo.yaml" {
			t.Errorf("an admin command left %s behind", e.Name())
		}
	}
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	for _, name := range []string{"flowgate.db", "flowgate.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("migrate did not create %s: %v", name, err)
		}
	}
	if r := run(t, dir, "", nil, "user", "list"); r.code != 0 {
		t.Fatalf("user list after migrate: %+v", r)
	}
}

// On PostgreSQL the database exists as soon as someone created it; one that
// Flowgate never migrated is missing for the admin commands all the same,
// and they leave it as they found it.
func TestAdminCommandsRefuseAnUnmigratedPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	dir := t.TempDir()
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	for range 2 { // the first refusal created nothing the second could find
		r := run(t, dir, "", env, "user", "list", "--database", dsn)
		if r.code != 1 || !strings.Contains(lastLine(r.stderr), ": does not exist yet (never migrated: it has no Flowgate schema): `flowgate migrate` (or `flowgate serve`) creates it") {
			t.Fatalf("user list on an unmigrated database: %+v", r)
		}
	}
	if r := run(t, dir, "", env, "migrate", "--database", dsn); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if r := run(t, dir, "", env, "user", "list", "--database", dsn); r.code != 0 {
		t.Fatalf("user list after migrate: %+v", r)
	}
}

// A backup is as private as the database it copies.
func TestBackupKeepsTheDatabaseMode(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	db := filepath.Join(dir, "flowgate.db")
	for i, mode := range []os.FileMode{0o600, 0o640} {
		if err := os.Chmod(db, mode); err != nil {
			t.Fatal(err)
		}
		dest := filepath.Join(dir, "copy"+string(rune('a'+i))+".db")
		if r := run(t, dir, "", nil, "backup", dest); r.code != 0 {
			t.Fatalf("backup: %+v", r)
		}
		st, err := os.Stat(dest)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("database %v, backup %v", mode, st.Mode().Perm())
		}
	}
}
