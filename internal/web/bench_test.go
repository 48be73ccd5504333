package web_test

// Server render time of the two heaviest portal pages, on a real SQLite
// store, engine and OpenID provider session: /tasks with 1,000 open
// tasks and /instances/{id} with a 200-step history. The request goes
// through the mux in process (no network), from the session cookie to
// the last byte of HTML.
//
//	go test ./internal/web -run '^$' -bench PortalPage -benchtime 200x -count 3

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/authserver"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/flow"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/principal"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/web"
)

const benchFlows = `
name: approve
permissions: {start: ["role:employee"]}
steps:
  - id: review
    type: task
    title: "Review request ${{ input.n }}"
    assignees: ["role:approver"]
    actions: [Approve, Reject]
    form:
      comment: {type: string}
  - id: done
    type: return
input:
  n: {type: number, required: true}
`

// longFlow counts to 99 in a loop of two steps (198 records), then waits
// at a task: a 200-step history.
const longFlow = `
name: long
permissions: {start: ["role:employee"]}
steps:
  - id: count
    type: set
    vars: {n: "${{ (vars.n ?? 0) + 1 }}"}
  - id: again
    type: switch
    cases:
      - when: "${{ vars.n < 99 }}"
        next: count
  - id: review
    type: task
    title: Review the count
    assignees: ["role:approver"]
    actions: [Done]
  - id: done
    type: return
`

type benchEnv struct {
	mux    *http.ServeMux
	cookie []*http.Cookie
}

func newBenchEnv(b testing.TB) (*benchEnv, *engine.Engine) {
	ctx := b.Context()
	text, err := keyring.Generate()
	if err != nil {
		b.Fatal(err)
	}
	ring, err := keyring.Parse(text)
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "flowgate.db"), store.Options{Sealer: ring})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	hasher, err := credential.NewHasher(credential.DefaultArgon2())
	if err != nil {
		b.Fatal(err)
	}
	hash, err := hasher.Hash("bench-password-1")
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	for _, u := range []store.User{{Username: "emma", Roles: []string{"employee"}}, {Username: "victor", Roles: []string{"approver"}}} {
		u.PasswordHash, u.CreatedAt, u.UpdatedAt = hash, now, now
		if err := st.CreateUser(ctx, u); err != nil {
			b.Fatal(err)
		}
	}
	logger := slog.New(slog.DiscardHandler)
	eng, err := engine.New(ctx, engine.Config{Store: st, NoQueue: true, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = eng.Close(c)
	})
	auth, err := authserver.New(ctx, authserver.Options{Issuer: "http://127.0.0.1", Store: st, Ring: ring, Hasher: hasher, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	pages, err := web.New(web.Options{Sessions: auth, Engine: eng, States: st, Users: st, Logger: logger,
		Portal: web.PortalOptions{Engine: eng, Accounts: st, Hasher: hasher}})
	if err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	auth.Register(mux)
	pages.Register(mux)
	e := &benchEnv{mux: mux}
	e.signIn(b, "victor", "bench-password-1")
	return e, eng
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// signIn goes through the provider's /login like a browser.
func (e *benchEnv) signIn(b testing.TB, user, pass string) {
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/login?return_to=%2F", nil))
	m := csrfField.FindStringSubmatch(rec.Body.String())
	if m == nil {
		b.Fatalf("no CSRF token on /login: %d", rec.Code)
	}
	cookies := rec.Result().Cookies()
	form := url.Values{"csrf_token": {m[1]}, "return_to": {"/"}, "username": {user}, "password": {pass}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec = httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusFound && rec.Code != http.StatusSeeOther {
		b.Fatalf("sign-in: %d %s", rec.Code, rec.Body)
	}
	e.cookie = append(cookies, rec.Result().Cookies()...)
}

// get renders a page and checks it holds want.
func (e *benchEnv) get(b testing.TB, path, want string) {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for _, c := range e.cookie {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	e.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), want) {
		body, _ := io.ReadAll(rec.Body)
		b.Fatalf("GET %s: %d, want 200 with %q\n%.2000s", path, rec.Code, want, body)
	}
}

var emma = engine.Caller{User: flow.User{ID: principal.User("emma"), Kind: principal.KindUser, Subject: "emma", Issuer: resource.OwnIssuerName, Roles: []string{"employee"}}}

func BenchmarkPortalPageTasks1000(b *testing.B) {
	e, eng := newBenchEnv(b)
	if _, _, err := eng.Deploy(b.Context(), []byte(benchFlows), "approve.yaml", "bench"); err != nil {
		b.Fatal(err)
	}
	for i := range 1000 {
		if _, err := eng.StartInstance(b.Context(), engine.StartRequest{Workflow: "approve", Input: map[string]any{"n": i}, Caller: emma}); err != nil {
			b.Fatal(err)
		}
	}
	// /tasks shows the first page of the 1,000, with a link to the next.
	e.get(b, "/tasks", "Next page")
	e.measure(b, "/tasks", "Review request")
}

func BenchmarkPortalPageInstance200Steps(b *testing.B) {
	e, eng := newBenchEnv(b)
	if _, _, err := eng.Deploy(b.Context(), []byte(longFlow), "long.yaml", "bench"); err != nil {
		b.Fatal(err)
	}
	started, err := eng.StartInstance(b.Context(), engine.StartRequest{Workflow: "long", Input: map[string]any{}, Caller: emma})
	if err != nil {
		b.Fatal(err)
	}
	path := "/instances/" + started.Instance.ID
	// The assignee sees the instance: 99 × count and again, then review.
	e.get(b, path, fmt.Sprintf(`<td>%d</td>`, 199))
	e.measure(b, path, "Review the count")
}

// measure renders the page b.N times and reports, beside the mean, the
// median time of one render (p50-ns).
func (e *benchEnv) measure(b *testing.B, path, want string) {
	var times []time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		e.get(b, path, want)
		times = append(times, time.Since(start))
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Nanoseconds()), "p50-ns")
}
