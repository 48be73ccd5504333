package engine_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/backend"
	"github.com/flowgate/flowgate/internal/testutil/oauthpeer"
	"github.com/flowgate/flowgate/internal/vault"
)

// These tests run the OAuth steps against an independent provider
// (panva/node-oidc-provider, internal/testutil/oauthpeer): tokens, refresh
// and user logins are the provider's, not Flowgate's own.

// bearerTarget is an API that records the bearer tokens it is sent and
// refuses those listed in reject with 401.
type bearerTarget struct {
	mu     sync.Mutex
	seen   []string
	reject map[string]bool
}

func (b *bearerTarget) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	b.mu.Lock()
	b.seen = append(b.seen, tok)
	bad := !ok || tok == "" || b.reject[tok]
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if bad {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_token"}`))
		return
	}
	_, _ = w.Write([]byte(`{"ok":true}`))
}

func (b *bearerTarget) tokens() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.seen...)
}

type oauthEnv struct {
	st     backend.Store
	peer   *oauthpeer.Peer
	vault  *vault.Vault
	eng    *engine.Engine
	target *bearerTarget
	url    string
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	return newOAuthEnvWith(t, openStore(t), engine.Config{})
}

// newOAuthEnvWith is newOAuthEnv on a given store and engine config.
func newOAuthEnvWith(t *testing.T, st backend.Store, cfg engine.Config) *oauthEnv {
	t.Helper()
	env := &oauthEnv{st: st, peer: oauthpeer.Start(t, oauthpeer.Options{}), target: &bearerTarget{reject: map[string]bool{}}}
	srv := httptest.NewServer(env.target)
	t.Cleanup(srv.Close)
	env.url = srv.URL
	for _, s := range []store.OAuthServer{
		{Name: "peer", MetadataURL: env.peer.MetadataURL(), ClientID: oauthpeer.BasicClient, ClientSecret: oauthpeer.BasicSecret,
			ClientAuth: "client_secret_basic", Scopes: []string{"openid", "api.read"}, UsePKCE: true, RedirectURI: env.peer.RedirectURI()},
		{Name: "noscope", MetadataURL: env.peer.MetadataURL(), ClientID: oauthpeer.PostClient, ClientSecret: oauthpeer.PostSecret,
			ClientAuth: "client_secret_post", UsePKCE: true, RedirectURI: env.peer.RedirectURI()},
	} {
		if err := env.st.CreateOAuthServer(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	env.vault = newVault(t, env.st)
	cfg.Vault, cfg.PublicURL = env.vault, "https://flowgate.example/"
	env.eng = newEngine(t, env.st, cfg)
	return env
}

// outputs reads the instance's step outputs as the history shows them.
func historyOutputs(t *testing.T, s store.Store, id string) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, rec := range history(t, s, id) {
		if len(rec.Output) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(rec.Output, &m); err != nil {
			t.Fatal(err)
		}
		out[rec.StepID] = m
	}
	return out
}

func responseBody(t *testing.T, inst store.Instance) map[string]any {
	t.Helper()
	var resp engine.Response
	if err := json.Unmarshal(inst.Output, &resp); err != nil {
		t.Fatalf("output %s: %v", inst.Output, err)
	}
	body, _ := resp.Body.(map[string]any)
	return body
}

func TestOAuthServerLoginAndServiceAuth(t *testing.T) {
	env := newOAuthEnv(t)
	// A server removed after the deploy that named it: its steps answer
	// -2 (no configuration) at run time.
	if err := env.st.CreateOAuthServer(t.Context(), store.OAuthServer{Name: "nowhere", TokenEndpoint: "https://nowhere.example/token",
		ClientID: "x", ClientAuth: "client_secret_basic"}); err != nil {
		t.Fatal(err)
	}
	deploy(t, env.eng, `
name: svc
permissions: {start: ["role:employee"]}
steps:
  - id: tok
    type: oauth_server_login
    server: peer
    scope: api.read
  - id: call
    type: http
    url: `+env.url+`/api
    auth: {server: peer, as: service}
  - id: missing
    type: oauth_server_login
    server: nowhere
  - id: unscoped
    type: oauth_server_login
    server: noscope
  - id: norefresh
    type: oauth_refresh
    server: peer
    refresh_token: ""
  - id: refreshnowhere
    type: oauth_refresh
    server: nowhere
    refresh_token: "abc"
  - id: done
    type: return
    body:
      code: "${{ steps.tok.output.status_code }}"
      type: "${{ steps.tok.output.token_type }}"
      scopes: "${{ steps.tok.output.granted_scopes }}"
      expires: "${{ steps.tok.output.expires_in > 0 }}"
      same: "${{ steps.tok.output.access_token != '' }}"
      status: "${{ steps.call.output.status }}"
      missing: "${{ steps.missing.output.status_code }}"
      unscoped: "${{ steps.unscoped.output.status_code }}"
      norefresh: "${{ steps.norefresh.output.status_code }}"
      refreshnowhere: "${{ steps.refreshnowhere.output.status_code }}"
`)
	if err := env.st.DeleteOAuthServer(t.Context(), "nowhere"); err != nil {
		t.Fatal(err)
	}
	started, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "svc", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, env.st, started.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if inst.Status != store.StatusCompleted {
		t.Fatalf("instance %s: %s", inst.Status, inst.Error)
	}
	body := responseBody(t, inst)
	want := map[string]any{"code": 0.0, "type": "Bearer", "expires": true, "same": true, "status": 200.0,
		"missing": -2.0, "unscoped": -3.0, "norefresh": -3.0, "refreshnowhere": -2.0}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("%s = %v (%T), want %v; body %v", k, body[k], body[k], v, body)
		}
	}
	if got, _ := body["scopes"].([]any); len(got) != 1 || got[0] != "api.read" {
		t.Errorf("granted_scopes = %v, want [api.read]", body["scopes"])
	}
	// The API got a real token of the provider; the monitor masks it.
	seen := env.target.tokens()
	if len(seen) != 1 || seen[0] == "" {
		t.Fatalf("the API saw tokens %v, want one", seen)
	}
	outs := historyOutputs(t, env.st, inst.ID)
	if outs["tok"]["access_token"] != "****" {
		t.Errorf("history shows access_token %v, want it masked", outs["tok"]["access_token"])
	}
	if outs["missing"]["error"] == nil || !strings.Contains(outs["missing"]["error"].(string), "nowhere") {
		t.Errorf("missing server: output %v, want an error naming it", outs["missing"])
	}
	assertNoToken(t, env.st, inst.ID, seen[0])
}

// assertNoToken checks that the instance row and its history never hold
// tok in plain text.
func assertNoToken(t *testing.T, s store.Store, id, tok string) {
	t.Helper()
	inst, err := s.GetInstance(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"vars": inst.Vars, "output": inst.Output, "input": inst.Input} {
		if strings.Contains(string(b), tok) {
			t.Errorf("instance %s holds the token in plain text", name)
		}
	}
	for _, rec := range history(t, s, id) {
		if strings.Contains(string(rec.Input)+string(rec.Output)+rec.Error, tok) {
			t.Errorf("history of step %s holds the token in plain text", rec.StepID)
		}
	}
}

const userLoginFlow = `
name: mine
permissions: {start: ["role:employee"]}
steps:
  - id: login
    type: oauth_user_login
    server: peer
    scope: "openid api.read offline_access"
    use_prompt: true
  - id: check
    type: switch
    cases:
      - when: "${{ steps.login.output.status_code != 0 }}"
        next: failed
  - id: call
    type: http
    url: TARGET/me
    auth: {server: peer, as: starter}
  - id: refresh
    type: oauth_refresh
    server: peer
    refresh_token: "${{ steps.login.output.refresh_token }}"
  - id: call2
    type: http
    url: TARGET/me
    auth: {server: peer, as: starter}
  - id: done
    type: return
    body: {status: "${{ steps.call.output.status }}", refreshed: "${{ steps.refresh.output.status_code }}", status2: "${{ steps.call2.output.status }}"}
  - id: failed
    type: return
    status: 409
    body: {code: "${{ steps.login.output.status_code }}", error: "${{ steps.login.output.error }}"}
`

// signIn plays the /connect endpoint and the provider's callback: the
// engine's pending sign-in, the provider's pages, the code exchange.
func signIn(t *testing.T, env *oauthEnv, id, stepID string, caller engine.Caller, deny bool) engine.ConnectResult {
	t.Helper()
	p, err := env.eng.PendingConnect(t.Context(), id, stepID, caller)
	if err != nil {
		t.Fatalf("pending connect: %v", err)
	}
	client, err := env.vault.Client(t.Context(), p.Server)
	if err != nil {
		t.Fatal(err)
	}
	verifier := connectors.NewVerifier()
	authURL, err := client.AuthCodeURL(t.Context(), connectors.AuthRequest{State: "st-" + id, PKCEVerifier: verifier, Scopes: p.Scopes, UsePrompt: &p.UsePrompt})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(authURL, "prompt=consent") != p.UsePrompt || !strings.Contains(authURL, "code_challenge_method=S256") {
		t.Errorf("authorization URL %s: prompt=consent should be there exactly when use_prompt (%v), and PKCE S256 always", authURL, p.UsePrompt)
	}
	cb := env.peer.Login(t, authURL, oauthpeer.LoginOptions{Deny: deny})
	res := engine.ConnectResult{PendingConnect: p}
	if e := cb.Query().Get("error"); e != "" {
		res.Status = engine.ConnectStatus(&connectors.Error{Kind: connectors.KindAccessDenied, Code: e})
		res.Error = e
		return res
	}
	tok, err := client.Exchange(t.Context(), cb.Query().Get("code"), verifier, p.Scopes)
	if err != nil {
		res.Status, res.Error = engine.ConnectStatus(err), err.Error()
		return res
	}
	if err := env.vault.Save(t.Context(), p.Principal, p.Server, tok); err != nil {
		t.Fatal(err)
	}
	res.Token = &tok
	return res
}

func TestOAuthUserLogin(t *testing.T) {
	env := newOAuthEnv(t)
	deploy(t, env.eng, strings.ReplaceAll(userLoginFlow, "TARGET", env.url))
	res, err := env.eng.Invoke(t.Context(), engine.StartRequest{Workflow: "mine", Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	id := res.Instance.ID
	if res.Done || res.ConnectURL != "https://flowgate.example/connect/"+id+"/login" {
		t.Fatalf("invoke: done %v, connect_url %q; want a pending sign-in link", res.Done, res.ConnectURL)
	}
	tasks, _, err := env.eng.ListTasks(t.Context(), alice, false, store.TaskOpen, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != store.TaskTypeConnect || tasks[0].ConnectURL != res.ConnectURL {
		t.Fatalf("alice's worklist %+v, want one connect task with the link", tasks)
	}
	// Nobody but the starter may sign in for the instance, not even an
	// administrator: the tokens would be theirs.
	admin := bob
	admin.Admin = true
	for _, c := range []engine.Caller{bob, admin} {
		if _, err := env.eng.PendingConnect(t.Context(), id, "login", c); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s pending connect: %v, want ErrNotFound", c.ID, err)
		}
	}
	outcome := signIn(t, env, id, "login", alice, false)
	if outcome.Token == nil {
		t.Fatalf("sign-in failed: %d %s", outcome.Status, outcome.Error)
	}
	if err := env.eng.FinishConnect(t.Context(), outcome); err != nil {
		t.Fatal(err)
	}
	// A second answer for the same sign-in changes nothing.
	if err := env.eng.FinishConnect(t.Context(), outcome); !errors.Is(err, engine.ErrNotPending) {
		t.Errorf("second FinishConnect: %v, want ErrNotPending", err)
	}
	inst := waitStatus(t, env.st, id, store.StatusCompleted, store.StatusFailed)
	body := responseBody(t, inst)
	if inst.Status != store.StatusCompleted || body["status"] != 200.0 || body["refreshed"] != 0.0 || body["status2"] != 200.0 {
		t.Fatalf("instance %s (%s), body %v; want completed with both calls 200 and the refresh 0", inst.Status, inst.Error, body)
	}
	// The first call used the login's token; oauth_refresh went through
	// the vault (the token was the vault's), so the second call's token
	// is the refreshed one and the vault never holds a used refresh token.
	seen := env.target.tokens()
	if len(seen) != 2 || seen[0] != outcome.Token.AccessToken || seen[1] == seen[0] {
		t.Errorf("the API saw %d tokens (first is the login's: %v, second differs: %v)", len(seen), len(seen) > 0 && seen[0] == outcome.Token.AccessToken, len(seen) > 1 && seen[1] != seen[0])
	}
	if st := env.peer.Stats(t); st.RefreshGrants != 1 || st.RefreshErrors != 0 {
		t.Errorf("provider stats %+v, want one refresh and no errors", st)
	}
	if tok, err := env.vault.Token(t.Context(), alice.ID, "peer"); err != nil || tok.Token != seen[1] {
		t.Errorf("vault token after the refresh: %v, matches the one used: %v", err, err == nil && tok.Token == seen[1])
	}
	tasks, _, _ = env.eng.ListTasks(t.Context(), alice, false, store.TaskOpen, store.Page{Limit: 10})
	if len(tasks) != 0 {
		t.Errorf("open tasks after the sign-in: %+v", tasks)
	}
	outs := historyOutputs(t, env.st, id)
	if outs["login"]["access_token"] != "****" || outs["login"]["refresh_token"] != "****" || outs["refresh"]["refresh_token"] != "****" {
		t.Errorf("history outputs not masked: login %v, refresh %v", outs["login"], outs["refresh"])
	}
	for _, tok := range []string{outcome.Token.AccessToken, outcome.Token.RefreshToken, seen[1]} {
		assertNoToken(t, env.st, id, tok)
	}
}

func TestOAuthUserLoginDeniedAndUnreachable(t *testing.T) {
	env := newOAuthEnv(t)
	deploy(t, env.eng, strings.ReplaceAll(userLoginFlow, "TARGET", env.url))
	start := func() string {
		s, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "mine", Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, env.st, s.Instance.ID, store.StatusWaiting)
		return s.Instance.ID
	}
	finish := func(id string, res engine.ConnectResult) map[string]any {
		if err := env.eng.FinishConnect(t.Context(), res); err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, env.st, id, store.StatusCompleted, store.StatusFailed)
		return responseBody(t, inst)
	}
	denied := start()
	if body := finish(denied, signIn(t, env, denied, "login", alice, true)); body["code"] != -2.0 {
		t.Errorf("denied sign-in: body %v, want code -2", body)
	}
	// The provider goes away between the login page and the code
	// exchange: a connection error, -3.
	down := start()
	p, err := env.eng.PendingConnect(t.Context(), down, "login", alice)
	if err != nil {
		t.Fatal(err)
	}
	client, err := env.vault.Client(t.Context(), "peer")
	if err != nil {
		t.Fatal(err)
	}
	verifier := connectors.NewVerifier()
	authURL, err := client.AuthCodeURL(t.Context(), connectors.AuthRequest{State: "s", PKCEVerifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	cb := env.peer.Login(t, authURL, oauthpeer.LoginOptions{})
	env.peer.Stop()
	_, err = client.Exchange(t.Context(), cb.Query().Get("code"), verifier, nil)
	if err == nil {
		t.Fatal("exchange with the provider down succeeded")
	}
	body := finish(down, engine.ConnectResult{PendingConnect: p, Status: engine.ConnectStatus(err), Error: err.Error()})
	if body["code"] != -3.0 {
		t.Errorf("provider down: body %v, want code -3", body)
	}
}

// A token the API refuses with 401 gets one refresh and one more try; a
// connection the provider no longer honours gives status -1 with the
// reason, and no request goes out.
func TestHTTPAuthStarterRefreshAndReconnect(t *testing.T) {
	env := newOAuthEnv(t)
	deploy(t, env.eng, `
name: call
permissions: {start: ["role:employee", "role:approver"]}
steps:
  - id: call
    type: http
    url: `+env.url+`/me
    auth: {server: peer, as: starter}
  - id: done
    type: return
    body: {status: "${{ steps.call.output.status }}", error: "${{ steps.call.output.error }}"}
`)
	run := func(c engine.Caller) map[string]any {
		s, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "call", Caller: c})
		if err != nil {
			t.Fatal(err)
		}
		inst := waitStatus(t, env.st, s.Instance.ID, store.StatusCompleted, store.StatusFailed)
		if inst.Status != store.StatusCompleted {
			t.Fatalf("instance %s: %s", inst.Status, inst.Error)
		}
		return responseBody(t, inst)
	}
	// bob never connected.
	if body := run(bob); body["status"] != -1.0 || !strings.Contains(body["error"].(string), "not connected") {
		t.Errorf("not connected: body %v, want status -1 saying so", body)
	}
	// alice connects through a login in a separate instance.
	deploy(t, env.eng, strings.ReplaceAll(userLoginFlow, "TARGET", env.url))
	s, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "mine", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, env.st, s.Instance.ID, store.StatusWaiting)
	login := signIn(t, env, s.Instance.ID, "login", alice, false)
	if login.Token == nil {
		t.Fatalf("sign-in: %s", login.Error)
	}
	cur, err := env.vault.Token(t.Context(), alice.ID, "peer")
	if err != nil {
		t.Fatal(err)
	}
	before := env.peer.Stats(t).RefreshGrants
	env.target.mu.Lock()
	env.target.reject[cur.Token] = true
	env.target.mu.Unlock()
	if body := run(alice); body["status"] != 200.0 {
		t.Errorf("after a 401: body %v, want 200 with a refreshed token", body)
	}
	if got := env.peer.Stats(t).RefreshGrants - before; got != 1 {
		t.Errorf("refreshes after one 401: %d, want 1", got)
	}
	// The user withdraws consent at the provider: the next refresh gets
	// invalid_grant and the connection needs the user again.
	env.peer.RevokeGrants(t)
	now, err := env.vault.Token(t.Context(), alice.ID, "peer")
	if err != nil {
		t.Fatal(err)
	}
	env.target.mu.Lock()
	env.target.reject[now.Token] = true
	env.target.mu.Unlock()
	body := run(alice)
	if body["status"] != 401.0 {
		t.Errorf("revoked grant: body %v, want the API's 401 to stand", body)
	}
	for range 2 {
		body := run(alice)
		if body["status"] != -1.0 || !strings.Contains(body["error"].(string), "reconnect required") {
			t.Errorf("after invalid_grant: body %v, want status -1 saying reconnect required", body)
		}
	}
	// The sign-in instance above was left waiting; it is not in the way.
	if _, err := env.eng.Cancel(t.Context(), s.Instance.ID, alice); err != nil {
		t.Fatal(err)
	}
	// One reconnect link in alice's worklist, however many steps needed it.
	tasks, _, err := env.eng.ListTasks(t.Context(), alice, false, store.TaskOpen, store.Page{Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 1 || tasks[0].Type != store.TaskTypeConnect || tasks[0].Title != "Reconnect to peer" ||
		tasks[0].ConnectURL != "https://flowgate.example/connect/"+tasks[0].InstanceID+"/call" {
		t.Fatalf("alice's worklist %+v, want one reconnect link", tasks)
	}
	reconnectID := tasks[0].InstanceID
	// Following it connects alice again without touching the instance,
	// which has long completed; the next run calls the API with a token.
	again := signIn(t, env, reconnectID, "call", alice, false)
	if again.Token == nil || again.Seq != 0 {
		t.Fatalf("reconnect: %+v", again)
	}
	if err := env.eng.FinishConnect(t.Context(), again); err != nil {
		t.Fatal(err)
	}
	if err := env.eng.FinishConnect(t.Context(), again); !errors.Is(err, engine.ErrNotPending) {
		t.Errorf("second reconnect answer: %v, want ErrNotPending", err)
	}
	if tasks, _, _ := env.eng.ListTasks(t.Context(), alice, false, store.TaskOpen, store.Page{Limit: 10}); len(tasks) != 0 {
		t.Errorf("open tasks after reconnecting: %+v", tasks)
	}
	if body := run(alice); body["status"] != 200.0 {
		t.Errorf("after reconnecting: body %v, want 200", body)
	}
}

const callFlow = `
name: call-as-starter
permissions: {start: ["role:employee"]}
steps:
  - id: call
    type: http
    url: TARGET/me
    auth: {server: peer, as: starter}
  - id: done
    type: return
    body: {status: "${{ steps.call.output.status }}"}
`

// connectExpired signs principal in at the peer (no instance involved)
// and stores the connection with its access token already expired, so
// the next use must refresh.
func connectExpired(t *testing.T, peer *oauthpeer.Peer, v *vault.Vault, principal string) {
	t.Helper()
	client, err := v.Client(t.Context(), "peer")
	if err != nil {
		t.Fatal(err)
	}
	verifier := connectors.NewVerifier()
	authURL, err := client.AuthCodeURL(t.Context(), connectors.AuthRequest{State: "s", PKCEVerifier: verifier, Scopes: []string{"openid", "api.read", "offline_access"}})
	if err != nil {
		t.Fatal(err)
	}
	cb := peer.Login(t, authURL, oauthpeer.LoginOptions{})
	tok, err := client.Exchange(t.Context(), cb.Query().Get("code"), verifier, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("the provider issued no refresh token")
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	if err := v.Save(t.Context(), principal, "peer", tok); err != nil {
		t.Fatal(err)
	}
}

// startCalls starts n instances of callFlow as alice, spread over the
// engines, at once, and waits for all to complete with status 200.
func startCalls(t *testing.T, st store.Store, engines []*engine.Engine, n int) {
	t.Helper()
	ids := make([]string, n)
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := engines[i%len(engines)].StartInstance(t.Context(), engine.StartRequest{Workflow: "call-as-starter", Caller: alice})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = s.Instance.ID
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, id := range ids {
		inst := waitStatus(t, st, id, store.StatusCompleted, store.StatusFailed)
		if body := responseBody(t, inst); inst.Status != store.StatusCompleted || body["status"] != 200.0 {
			t.Fatalf("instance %s: %s %q, body %v", id, inst.Status, inst.Error, body)
		}
	}
}

// 50 http steps of one user whose access token has expired: the provider
// (which rotates refresh tokens and revokes the grant on reuse) sees
// exactly one refresh, and all 50 calls succeed with the new token.
func TestFiftyStepsOneRefresh(t *testing.T) {
	env := newOAuthEnv(t)
	deploy(t, env.eng, strings.ReplaceAll(callFlow, "TARGET", env.url))
	connectExpired(t, env.peer, env.vault, alice.ID)
	startCalls(t, env.st, []*engine.Engine{env.eng}, 50)
	if st := env.peer.Stats(t); st.RefreshGrants != 1 || st.RefreshErrors != 0 {
		t.Errorf("provider stats %+v, want exactly one refresh and no error", st)
	}
	seen := env.target.tokens()
	for _, tok := range seen {
		if tok != seen[0] {
			t.Fatal("the 50 calls did not all send the one refreshed token")
		}
	}
}
