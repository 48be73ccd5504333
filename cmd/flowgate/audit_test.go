package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
)

// seedAudit creates a database the way the binary does and writes events
// into it through the audit writer, the way the server will.
func seedAudit(t *testing.T, dir string, env []string, events []store.AuditEvent) {
	t.Helper()
	if r := run(t, dir, "", env, "migrate"); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	ring, err := keyring.Parse(strings.TrimPrefix(env[0], "FLOWGATE_SECRET_KEY="))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := backend.Open(ctx, "sqlite:"+filepath.Join(dir, "flowgate.db"), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w := audit.NewWriter(st, nil, audit.Options{})
	for _, e := range events {
		w.Record(ctx, e)
	}
	if err := w.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	now := time.Now().UTC()
	seedAudit(t, dir, env, []store.AuditEvent{
		{Time: now.Add(-72 * time.Hour), Event: audit.LoginSuccess, User: "carol", RemoteAddr: "192.0.2.3", Outcome: "success"},
		{Time: now.Add(-3 * time.Hour), Event: audit.LoginFailure, User: "bob", RemoteAddr: "192.0.2.2", UserAgent: "curl/8", Detail: "bad password"},
		{Time: now.Add(-30 * time.Minute), Event: audit.TokenIssued, User: "alice", Client: "portal", RemoteAddr: "192.0.2.1", Detail: "authorization_code"},
		{Time: now.Add(-10 * time.Minute), Event: audit.LoginSuccess, User: "alice", Client: "portal", RemoteAddr: "192.0.2.1"},
	})
	users := func(out string) []string {
		var us []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			us = append(us, strings.Fields(line)[3])
		}
		return us
	}

	r := run(t, dir, "", env, "audit")
	if r.code != 0 {
		t.Fatalf("audit: %+v", r)
	}
	if !regexp.MustCompile(`^TIME\s+EVENT\s+OUTCOME\s+USER\s+CLIENT\s+REMOTE\s+DETAIL\n`).MatchString(r.stdout) {
		t.Fatalf("no header:\n%s", r.stdout)
	}
	if got := strings.Join(users(r.stdout), ","); got != "alice,alice,bob,carol" {
		t.Fatalf("users newest first = %s, want alice,alice,bob,carol\n%s", got, r.stdout)
	}
	row := regexp.MustCompile(`(?m)^(\S+)\s+login\.failure\s+failure\s+bob\s+-\s+192\.0\.2\.2\s+bad password$`).FindStringSubmatch(r.stdout)
	if row == nil {
		t.Fatalf("login failure row missing:\n%s", r.stdout)
	}
	if ts, err := time.Parse(time.RFC3339, row[1]); err != nil || !strings.HasSuffix(row[1], "Z") || ts.Sub(now.Add(-3*time.Hour)).Abs() > time.Second {
		t.Fatalf("time column %q is not the event's RFC 3339 UTC time", row[1])
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", "alice"}, "alice,alice"},
		{[]string{"--event", audit.LoginSuccess}, "alice,carol"},
		{[]string{"--since", "1h"}, "alice,alice"},
		{[]string{"--since", "2d"}, "alice,alice,bob"},
		{[]string{"--since", now.Add(-4 * time.Hour).Format(time.RFC3339)}, "alice,alice,bob"},
		{[]string{"--since", "7d", "--user", "alice", "--event", audit.TokenIssued}, "alice"},
		{[]string{"--limit", "1"}, "alice"},
	} {
		r := run(t, dir, "", env, append([]string{"audit"}, tc.args...)...)
		if r.code != 0 {
			t.Fatalf("audit %v: %+v", tc.args, r)
		}
		if got := strings.Join(users(r.stdout), ","); got != tc.want {
			t.Errorf("audit %v: users %s, want %s\n%s", tc.args, got, tc.want, r.stdout)
		}
	}
	if r := run(t, dir, "", env, "audit", "--limit", "1"); !strings.Contains(r.stderr, "more match") {
		t.Errorf("--limit cut the output without saying so: %q", r.stderr)
	}

	r = run(t, dir, "", env, "audit", "--json", "--user", "bob")
	if r.code != 0 {
		t.Fatalf("audit --json: %+v", r)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 1 {
		t.Fatalf("--json printed %d lines, want 1:\n%s", len(lines), r.stdout)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, lines[0])
	}
	for k, v := range map[string]any{"event": "login.failure", "outcome": "failure", "user": "bob", "client": "",
		"remote_addr": "192.0.2.2", "user_agent": "curl/8", "detail": "bad password"} {
		if got[k] != v {
			t.Errorf("json %s = %v, want %v", k, got[k], v)
		}
	}
	if ts, err := time.Parse(time.RFC3339, got["time"].(string)); err != nil || ts.Location() != time.UTC {
		t.Errorf("json time %v is not RFC 3339 UTC", got["time"])
	}
	if id, ok := got["id"].(float64); !ok || id <= 0 {
		t.Errorf("json id %v", got["id"])
	}

	r = run(t, dir, "", env, "audit", "--json", "--since", "2d")
	if n := len(strings.Split(strings.TrimSpace(r.stdout), "\n")); r.code != 0 || n != 3 {
		t.Fatalf("--json --since 2d: %d lines, want 3: %+v", n, r)
	}
}

func TestAuditCommandPaginates(t *testing.T) {
	dir := t.TempDir()
	env := []string{"FLOWGATE_SECRET_KEY=MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	// More than one store page (store.MaxLimit), some in the same instant.
	events := make([]store.AuditEvent, 1200)
	at := time.Now().UTC().Add(-time.Minute)
	for i := range events {
		events[i] = store.AuditEvent{Time: at.Add(time.Duration(i/3) * time.Millisecond), Event: audit.TokenIssued, User: "svc"}
	}
	seedAudit(t, dir, env, events)
	count := func(args ...string) int {
		r := run(t, dir, "", env, append([]string{"audit", "--json"}, args...)...)
		if r.code != 0 {
			t.Fatalf("audit %v: %+v", args, r)
		}
		ids := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			var e struct{ ID json.Number }
			if err := json.Unmarshal([]byte(l), &e); err != nil {
				t.Fatal(err)
			}
			if ids[e.ID.String()] {
				t.Fatalf("event %s printed twice", e.ID)
			}
			ids[e.ID.String()] = true
		}
		return len(ids)
	}
	if n := count(); n != 1000 {
		t.Errorf("default limit printed %d, want 1000", n)
	}
	if n := count("--limit", "0"); n != 1200 {
		t.Errorf("--limit 0 printed %d, want 1200", n)
	}
	if n := count("--limit", "700"); n != 700 {
		t.Errorf("--limit 700 printed %d", n)
	}
}

func TestAuditCommandBadFlags(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--since", "yesterday"}, "--since"},
		{[]string{"--since", "-1h"}, "--since"},
		{[]string{"--since", "xd"}, "--since"},
		{[]string{"--limit", "-5"}, "--limit"},
		{[]string{"--limit", "many"}, "--limit"},
		{[]string{"--event", "login failure!"}, "--event"},
	} {
		r := run(t, dir, "", nil, append([]string{"audit"}, tc.args...)...)
		if r.code == 0 || !strings.Contains(lastLine(r.stderr), tc.want) {
			t.Errorf("audit %v: exit %d, stderr %q; want an error naming %s", tc.args, r.code, r.stderr, tc.want)
		}
	}
}
