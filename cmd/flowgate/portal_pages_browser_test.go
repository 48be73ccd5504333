package main

// The portal's pages for everyone, end to end on the real binary, in a
// real headless Chromium, on SQLite and on PostgreSQL: an employee starts
// the expense flow from its start form (a bad value first: the message
// next to the field, nothing started), sees the instance waiting at the
// approval on its diagram; the approver signs in, finds the task in
// /tasks, fills its form and presses Approve; the instance completes and
// its page marks the way it took and lists its history. Around that: the
// instance list and its filters, cancel, the password form (its policy's
// message next to the field, nothing changed), ending a session, and
// forged or missing CSRF tokens refused with nothing changed.

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
	"github.com/flowgate/flowgate/internal/testutil/pgtest"
)

const (
	// pagesSecret is a named secret the flow reads: pages show it masked.
	pagesSecret           = "expense-ref-7c1d2e"
	pagesEmployeePassword = "employee-password-1"
	pagesApproverPassword = "approver-password-1"
)

// pagesFlow is the expense flow of the pages tests: amounts above 500
// need an approver.
const pagesFlow = `
name: expense
title: Expense claim
description: Expenses above 500 need an approver.
permissions: {start: ["role:employee"]}
input:
  amount: {type: number, required: true, description: "The amount, above zero"}
  currency: {type: string, enum: [EUR, USD, GBP], default: EUR}
  purpose: {type: string, required: true, description: "What the money was spent on"}
steps:
  - id: reference
    type: set
    vars: {reference: "ref ${{ secrets.EXPENSE_REF }}"}
  - id: check
    type: switch
    cases:
      - when: "${{ input.amount > 500 }}"
        next: approve
    default: auto
  - id: auto
    type: set
    vars: {approved_by: auto}
    next: done
  - id: approve
    type: task
    title: "Approve ${{ input.amount }} ${{ input.currency }} for ${{ input.purpose }}"
    assignees: ["role:approver"]
    actions: [Approve, Reject]
    form:
      comment: {type: string, description: "Shown to the employee"}
    next: {Approve: done, Reject: rejected}
  - id: done
    type: return
    status: 201
    body: {approved: true}
  - id: rejected
    type: fail
    error: "the expense was rejected"
`

// newPagesEnv serves the binary on dsn ("" for a new SQLite file).
// pagesTripFlow has branches and items, for the instance page's frames.
const pagesTripFlow = `
name: trip
title: Business trip
description: Travel and budget are reviewed side by side; each leg is then booked.
permissions: {start: ["role:employee"]}
input:
  destination: {type: string, required: true, description: "Where to"}
steps:
  - id: reviews
    type: parallel
    branches:
      travel: [{id: travel-ok, type: task, title: "Travel to ${{ input.destination }}", assignees: ["role:approver"], actions: [OK]}]
      budget:
        - {id: budget-ok, type: task, title: "Budget for ${{ input.destination }}", assignees: ["role:approver"], actions: [OK]}
        - {id: budget-note, type: set, vars: {budget: checked}}
  - id: legs
    type: foreach
    items: "${{ ['out', 'back'] }}"
    as: leg
    steps: [{id: book, type: set, vars: {booked: "${{ leg }}"}}]
  - {id: done, type: return, body: {booked: "${{ vars.booked }}"}}
`

func newPagesEnv(t *testing.T, dsn string) *connectEnv {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	if dsn == "" {
		dsn = "sqlite:" + e.dbPath
	}
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "expense.yaml"), []byte(pagesFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "trip.yaml"), []byte(pagesTripFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: %q
users:
  - username: emma
    password: %q
    roles: [employee]
  - username: victor
    password: %q
    roles: [approver]
apis:
  basic_auth: true
flows: %s
`, dsn, pagesEmployeePassword, pagesApproverPassword, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"FLOWGATE_SECRET_KEY=" + durableKey}
	e.srv = startServeAt(t, dir, addr, env, "--config", cfg, "--public-url", e.base)
	if r := run(t, dir, pagesSecret+"\n", env, "secret", "set", "EXPENSE_REF", "--value-stdin", "--config", cfg); r.code != 0 {
		t.Fatalf("secret set: %+v", r)
	}
	return e
}

// emmaInstances lists emma's instances through the API.
func (e *connectEnv) emmaInstances(t *testing.T) []any {
	t.Helper()
	code, body, raw := e.api(t, http.MethodGet, "/api/v1/instances", "emma", pagesEmployeePassword, nil)
	if code != http.StatusOK {
		t.Fatalf("emma's instances: %d %s", code, raw)
	}
	items, _ := body["items"].([]any)
	return items
}

// waitStatus waits until emma's instance has the status.
func (e *connectEnv) waitStatus(t *testing.T, id, status string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body, raw := e.api(t, http.MethodGet, "/api/v1/instances/"+id, "emma", pagesEmployeePassword, nil)
		if code == http.StatusOK && body["status"] == status {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("instance %s: %d %s; want %s", id, code, raw, status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count counts the elements the selector finds on the browser's page.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`document.querySelectorAll(%q).length`, sel)))
	if err != nil {
		t.Fatalf("counting %s: %v", sel, err)
	}
	return n
}

// describedError reads the message tied to a field by aria-describedby.
func describedError(t *testing.T, ctx context.Context, id string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(document.getElementById((document.getElementById(%q).getAttribute('aria-describedby')) || '') || {}).textContent || ''`, id)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// postForm posts a form with a signed-in client, answering the status
// and where it was sent.
func postForm(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// pageCSRF reads a page's CSRF token with a signed-in client.
func pageCSRF(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	_, page := getPage(t, c, u)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on %s:\n%s", u, page)
	}
	return m[1]
}

func TestBrowserPortalPages(t *testing.T) { testPortalPages(t, "", true) }

func TestBrowserPortalPagesPostgres(t *testing.T) { testPortalPages(t, pgtest.DSN(t), false) }

// testPortalPages runs the story on a database; check runs axe and the
// screenshots on every page (once is enough: the pages do not depend on
// the backend).
func testPortalPages(t *testing.T, dsn string, check bool) {
	e := newPagesEnv(t, dsn)
	checkPage := func(ctx context.Context, name string) {
		if check {
			browser.CheckPage(t, ctx, name)
		}
	}
	noFollow := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx := browser.New(t)

	// Signed out, /flows goes to the sign-in page and back.
	p := e.open(t, ctx, e.base+"/flows")
	if p.url.Path != "/login" {
		t.Fatalf("/flows signed out landed on %s", p.url)
	}
	p = e.signIn(t, ctx, "emma", pagesEmployeePassword)
	if p.url.Path != "/flows" || !strings.Contains(p.text, "Expense claim") {
		t.Fatalf("after sign-in: %s\n%s", p.url, p.text)
	}
	checkPage(ctx, "flows")
	p = e.click(t, ctx, `main a[href="/flows/expense"]`)
	if p.status != http.StatusOK || p.title != "Expense claim" || count(t, ctx, `svg.flow-diagram g.node[data-step="approve"]`) != 1 ||
		count(t, ctx, `svg.flow-diagram g.edge[data-from="check"][data-to="approve"] text.edge-label`) != 1 {
		t.Fatalf("the flow page: %d %q\n%s", p.status, p.title, p.text)
	}
	if !strings.Contains(p.text, "Version 1") {
		t.Errorf("the flow page lists no versions:\n%s", p.text)
	}
	checkPage(ctx, "flow start")

	// Bad input: the amount left out. The engine's message is next to
	// the field, what was typed stays, and nothing is started.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-purpose"), "Conference in Lyon")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `main form button[type=submit]`)
	if p.status != http.StatusBadRequest || p.url.Path != "/flows/expense" {
		t.Fatalf("start without an amount: %d at %s\n%s", p.status, p.url, p.text)
	}
	if msg := describedError(t, ctx, "f-amount"); msg != "required" {
		t.Fatalf("the amount's message: %q\n%s", msg, p.text)
	}
	if kept, _ := chromedp.Run(ctx, chromedp.Value(chromedp.CSS("#f-purpose"))); kept != "Conference in Lyon" {
		t.Fatalf("the purpose typed was not kept: %q", kept)
	}
	checkPage(ctx, "flow start with an error")
	if n := len(e.emmaInstances(t)); n != 0 {
		t.Fatalf("a refused start created %d instances", n)
	}

	// A start posted without the browser's token, or with another, is
	// refused and starts nothing.
	jar, _ := cookiejar.New(nil)
	emma := &http.Client{Jar: jar, CheckRedirect: noFollow}
	cookieSignIn(t, emma, e.base, "emma", pagesEmployeePassword)
	for name, token := range map[string]string{"missing": "", "forged": strings.Repeat("A", 43)} {
		form := url.Values{"amount": {"900"}, "purpose": {"x"}}
		if token != "" {
			form.Set("csrf_token", token)
		}
		if code, _ := postForm(t, emma, e.base+"/flows/expense", form); code != http.StatusForbidden {
			t.Errorf("start with a %s CSRF token: %d, want 403", name, code)
		}
	}
	if n := len(e.emmaInstances(t)); n != 0 {
		t.Fatalf("forged starts created %d instances", n)
	}

	// The good start: 303 to the new instance, waiting at the approval,
	// which its diagram marks as the current step.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-amount"), "1200")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `main form button[type=submit]`)
	id := strings.TrimPrefix(p.url.Path, "/instances/")
	if p.status != http.StatusOK || id == p.url.Path || !strings.Contains(p.text, "waiting") {
		t.Fatalf("after the start: %d at %s\n%s", p.status, p.url, p.text)
	}
	if count(t, ctx, `g.node.current[data-step="approve"]`) != 1 || count(t, ctx, `g.node.taken[data-step="check"]`) != 1 ||
		count(t, ctx, `g.edge.taken[data-from="reference"][data-to="check"]`) != 1 ||
		count(t, ctx, `g.edge.taken[data-from="check"][data-to="approve"]`) != 1 || count(t, ctx, `g.node.taken[data-step="auto"]`) != 0 {
		t.Fatalf("the waiting instance's diagram does not mark check → approve (current)")
	}
	checkPage(ctx, "instance waiting")
	// The one script ran under the pages' CSP: times are rewritten in the
	// browser's zone (the UTC text kept as the tooltip), and the page of
	// an instance that has not ended asks to be refreshed.
	if n := count(t, ctx, `time[datetime][title$="UTC"]`); n == 0 {
		t.Error("no <time> was rewritten by the page's script")
	}
	if count(t, ctx, `[data-refresh]`) != 1 {
		t.Error("the waiting instance's page does not ask to be refreshed")
	}
	if items := e.emmaInstances(t); len(items) != 1 || items[0].(map[string]any)["id"] != id {
		t.Fatalf("emma's instances: %v, want %s alone", items, id)
	}

	// The instance list: mine, filtered by status and flow; a status
	// that is none is a 400 with the message next to the field.
	p = e.open(t, ctx, e.base+"/instances")
	if !strings.Contains(p.text, id) {
		t.Fatalf("/instances lacks %s:\n%s", id, p.text)
	}
	checkPage(ctx, "instances")
	if _, page := getPage(t, emma, e.base+"/instances?status=waiting&workflow=expense"); !strings.Contains(page, id) {
		t.Errorf("filter waiting/expense lacks %s", id)
	}
	if _, page := getPage(t, emma, e.base+"/instances?status=completed"); strings.Contains(page, id) {
		t.Errorf("filter completed shows the waiting %s", id)
	}
	if code, page := getPage(t, emma, e.base+"/instances?status=bogus"); code != http.StatusBadRequest || !regexp.MustCompile(`id="e-status">&#34;bogus&#34; is not an instance status<`).MatchString(page) {
		t.Errorf("status=bogus: %d\n%s", code, page)
	}

	// The password form: the current password is required and checked,
	// the policy's message is next to the new password, and nothing
	// changes (the old password still signs in).
	p = e.open(t, ctx, e.base+"/account")
	if !strings.Contains(p.text, "emma") || !strings.Contains(p.text, "(this browser)") {
		t.Fatalf("/account:\n%s", p.text)
	}
	checkPage(ctx, "account")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-current"), "not-my-password"), chromedp.SendKeys(chromedp.CSS("#f-new"), "short")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/account/password"] button[type=submit]`)
	if p.status != http.StatusBadRequest || describedError(t, ctx, "f-new") != "password must be 8 to 1024 characters" ||
		describedError(t, ctx, "f-current") != "This is not your current password." {
		t.Fatalf("a short password with a wrong current one: %d new %q current %q", p.status, describedError(t, ctx, "f-new"), describedError(t, ctx, "f-current"))
	}
	checkPage(ctx, "account with an error")
	token := pageCSRF(t, emma, e.base+"/account")
	if code, _ := postForm(t, emma, e.base+"/account/password", url.Values{"csrf_token": {strings.Repeat("B", 43)},
		"current_password": {pagesEmployeePassword}, "new_password": {"a-new-password-1"}}); code != http.StatusForbidden {
		t.Errorf("password change with a forged CSRF token: %d, want 403", code)
	}
	if code, _ := postForm(t, emma, e.base+"/account/password", url.Values{"csrf_token": {token},
		"current_password": {pagesEmployeePassword}, "new_password": {"short"}}); code != http.StatusBadRequest {
		t.Errorf("password change to a short one: %d, want 400", code)
	}
	if code, _, raw := e.api(t, http.MethodGet, "/api/v1/me", "emma", pagesEmployeePassword, nil); code != http.StatusOK {
		t.Fatalf("the old password no longer works after refused changes: %d %s", code, raw)
	}

	// Cancel: a forged token changes nothing; the real one cancels.
	code, body, raw := e.api(t, http.MethodPost, "/api/v1/workflows/expense/instances", "emma", pagesEmployeePassword, map[string]any{"amount": 900, "purpose": "Hotel"})
	if code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, raw)
	}
	second := body["id"].(string)
	if code, _ := postForm(t, emma, e.base+"/instances/"+second+"/cancel", url.Values{"csrf_token": {strings.Repeat("C", 43)}}); code != http.StatusForbidden {
		t.Errorf("cancel with a forged CSRF token: %d, want 403", code)
	}
	e.waitStatus(t, second, "waiting")
	token = pageCSRF(t, emma, e.base+"/instances/"+second)
	if code, loc := postForm(t, emma, e.base+"/instances/"+second+"/cancel", url.Values{"csrf_token": {token}}); code != http.StatusSeeOther || loc != "/instances/"+second {
		t.Errorf("cancel: %d to %q", code, loc)
	}
	e.waitStatus(t, second, "cancelled")
	if code, _ := postForm(t, emma, e.base+"/instances/"+second+"/cancel", url.Values{"csrf_token": {token}}); code != http.StatusConflict {
		t.Errorf("cancelling a cancelled instance: %d, want 409", code)
	}

	// Ending a session: emma ends the HTTP client's session from her
	// account page; that client is signed out, the browser is not.
	_, page := getPage(t, emma, e.base+"/account")
	current := regexp.MustCompile(`(?s)\(this browser\)</strong>.*?name="session" value="([0-9a-f]+)"`).FindStringSubmatch(page)
	if current == nil {
		t.Fatalf("no session marked as this one on /account:\n%s", page)
	}
	if code, _ := postForm(t, emma, e.base+"/account/sessions/end", url.Values{"csrf_token": {pageCSRF(t, emma, e.base+"/account")}, "session": {current[1]}}); code != http.StatusSeeOther {
		t.Errorf("ending a session: %d", code)
	}
	resp, err := emma.Get(e.base + "/account")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("after ending its session the client gets %d %s, want the sign-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
	if p = e.open(t, ctx, e.base+"/connections"); p.status != http.StatusOK || !strings.Contains(p.text, "You have no connections") {
		t.Fatalf("/connections in the browser: %d\n%s", p.status, p.text)
	}
	checkPage(ctx, "connections")
	if p = e.open(t, ctx, e.base+"/no/such/page"); p.status != http.StatusNotFound || p.title != "Not found" {
		t.Fatalf("an unknown path: %d %q", p.status, p.title)
	}
	checkPage(ctx, "not found")
	// The catch-all behind that 404 page leaves the 405 of paths served
	// for other methods alone.
	for _, c := range []struct{ method, path, allow string }{{"GET", "/oauth2/token", "POST"}, {"PUT", "/flows/expense", "GET, POST"}, {"DELETE", "/", "GET"}} {
		req, _ := http.NewRequest(c.method, e.base+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d Allow %q, want 405 Allow %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Allow"), c.allow)
		}
	}

	// The approver: signs out emma, signs in, finds the task, fills the
	// form and presses Approve.
	e.click(t, ctx, `header form button[type=submit]`)
	p = e.open(t, ctx, e.base+"/tasks")
	if p.url.Path != "/login" {
		t.Fatalf("after signing out /tasks is at %s", p.url)
	}
	p = e.signIn(t, ctx, "victor", pagesApproverPassword)
	const title = "Approve 1200 EUR for Conference in Lyon"
	if p.url.Path != "/tasks" || !strings.Contains(p.text, title) {
		t.Fatalf("victor's tasks: %s\n%s", p.url, p.text)
	}
	checkPage(ctx, "my tasks")
	p = e.open(t, ctx, e.base+"/")
	checkPage(ctx, "home")
	p = e.click(t, ctx, `main a[href^="/tasks/"]`)
	if p.title != title {
		t.Fatalf("the task: %q\n%s", p.title, p.text)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-comment"), "fine")); err != nil {
		t.Fatal(err)
	}
	checkPage(ctx, "task")
	p = e.click(t, ctx, `button[value="Approve"]`)
	if p.url.Path != "/tasks" || !strings.Contains(p.text, "is done") {
		t.Fatalf("after approving: %s\n%s", p.url, p.text)
	}
	e.waitStatus(t, id, "completed")

	// The instance's page, for its assignee too: completed, the way it
	// took marked on the diagram, and the history.
	p = e.open(t, ctx, e.base+"/instances/"+id)
	if p.status != http.StatusOK || !strings.Contains(p.text, "completed") {
		t.Fatalf("the completed instance: %d\n%s", p.status, p.text)
	}
	for _, sel := range []string{`g.node.taken[data-step="check"]`, `g.node.taken[data-step="approve"]`, `g.node.taken[data-step="done"]`,
		`g.edge.taken[data-from="check"][data-to="approve"]`, `g.edge.taken[data-from="approve"][data-to="done"]`} {
		if count(t, ctx, sel) != 1 {
			t.Errorf("the completed instance's diagram lacks %s", sel)
		}
	}
	if count(t, ctx, `g.node.taken[data-step="auto"]`)+count(t, ctx, `g.node.current`)+count(t, ctx, `g.node.failed`) != 0 {
		t.Error("the completed instance's diagram marks a step it did not take, or a current or failed one")
	}
	steps, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('#history tbody tr td:nth-child(2)')].map(td => td.firstChild.textContent.trim()).join(',')`))
	if err != nil || steps != "reference,check,approve,done" {
		t.Errorf("the history table's steps: %q (%v)", steps, err)
	}
	history, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('history').textContent`))
	if err != nil || !strings.Contains(history, `"comment": "fine"`) || !strings.Contains(history, `"reference": "ref ****"`) {
		t.Errorf("the history lacks the approver's comment or the masked secret (%v):\n%s", err, history)
	}
	// The secret is masked as in the API's history, wherever it appears.
	if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, pagesSecret) || !strings.Contains(p.text, `"reference": "ref ****"`) {
		t.Error("the instance page shows the named secret, or not its masked form in the variables")
	}
	_, apiHistory, _ := e.api(t, http.MethodGet, "/api/v1/instances/"+id+"/history", "emma", pagesEmployeePassword, nil)
	first, _ := apiHistory["items"].([]any)
	if len(first) == 0 || !strings.Contains(fmt.Sprint(first[0]), "ref ****") {
		t.Errorf("the API's history of the first step: %v, want the same masked value", first)
	}
	if count(t, ctx, `[data-refresh]`) != 0 {
		t.Error("the completed instance's page still asks to be refreshed")
	}
	checkPage(ctx, "instance")

	// A rejected expense fails at the fail step: its page marks that
	// step failed and says why.
	code, body, raw = e.api(t, http.MethodPost, "/api/v1/workflows/expense/instances", "emma", pagesEmployeePassword, map[string]any{"amount": 800, "purpose": "Taxi"})
	if code != http.StatusCreated {
		t.Fatalf("start: %d %s", code, raw)
	}
	third := body["id"].(string)
	_, tasks, _ := e.api(t, http.MethodGet, "/api/v1/tasks", "victor", pagesApproverPassword, nil)
	var serial float64
	for _, it := range tasks["items"].([]any) {
		if task := it.(map[string]any); task["instance"] == third {
			serial = task["serial"].(float64)
		}
	}
	if code, _, raw := e.api(t, http.MethodPost, fmt.Sprintf("/api/v1/tasks/%d/actions/Reject", int64(serial)), "victor", pagesApproverPassword, map[string]any{}); code != http.StatusOK {
		t.Fatalf("reject: %d %s", code, raw)
	}
	e.waitStatus(t, third, "failed")
	p = e.open(t, ctx, e.base+"/instances/"+third)
	if !strings.Contains(p.text, "the expense was rejected") || count(t, ctx, `g.node.failed[data-step="rejected"]`) != 1 ||
		count(t, ctx, `g.edge.taken[data-from="approve"][data-to="rejected"]`) != 1 || count(t, ctx, `g.node.taken[data-step="done"]`) != 0 {
		t.Errorf("the failed instance's page does not mark the failed step or say why:\n%s", p.text)
	}
	checkPage(ctx, "instance failed")

	// A trip waits at its two reviews at once: the approver, assigned a
	// branch's task, sees the instance with both branches' tasks marked
	// current inside the parallel's frame, and the branches listed as
	// its children.
	code, body, raw = e.api(t, http.MethodPost, "/api/v1/workflows/trip/instances", "emma", pagesEmployeePassword, map[string]any{"destination": "Lyon"})
	if code != http.StatusCreated {
		t.Fatalf("start a trip: %d %s", code, raw)
	}
	trip := body["id"].(string)
	e.waitStatus(t, trip, "waiting")
	var tripTasks []float64
	for range 100 {
		_, tasks, _ = e.api(t, http.MethodGet, "/api/v1/tasks", "victor", pagesApproverPassword, nil)
		tripTasks = nil
		for _, it := range tasks["items"].([]any) {
			if task := it.(map[string]any); strings.HasSuffix(fmt.Sprint(task["title"]), "Lyon") {
				tripTasks = append(tripTasks, task["serial"].(float64))
			}
		}
		if len(tripTasks) == 2 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(tripTasks) != 2 {
		t.Fatalf("victor's trip tasks: %v", tripTasks)
	}
	p = e.open(t, ctx, e.base+"/instances/"+trip)
	if p.status != http.StatusOK || count(t, ctx, `svg.flow-diagram g.node.current[data-step="travel-ok"]`) != 1 ||
		count(t, ctx, `svg.flow-diagram g.node.current[data-step="budget-ok"]`) != 1 || !strings.Contains(p.text, "branch travel of reviews") {
		t.Fatalf("the trip's page does not show both branches waiting: %d\n%s", p.status, p.text)
	}
	checkPage(ctx, "instance with branches")
	for _, serial := range tripTasks {
		if code, _, raw := e.api(t, http.MethodPost, fmt.Sprintf("/api/v1/tasks/%d/actions/OK", int64(serial)), "victor", pagesApproverPassword, map[string]any{}); code != http.StatusOK {
			t.Fatalf("OK: %d %s", code, raw)
		}
	}
	e.waitStatus(t, trip, "completed")
	p = e.open(t, ctx, e.base+"/instances/"+trip)
	if !strings.Contains(p.text, "item 1 of legs") || count(t, ctx, `svg.flow-diagram g.node.taken[data-step="book"]`) != 1 ||
		count(t, ctx, `svg.flow-diagram g.node.current`) != 0 {
		t.Errorf("the completed trip's page does not show its items:\n%s", p.text)
	}

	// Victor changes his password on his account page: the new one
	// signs in, the old one no longer does.
	e.open(t, ctx, e.base+"/account")
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#f-current"), pagesApproverPassword),
		chromedp.SendKeys(chromedp.CSS("#f-new"), "victor-new-password-2")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `form[action="/account/password"] button[type=submit]`)
	if p.url.Path != "/account" || !strings.Contains(p.text, "Your password is changed.") {
		t.Fatalf("after changing the password: %s\n%s", p.url, p.text)
	}
	if code, _, _ := e.api(t, http.MethodGet, "/api/v1/me", "victor", "victor-new-password-2", nil); code != http.StatusOK {
		t.Errorf("the new password: %d", code)
	}
	if code, _, _ := e.api(t, http.MethodGet, "/api/v1/me", "victor", pagesApproverPassword, nil); code != http.StatusUnauthorized {
		t.Errorf("the old password: %d, want 401", code)
	}

	// The pages' CSP allows the one script file and nothing inline.
	victorJar, _ := cookiejar.New(nil)
	victor := &http.Client{Jar: victorJar, CheckRedirect: noFollow}
	cookieSignIn(t, victor, e.base, "victor", "victor-new-password-2")
	resp, err = victor.Get(e.base + "/instances/" + id)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); resp.StatusCode != http.StatusOK || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("the pages' CSP: %q", csp)
	}
	resp, err = http.Get(e.base + "/assets/flowgate.js")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("ETag") == "" {
		t.Errorf("the script: %d %v", resp.StatusCode, resp.Header)
	}

	// Guessing the current password on the account page is throttled
	// like sign-ins: after five wrong ones, the form says to wait.
	token = pageCSRF(t, victor, e.base+"/account")
	codes := ""
	for range 6 {
		code, _ := postForm(t, victor, e.base+"/account/password", url.Values{"csrf_token": {token},
			"current_password": {"guess-" + token[:6]}, "new_password": {"whatever-new-1"}})
		codes += fmt.Sprint(code, " ")
	}
	if codes != "400 400 400 400 400 429 " {
		t.Errorf("six wrong current passwords: %s, want five 400 then 429", codes)
	}
}
