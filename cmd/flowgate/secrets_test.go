package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestSecretCommands(t *testing.T) {
	dir := t.TempDir()
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if r := run(t, dir, "", nil, "secret", "set", "API_KEY"); r.code == 0 || !strings.Contains(r.stderr, "--value-stdin") {
		t.Fatalf("secret set without a terminal and without --value-stdin: %+v", r)
	}
	if r := run(t, dir, "abc\n", nil, "secret", "set", "API_KEY", "--value-stdin"); r.code == 0 || !strings.Contains(r.stderr, "at least 4") {
		t.Fatalf("a short value accepted: %+v", r)
	}
	if r := run(t, dir, "long enough\n", nil, "secret", "set", "bad-name", "--value-stdin"); r.code == 0 || !strings.Contains(r.stderr, `secret name "bad-name"`) {
		t.Fatalf("a bad name accepted: %+v", r)
	}
	pem := "-----BEGIN PRIVATE KEY-----\nMIIEv-plain-7c1d\n-----END PRIVATE KEY-----\n"
	if r := run(t, dir, pem, nil, "secret", "set", "PEM", "--value-stdin"); r.code != 0 || r.stdout != "set secret PEM\n" {
		t.Fatalf("secret set: %+v", r)
	}
	if r := run(t, dir, "tok-plain-7c1d\n", nil, "secret", "set", "PEM", "--value-stdin"); r.code != 0 || r.stdout != "replaced secret PEM\n" {
		t.Fatalf("secret set again: %+v", r)
	}
	if r := run(t, dir, "other-plain-7c1d", nil, "secret", "set", "OTHER", "--value-stdin"); r.code != 0 {
		t.Fatalf("secret set: %+v", r)
	}
	r := run(t, dir, "", nil, "secret", "list")
	if r.code != 0 || !regexp.MustCompile(`^NAME\s+CREATED\s+UPDATED\nOTHER\s+\S+Z\s+\S+Z\nPEM\s`).MatchString(r.stdout) || strings.Contains(r.stdout, "plain-7c1d") {
		t.Fatalf("secret list:\n%s", r.stdout)
	}
	if r := run(t, dir, "", nil, "secret", "remove", "OTHER"); r.code != 0 {
		t.Fatalf("secret remove: %+v", r)
	}
	if r := run(t, dir, "", nil, "secret", "remove", "OTHER"); r.code == 0 || !strings.Contains(r.stderr, `no secret "OTHER"`) {
		t.Fatalf("secret remove again: %+v", r)
	}
	var raw []byte
	for _, f := range []string{"flowgate.db", "flowgate.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	if bytes.Contains(raw, []byte("plain-7c1d")) {
		t.Fatal("a secret value is stored in plain text")
	}
}
