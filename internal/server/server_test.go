package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

func newServer(t *testing.T) (*Server, store.Store, *strings.Builder) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "f.db"), store.Options{Sealer: storetest.NewSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	var logs strings.Builder
	return New(st, slog.New(slog.NewJSONHandler(&logs, nil))), st, &logs
}

func TestRequestIDLogAndPanic(t *testing.T) {
	s, _, logs := newServer(t)
	s.Handle("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("kaboom") }))
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	req, _ := http.NewRequest("GET", ts.URL+"/healthz?code=SECRETCODE", nil)
	req.Header.Set("X-Request-Id", "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Request-Id"); got != "abc-123" {
		t.Fatalf("incoming request id not kept: %q", got)
	}
	if strings.Contains(logs.String(), "SECRETCODE") {
		t.Fatal("the query string reached the log")
	}
	if !strings.Contains(logs.String(), `"request_id":"abc-123"`) || !strings.Contains(logs.String(), `"route":"GET /healthz"`) {
		t.Fatalf("log line lacks request id or route:\n%s", logs)
	}

	req, _ = http.NewRequest("GET", ts.URL+"/boom", nil)
	req.Header.Set("X-Request-Id", "bad id with spaces")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 500 || id == "bad id with spaces" || len(id) != 24 {
		t.Fatalf("panic: status %d id %q", resp.StatusCode, id)
	}
	var e map[string]string
	if err := json.Unmarshal(body, &e); err != nil || e["error"] != "server_error" || !strings.Contains(e["error_description"], id) {
		t.Fatalf("panic body %s", body)
	}
	if strings.Contains(string(body), "kaboom") {
		t.Fatal("panic value leaked to the client")
	}
}

func TestReadyzFollowsDatabaseAndChecks(t *testing.T) {
	s, st, _ := newServer(t)
	var optionalDown atomic.Bool
	s.AddReadinessCheck(ReadinessCheck{Name: "issuer:entra", Check: func(context.Context) error {
		if optionalDown.Load() {
			return io.ErrUnexpectedEOF
		}
		return nil
	}})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	get := func() (int, map[string]any) {
		resp, err := http.Get(ts.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	if code, v := get(); code != 200 || v["status"] != "ok" {
		t.Fatalf("ready: %d %v", code, v)
	}
	optionalDown.Store(true)
	code, v := get()
	if code != 200 || v["checks"].(map[string]any)["issuer:entra"] == "ok" {
		t.Fatalf("an optional check failing must be reported but not fail readiness: %d %v", code, v)
	}
	st.Close()
	if code, v := get(); code != 503 || v["status"] != "unavailable" {
		t.Fatalf("closed database: %d %v", code, v)
	}
}

func TestUnmatchedRouteLabel(t *testing.T) {
	s, _, _ := newServer(t)
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	for _, p := range []string{"/no/such/a", "/no/such/b"} {
		resp, err := http.Get(ts.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `flowgate_http_requests_total{method="GET",route="unmatched",status="404"} 2`) {
		t.Fatal("unknown paths are not folded into one label")
	}
	if strings.Contains(string(b), "/no/such") {
		t.Fatal("raw paths became metric labels")
	}
}
