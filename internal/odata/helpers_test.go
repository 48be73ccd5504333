package odata_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/app"
	"github.com/flowgate/flowgate/internal/config"
	"github.com/flowgate/flowgate/internal/keyring"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
	"github.com/flowgate/flowgate/internal/testutil/prereq"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// expenseFlow has a typed input field of each kind; its instances park
// on a task for role:approver.
const expenseFlow = `name: expense-report
title: Expense report
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true}
  items: {type: integer}
  note: {type: string}
  urgent: {type: boolean}
steps:
  - id: approve
    type: task
    title: "Approve ${{ input.note }}"
    assignees: ["role:approver"]
    actions: [Approve]
    next: {Approve: done}
  - id: done
    type: return
    body: {}
`

// hiddenFlow is a flow the employees may not start: its set is only an
// administrator's.
const hiddenFlow = `name: payroll.secret
permissions: {start: ["role:payroll"]}
input:
  salary: {type: number}
steps:
  - id: done
    type: return
    body: {}
`

const clientSecret = "s3cret-s3cret-s3cret-s3cret"

// env is a Flowgate server on 127.0.0.1 serving the Data API.
type env struct {
	base string
	srv  *app.Server
	cfg  *config.Config
}

// backends are the databases every Data API test runs on.
func backends(t *testing.T) map[string]func(t *testing.T, dir string) string {
	return map[string]func(t *testing.T, dir string) string{
		"sqlite": func(t *testing.T, dir string) string { return "sqlite:" + filepath.Join(dir, "f.db") },
		"postgres": func(t *testing.T, _ string) string {
			if os.Getenv(pgtest.EnvDSN) == "" && !prereq.Strict() {
				t.Skip("PostgreSQL: set " + pgtest.EnvDSN)
			}
			return pgtest.DSN(t)
		},
	}
}

func start(t *testing.T, database string) *env {
	t.Helper()
	dir := t.TempDir()
	flows := filepath.Join(dir, "flows")
	if err := os.Mkdir(flows, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"expense.yaml": expenseFlow, "hidden.yaml": hiddenFlow} {
		if err := os.WriteFile(filepath.Join(flows, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	key, err := keyring.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	cfg := config.Default()
	cfg.Database = database
	cfg.Secrets.Key = key
	cfg.Flows = flows
	cfg.Server.PublicURL = base
	cfg.APIs.SCIM = false
	client := func(id string, roles, scopes []string) config.Client {
		return config.Client{ID: id, Secret: clientSecret, GrantTypes: []string{"client_credentials"},
			Scopes: scopes, Roles: roles, TokenEndpointAuthMethod: "client_secret_basic", Consent: "user"}
	}
	emp := []string{"data.read", "workflows.read", "workflows.start", "tasks"}
	cfg.Clients = []config.Client{
		client("reporter", []string{"employee"}, emp),
		client("other", []string{"employee"}, emp),
		client("boss", []string{"admin", "employee"}, append([]string{"admin"}, emp...)),
		// A token with role admin but without scope admin sees its own rows only, as in the REST API.
		client("adminrole", []string{"admin"}, []string{"data.read"}),
		client("noscope", []string{"employee"}, []string{"workflows.read"}),
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := app.NewServer(ctx, cfg, logger, ln.Addr())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = srv.Close(cctx)
	})
	return &env{base: base, srv: srv, cfg: cfg}
}

// token gets a client-credentials token for one of the env's clients.
func (e *env) token(t *testing.T, id, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}
	req, _ := http.NewRequest(http.MethodPost, e.base+"/oauth2/token", strings.NewReader(form.Encode()))
	req.SetBasicAuth(id, clientSecret)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token for %s: %d %v", id, resp.StatusCode, err)
	}
	return tok.AccessToken
}

func (e *env) call(t *testing.T, method, path, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.base+path, rd)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// req is one request for the OData peer (test/peers/odata/client.js).
type req struct {
	Name        string         `json:"name"`
	Base        string         `json:"base"`
	Token       string         `json:"token,omitempty"`
	Path        string         `json:"path"`
	Query       map[string]any `json:"query,omitempty"`
	Raw         *string        `json:"raw,omitempty"`
	Follow      bool           `json:"follow,omitempty"`
	MaxPageSize int            `json:"maxPageSize,omitempty"`
	Summary     bool           `json:"summary,omitempty"`
}

type odataError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Target  string `json:"target"`
}

type metadataDoc struct {
	FilterFunctions []string          `json:"filterFunctions"`
	Sets            map[string]string `json:"sets"`
	Types           map[string]struct {
		Keys  []string `json:"keys"`
		Props map[string]struct {
			Type     string `json:"type"`
			Nullable bool   `json:"nullable"`
		} `json:"props"`
	} `json:"types"`
}

type result struct {
	Name         string           `json:"name"`
	Failure      string           `json:"failure"`
	Status       int              `json:"status"`
	ContentType  string           `json:"contentType"`
	ODataVersion string           `json:"odataVersion"`
	Pages        int              `json:"pages"`
	Rows         []map[string]any `json:"rows"`
	RowCount     int              `json:"rowCount"`
	Distinct     int              `json:"distinct"`
	Count        *float64         `json:"count"`
	PageCounts   []float64        `json:"pageCounts"`
	Context      string           `json:"context"`
	NextLink     *string          `json:"nextLink"`
	Error        *odataError      `json:"error"`
	AuthError    string           `json:"authError"`
	Metadata     *metadataDoc     `json:"metadata"`
	Ms           int              `json:"ms"`
}

// peer runs the requests through the independent OData client and
// returns its results by name.
func peer(t *testing.T, reqs []req) map[string]result {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		prereq.Missing(t, "node not found: %v (install Node.js 20+)", err)
	}
	dir, err := filepath.Abs(filepath.Join("..", "..", "test", "peers", "odata"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "odata-query")); err != nil {
		prereq.Missing(t, "OData peer not installed: run `npm ci --prefix test/peers/odata` (%v)", err)
	}
	in, _ := json.Marshal(reqs)
	cmd := exec.Command(node, "client.js")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("OData peer: %v\n%s", err, stderr.String())
	}
	var res []result
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("OData peer output: %v\n%.500s", err, out)
	}
	m := map[string]result{}
	for _, r := range res {
		if r.Failure != "" {
			t.Errorf("%s: the client failed: %s", r.Name, r.Failure)
		}
		m[r.Name] = r
	}
	return m
}

func raw(s string) *string { return &s }
