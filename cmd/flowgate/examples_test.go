package main

// The flows in examples/ are documentation that runs: this test deploys
// every one of them into the real binary and runs each to its end against
// real parts: an independent OAuth provider (internal/testutil/oauthpeer)
// for service tokens and for the starter's sign-in through its own pages,
// and an HTTP server on 127.0.0.1 standing in for the ERP and the other
// APIs the examples call. Their example.com hosts are replaced by that
// server's URL when the files are deployed.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
)

const (
	examplesDir       = "../../examples"
	exampleAlicePass  = "alice-password-1"
	exampleBobPass    = "bob-password-1"
	exampleShopSecret = "shop-secret-that-is-long-enough-1"
	// exampleCarrierKey is the named secret CARRIER_API_KEY.
	exampleCarrierKey = "carrier-key-5f1e9a"
)

// exampleHosts are the made-up hosts the examples call.
var exampleHosts = regexp.MustCompile(`https://[a-z0-9-]+\.example\.com`)

// fakeAPIs plays the ERP, the reporting API and the carrier's rates API,
// and records what it was sent.
type fakeAPIs struct {
	mu    sync.Mutex
	calls []apiCallSeen
}

type apiCallSeen struct {
	method, path, query string
	bearer, apiToken    string
	body                map[string]any
}

func (f *fakeAPIs) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := apiCallSeen{method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, apiToken: r.Header.Get("X-Api-Token")}
	c.bearer, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if b, _ := io.ReadAll(r.Body); len(b) > 0 {
		_ = json.Unmarshal(b, &c.body)
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	n := len(f.calls)
	f.mu.Unlock()
	answer := func(status int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
	switch {
	case (r.URL.Path == "/api/expenses" || r.URL.Path == "/api/orders") && c.bearer == "",
		strings.HasPrefix(r.URL.Path, "/api/sales/") && c.apiToken == "":
		answer(http.StatusUnauthorized, `{"error":"invalid_token"}`)
	case r.Method == http.MethodPost && r.URL.Path == "/api/expenses":
		answer(http.StatusCreated, fmt.Sprintf(`{"id":"EXP-%d"}`, n))
	case r.Method == http.MethodGet && r.URL.Path == "/api/orders":
		answer(http.StatusOK, `{"orders":[{"id":"A-1","amount":120.5},{"id":"A-2","amount":79.5}]}`)
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/sales/"):
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/v1/") && r.Header.Get("X-Api-Key") != exampleCarrierKey:
		answer(http.StatusUnauthorized, `{"error":"bad API key"}`)
	case r.Method == http.MethodGet && r.URL.Path == "/v1/zones/eu":
		answer(http.StatusOK, `{"base":4.9,"per_kg":1.2,"currency":"EUR"}`)
	default:
		answer(http.StatusNotFound, `{"error":"not found"}`)
	}
}

// String leaves the tokens out of failure messages: whether one was sent
// is what the test looks at.
func (c apiCallSeen) String() string {
	return fmt.Sprintf("%s %s?%s bearer:%t X-Api-Token:%t body:%v", c.method, c.path, c.query, c.bearer != "", c.apiToken != "", c.body)
}

// seen returns the calls made to path so far.
func (f *fakeAPIs) seen(path string) []apiCallSeen {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []apiCallSeen
	for _, c := range f.calls {
		if c.path == path {
			out = append(out, c)
		}
	}
	return out
}

type examplesEnv struct {
	base string
	srv  *serving
	peer *oauthpeer.Peer
	apis *fakeAPIs
	shop string // the shop client's access token
}

// exampleFiles lists examples/*.yaml by flow name.
func exampleFiles(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples in %s: %v", examplesDir, err)
	}
	out := map[string]string{}
	nameRE := regexp.MustCompile(`(?m)^name: (\S+)$`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m := nameRE.FindSubmatch(b)
		if m == nil {
			t.Fatalf("%s: no name: line", f)
		}
		out[string(m[1])] = f
	}
	return out
}

func newExamplesEnv(t *testing.T, examples map[string]string) *examplesEnv {
	t.Helper()
	dir := t.TempDir()
	e := &examplesEnv{apis: &fakeAPIs{}}
	api := httptest.NewServer(e.apis)
	t.Cleanup(api.Close)
	addr := freeAddr(t)
	e.base = "http://" + addr
	e.peer = oauthpeer.Start(t, oauthpeer.Options{RedirectURI: e.base + "/oauth-callback"})

	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range examples {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !exampleHosts.Match(src) {
			t.Fatalf("%s calls no https://….example.com host the test can stand in for", f)
		}
		src = exampleHosts.ReplaceAll(src, []byte(api.URL))
		if err := os.WriteFile(filepath.Join(fdir, filepath.Base(f)), src, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: alice
    password: %q
    roles: [employee]
  - username: bob
    password: %q
    roles: [approver]
clients:
  - id: shop
    secret: %q
    grant_types: [client_credentials]
    scopes: [flows.invoke]
oauth_servers:
  - name: erp
    metadata_url: %q
    client_id: %s
    client_secret: %s
    scopes: [openid, api.read]
apis:
  basic_auth: true
egress:
  allow: [127.0.0.1/32] # the provider and the stand-in APIs
flows: %s
`, filepath.Join(dir, "flowgate.db"), exampleAlicePass, exampleBobPass, exampleShopSecret,
		e.peer.MetadataURL(), oauthpeer.BasicClient, oauthpeer.BasicSecret, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"FLOWGATE_SECRET_KEY=" + durableKey}
	// The named secret is set before the server starts, as an operator
	// would: only migrate creates the database.
	if r := run(t, dir, "", env, "migrate", "--config", cfg); r.code != 0 {
		t.Fatalf("migrate: %+v", r)
	}
	if r := run(t, dir, exampleCarrierKey, env, "secret", "set", "CARRIER_API_KEY", "--value-stdin", "--config", cfg); r.code != 0 {
		t.Fatalf("secret set: %+v", r)
	}
	e.srv = startServeAt(t, dir, addr, env, "--config", cfg, "--public-url", e.base)
	e.shop = clientToken(t, e.base, "shop", exampleShopSecret, "flows.invoke")
	return e
}

// call calls the API with HTTP Basic (user, password) or, with user "",
// the bearer token in pass; it returns the status, headers and JSON body.
func (e *examplesEnv) call(t *testing.T, method, path, user, pass string, body any) (int, http.Header, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	} else {
		req.Header.Set("Authorization", "Bearer "+pass)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: HTTP %d, not JSON: %s", method, path, resp.StatusCode, raw)
		}
	}
	return resp.StatusCode, resp.Header, out
}

func (e *examplesEnv) alice(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	code, _, out := e.call(t, method, path, "alice", exampleAlicePass, body)
	return code, out
}

func (e *examplesEnv) bob(t *testing.T, method, path string, body any) (int, map[string]any) {
	t.Helper()
	code, _, out := e.call(t, method, path, "bob", exampleBobPass, body)
	return code, out
}

// start starts flow as alice and returns the instance id.
func (e *examplesEnv) start(t *testing.T, flow string, input map[string]any) string {
	t.Helper()
	code, inst := e.alice(t, http.MethodPost, "/api/v1/workflows/"+flow+"/instances", input)
	id, _ := inst["id"].(string)
	if code != http.StatusCreated || id == "" {
		t.Fatalf("start %s: %d %v\n%s", flow, code, inst, tail(e.srv.stderr.String()))
	}
	return id
}

// waitFor waits until the instance has one of the statuses.
func (e *examplesEnv) waitFor(t *testing.T, id string, statuses ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, inst := e.alice(t, http.MethodGet, "/api/v1/instances/"+id, nil)
		if code == http.StatusOK && slices.Contains(statuses, fmt.Sprint(inst["status"])) {
			return inst
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: %d %v; want status %v\n%s", id, code, inst, statuses, tail(e.srv.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completed waits for the instance's end, requires it completed, and
// returns the return step's status and body.
func (e *examplesEnv) completed(t *testing.T, id string) (float64, map[string]any) {
	t.Helper()
	inst := e.waitFor(t, id, "completed", "failed", "cancelled")
	if inst["status"] != "completed" {
		t.Fatalf("instance %s ended %v: %v", id, inst["status"], inst["error"])
	}
	out, _ := inst["output"].(map[string]any)
	status, _ := out["status"].(float64)
	body, _ := out["body"].(map[string]any)
	return status, body
}

// openTask waits for an open task of the instance in the worklist of a
// user (e.alice or e.bob) and returns it.
func (e *examplesEnv) openTask(t *testing.T, worklist func(*testing.T, string, string, any) (int, map[string]any), id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, list := worklist(t, http.MethodGet, "/api/v1/tasks", nil)
		if code != http.StatusOK {
			t.Fatalf("tasks: %d %v", code, list)
		}
		items, _ := list["items"].([]any)
		for _, it := range items {
			if task, _ := it.(map[string]any); task["instance"] == id {
				return task
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no open task for instance %s in %v\n%s", id, list, tail(e.srv.stderr.String()))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// signInToERP plays alice's browser on the connect link of her task: it
// signs in at Flowgate's login page, follows the link to the provider,
// signs in and consents there (oauthpeer.Login, the provider's own pages),
// and brings the answer back to /oauth-callback.
func (e *examplesEnv) signInToERP(t *testing.T, connectURL string) {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	link, err := url.Parse(connectURL)
	if err != nil {
		t.Fatal(err)
	}
	_, page := get(e.base + "/login?return_to=" + url.QueryEscape(link.Path))
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("Flowgate's login page has no form:\n%s", page)
	}
	resp, err := hc.PostForm(e.base+"/login", url.Values{
		"username": {"alice"}, "password": {exampleAlicePass}, "csrf_token": {m[1]}, "return_to": {link.Path},
	})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 3 || resp.Header.Get("Location") != link.Path {
		t.Fatalf("signing in at Flowgate: HTTP %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, _ = get(connectURL)
	authURL := resp.Header.Get("Location")
	if resp.StatusCode/100 != 3 || !strings.HasPrefix(authURL, e.peer.Issuer) {
		t.Fatalf("the connect link: HTTP %d to %q, want the provider", resp.StatusCode, authURL)
	}
	callback := e.peer.Login(t, authURL, oauthpeer.LoginOptions{Login: "alice"})
	if resp, page = get(callback.String()); resp.StatusCode != http.StatusOK || !strings.Contains(page, "Signed in") {
		t.Fatalf("the callback: HTTP %d:\n%s", resp.StatusCode, page)
	}
}

// TestExamplesRun deploys examples/ and runs every flow in it to its end.
// A flow added to examples/ without a run here fails the test.
func TestExamplesRun(t *testing.T) {
	t.Parallel()
	examples := exampleFiles(t)
	e := newExamplesEnv(t, examples)
	runs := map[string]func(*testing.T){
		"expense-approval": e.runExpenseApproval,
		"service-token":    e.runServiceToken,
		"shipping-quote":   e.runShippingQuote,
	}
	for name := range examples {
		if runs[name] == nil {
			t.Errorf("examples/%s: no run of flow %s in TestExamplesRun", filepath.Base(examples[name]), name)
		}
	}
	for _, name := range []string{"expense-approval", "service-token", "shipping-quote"} {
		if examples[name] == "" {
			t.Errorf("examples/ has no flow %s", name)
			continue
		}
		t.Run(name, runs[name])
	}
}

// runExpenseApproval: an approved expense (the approver's task with its
// form, then alice's sign-in at the ERP and the call with her token), a
// small one (no task, and her connection is reused), and a rejected one.
func (e *examplesEnv) runExpenseApproval(t *testing.T) {
	input := map[string]any{"amount": 1200, "purpose": "Conference in Lyon"}
	if code, body := e.alice(t, http.MethodPost, "/api/v1/workflows/expense-approval/instances", map[string]any{"amount": "1200"}); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(body), "input.amount") || !strings.Contains(fmt.Sprint(body), "input.purpose") {
		t.Errorf("a start with a text amount and no purpose: %d %v, want 400 naming both", code, body)
	}

	// 1. Approved: bob's task, then alice signs in at the ERP.
	id := e.start(t, "expense-approval", input)
	task := e.openTask(t, e.bob, id)
	if title := fmt.Sprint(task["title"]); task["step"] != "approve" || title != "Approve 1200 EUR for Conference in Lyon (alice)" {
		t.Fatalf("bob's task: %v", task)
	}
	serial := fmt.Sprint(task["serial"])
	if code, body := e.bob(t, http.MethodPost, "/api/v1/tasks/"+serial+"/actions/Approve", map[string]any{"comment": 5}); code != http.StatusBadRequest {
		t.Errorf("an action whose comment is not text: %d %v, want 400", code, body)
	}
	if code, body := e.bob(t, http.MethodPost, "/api/v1/tasks/"+serial+"/actions/Approve", map[string]any{"comment": "fine, keep the receipt"}); code != http.StatusOK {
		t.Fatalf("approve: %d %v", code, body)
	}
	code, done := e.bob(t, http.MethodGet, "/api/v1/tasks/"+serial, nil)
	if data, _ := done["data"].(map[string]any); code != http.StatusOK || done["status"] != "done" || done["action"] != "Approve" ||
		done["acted_by"] != "user:bob" || data["comment"] != "fine, keep the receipt" {
		t.Errorf("the approval task afterwards: %d %v", code, done)
	}
	connect := e.openTask(t, e.alice, id)
	connectURL, _ := connect["connect_url"].(string)
	if connect["type"] != "connect" || connectURL == "" {
		t.Fatalf("alice's task: %v, want a connect task", connect)
	}
	e.signInToERP(t, connectURL)
	status, body := e.completed(t, id)
	if status != http.StatusCreated || body["approved_by"] != "user:bob" || body["comment"] != "fine, keep the receipt" || !strings.HasPrefix(fmt.Sprint(body["expense"]), "EXP-") {
		t.Errorf("the approved expense ended with %v %v", status, body)
	}
	filed := e.apis.seen("/api/expenses")
	if len(filed) != 1 || filed[0].bearer == "" || filed[0].body["amount"] != 1200.0 || filed[0].body["approved_by"] != "user:bob" || filed[0].body["currency"] != "EUR" {
		t.Fatalf("the ERP was sent %+v, want one expense with alice's token", filed)
	}
	if s := e.peer.Stats(t); s.CodeGrants != 1 {
		t.Errorf("the provider exchanged %d codes, want 1", s.CodeGrants)
	}

	// 2. Under the limit: no task; alice's connection is reused.
	status, body = e.completed(t, e.start(t, "expense-approval", map[string]any{"amount": 80, "purpose": "Taxi", "currency": "GBP"}))
	if status != http.StatusCreated || body["approved_by"] != "auto" {
		t.Errorf("the small expense ended with %v %v", status, body)
	}
	if filed = e.apis.seen("/api/expenses"); len(filed) != 2 || filed[1].bearer != filed[0].bearer || filed[1].body["currency"] != "GBP" {
		t.Errorf("the ERP was sent %+v, want a second expense with the same token of alice's", filed)
	}
	if s := e.peer.Stats(t); s.CodeGrants != 1 {
		t.Errorf("the second expense made alice sign in again (%d code grants)", s.CodeGrants)
	}

	// 3. Rejected.
	id = e.start(t, "expense-approval", map[string]any{"amount": 900, "purpose": "Chair"})
	serial = fmt.Sprint(e.openTask(t, e.bob, id)["serial"])
	if code, body := e.bob(t, http.MethodPost, "/api/v1/tasks/"+serial+"/actions/Reject", map[string]any{"comment": "no receipt"}); code != http.StatusOK {
		t.Fatalf("reject: %d %v", code, body)
	}
	status, body = e.completed(t, id)
	if status != http.StatusForbidden || body["approved"] != false || body["rejected_by"] != "user:bob" || body["comment"] != "no receipt" {
		t.Errorf("the rejected expense ended with %v %v", status, body)
	}
	if n := len(e.apis.seen("/api/expenses")); n != 2 {
		t.Errorf("a rejected expense reached the ERP (%d calls)", n)
	}
}

// runServiceToken: the report reads orders with the service token and
// publishes the total with the login step's token in a header of its own.
func (e *examplesEnv) runServiceToken(t *testing.T) {
	before := e.peer.Stats(t).ClientCredentialsGrants
	status, body := e.completed(t, e.start(t, "service-token", map[string]any{"day": "2026-03-01"}))
	if status != http.StatusOK || body["day"] != "2026-03-01" || body["orders"] != 2.0 || body["total"] != 200.0 || body["published"] != true {
		t.Errorf("the report ended with %v %v", status, body)
	}
	orders := e.apis.seen("/api/orders")
	if len(orders) != 1 || orders[0].bearer == "" || orders[0].query != "day=2026-03-01&status=shipped" {
		t.Errorf("the ERP's orders were read with %+v", orders)
	}
	published := e.apis.seen("/api/sales/2026-03-01")
	if len(published) != 1 || published[0].method != http.MethodPut || published[0].apiToken == "" || published[0].body["total"] != 200.0 {
		t.Errorf("the reporting API was sent %+v", published)
	}
	if got := e.peer.Stats(t).ClientCredentialsGrants; got <= before {
		t.Errorf("the provider issued no client-credentials token (%d before, %d after)", before, got)
	}
}

// runShippingQuote invokes the quote flow as the shop client: a quote,
// input refused by Flowgate, input refused by the flow, and the carrier's
// 404 turned into 502.
func (e *examplesEnv) runShippingQuote(t *testing.T) {
	const path = "/api/v1/flows/shipping-quote/invoke"
	code, hdr, body := e.call(t, http.MethodPost, path, "", e.shop, map[string]any{"country": "fr", "weight_kg": 2.5, "express": true})
	if strings.Contains(fmt.Sprint(hdr, body), exampleCarrierKey) {
		t.Error("the answer holds the carrier's API key")
	}
	if code != http.StatusOK || hdr.Get("Cache-Control") != "no-store" || body["price"] != 11.85 || body["zone"] != "eu" ||
		body["country"] != "FR" || body["currency"] != "EUR" || body["express"] != true {
		t.Errorf("a quote: %d %v %v", code, hdr, body)
	}
	if code, _, body = e.call(t, http.MethodPost, path, "", e.shop, map[string]any{"weight_kg": 2.5, "colour": "red"}); code != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(body), "input.country") || !strings.Contains(fmt.Sprint(body), "input.colour") {
		t.Errorf("a missing country and an unknown field: %d %v, want 400 naming both", code, body)
	}
	if code, _, body = e.call(t, http.MethodPost, path, "", e.shop, map[string]any{"country": "FR", "weight_kg": 0}); code != http.StatusUnprocessableEntity ||
		!strings.Contains(fmt.Sprint(body["error"]), "weight_kg") {
		t.Errorf("a weight of 0: %d %v, want 422", code, body)
	}
	if code, _, body = e.call(t, http.MethodPost, path, "", e.shop, map[string]any{"country": "US", "weight_kg": 1}); code != http.StatusBadGateway ||
		body["error"] != "no rates for zone world" || body["upstream_status"] != 404.0 {
		t.Errorf("no rates for the zone: %d %v, want 502 with the carrier's 404", code, body)
	}
	if code, _ := e.alice(t, http.MethodPost, path, map[string]any{"country": "FR", "weight_kg": 1}); code != http.StatusForbidden {
		t.Errorf("alice, not in permissions.start, invoked it: %d", code)
	}
}
