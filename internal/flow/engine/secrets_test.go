package engine_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/flow/engine"
	"github.com/flowgate/flowgate/internal/store"
	"github.com/flowgate/flowgate/internal/store/sqlite"
	"github.com/flowgate/flowgate/internal/store/storetest"
	"github.com/flowgate/flowgate/internal/testutil/syncbuf"
)

// echoServer answers every request with what it received, as JSON: the
// way an API that reflects its input (or an error page quoting it) puts
// a flow's secrets into a step's output.
func echoServer(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		headers := map[string]string{}
		for k, v := range r.Header {
			headers[strings.ToLower(k)] = v[0]
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"headers": headers, "query": r.URL.RawQuery, "body": string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func randomHex(t *testing.T) string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

const leakFlow = `
name: leak
permissions: {start: ["role:employee"]}
steps:
  - id: tok
    type: oauth_server_login
    server: peer
    scope: api.read
  - id: keep
    type: set
    vars:
      named: "${{ secrets.API_KEY }}"
      token: "prefix-${{ steps.tok.output.access_token }}-suffix"
  - id: form
    type: http
    method: POST
    url: "ECHO/form?k=${{ secrets.API_KEY }}"
    headers: {X-Plain: "k=${{ secrets.API_KEY }}", X-Tok: "${{ steps.tok.output.access_token }}"}
    query: {key: "${{ secrets.API_KEY }}", t: "${{ steps.tok.output.access_token }}"}
    form: {client_secret: "${{ secrets.CLIENT_SECRET }}", note: "the key is ${{ secrets.API_KEY }}"}
  - id: body
    type: http
    method: POST
    url: ECHO/body
    body: {token: "${{ steps.tok.output.access_token }}", nested: {s: "x${{ secrets.CLIENT_SECRET }}x"}}
  - id: starter
    type: http
    url: ECHO/starter
    auth: {server: peer, as: starter}
  - id: approve
    type: task
    title: "Check ${{ secrets.API_KEY }}"
    assignees: ["role:approver"]
    actions: [OK]
  - id: done
    type: return
    headers: {X-Key: "${{ secrets.API_KEY }}"}
    body:
      named: "${{ secrets.API_KEY }}"
      token: "${{ steps.tok.output.access_token }}"
      echoed: "${{ steps.starter.output.body.headers.authorization }}"
      form: "${{ steps.form.output.body.body }}"
`

const leakFailFlow = `
name: leak-fail
permissions: {start: ["role:employee"]}
steps:
  - id: tok
    type: oauth_server_login
    server: peer
    scope: api.read
  - id: call
    type: http
    url: "http://127.0.0.1:1/x?k=${{ secrets.API_KEY }}&t=${{ steps.tok.output.access_token }}"
    timeout: 2s
`

const leakFailStepFlow = `
name: leak-fail-step
permissions: {start: ["role:employee"]}
steps:
  - id: no
    type: fail
    error: "refused with key ${{ secrets.API_KEY }} and secret ${{ secrets.CLIENT_SECRET }}"
`

// TestSecretsMaskedWherever plants every kind of secret (a named secret,
// an oauth_server_login token, the starter's vault token sent by auth:, a
// client secret in a form) in every place a run records (headers, query,
// form, body, an answer echoing them, a return body, error messages,
// vars, a task title) and checks that the history, the instance and the
// SQLite file never hold one in plain text.
func TestSecretsMaskedWherever(t *testing.T) {
	dbPath := filepath.Join(t.TempDir(), "flowgate.db")
	st, err := sqlite.Open(t.Context(), dbPath, store.Options{Sealer: storetest.NewSealer(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	logs := &syncbuf.Buffer{}
	env := newOAuthEnvWith(t, st, engine.Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	echo := echoServer(t)

	apiKey := "nk-" + randomHex(t)
	// Characters that change under URL and JSON encoding, so every form
	// of it must be recognised.
	clientSecret := `cs/+ &="<` + randomHex(t) + `>'`
	for name, v := range map[string]string{"API_KEY": apiKey, "CLIENT_SECRET": clientSecret} {
		if _, _, err := st.SetNamedSecret(t.Context(), name, []byte(v), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	connectExpired(t, env.peer, env.vault, alice.ID)
	for _, src := range []string{leakFlow, leakFailFlow, leakFailStepFlow} {
		deploy(t, env.eng, strings.ReplaceAll(src, "ECHO", echo))
	}

	res, err := env.eng.Invoke(t.Context(), engine.StartRequest{Workflow: "leak", Caller: alice}, false)
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, st, res.Instance.ID, store.StatusWaiting, store.StatusFailed)
	if inst.Status != store.StatusWaiting {
		t.Fatalf("instance %s: %s", inst.Status, inst.Error)
	}
	tasks, _, err := env.eng.ListTasks(t.Context(), bob, false, store.TaskOpen, store.Page{Limit: 10})
	if err != nil || len(tasks) != 1 {
		t.Fatalf("bob's tasks %v, %v", tasks, err)
	}
	if tasks[0].Title != "Check ****" {
		t.Errorf("task title %q, want the key masked", tasks[0].Title)
	}
	if _, err := env.eng.Act(t.Context(), tasks[0].Serial, "OK", nil, bob); err != nil {
		t.Fatal(err)
	}
	inst = waitStatus(t, st, inst.ID, store.StatusCompleted, store.StatusFailed)
	if inst.Status != store.StatusCompleted {
		t.Fatalf("instance %s: %s", inst.Status, inst.Error)
	}

	// The tokens the flow used, as the provider issued them.
	svc, err := env.vault.ServiceToken(t.Context(), "peer", []string{"api.read"})
	if err != nil {
		t.Fatal(err)
	}
	user, err := env.vault.Token(t.Context(), alice.ID, "peer")
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{
		"named secret":    apiKey,
		"client secret":   clientSecret[9:33], // its random part: in any encoding
		"service token":   svc.Token,
		"starter's token": user.Token,
	}

	// What the API shows: masked where each secret was.
	var vars map[string]any
	if err := json.Unmarshal(inst.Vars, &vars); err != nil {
		t.Fatal(err)
	}
	if vars["named"] != "****" || vars["token"] != "prefix-****-suffix" {
		t.Errorf("vars = %v, want the secrets masked inside them", vars)
	}
	body := responseBody(t, inst)
	if body["named"] != "****" || body["token"] != "****" || body["echoed"] != "Bearer ****" {
		t.Errorf("output body = %v, want every secret masked", body)
	}
	if form, _ := body["form"].(string); !strings.Contains(form, "client_secret=****") || !strings.Contains(form, "the+key+is+****") {
		t.Errorf("echoed form %q, want the form-encoded secrets masked", form)
	}
	var out engine.Response
	_ = json.Unmarshal(inst.Output, &out)
	if out.Headers["X-Key"] != "****" {
		t.Errorf("output headers = %v", out.Headers)
	}
	recs := history(t, st, inst.ID)
	var input struct {
		URL     string            `json:"url"`
		Headers map[string]string `json:"headers"`
		Form    map[string]string `json:"form"`
	}
	for _, rec := range recs {
		if rec.StepID == "form" && rec.Status == store.StepCompleted {
			if err := json.Unmarshal(rec.Input, &input); err != nil {
				t.Fatal(err)
			}
		}
	}
	if input.Headers["X-Plain"] != "k=****" || input.Form["client_secret"] != "****" || !strings.Contains(input.URL, "key=****") {
		t.Errorf("form step input %+v, want the secrets masked", input)
	}

	// Errors: an http step that fails with the secrets in its URL, and a
	// fail step that names them.
	for _, wf := range []string{"leak-fail", "leak-fail-step"} {
		s, err := env.eng.StartInstance(t.Context(), engine.StartRequest{Workflow: wf, Caller: alice})
		if err != nil {
			t.Fatal(err)
		}
		failed := waitStatus(t, st, s.Instance.ID, store.StatusCompleted, store.StatusFailed)
		if failed.Status != store.StatusFailed || !strings.Contains(failed.Error, "****") {
			t.Errorf("%s: %s with error %q, want failed with the secrets masked", wf, failed.Status, failed.Error)
		}
		assertNoSecrets(t, st, failed.ID, secrets)
	}
	assertNoSecrets(t, st, inst.ID, secrets)

	// The invoke answer is the flow's own, for its caller: not a record.
	deploy(t, env.eng, `
name: give
permissions: {start: ["role:employee"]}
steps:
  - {id: give, type: return, body: {key: "${{ secrets.API_KEY }}"}}
`)
	given, err := env.eng.Invoke(t.Context(), engine.StartRequest{Workflow: "give", Caller: alice}, false)
	if err != nil || given.Response == nil {
		t.Fatalf("invoke: %+v, %v", given, err)
	}
	if b, _ := given.Response.Body.(map[string]any); b["key"] != apiKey {
		t.Errorf("invoke answer %v, want the flow's own answer", given.Response.Body)
	}
	if body := responseBody(t, waitStatus(t, st, given.Instance.ID, store.StatusCompleted)); body["key"] != "****" {
		t.Errorf("recorded output %v, want the key masked", body)
	}
	assertNoSecrets(t, st, given.Instance.ID, secrets)

	// Nowhere in the database file, nor in the logs.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var file []byte
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(dbPath + suffix)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		file = append(file, b...)
	}
	for what, v := range secrets {
		if bytes.Contains(file, []byte(v)) {
			t.Errorf("the database file holds the %s in plain text", what)
		}
		if strings.Contains(logs.String(), v) {
			t.Errorf("the logs hold the %s", what)
		}
	}
}

// assertNoSecrets checks the instance row and its history as the API
// reads them.
func assertNoSecrets(t *testing.T, st store.Store, id string, secrets map[string]string) {
	t.Helper()
	inst, err := st.GetInstance(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	shown := string(inst.Vars) + string(inst.Output) + inst.Error + string(inst.Input)
	for _, rec := range history(t, st, id) {
		shown += string(rec.Input) + string(rec.Output) + rec.Error
	}
	for what, v := range secrets {
		if strings.Contains(shown, v) {
			t.Errorf("instance %s (%s) shows the %s", id, inst.Workflow, what)
		}
	}
}

// TestUnknownSecretFailsTheStep checks that a secret that is not set
// fails the step that reads it, naming the secret.
func TestUnknownSecretFailsTheStep(t *testing.T) {
	st := openStore(t)
	e := newEngine(t, st, engine.Config{})
	deploy(t, e, `
name: nosecret
permissions: {start: ["role:employee"]}
steps:
  - id: first
    type: set
    vars: {a: 1}
  - id: use
    type: return
    body: {k: "${{ secrets.MISSING }}"}
`)
	s, err := e.StartInstance(t.Context(), engine.StartRequest{Workflow: "nosecret", Caller: alice})
	if err != nil {
		t.Fatal(err)
	}
	inst := waitStatus(t, st, s.Instance.ID, store.StatusCompleted, store.StatusFailed)
	if inst.Status != store.StatusFailed || inst.Error != `step "use": secret "MISSING" is not set (flowgate secret set MISSING)` {
		t.Errorf("instance %s: %q", inst.Status, inst.Error)
	}
	recs := history(t, st, inst.ID)
	if last := recs[len(recs)-1]; last.StepID != "use" || last.Status != store.StepFailed {
		t.Errorf("last record %+v, want step use failed", last)
	}
}
