package api_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/flowgate/flowgate/internal/api"
	"github.com/flowgate/flowgate/internal/credential"
	"github.com/flowgate/flowgate/internal/egress"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/resource"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/testutil/egresstest"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/vault"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const testIssuer = "https://flowgate.test"

// env is one Flowgate API on a real store behind a real HTTP server.
type env struct {
	t      *testing.T
	api    *api.API
	st     store.Store
	ring   *keyring.Ring
	hasher *credential.Hasher
	srv    *httptest.Server
	audit  *auditRecorder
	key    *ecdsa.PrivateKey
	admin  string // a token of user admin with scope admin
	// eng runs flows; nil in an env made by newEnv, where stand-ins
	// answer the workflow and invoke routes.
	eng *engine.Engine
	// vault is the API's token vault; nil with flowOpts.noVault.
	vault *vault.Vault
}

// flowOpts configure newFlowEnv.
type flowOpts struct {
	// invokeWait is the engine's invoke wait; 3 s when zero.
	invokeWait time.Duration
	// detailed is api.Options.ShowDetailedErrors.
	detailed bool
	// postgres runs on PostgreSQL instead of SQLite.
	postgres bool
	// noVault leaves api.Options.Vault nil.
	noVault bool
	// egress is where the API's tests, the vault and the engine may
	// connect; nil: 127.0.0.1 allowed, where the tests' servers are.
	egress *egress.Policy
	// maxVars is engine.Config.MaxVars.
	maxVars int64
}

// backends runs fn on SQLite and on PostgreSQL.
func backends(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, b := range []string{"sqlite", "postgres"} {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			fn(t, newEnv(t, b))
		})
	}
}

func newEnv(t *testing.T, which string) *env {
	t.Helper()
	return buildEnv(t, which, nil)
}

// newFlowEnv is an env with a real flow engine on SQLite, so the workflow,
// task, invoke and flow deploy routes are the real ones.
func newFlowEnv(t *testing.T, o flowOpts) *env {
	t.Helper()
	which := "sqlite"
	if o.postgres {
		which = "postgres"
	}
	return buildEnv(t, which, &o)
}

// flowBackends runs fn with a flow env on SQLite and on PostgreSQL.
func flowBackends(t *testing.T, o flowOpts, fn func(t *testing.T, e *env)) {
	for _, pg := range []bool{false, true} {
		name := "sqlite"
		if pg {
			name = "postgres"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			o := o
			o.postgres = pg
			fn(t, newFlowEnv(t, o))
		})
	}
}

func buildEnv(t *testing.T, which string, fo *flowOpts) *env {
	t.Helper()
	ctx := t.Context()
	text, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keyring.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "f.db")
	if which == "postgres" {
		dsn = pgtest.DSN(t)
	}
	st, err := backend.Open(context.Background(), dsn, store.Options{Sealer: ring})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	// Cheap argon2 parameters: the tests hash and verify many passwords.
	hasher, err := credential.NewHasher(credential.Argon2Params{Memory: 64, Time: 1, Threads: 1, KeyLen: 32, SaltLen: 16})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	policy := egresstest.Loopback()
	if fo != nil && fo.egress != nil {
		policy = fo.egress
	}
	v, err := resource.NewValidator(ctx, resource.OwnIssuer{
		Issuer: testIssuer,
		Keys:   func(*jwt.Token) (any, error) { return &key.PublicKey, nil },
		UserRoles: func(ctx context.Context, name string) ([]string, error) {
			u, err := st.GetUser(ctx, name)
			if errors.Is(err, store.ErrNotFound) || err == nil && u.Disabled {
				return nil, resource.ErrUnknownPrincipal
			}
			return u.Roles, err
		},
	}, nil, resource.Options{Logger: logger, HTTPClient: policy.Client(10 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	rec := &auditRecorder{}
	opts := api.Options{
		Store: st, Hasher: hasher, Ring: ring, Validator: v, Logger: logger, Auditor: rec,
		PublicURL: "http://localhost:8080", SwitchRefresh: time.Hour,
		HTTPClient: policy.Client(10 * time.Second),
	}
	if fo == nil || !fo.noVault {
		opts.Vault = vault.New(st, vault.Options{Logger: logger, HTTPClient: policy.Client(30 * time.Second)})
	}
	var eng *engine.Engine
	if fo != nil {
		wait := fo.invokeWait
		if wait == 0 {
			wait = 3 * time.Second
		}
		queue, err := st.OpenQueue(ctx, logger)
		if err != nil {
			t.Fatal(err)
		}
		eng, err = engine.New(ctx, engine.Config{Store: st, Queue: queue, Logger: logger, InvokeWait: wait, Egress: policy,
			Lease: 2 * time.Second, Sweep: 500 * time.Millisecond, MaxVars: fo.maxVars, Audit: rec})
		if err != nil {
			t.Fatal(err)
		}
		// Registered after the store's cleanup, so it runs before it.
		t.Cleanup(func() {
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := eng.Close(cctx); err != nil {
				t.Errorf("close engine: %v", err)
			}
		})
		opts.Engine, opts.ShowDetailedErrors = eng, fo.detailed
	}
	a := api.New(opts)
	mux := http.NewServeMux()
	a.Register(mux)
	if eng == nil {
		// Without an engine the workflow and invoke routes are left out;
		// stand-ins show what reaches them (the switch and
		// authentication tests need no more).
		echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := resource.PrincipalFrom(r.Context())
			w.Header().Set("Cache-Control", "no-store")
			_ = json.NewEncoder(w).Encode(map[string]any{"principal": p.ID, "roles": p.Roles, "scopes": p.Scopes})
		})
		mux.Handle("GET /api/v1/workflows", a.Switch(api.SwitchWorkflow, a.Authenticate(v.RequireScope("workflows.read", echo))))
		mux.Handle("POST /api/v1/flows/{name}/invoke", a.Switch(api.SwitchInvoke, a.Authenticate(v.RequireScope("flows.invoke", echo))))
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	e := &env{t: t, api: a, st: st, ring: ring, hasher: hasher, srv: srv, key: key, audit: rec, eng: eng, vault: opts.Vault}
	e.user("admin", "admin-password", "admin")
	e.admin = e.token("admin", "admin")
	return e
}

// user creates a user with a password and roles.
func (e *env) user(name, password string, roles ...string) {
	e.t.Helper()
	hash, err := e.hasher.Hash(password)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.st.CreateUser(e.t.Context(), store.User{Username: name, PasswordHash: hash, Roles: roles}); err != nil {
		e.t.Fatal(err)
	}
}

// token signs an access token of Flowgate's own issuer for a user.
func (e *env) token(sub, scope string) string {
	e.t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{
		"iss": testIssuer, "sub": sub, "aud": testIssuer, "scope": scope,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": rand.Text(),
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodES256, claims).SignedString(e.key)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// resp is an answer with its body read.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("answer %d is not a JSON object: %v: %s", r.status, err, r.body)
	}
	return m
}

// do sends a request; body is JSON-encoded unless it is a string or
// []byte, sent as is. auth is the whole Authorization header ("" none).
func (e *env) do(method, path, auth string, body any) resp {
	e.t.Helper()
	return e.send(method, path, auth, body, nil)
}

// send is do with extra request headers; a Content-Type among them
// replaces application/json. Every answer under /api/v1/ is checked for
// Cache-Control: no-store and validated against the OpenAPI document.
func (e *env) send(method, path, auth string, body any, headers map[string]string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := resp{res.StatusCode, res.Header, b}
	if strings.HasPrefix(req.URL.Path, "/api/v1/") {
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			e.t.Errorf("%s %s: Cache-Control %q, want no-store", method, path, cc)
		}
		for _, p := range checkAnswer(req, r, e.eng != nil) {
			e.t.Errorf("%s %s: answer %d does not match the OpenAPI document: %s\n%s", method, path, r.status, p, r.body)
		}
	}
	return r
}

// as sends a request with the admin token.
func (e *env) as(method, path string, body any) resp {
	e.t.Helper()
	return e.do(method, path, "Bearer "+e.admin, body)
}

// want checks the status and, for errors, the error code and that the
// field or description names what it must.
func want(t *testing.T, r resp, status int, code, mention string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	m := r.json(t)
	if code != "" && m["error"] != code {
		t.Errorf("error %v, want %s: %s", m["error"], code, r.body)
	}
	if mention != "" {
		field, _ := m["field"].(string)
		desc, _ := m["error_description"].(string)
		if field != mention && !strings.Contains(desc, mention) {
			t.Errorf("error does not name %q: %s", mention, r.body)
		}
	}
	return m
}

// pageAll walks a list with limit and returns every item.
func (e *env) pageAll(path string, limit int) (items []map[string]any, pages int) {
	e.t.Helper()
	cursor := ""
	for {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		u := fmt.Sprintf("%s%slimit=%d", path, sep, limit)
		if cursor != "" {
			u += "&cursor=" + cursor
		}
		r := e.as("GET", u, nil)
		if r.status != 200 {
			e.t.Fatalf("GET %s: %d %s", u, r.status, r.body)
		}
		var l struct {
			Items      []map[string]any `json:"items"`
			NextCursor *string          `json:"next_cursor"`
		}
		if err := json.Unmarshal(r.body, &l); err != nil {
			e.t.Fatal(err)
		}
		if !bytes.Contains(r.body, []byte(`"next_cursor"`)) {
			e.t.Fatalf("list answer has no next_cursor: %s", r.body)
		}
		pages++
		items = append(items, l.Items...)
		if l.NextCursor == nil {
			return items, pages
		}
		if len(l.Items) != limit {
			e.t.Fatalf("page %d has %d items and a cursor", pages, len(l.Items))
		}
		cursor = *l.NextCursor
		if pages > 100 {
			e.t.Fatal("paging does not end")
		}
	}
}

// authMatrix checks the refusals every admin route shares: no token 401,
// no admin scope 403 insufficient_scope, scope without role 403 forbidden.
func (e *env) authMatrix(method, path string, body any) {
	e.t.Helper()
	r := e.do(method, path, "", body)
	want(e.t, r, 401, "unauthorized", "")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		e.t.Errorf("%s %s without token: challenge %q", method, path, r.header.Get("WWW-Authenticate"))
	}
	want(e.t, e.do(method, path, "Bearer "+e.token("admin", "workflows.read"), body), 403, "insufficient_scope", "admin")
	if _, err := e.st.GetUser(e.t.Context(), "bob"); errors.Is(err, store.ErrNotFound) {
		e.user("bob", "bob-password", "employee")
	}
	want(e.t, e.do(method, path, "Bearer "+e.token("bob", "admin"), body), 403, "forbidden", "role admin")
}

// auditRecorder keeps the audit events the API records.
type auditRecorder struct {
	mu     sync.Mutex
	events []store.AuditEvent
}

// Healthy is the recorder's: always writing.
func (r *auditRecorder) Healthy() error { return nil }

func (r *auditRecorder) Record(_ context.Context, e store.AuditEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// all lists every event recorded so far.
func (r *auditRecorder) all() []store.AuditEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]store.AuditEvent(nil), r.events...)
}

// details lists the Detail of every event of the given name for user.
func (r *auditRecorder) details(event, user string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, e := range r.events {
		if e.Event == event && e.User == user {
			out = append(out, e.Detail)
		}
	}
	return out
}
