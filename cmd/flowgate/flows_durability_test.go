package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

const (
	durableKey    = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	robotSecret   = "robot-secret-that-is-long-enough-1"
	durablePublic = "http://flowgate.test"
)

// flowsHome writes a configuration declaring the robot client and a
// folder of flows, and returns the arguments serve needs.
func flowsHome(t *testing.T, dir string, flows map[string]string) []string {
	t.Helper()
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range flows {
		if err := os.WriteFile(filepath.Join(fdir, name+".yaml"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
users:
  - username: alice
    password: "alice-password-1"
    roles: [employee]
clients:
  - id: robot
    secret: %q
    grant_types: [client_credentials]
    scopes: [workflows.read, workflows.start, flows.invoke, tasks]
flows: %s
`, robotSecret, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"--config", cfg, "--public-url", durablePublic}
}

func robotToken(t *testing.T, base string) string {
	t.Helper()
	return clientToken(t, base, "robot", robotSecret, "workflows.read workflows.start flows.invoke")
}

// clientToken gets an access token for a client by client credentials.
func clientToken(t *testing.T, base, id, secret, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, err := http.NewRequest(http.MethodPost, base+"/oauth2/token", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(id, secret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

func apiCall(t *testing.T, method, u, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func startInstance(t *testing.T, base, token, flow string, input map[string]any) string {
	t.Helper()
	code, body := apiCall(t, http.MethodPost, base+"/api/v1/workflows/"+flow+"/instances", token, input)
	if code != http.StatusCreated {
		t.Fatalf("start %s: %d %v", flow, code, body)
	}
	id, _ := body["id"].(string)
	if id == "" {
		t.Fatalf("start %s: no id in %v", flow, body)
	}
	return id
}

// waitInstance polls until the instance has one of the statuses.
// tail is the end of a server log, enough to see what it did last.
func tail(log string) string {
	const n = 6000
	if len(log) <= n {
		return log
	}
	return log[len(log)-n:]
}

func waitInstance(t *testing.T, base, token, id string, within time.Duration, statuses ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		code, body := apiCall(t, http.MethodGet, base+"/api/v1/instances/"+id, token, nil)
		if code == 200 {
			for _, s := range statuses {
				if body["status"] == s {
					return body
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: %d %v; want %v within %s", id, code, body, statuses, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completedSteps counts each step's completed records in the monitor.
func completedSteps(t *testing.T, base, token, id string) (map[string]int, []map[string]any) {
	t.Helper()
	code, body := apiCall(t, http.MethodGet, base+"/api/v1/instances/"+id+"/history?limit=500", token, nil)
	if code != 200 {
		t.Fatalf("history %s: %d %v", id, code, body)
	}
	done := map[string]int{}
	var items []map[string]any
	for _, it := range body["items"].([]any) {
		e := it.(map[string]any)
		items = append(items, e)
		if e["status"] == "completed" {
			done[e["step"].(string)]++
		}
	}
	return done, items
}

func kill9(t *testing.T, s *serving) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

// target counts calls per Idempotency-Key and can hold the slow ones.
type target struct {
	srv     *httptest.Server
	mu      sync.Mutex
	calls   map[string]int
	slowIn  chan string
	slowFor time.Duration
}

func newTarget(t *testing.T, slowFor time.Duration) *target {
	tg := &target{calls: map[string]int{}, slowIn: make(chan string, 1000), slowFor: slowFor}
	tg.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		tg.mu.Lock()
		tg.calls[r.URL.Path+" "+key]++
		tg.mu.Unlock()
		if r.URL.Path == "/slow" {
			tg.slowIn <- key
			select {
			case <-time.After(tg.slowFor):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok": true}`))
	}))
	t.Cleanup(tg.srv.Close)
	return tg
}

const crashyFlow = `
name: crashy
permissions: {start: ["client:robot"]}
input:
  base: {type: string, required: true}
steps:
  - id: first
    type: http
    url: "${{ input.base }}/fast"
  - id: nap
    type: wait
    duration: 3s
  - id: slow
    type: http
    url: "${{ input.base }}/slow"
    timeout: 1m
  - id: done
    type: return
    body: {first: "${{ steps.first.output.body.ok }}", slow: "${{ steps.slow.output.body.ok }}"}
`

// kill -9 while an instance waits, restart; kill -9 again while its slow
// http step is in flight, restart: the instance completes, every step has
// exactly one successful execution, and the interrupted attempt is in the
// monitor.
func TestKill9DuringWaitAndSlowHTTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tg := newTarget(t, 2*time.Second)
	args := flowsHome(t, dir, map[string]string{"crashy": crashyFlow})
	env := []string{"FLOWGATE_SECRET_KEY=" + durableKey}

	s := startServe(t, dir, env, args...)
	token := robotToken(t, s.base)
	id := startInstance(t, s.base, token, "crashy", map[string]any{"base": tg.srv.URL})
	waitInstance(t, s.base, token, id, 20*time.Second, "waiting")
	kill9(t, s)

	s = startServe(t, dir, env, args...)
	select {
	case <-tg.slowIn:
	case <-time.After(60 * time.Second):
		t.Fatalf("the wait never ended after the restart\n%s", s.stderr.String())
	}
	kill9(t, s) // mid-flight: the slow call is being answered

	s = startServe(t, dir, env, args...)
	token = robotToken(t, s.base)
	inst := waitInstance(t, s.base, token, id, 90*time.Second, "completed", "failed")
	if inst["status"] != "completed" {
		t.Fatalf("instance ended %v: %v\n%s", inst["status"], inst["error"], s.stderr.String())
	}
	done, items := completedSteps(t, s.base, token, id)
	if fmt.Sprint(done) != "map[done:1 first:1 nap:1 slow:1]" {
		t.Errorf("completed records per step = %v (history %v)", done, items)
	}
	interrupted := 0
	for _, e := range items {
		if e["step"] == "slow" && e["status"] == "failed" && strings.Contains(fmt.Sprint(e["error"]), "interrupted") {
			interrupted++
		}
	}
	if interrupted != 1 {
		t.Errorf("want the killed attempt of slow recorded as interrupted once, history %v", items)
	}
	tg.mu.Lock()
	defer tg.mu.Unlock()
	for k, c := range tg.calls {
		if strings.HasPrefix(k, "/fast") && c != 1 {
			t.Errorf("the first step ran %d times (%s)", c, k)
		}
	}
}

const pairFlow = `
name: pair
permissions: {start: ["client:robot"]}
input:
  base: {type: string, required: true}
  path: {type: string, required: true}
steps:
  - id: one
    type: http
    url: "${{ input.base }}/${{ input.path }}"
  - id: pause
    type: wait
    duration: 100ms
  - id: two
    type: http
    url: "${{ input.base }}/two"
  - id: done
    type: return
`

// Two servers on one PostgreSQL database: 200 instances through both all
// complete with each step executed once at the target; then one server is
// killed with instances in flight and the other finishes them.
func TestTwoServersOnPostgres(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	dirA, dirB := t.TempDir(), t.TempDir()
	tg := newTarget(t, 1500*time.Millisecond)
	flows := map[string]string{"pair": pairFlow}
	env := []string{"FLOWGATE_SECRET_KEY=" + durableKey, "FLOWGATE_DATABASE=" + dsn}
	argsA, argsB := flowsHome(t, dirA, flows), flowsHome(t, dirB, flows)
	a := startServe(t, dirA, env, argsA...)
	b := startServe(t, dirB, env, argsB...)
	servers := []*serving{a, b}
	// A failure here has been seen once under a loaded machine and not
	// since: keep what the servers did last for the next time.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("A's log ends:\n%s\nB's log ends:\n%s", tail(a.stderr.String()), tail(b.stderr.String()))
		}
	})
	token := robotToken(t, a.base) // one issuer, one key set: valid on both

	start := func(n int, path string) []string {
		ids := make([]string, n)
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range n {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				ids[i] = startInstance(t, servers[i%2].base, token, "pair", map[string]any{"base": tg.srv.URL, "path": path})
			}()
		}
		wg.Wait()
		return ids
	}
	ids := start(200, "one")
	for _, id := range ids {
		if inst := waitInstance(t, b.base, token, id, 60*time.Second, "completed", "failed"); inst["status"] != "completed" {
			t.Fatalf("instance %s: %v", id, inst)
		}
	}
	tg.mu.Lock()
	if len(tg.calls) != 400 {
		t.Errorf("%d distinct step executions reached the target, want 400", len(tg.calls))
	}
	for k, c := range tg.calls {
		if c != 1 {
			t.Errorf("%s executed %d times", k, c)
		}
	}
	tg.mu.Unlock()

	// Phase two: slow first steps, and server A dies with some in flight.
	ids = start(40, "slow")
	for range 5 {
		<-tg.slowIn
	}
	kill9(t, a)
	for _, id := range ids {
		if inst := waitInstance(t, b.base, token, id, 90*time.Second, "completed", "failed"); inst["status"] != "completed" {
			t.Fatalf("instance %s after A died: %v\n%s", id, inst, b.stderr.String())
		}
		if done, items := completedSteps(t, b.base, token, id); fmt.Sprint(done) != "map[done:1 one:1 pause:1 two:1]" {
			t.Errorf("instance %s completed records = %v (%v)", id, done, items)
		}
	}
	if b.stop(t) != 0 {
		t.Error("B did not stop cleanly")
	}
}
