package engine_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/vault"
)

// newVault is a vault whose connectors may reach the tests' OAuth servers
// on 127.0.0.1.
func newVault(t testing.TB, s store.Store) *vault.Vault {
	return vault.New(s, vault.Options{HTTPClient: egresstest.Client(30 * time.Second)})
}

const fetchFlow = `
name: fetch
permissions: {start: ["role:employee"]}
input:
  url: {type: string, required: true}
steps:
  - id: call
    type: http
    url: "${{ input.url }}"
  - id: done
    type: return
    body: "${{ steps.call.output.body }}"
`

// TestHTTPStepEgressDenied: with the default policy a flow whose URL comes
// from its input cannot reach a server on loopback; the step's error says
// why, and no request arrives.
func TestHTTPStepEgressDenied(t *testing.T) {
	var calls atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte("flowgate_build_info 1"))
	}))
	defer internal.Close()
	e := newEngine(t, openStore(t), engine.Config{Egress: egress.Default()})
	deploy(t, e, fetchFlow)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "fetch", Input: map[string]any{"url": internal.URL + "/metrics"}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "egress denied: " + internal.Listener.Addr().String() + " (loopback) is not allowed by the egress policy"
	if res.Instance.Status != store.StatusFailed || !strings.Contains(res.Instance.Error, want) {
		t.Errorf("instance = %s %q, want failed with %q", res.Instance.Status, res.Instance.Error, want)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the internal server got %d requests", n)
	}
}

// TestHTTPStepRedirectEgressDenied: a redirect is a new connection and is
// checked as one. The first server is reached by a host name the policy
// allows; it redirects to 127.0.0.1, which the policy does not.
func TestHTTPStepRedirectEgressDenied(t *testing.T) {
	var calls atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		_, _ = w.Write([]byte("secret"))
	}))
	defer internal.Close()
	var redirected atomic.Int32
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, internal.URL+"/metrics", http.StatusFound)
	}))
	defer redirector.Close()
	policy, err := egress.New([]string{"localhost"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, openStore(t), engine.Config{Egress: policy})
	deploy(t, e, fetchFlow)
	start := strings.Replace(redirector.URL, "127.0.0.1", "localhost", 1)
	res, err := e.Invoke(t.Context(), engine.StartRequest{Workflow: "fetch", Input: map[string]any{"url": start}, Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	want := "egress denied: " + internal.Listener.Addr().String() + " (loopback) is not allowed by the egress policy"
	if res.Instance.Status != store.StatusFailed || !strings.Contains(res.Instance.Error, want) {
		t.Errorf("instance = %s %q, want failed with %q", res.Instance.Status, res.Instance.Error, want)
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the internal server got %d requests", n)
	}
	if redirected.Load() == 0 {
		t.Error("the allowed server was never reached")
	}
}
