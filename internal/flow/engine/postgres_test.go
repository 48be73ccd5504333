package engine_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/postgres"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// openPostgresStores opens two store handles, as two servers have, on one
// fresh PostgreSQL database.
func openPostgresStores(t *testing.T) [2]backend.Store {
	t.Helper()
	dsn := pgtest.DSN(t)
	sealer := storetest.NewSealer(t)
	var stores [2]backend.Store
	for i := range stores {
		s, err := postgres.Open(t.Context(), dsn, store.Options{Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		stores[i] = s
	}
	return stores
}

// twoEngines starts two engines, as two servers run, on one fresh
// PostgreSQL database.
func twoEngines(t *testing.T) ([2]backend.Store, [2]*engine.Engine) {
	t.Helper()
	stores := openPostgresStores(t)
	var engines [2]*engine.Engine
	// Both start at once: the queue's migrations must not race.
	var wg sync.WaitGroup
	for i := range engines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			engines[i] = newEngine(t, stores[i], engine.Config{Lease: 2 * time.Second, Sweep: 300 * time.Millisecond})
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return stores, engines
}

// countingTarget counts requests per Idempotency-Key, the identity of one
// visit of one step of one instance.
type countingTarget struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.calls[r.Header.Get("Idempotency-Key")]++
	c.mu.Unlock()
	time.Sleep(5 * time.Millisecond)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"ok": true}`))
}

// Two engines on one PostgreSQL database: 200 instances started through
// both all complete, and every http step reaches the target exactly once.
func TestTwoEnginesOnPostgres(t *testing.T) {
	stores, engines := twoEngines(t)

	target := &countingTarget{calls: map[string]int{}}
	srv := httptest.NewServer(target)
	defer srv.Close()
	deploy(t, engines[0], `
name: two-calls
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: first
    type: http
    url: "${{ input.url }}/a"
  - id: pause
    type: wait
    duration: 50ms
  - id: second
    type: http
    url: "${{ input.url }}/b"
  - id: done
    type: return
    body: {a: "${{ steps.first.output.body.ok }}", b: "${{ steps.second.output.body.ok }}"}
`)
	const n = 200
	ids := make([]string, n)
	errs := make(chan error, n)
	var starts sync.WaitGroup
	for i := range n {
		starts.Add(1)
		go func() {
			defer starts.Done()
			st, err := engines[i%2].StartInstance(t.Context(), engine.StartRequest{Workflow: "two-calls", Input: map[string]any{"url": srv.URL}, Caller: alice})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = st.Instance.ID
		}()
	}
	starts.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		inst := waitStatus(t, stores[0], id, store.StatusCompleted, store.StatusFailed)
		if inst.Status != store.StatusCompleted || !strings.Contains(string(inst.Output), `"a":true`) {
			t.Fatalf("instance %s: %s %q %s", id, inst.Status, inst.Error, inst.Output)
		}
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if len(target.calls) != 2*n {
		t.Errorf("%d distinct step visits reached the target, want %d", len(target.calls), 2*n)
	}
	for key, c := range target.calls {
		if c != 1 {
			t.Errorf("step visit %s executed %d times", key, c)
		}
	}
	// Each step of each instance has exactly one completed record.
	for _, id := range ids[:20] {
		done := map[string]int{}
		for _, r := range history(t, stores[1], id) {
			if r.Status == store.StepCompleted {
				done[r.StepID]++
			}
		}
		if fmt.Sprint(done) != "map[done:1 first:1 pause:1 second:1]" {
			t.Errorf("instance %s completed records: %v", id, done)
		}
	}
}

// The same with two servers on one PostgreSQL database, each with its own
// store handle and vault: the row lock makes it one refresh in all.
func TestTwoEnginesOneRefreshOnPostgres(t *testing.T) {
	dsn := pgtest.DSN(t)
	sealer := storetest.NewSealer(t)
	peer := oauthpeer.Start(t, oauthpeer.Options{})
	tgt := &bearerTarget{reject: map[string]bool{}}
	srv := httptest.NewServer(tgt)
	defer srv.Close()
	var engines []*engine.Engine
	var vaults []*vault.Vault
	var first store.Store
	for i := range 2 {
		s, err := postgres.Open(t.Context(), dsn, store.Options{Sealer: sealer})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		if i == 0 {
			first = s
			if err := s.CreateOAuthServer(t.Context(), store.OAuthServer{Name: "peer", MetadataURL: peer.MetadataURL(),
				ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret, ClientAuth: "client_secret_basic",
				Scopes: []string{"openid", "api.read"}, UsePKCE: true, RedirectURI: peer.RedirectURI()}); err != nil {
				t.Fatal(err)
			}
		}
		v := newVault(t, s)
		vaults = append(vaults, v)
		engines = append(engines, newEngine(t, s, engine.Config{Vault: v}))
	}
	deploy(t, engines[0], strings.ReplaceAll(callFlow, "TARGET", srv.URL))
	connectExpired(t, peer, vaults[0], alice.ID)
	startCalls(t, first, engines, 50)
	if st := peer.Stats(t); st.RefreshGrants != 1 || st.RefreshErrors != 0 {
		t.Errorf("provider stats %+v, want exactly one refresh and no error", st)
	}
	seen := tgt.tokens()
	if len(seen) != 50 {
		t.Fatalf("the target saw %d calls, want 50", len(seen))
	}
	for _, tok := range seen {
		if tok != seen[0] {
			t.Fatal("the 50 calls did not all send the one refreshed token")
		}
	}
}

// Two engines on one PostgreSQL database act at the same moment on the two
// branches of a parallel step, one task through each: both branches end
// at once, each engine sees its branch end and wakes the parent, and the
// parent joins once.
func TestTwoEnginesActOnBranchesAtOnce(t *testing.T) {
	stores, engines := twoEngines(t)
	deploy(t, engines[0], fmt.Sprintf(reviewFlow, "all"))
	const n = 20
	var parents []string
	for range n {
		res, err := engines[0].StartInstance(t.Context(), engine.StartRequest{Workflow: "review", Input: map[string]any{"amount": 9}, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		parents = append(parents, res.Instance.ID)
	}
	// Each parent's two open tasks, found through its branch instances.
	tasksOf := func(c engine.Caller, step string) map[string]int64 {
		out := map[string]int64{}
		for range 500 {
			tasks, _, err := engines[0].ListTasks(t.Context(), c, false, "", store.Page{Limit: store.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			clear(out)
			for _, tk := range tasks {
				if tk.StepID != step {
					continue
				}
				in, err := stores[0].GetInstance(t.Context(), tk.InstanceID)
				if err != nil {
					t.Fatal(err)
				}
				out[in.Parent] = tk.Serial
			}
			if len(out) == n {
				return out
			}
			sleepBriefly()
		}
		t.Fatalf("%d open %s tasks, want %d", len(out), step, n)
		return nil
	}
	legal, finance := tasksOf(legalist, "legal-ok"), tasksOf(financer, "finance-ok")

	gate := make(chan struct{})
	errs := make(chan error, 2*n)
	var acts sync.WaitGroup
	for _, p := range parents {
		for i, act := range []struct {
			serial int64
			c      engine.Caller
		}{{legal[p], legalist}, {finance[p], financer}} {
			acts.Add(1)
			go func() {
				defer acts.Done()
				<-gate
				if _, err := engines[i].Act(t.Context(), act.serial, "OK", nil, act.c); err != nil {
					errs <- fmt.Errorf("act on task %d of %s: %w", act.serial, p, err)
				}
			}()
		}
	}
	close(gate)
	acts.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, p := range parents {
		parent := waitStatus(t, stores[1], p, store.StatusCompleted, store.StatusFailed)
		if parent.Status != store.StatusCompleted {
			t.Fatalf("parent %s %s %q", p, parent.Status, parent.Error)
		}
		b := responseBody(t, parent)
		br, _ := json.Marshal(b["branches"])
		if string(br) != `{"finance":{"output":{"body":{"finance":"approved"},"status":200},"status":"completed"},"legal":{"output":{"legal":"OK"},"status":"completed"}}` ||
			b["legal"] != "OK" || b["finance"] != "approved" {
			t.Errorf("parent %s body %v", p, b)
		}
		done := map[string]int{}
		var steps []string
		for _, r := range history(t, stores[0], p) {
			steps = append(steps, r.StepID+":"+r.Status)
			if r.Status == store.StepCompleted {
				done[r.StepID]++
			}
		}
		if fmt.Sprint(done) != "map[done:1 reviews:1]" {
			t.Errorf("parent %s completed records %v (history %v)", p, done, steps)
		}
	}
}
