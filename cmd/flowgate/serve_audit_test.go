package main

import (
	"context"
	"database/sql"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/audit"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/store/storetest"
)

// With the database refusing audit inserts, the server issues no token
// and signs nobody in (503) and /readyz fails; once inserts work again it
// recovers by itself, and every token it issued has its audit record.
func TestServeRefusesWhileAuditCannotBeWritten(t *testing.T) {
	dir := t.TempDir()
	const key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
	env := []string{"FLOWGATE_SECRET_KEY=" + key}
	cfg := filepath.Join(dir, "flowgate.yaml")
	secret := "svc-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
	if err := os.WriteFile(cfg, []byte(`
users:
  - username: alice
    password: "alice-password-1"
apis:
  basic_auth: true
clients:
  - id: svc
    secret: "`+secret+`"
    grant_types: [client_credentials]
    scopes: [workflows.read]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServe(t, dir, env, "--config", cfg)
	ring, err := keyring.Parse(key)
	if err != nil {
		t.Fatal(err)
	}
	st, err := backend.Open(context.Background(), "sqlite:"+filepath.Join(dir, "flowgate.db"), store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	issued := 0
	token := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.base+"/oauth2/token", strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", secret)
		code, v := doJSON(t, req)
		if code == http.StatusOK {
			issued++
		}
		e, _ := v["error"].(string)
		return code, e
	}
	ready := func() (int, string) {
		t.Helper()
		code, v := getJSON(t, s.base+"/readyz")
		checks, _ := v["checks"].(map[string]any)
		a, _ := checks["audit"].(string)
		return code, a
	}
	signIn := func() int {
		t.Helper()
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(s.base + "/login?return_to=%2F")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf_token" value="([^"]*)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("no csrf_token on the login page: %s", page)
		}
		resp, err = c.PostForm(s.base+"/login", url.Values{"csrf_token": {string(m[1])}, "return_to": {"/"},
			"username": {"alice"}, "password": {"alice-password-1"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	basic := func() int {
		t.Helper()
		req, _ := http.NewRequest("GET", s.base+"/api/v1/me", nil)
		req.SetBasicAuth("alice", "alice-password-1")
		code, _ := doJSON(t, req)
		return code
	}

	if code, _ := token(); code != http.StatusOK {
		t.Fatalf("token before: %d", code)
	}
	if code := basic(); code != http.StatusOK {
		t.Fatalf("HTTP Basic before: %d", code)
	}
	if code := signIn(); code != http.StatusFound {
		t.Fatalf("sign-in before: %d", code)
	}

	allow := storetest.RefuseAuditWrites(t, st.(interface {
		WriteDB() *sql.DB
		Backend() string
	}))
	// The first request after the database stops taking audit records is
	// issued (nothing has failed yet); its record is kept and retried.
	// Within a few the writer's failure stops the issuing.
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, e := token()
		if code == http.StatusServiceUnavailable && e == "temporarily_unavailable" {
			break
		}
		if code != http.StatusOK || time.Now().After(deadline) {
			t.Fatalf("token while audit inserts fail: %d %q", code, e)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if code, a := ready(); code != http.StatusServiceUnavailable || !strings.Contains(a, "audit") {
		t.Fatalf("/readyz while audit inserts fail: %d, audit check %q", code, a)
	}
	if code := signIn(); code != http.StatusServiceUnavailable {
		t.Fatalf("sign-in while audit inserts fail: %d, want 503", code)
	}
	if code := basic(); code != http.StatusServiceUnavailable {
		t.Fatalf("HTTP Basic while audit inserts fail: %d, want 503", code)
	}
	for range 3 {
		if code, e := token(); code != http.StatusServiceUnavailable {
			t.Fatalf("token while audit inserts fail: %d %q, want 503", code, e)
		}
	}

	allow()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if code, _ := ready(); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			code, a := ready()
			t.Fatalf("/readyz never recovered: %d %q", code, a)
		}
	}
	if code, _ := token(); code != http.StatusOK {
		t.Fatalf("token after recovery: %d", code)
	}
	if code := signIn(); code != http.StatusFound {
		t.Fatalf("sign-in after recovery: %d", code)
	}
	if code := basic(); code != http.StatusOK {
		t.Fatalf("HTTP Basic after recovery: %d", code)
	}
	// Every issued token has its record: those of the outage were kept
	// and written when inserts worked again.
	var recorded int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		events, _, err := st.ListAudit(context.Background(), store.AuditFilter{Event: audit.TokenIssued, Page: store.Page{Limit: store.MaxLimit}})
		if err != nil {
			t.Fatal(err)
		}
		if recorded = len(events); recorded == issued {
			break
		}
	}
	if recorded != issued {
		t.Fatalf("%d tokens issued, %d token.issued records", issued, recorded)
	}
}
