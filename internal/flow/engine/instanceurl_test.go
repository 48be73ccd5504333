package engine_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/flowgate/flowgate/internal/connectors"
	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
)

// salesforceToken is a token endpoint on 127.0.0.1 that answers the way
// Salesforce does: no expires_in, the org's API base in instance_url, an
// identity URL, issued_at and a signature. A refresh answer leaves the
// refresh token out, and here instance_url too, so that the vault must
// give the one it kept from the login. instanceURL is what it sends.
type salesforceToken struct {
	instanceURL string
	mu          sync.Mutex
	grants      []string
}

func (s *salesforceToken) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil || r.URL.Path != "/services/oauth2/token" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	grant := r.PostForm.Get("grant_type")
	s.mu.Lock()
	s.grants = append(s.grants, grant)
	n := len(s.grants)
	s.mu.Unlock()
	ans := map[string]any{
		"access_token": "00Dxx!AQ-" + grant + "-" + string(rune('a'+n)),
		"id":           "https://login.salesforce.com/id/00Dxx0000001gPL/005xx000001Sv6A",
		"token_type":   "Bearer",
		"issued_at":    "1765000000000",
		"signature":    "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=",
		"scope":        "api refresh_token",
	}
	if grant != "refresh_token" {
		ans["instance_url"] = s.instanceURL
	}
	if grant == "authorization_code" {
		ans["refresh_token"] = "5Aep-refresh-" + string(rune('a'+n))
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}

const instanceURLFlow = `
name: sf
permissions: {start: ["role:employee"]}
steps:
  - id: login
    type: oauth_user_login
    server: sf
  - id: refresh
    type: oauth_refresh
    server: sf
    refresh_token: "${{ steps.login.output.refresh_token }}"
  - id: svc
    type: oauth_server_login
    server: sf
  - id: bad
    type: oauth_server_login
    server: sfbad
  - id: done
    type: return
    body:
      login: "${{ steps.login.output.instance_url + '/services/data/v60.0/' }}"
      refresh: "${{ steps.refresh.output.instance_url }}"
      svc: "${{ steps.svc.output.instance_url }}"
      bad: "${{ steps.bad.output.status_code }}"
`

// TestOAuthInstanceURL: a Salesforce-like token answer's instance_url is
// an output of oauth_user_login (at the sign-in, and later from the
// vault's connection), of oauth_refresh (whose answer has none: the
// connection's), and of oauth_server_login (the service-token cache); a
// non-https instance_url is no output at all.
func TestOAuthInstanceURL(t *testing.T) {
	const org = "https://acme.my.salesforce.com"
	good := &salesforceToken{instanceURL: org}
	bad := &salesforceToken{instanceURL: "http://acme.my.salesforce.com"}
	goodSrv, badSrv := httptest.NewServer(good), httptest.NewServer(bad)
	t.Cleanup(goodSrv.Close)
	t.Cleanup(badSrv.Close)
	// No node peer: the Salesforce-like endpoint is the provider.
	env := &oauthEnv{st: openStore(t)}
	for _, s := range []store.OAuthServer{
		{Name: "sf", AuthorizationEndpoint: goodSrv.URL + "/services/oauth2/authorize", TokenEndpoint: goodSrv.URL + "/services/oauth2/token",
			ClientID: "3MVG9-consumer-key", ClientSecret: "sf-consumer-secret", Scopes: []string{"api", "refresh_token"},
			UsePKCE: true, RedirectURI: "https://flowgate.example/oauth-callback"},
		{Name: "sfbad", TokenEndpoint: badSrv.URL + "/services/oauth2/token",
			ClientID: "3MVG9-consumer-key", ClientSecret: "sf-consumer-secret", Scopes: []string{"api"}},
	} {
		if err := env.st.CreateOAuthServer(t.Context(), s); err != nil {
			t.Fatal(err)
		}
	}
	env.vault = newVault(t, env.st)
	env.eng = newEngine(t, env.st, engine.Config{Vault: env.vault, PublicURL: "https://flowgate.example/"})
	deploy(t, env.eng, instanceURLFlow)
	want := map[string]any{"login": org + "/services/data/v60.0/", "refresh": org, "svc": org, "bad": 0.0}
	check := func(inst store.Instance) {
		t.Helper()
		if inst.Status != store.StatusCompleted {
			t.Fatalf("instance %s: %s", inst.Status, inst.Error)
		}
		body := responseBody(t, inst)
		for k, v := range want {
			if body[k] != v {
				t.Errorf("%s = %v, want %v; body %v", k, body[k], v, body)
			}
		}
		outs := historyOutputs(t, env.st, inst.ID)
		if _, ok := outs["bad"]["instance_url"]; ok || outs["bad"]["access_token"] == nil {
			t.Errorf("bad: output %v, want a token and no instance_url (http is refused)", outs["bad"])
		}
		if outs["login"]["instance_url"] != org || outs["login"]["access_token"] != "****" {
			t.Errorf("login history %v: instance_url is not a secret, the token is", outs["login"])
		}
	}

	// The first run signs in: its outputs come from the code exchange.
	res, err := env.eng.Invoke(t.Context(), engine.StartRequest{Workflow: "sf", Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	p, err := env.eng.PendingConnect(t.Context(), res.Instance.ID, "login", alice)
	if err != nil {
		t.Fatal(err)
	}
	client, err := env.vault.Client(t.Context(), "sf")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := client.Exchange(t.Context(), "aPrx-code", connectors.NewVerifier(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.vault.Save(t.Context(), p.Principal, "sf", tok); err != nil {
		t.Fatal(err)
	}
	if err := env.eng.FinishConnect(t.Context(), engine.ConnectResult{PendingConnect: p, Token: &tok}); err != nil {
		t.Fatal(err)
	}
	check(waitStatus(t, env.st, res.Instance.ID, store.StatusCompleted, store.StatusFailed))

	// The second run finds the connection: the instance URL comes from
	// the vault's row, not from a token answer.
	started, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: "sf", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	check(waitStatus(t, env.st, started.Instance.ID, store.StatusCompleted, store.StatusFailed))

	good.mu.Lock()
	grants := strings.Join(good.grants, " ")
	good.mu.Unlock()
	// One exchange; one refresh per run (oauth_refresh); one client
	// credentials token, cached for the second run.
	if grants != "authorization_code refresh_token client_credentials refresh_token" {
		t.Errorf("the provider saw grants %q", grants)
	}
	if c, err := env.st.GetConnection(t.Context(), alice.ID, "sf"); err != nil || c.InstanceURL != org {
		t.Errorf("vault connection: InstanceURL %q, %v; want %q", c.InstanceURL, err, org)
	}
}
