package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

// Every command explains itself with an example, so `--help` is enough to
// use it.
func TestEveryCommandHasAnExample(t *testing.T) {
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no example in its help", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRoot(strings.NewReader(""), io.Discard, io.Discard))
}

// A command line that cannot run exits 2 and says where the help is;
// a command that ran and failed exits 1.
func TestUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"bogus"},
		{"--no-such-flag"},
		{"user"},
		{"user", "add"},
		{"user", "list", "extra"},
		{"flow", "export"},
		{"flow", "export", "a", "--all", "--dir", "x"},
		{"instance", "list", "--status", "sleeping"},
		{"instance", "start", "a", "b"},
		{"user", "edit", "alice"},
	} {
		r := run(t, dir, "", nil, args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--help") {
			t.Errorf("flowgate %s: exit %d, stderr %q; want 2 and a pointer to --help", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	// Not a usage error: the database is missing.
	if r := run(t, dir, "", nil, "user", "list"); r.code != 1 {
		t.Errorf("user list without a database: %+v", r)
	}
}

const opsApprovalFlow = `name: approval
title: Approval
input:
  amount: {type: number, required: true}
steps:
  - id: check
    type: switch
    cases:
      - when: ${{ input.amount > 100 }}
        next: approve
  - id: small
    type: return
    body: {approved: true, amount: "${{ input.amount }}"}
  - id: approve
    type: task
    title: Approve
    assignees: ["role:approver"]
    actions: [approve, reject]
    next: {reject: rejected}
  - id: approved
    type: return
    body: {approved: true}
  - id: rejected
    type: fail
    error: rejected
`

// backends runs body against a fresh SQLite file and, when the test
// cluster is there, a fresh PostgreSQL database; env selects it.
func backends(t *testing.T, body func(t *testing.T, dir string, env []string)) {
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		body(t, dir, []string{"FLOWGATE_DATABASE=sqlite:" + filepath.Join(dir, "flowgate.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgtest.DSN(t)
		body(t, t.TempDir(), []string{"FLOWGATE_DATABASE=" + dsn, "FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="})
	})
}

func mustRun(t *testing.T, dir string, env []string, args ...string) result {
	t.Helper()
	r := run(t, dir, "", env, args...)
	if r.code != 0 {
		t.Fatalf("flowgate %s: %+v", strings.Join(args, " "), r)
	}
	return r
}

func decodeJSON[T any](t *testing.T, s string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v in %q", err, s)
	}
	return v
}

func TestFlowAndInstanceCommands(t *testing.T) {
	backends(t, func(t *testing.T, dir string, env []string) {
		file := filepath.Join(dir, "approval.yaml")
		if err := os.WriteFile(file, []byte(opsApprovalFlow), 0o644); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, env, "migrate")
		if r := mustRun(t, dir, env, "flow", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
			t.Errorf("flow list before a deploy = %q", r.stdout)
		}
		mustRun(t, dir, env, "flow", "deploy", file)

		flows := decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "flow", "list", "--json").stdout)
		if len(flows) != 1 || flows[0]["name"] != "approval" || flows[0]["version"] != 1.0 || flows[0]["title"] != "Approval" {
			t.Errorf("flow list --json = %v", flows)
		}
		if r := mustRun(t, dir, env, "flow", "list"); !strings.Contains(r.stdout, "approval") || !strings.HasPrefix(r.stdout, "NAME") {
			t.Errorf("flow list = %q", r.stdout)
		}

		// Export gives back the source byte for byte; a folder export
		// deploys again as unchanged.
		if r := mustRun(t, dir, env, "flow", "export", "approval"); r.stdout != opsApprovalFlow {
			t.Errorf("flow export = %q", r.stdout)
		}
		if r := run(t, dir, "", env, "flow", "export", "nope"); r.code != 1 || !strings.Contains(r.stderr, `no flow "nope"`) {
			t.Errorf("export of an unknown flow: %+v", r)
		}
		out := filepath.Join(dir, "exported")
		mustRun(t, dir, env, "flow", "export", "--all", "--dir", out)
		if r := mustRun(t, dir, env, "flow", "deploy", out); !strings.Contains(r.stdout, "unchanged approval version 1") {
			t.Errorf("deploying the export: %q", r.stdout)
		}

		// The graph of the deployed flow and of the file are the same.
		fromDB := mustRun(t, dir, env, "flow", "graph", "approval").stdout
		fromFile := mustRun(t, dir, env, "flow", "graph", file).stdout
		if fromDB != fromFile || !strings.HasPrefix(fromDB, "flowchart TD\n") || !strings.Contains(fromDB, `s_approve -->|"reject"| s_rejected`) {
			t.Errorf("flow graph:\n%s\nfrom file:\n%s", fromDB, fromFile)
		}

		// A small amount completes at once; a large one waits for a task.
		done := decodeJSON[map[string]any](t, mustRun(t, dir, env, "instance", "start", "approval", "--input", `{"amount": 5}`, "--json").stdout)
		if done["status"] != "completed" {
			t.Errorf("small instance = %v", done)
		}
		r := mustRun(t, dir, env, "instance", "start", "approval", "--input", `{"amount": 500}`)
		if !strings.HasPrefix(r.stdout, "started ") || !strings.HasSuffix(strings.TrimSpace(r.stdout), ": waiting") {
			t.Fatalf("instance start = %q", r.stdout)
		}
		waitingID := strings.Fields(r.stdout)[1]
		if r := run(t, dir, "", env, "instance", "start", "approval", "--input", `{"amount": "lots"}`); r.code != 1 || !strings.Contains(r.stderr, "amount") {
			t.Errorf("bad input: %+v", r)
		}

		list := decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "instance", "list", "--json").stdout)
		if len(list) != 2 || list[0]["id"] != waitingID || list[0]["status"] != "waiting" || list[1]["status"] != "completed" {
			t.Errorf("instance list --json = %v", list)
		}
		if got := decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "instance", "list", "--status", "waiting", "--json").stdout); len(got) != 1 {
			t.Errorf("instance list --status waiting = %v", got)
		}
		if r := mustRun(t, dir, env, "instance", "list", "--flow", "approval"); strings.Count(r.stdout, "\n") != 3 {
			t.Errorf("instance list = %q", r.stdout)
		}

		shown := decodeJSON[map[string]any](t, mustRun(t, dir, env, "instance", "show", waitingID).stdout)
		if shown["current_step"] != "approve" || shown["input"].(map[string]any)["amount"] != 500.0 {
			t.Errorf("instance show = %v", shown)
		}
		hist := decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "instance", "history", waitingID, "--json").stdout)
		if len(hist) != 2 || hist[0]["step"] != "check" || hist[1]["step"] != "approve" || hist[1]["status"] != "waiting" {
			t.Errorf("instance history = %v", hist)
		}

		if r := mustRun(t, dir, env, "instance", "cancel", waitingID); !strings.Contains(r.stdout, "cancelled "+waitingID) {
			t.Errorf("cancel = %q", r.stdout)
		}
		if got := decodeJSON[map[string]any](t, mustRun(t, dir, env, "instance", "show", waitingID).stdout); got["status"] != "cancelled" {
			t.Errorf("after cancel: %v", got)
		}
		if r := run(t, dir, "", env, "instance", "cancel", waitingID); r.code != 1 {
			t.Errorf("cancelling twice: %+v", r)
		}
		if r := run(t, dir, "", env, "instance", "show", "no-such-id"); r.code != 1 || !strings.Contains(r.stderr, `no instance "no-such-id"`) {
			t.Errorf("show unknown: %+v", r)
		}

		// The audit log names who did it from the command line.
		if r := mustRun(t, dir, env, "audit", "--event", "instance.cancelled"); !strings.Contains(r.stdout, "cli") {
			t.Errorf("audit of the cancel: %q", r.stdout)
		}
	})
}

func TestUserEditAndListsAsJSON(t *testing.T) {
	backends(t, func(t *testing.T, dir string, env []string) {
		mustRun(t, dir, env, "migrate")
		if r := run(t, dir, "long-enough-password\n", env, "user", "add", "alice", "--role", "employee", "--password-stdin"); r.code != 0 {
			t.Fatalf("user add: %+v", r)
		}
		mustRun(t, dir, env, "user", "edit", "alice", "--add-role", "approver,admin", "--name", "Alice Example")
		mustRun(t, dir, env, "user", "edit", "alice", "--remove-role", "admin")
		users := decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "user", "list", "--json").stdout)
		var alice map[string]any
		for _, u := range users {
			if u["username"] == "alice" {
				alice = u
			}
			if _, ok := u["password_hash"]; ok {
				t.Errorf("user list --json shows a hash: %v", u)
			}
		}
		if alice == nil || alice["name"] != "Alice Example" || len(alice["roles"].([]any)) != 2 ||
			alice["roles"].([]any)[0] != "employee" || alice["roles"].([]any)[1] != "approver" {
			t.Errorf("alice = %v", alice)
		}
		mustRun(t, dir, env, "user", "edit", "alice", "--role", "viewer")
		if r := mustRun(t, dir, env, "user", "list"); !strings.Contains(r.stdout, "viewer") || strings.Contains(r.stdout, "approver") {
			t.Errorf("after --role: %q", r.stdout)
		}
		if r := run(t, dir, "", env, "user", "edit", "alice", "--role", "bad role"); r.code != 1 || !strings.Contains(r.stderr, "role") {
			t.Errorf("an invalid role: %+v", r)
		}
		if r := run(t, dir, "", env, "user", "edit", "nobody", "--role", "x"); r.code != 1 || !strings.Contains(r.stderr, `no user "nobody"`) {
			t.Errorf("unknown user: %+v", r)
		}
		if r := mustRun(t, dir, env, "audit", "--event", "user.updated"); !strings.Contains(r.stdout, "roles") {
			t.Errorf("audit of the edit: %q", r.stdout)
		}

		r := mustRun(t, dir, env, "client", "add", "reporting", "--grant-type", "client_credentials", "--scope", "workflows.read")
		secret := ""
		for _, line := range strings.Split(r.stdout, "\n") {
			if v, ok := strings.CutPrefix(line, "client_secret: "); ok {
				secret = v
			}
		}
		clientsOut := mustRun(t, dir, env, "client", "list", "--json").stdout
		clients := decodeJSON[[]map[string]any](t, clientsOut)
		if len(clients) != 1 || clients[0]["id"] != "reporting" || clients[0]["grant_types"].([]any)[0] != "client_credentials" {
			t.Errorf("client list --json = %v", clients)
		}
		if secret == "" || strings.Contains(clientsOut, secret) {
			t.Errorf("the client secret (%d chars) is missing or listed", len(secret))
		}
		// A single-page app's client: public, DPoP-bound, its origin
		// answered by CORS, one more audience; a bad origin is refused.
		mustRun(t, dir, env, "client", "add", "spa", "--auth-method", "none", "--redirect-uri", "http://127.0.0.1:9000/cb",
			"--allowed-origin", "http://127.0.0.1:9000", "--audience", "https://erp.example", "--dpop")
		clients = decodeJSON[[]map[string]any](t, mustRun(t, dir, env, "client", "list", "--json").stdout)
		var spa map[string]any
		for _, c := range clients {
			if c["id"] == "spa" {
				spa = c
			}
		}
		if spa == nil || spa["dpop"] != true || fmt.Sprint(spa["allowed_origins"]) != "[http://127.0.0.1:9000]" || fmt.Sprint(spa["audiences"]) != "[https://erp.example]" {
			t.Errorf("the spa client as listed: %v", spa)
		}
		if r := run(t, dir, "", env, "client", "add", "spa2", "--auth-method", "none", "--redirect-uri", "http://127.0.0.1:9000/cb",
			"--allowed-origin", "not an origin"); r.code == 0 || !strings.Contains(r.stderr, "not an origin") {
			t.Errorf("a bad origin: %+v", r)
		}

		if r := run(t, dir, "s3cret-value", env, "secret", "set", "crm_token", "--value-stdin"); r.code != 0 {
			t.Fatalf("secret set: %+v", r)
		}
		secretsOut := mustRun(t, dir, env, "secret", "list", "--json").stdout
		if s := decodeJSON[[]map[string]any](t, secretsOut); len(s) != 1 || s[0]["name"] != "crm_token" || strings.Contains(secretsOut, "s3cret-value") {
			t.Errorf("secret list --json = %s", secretsOut)
		}
	})
}

// config check reads the file and the flows; it neither creates nor
// migrates a database.
func TestConfigCheckCreatesNothing(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "data", "flowgate.db")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	if err := os.WriteFile(cfg, []byte("database: sqlite:"+db+"\nclients:\n  - id: portal\n    secret: ${PORTAL_SECRET}\n    grant_types: [client_credentials]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, dir, "", nil, "config", "check", "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, "clients[0].secret: environment variable PORTAL_SECRET is not set") {
		t.Errorf("check without the variable: %+v", r)
	}
	if r := run(t, dir, "", []string{"PORTAL_SECRET=from-the-environment"}, "config", "check", "--config", cfg); r.code != 0 || !strings.Contains(r.stdout, "configuration OK") {
		t.Errorf("check: %+v", r)
	}
	entries, err := os.ReadDir(filepath.Join(dir, "data"))
	if err != nil || len(entries) != 0 {
		t.Errorf("config check wrote %v (%v)", entries, err)
	}
}

func TestHealthCommand(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	s := startServeAt(t, dir, addr, nil)
	if r := run(t, dir, "", nil, "health", "--url", s.base); r.code != 0 || !strings.Contains(r.stdout, `"status":"ok"`) {
		t.Errorf("health --url: %+v", r)
	}
	// Without --url: the listen address from the environment, as in the
	// container image.
	port := addr[strings.LastIndex(addr, ":"):]
	if r := run(t, dir, "", []string{"FLOWGATE_ADDR=" + port}, "health", "--ready"); r.code != 0 || !strings.Contains(r.stdout, "/readyz") {
		t.Errorf("health --ready from FLOWGATE_ADDR: %+v", r)
	}
	if s.stop(t) != 0 {
		t.Fatal("serve did not stop cleanly")
	}
	if r := run(t, dir, "", nil, "health", "--url", s.base); r.code != 1 || !strings.Contains(r.stderr, "health:") {
		t.Errorf("health of a stopped server: %+v", r)
	}
}
