package authserver

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/store"
)

// withAuditWriter replaces e's server with one whose audit events go
// through the real audit writer into e's store, and returns a func that
// flushes the writer.
func (e *env) withAuditWriter(t *testing.T) (flush func()) {
	t.Helper()
	w := audit.NewWriter(e.st, nil, audit.Options{})
	closed := false
	flush = func() {
		if !closed {
			closed = true
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.Close(ctx); err != nil {
				t.Fatalf("closing the audit writer: %v", err)
			}
		}
	}
	t.Cleanup(flush)
	srv, err := New(t.Context(), Options{Issuer: e.issuer, Store: e.st, Ring: e.ring, Hasher: e.hasher, Auth: e.auth,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Auditor: w})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	e.srv, e.mux, e.handler = srv, mux, mux
	return flush
}

// TestLoginFailureAuditRows: a wrong password, an unknown user and a
// throttled attempt on the login page each leave one audit row with the
// event name and reason that `flowgate audit --event` and log pipelines
// match on. The strings are spelled out here, not taken from package
// audit: renaming one there must fail this test.
func TestLoginFailureAuditRows(t *testing.T) {
	e := newEnv(t, nil, nil, true)
	flush := e.withAuditWriter(t)
	_, ch := pkce()
	attempt := func(user, pass string) int {
		t.Helper()
		b := browser(t)
		resp := get(t, b, e.authorizeURL("portal", ch, nil))
		if resp.Request.URL.Path != PathLogin {
			t.Fatalf("authorize landed on %s", resp.Request.URL)
		}
		f := formFields(t, resp)
		f.Set("username", user)
		f.Set("password", pass)
		resp = postForm(t, b, e.issuer+PathLogin, f)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := attempt("mallory", alicePass); code != http.StatusUnauthorized {
		t.Fatalf("unknown user: %d", code)
	}
	// alice's account allows a few failures, then throttles.
	wrong := 0
	for ; wrong < 20; wrong++ {
		code := attempt("alice", "wrong password!")
		if code == http.StatusTooManyRequests {
			break
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong password: %d", code)
		}
	}
	if wrong == 0 || wrong == 20 {
		t.Fatalf("%d wrong passwords before the throttle", wrong)
	}
	flush()

	rows, _, err := e.st.ListAudit(t.Context(), store.AuditFilter{Event: "login.failure", Page: store.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(rows) // oldest first
	type row struct{ event, user, client, outcome, detail, addr string }
	var got []row
	for _, r := range rows {
		got = append(got, row{r.Event, r.User, r.Client, r.Outcome, r.Detail, r.RemoteAddr})
	}
	want := []row{{"login.failure", "mallory", "portal", "failure", "unknown user", "127.0.0.1"}}
	for range wrong {
		want = append(want, row{"login.failure", "alice", "portal", "failure", "wrong password", "127.0.0.1"})
	}
	want = append(want, row{"login.failure", "alice", "portal", "failure", "rate limited", "127.0.0.1"})
	if !slices.Equal(got, want) {
		t.Fatalf("login.failure rows:\n got %v\nwant %v", got, want)
	}
	for _, r := range rows {
		if r.Time.IsZero() || r.UserAgent == "" {
			t.Errorf("row without time or user agent: %+v", r)
		}
	}
}
