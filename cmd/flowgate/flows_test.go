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
	// A dry run checks and stores nothing: the real deploy below is
	// still version 1, and the audit log has no deploy.
	if r := run(t, dir, "", nil, "flow", "deploy", "--dry-run", "flows"); r.code != 0 || !strings.Contains(r.stdout, "valid echo (flows/echo.yaml)") {
		t.Fatalf("dry run: %+v", r)
	}
	if r := run(t, dir, "", nil, "audit", "--event", "flow.deployed"); r.code != 0 || strings.Contains(r.stdout, "flow.deployed") {
		t.Fatalf("a dry run was audited as a deploy: %+v", r)
	}
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
	for _, args := range [][]string{{"flow", "deploy", "--dry-run", "flows"}, {"flow", "deploy", "flows"}} {
		r = run(t, dir, "", nil, args...)
		if r.code != 1 || !strings.Contains(r.stderr, "bad.yaml:4") || !strings.Contains(r.stderr, `step "a"`) || !strings.Contains(r.stderr, `"sett"`) {
			t.Fatalf("%v on an invalid folder: %+v", args, r)
		}
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

const usesGraph = `name: uses-graph
permissions: {start: ["role:employee"]}
steps:
  - id: call
    type: http
    url: https://graph.example/me
    auth: {server: graph, as: service}
`

// A flow naming an OAuth server that is not configured is refused on
// every deploy path: at start, by flow deploy and by config check, with
// the file, line, step and key; declaring the server makes it valid.
func TestDeployRefusesUnknownOAuthServer(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(flows, "uses-graph.yaml"), []byte(usesGraph), 0o644); err != nil {
		t.Fatal(err)
	}
	writeConfig := func(name, servers string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		text := "database: \"sqlite:" + filepath.Join(dir, "f.db") + "\"\nflows: " + flows + "\n" + servers
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	without := writeConfig("without.yaml", "")
	with := writeConfig("with.yaml", "oauth_servers:\n  - name: graph\n    token_endpoint: https://graph.example/token\n    client_id: flowgate\n    client_secret: s3cret\n")
	key := []string{"FLOWGATE_SECRET_KEY=" + durableKey}
	named := func(r result) bool {
		return strings.Contains(r.stderr, "uses-graph.yaml:7:") && strings.Contains(r.stderr, `step "call"`) &&
			strings.Contains(r.stderr, "auth.server") && strings.Contains(r.stderr, `"graph" is not a configured OAuth server`)
	}

	if r := run(t, dir, "", key, "config", "check", "--config", without); r.code != 1 || !named(r) {
		t.Errorf("config check without the server: %+v", r)
	}
	if r := run(t, dir, "", key, "config", "check", "--config", with); r.code != 0 || !strings.Contains(r.stdout, "uses-graph") {
		t.Errorf("config check with the server: %+v", r)
	}
	if r := run(t, dir, "", key, "serve", "--config", without, "--addr", freeAddr(t)); r.code != 1 || !named(r) {
		t.Errorf("serve without the server: %+v", r)
	}
	if r := run(t, dir, "", key, "flow", "deploy", "--config", without, flows); r.code != 1 || !named(r) {
		t.Errorf("flow deploy without the server: %+v", r)
	}
	// Declared in the file: a deploy accepts it before any server has
	// written the file's servers to the database.
	if r := run(t, dir, "", key, "flow", "deploy", "--config", with, flows); r.code != 0 || !strings.Contains(r.stdout, "deployed uses-graph version 1") {
		t.Errorf("flow deploy with the server declared: %+v", r)
	}
	// A start with the server declared deploys the folder (the servers are
	// in the store before the flows are deployed).
	s := startServe(t, dir, key, "--config", with)
	if code := s.stop(t); code != 0 {
		t.Errorf("serve exited %d\n%s", code, s.stderr.String())
	}
	// The server is in the database now: config check finds it there even
	// when the file no longer declares it.
	if r := run(t, dir, "", key, "config", "check", "--config", without); r.code != 0 {
		t.Errorf("config check with the server stored: %+v", r)
	}
}

// limits.max_steps in the configuration reaches the engine that serve runs.
func TestServeAppliesStepLimit(t *testing.T) {
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	loop := "name: spin\npermissions: {start: [\"client:robot\"]}\nsteps:\n  - id: again\n    type: switch\n    cases: [{when: \"${{ true }}\", next: again}]\n"
	if err := os.WriteFile(filepath.Join(flows, "spin.yaml"), []byte(loop), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := "clients:\n  - id: robot\n    secret: \"" + robotSecret + "\"\n    grant_types: [client_credentials]\n" +
		"    scopes: [workflows.read, workflows.start, flows.invoke]\nflows: " + flows + "\nlimits:\n  max_steps: 9\n"
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", cfg)
	tok := robotToken(t, s.base)
	code, body := apiCall(t, "POST", s.base+"/api/v1/flows/spin/invoke", tok, map[string]any{})
	if code != 502 || body["error"] != "flow_failed" {
		t.Fatalf("invoke: %d %v", code, body)
	}
	_, inst := apiCall(t, "GET", s.base+"/api/v1/instances/"+body["instance"].(string), tok, nil)
	if msg, _ := inst["error"].(string); !strings.HasPrefix(msg, "step_budget_exhausted: the instance ran 9 steps") {
		t.Errorf("instance = %v", inst)
	}
	_, hist := apiCall(t, "GET", s.base+"/api/v1/instances/"+body["instance"].(string)+"/history", tok, nil)
	if items, _ := hist["items"].([]any); len(items) != 9 {
		t.Errorf("history has %d records, want 9", len(items))
	}
	if code := s.stop(t); code != 0 {
		t.Errorf("serve exited %d", code)
	}
}
