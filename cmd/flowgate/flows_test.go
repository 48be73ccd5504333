package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const deployEcho = `name: echo
permissions: {start: ["role:employee"]}
steps:
  - id: done
    type: return
    body: {ok: true}
`

func TestFlowDeploy(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, src string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(flows, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("echo.yaml", deployEcho)
	if r := run(t, dir, "", nil, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	write("notes.txt", "not a flow")
	r := run(t, dir, "", nil, "flow", "deploy", "flows")
	if r.code != 0 || !strings.Contains(r.stdout, "deployed echo version 1") {
		t.Fatalf("deploy: %+v", r)
	}
	if r := run(t, dir, "", nil, "flow", "deploy", "flows"); r.code != 0 || !strings.Contains(r.stdout, "unchanged echo version 1") {
		t.Fatalf("redeploy unchanged: %+v", r)
	}
	write("echo.yaml", strings.Replace(deployEcho, "ok: true", "ok: 2", 1))
	// A bad file next to a good change: nothing is deployed, every
	// problem is named with file, line, step and field.
	write("bad.yaml", "name: bad\nsteps:\n  - id: a\n    type: sett\n  - id: b\n    type: return\n    next: nowhere\n")
	r = run(t, dir, "", nil, "flow", "deploy", "flows")
	if r.code != 1 || !strings.Contains(r.stderr, "bad.yaml:4") || !strings.Contains(r.stderr, `step "a"`) || !strings.Contains(r.stderr, `"sett"`) {
		t.Fatalf("invalid folder: %+v", r)
	}
	if err := os.Remove(filepath.Join(flows, "bad.yaml")); err != nil {
		t.Fatal(err)
	}
	if r := run(t, dir, "", nil, "flow", "deploy", filepath.Join("flows", "echo.yaml")); r.code != 0 || !strings.Contains(r.stdout, "deployed echo version 2") {
		t.Fatalf("a changed file is the next version (and the failed run deployed nothing): %+v", r)
	}
	if r := run(t, dir, "", nil, "flow", "deploy", "missing"); r.code != 1 || !strings.Contains(r.stderr, "missing") {
		t.Fatalf("missing path: %+v", r)
	}
}
