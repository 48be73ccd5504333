package main

// The management site's operation pages, end to end: the real binary and
// a real headless Chromium. A non-admin gets the 403 page everywhere under
// /admin; an administrator cancels an instance, flips an API switch (the
// API answers 403 api_disabled), deploys a flow with an error (its line is
// shown) and a good one (pasted, then uploaded), rotates the access-token
// key (the JWKS publishes the new one), reads the audit log, and finds on
// the dashboard the numbers of what the test did. Every page is checked
// with axe-core at a phone's and a desktop's width; forms posted without
// the browser's CSRF token change nothing.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
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
	opsAdmin         = "ops"
	opsAdminPassword = "ops-password-1"
)

// adminPages are the management site's pages. built is false for a page
// not yet served (404 for now): flip it when the page arrives, and the
// 403 check below covers it.
var adminPages = []struct {
	path  string
	built bool
}{
	{"/admin", true},
	{"/admin/flows", true},
	{"/admin/instances", true},
	{"/admin/users", true},
	{"/admin/clients", true},
	{"/admin/identity-providers", true},
	{"/admin/issuers", true},
	{"/admin/oauth-servers", true},
	{"/admin/apis", true},
	{"/admin/audit", true},
	{"/admin/keys", true},
}

const opsFailingFlow = `
name: doomed
permissions: {start: ["role:employee"]}
steps:
  - id: boom
    type: fail
    error: "it went wrong"
`

// opsBadFlow has one mistake, on line 5: an unknown step type.
const opsBadFlow = `name: broken
title: Broken on purpose
steps:
  - id: first
    type: tleport
`

const opsGoodFlow = `name: greet
title: Say hello
steps:
  - id: done
    type: return
    body: {hello: world}
`

// newOpsEnv serves on SQLite, or on the PostgreSQL database dsn when
// not empty.
func newOpsEnv(t *testing.T, dsn string) *connectEnv {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	database := "sqlite:" + e.dbPath
	if dsn != "" {
		database = dsn
	}
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"leave.yaml": portalFlow, "doomed.yaml": opsFailingFlow} {
		if err := os.WriteFile(filepath.Join(fdir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: %q
users:
  - username: alice
    password: %q
    roles: [employee]
  - username: %s
    password: %q
    roles: [admin, employee]
apis:
  basic_auth: true
flows: %s
`, database, portalAlicePassword, opsAdmin, opsAdminPassword, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey},
		"--config", cfg, "--public-url", e.base)
	return e
}

// cookieClient is a plain HTTP client signed in as user, not following
// redirects.
func cookieClient(t *testing.T, base, user, pass string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cookieSignIn(t, c, base, user, pass)
	return c
}

// csrfOf reads the CSRF token of a page's forms.
func csrfOf(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	_, page := getPage(t, c, u)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on %s:\n%s", u, page)
	}
	return m[1]
}

func postStatus(t *testing.T, c *http.Client, u string, form url.Values) int {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

var statRE = regexp.MustCompile(`<dd id="stat-([a-z-]+)">(\d+)</dd>`)

// dashboardStats reads the dashboard's numbers by their ids.
func dashboardStats(t *testing.T, c *http.Client, base string) map[string]string {
	t.Helper()
	code, page := getPage(t, c, base+"/admin")
	if code != http.StatusOK {
		t.Fatalf("dashboard: %d\n%s", code, page)
	}
	out := map[string]string{}
	for _, m := range statRE.FindAllStringSubmatch(page, -1) {
		out[m[1]] = m[2]
	}
	return out
}

func (e *connectEnv) startInstance(t *testing.T, flow string) string {
	t.Helper()
	code, body, raw := e.api(t, http.MethodPost, "/api/v1/workflows/"+flow+"/instances", "alice", portalAlicePassword, map[string]any{})
	if code != http.StatusCreated && code != http.StatusAccepted && code != http.StatusOK {
		t.Fatalf("start %s: %d %s", flow, code, raw)
	}
	id, _ := body["id"].(string)
	if id == "" {
		t.Fatalf("start %s: no id in %s", flow, raw)
	}
	return id
}

func jwksKids(t *testing.T, base string) []string {
	t.Helper()
	resp, err := http.Get(base + "/oauth2/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}

// The dashboard's counts are the store's on each backend, so the whole
// walk runs on both.
func TestBrowserManagementOperations(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testManagementOperations(t, "") })
	t.Run("postgres", func(t *testing.T) { testManagementOperations(t, pgtest.DSN(t)) })
}

func testManagementOperations(t *testing.T, dsn string) {
	e := newOpsEnv(t, dsn)
	base := e.base

	// What the dashboard should count: two leave requests waiting on a
	// task each, of which the admin cancels one; one doomed instance
	// failed; three sign-ins through /login and one failed HTTP Basic.
	leave1 := e.startInstance(t, "leave")
	leave2 := e.startInstance(t, "leave")
	doomed := e.startInstance(t, "doomed")
	if st := e.instance(t, doomed, "failed", "completed")["status"]; st != "failed" {
		t.Fatalf("the doomed instance is %v", st)
	}
	if code, _, raw := e.api(t, http.MethodGet, "/api/v1/workflows", "mallory", "not-a-password", nil); code != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %d %s", code, raw)
	}

	// A non-admin gets the 403 page on every page of the management site
	// (those still to be built answer 404 for now), and on its forms.
	alice := cookieClient(t, base, "alice", portalAlicePassword) // sign-in 1
	for _, p := range adminPages {
		code, page := getPage(t, alice, base+p.path)
		switch {
		case code == http.StatusForbidden && strings.Contains(page, "<h1>Not allowed</h1>"):
		case !p.built && code == http.StatusNotFound:
		default:
			t.Errorf("alice GET %s: %d, want the 403 page", p.path, code)
		}
	}
	aliceToken := csrfOf(t, alice, base+"/tasks")
	for _, p := range []string{"/admin/flows", "/admin/apis", "/admin/keys", "/admin/instances/" + leave1 + "/cancel"} {
		form := url.Values{"csrf_token": {aliceToken}, "purpose": {"access"}, "source": {opsGoodFlow}}
		if code := postStatus(t, alice, base+p, form); code != http.StatusForbidden {
			t.Errorf("alice POST %s: %d, want 403", p, code)
		}
	}

	ctx := browser.New(t)
	p := e.open(t, ctx, base+"/admin")
	if p.url.Path != "/login" {
		t.Fatalf("/admin signed out landed on %s", p.url)
	}
	p = e.signIn(t, ctx, opsAdmin, opsAdminPassword) // sign-in 2
	if p.url.Path != "/admin" || p.title != "Dashboard" {
		t.Fatalf("after sign-in: %s %q\n%s", p.url, p.title, p.text)
	}

	// Instances: filter by flow, cancel one.
	p = e.open(t, ctx, base+"/admin/instances?flow=leave")
	if p.status != http.StatusOK || !strings.Contains(p.text, leave1) || !strings.Contains(p.text, leave2) || strings.Contains(p.text, doomed) {
		t.Fatalf("instances of leave: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/admin/instances")
	p = e.click(t, ctx, `form[action="/admin/instances/`+leave1+`/cancel"] button`)
	if p.url.Path != "/admin/instances" || !strings.Contains(p.text, "Instance "+leave1+" is cancelled.") {
		t.Fatalf("after cancel: %s\n%s", p.url, p.text)
	}
	if st := e.instance(t, leave1, "cancelled")["status"]; st != "cancelled" {
		t.Fatalf("the cancelled instance is %v", st)
	}
	p = e.open(t, ctx, base+"/admin/instances?status=failed")
	if !strings.Contains(p.text, doomed) || strings.Contains(p.text, leave2) {
		t.Errorf("failed instances:\n%s", p.text)
	}
	p = e.open(t, ctx, base+"/admin/instances?status=bogus")
	if p.status != http.StatusBadRequest || !strings.Contains(p.text, `"bogus" is not an instance status.`) {
		t.Errorf("a bad status filter: %d\n%s", p.status, p.text)
	}

	// API switches: the workflow API switched off answers 403
	// api_disabled; on again, it answers.
	p = e.open(t, ctx, base+"/admin/apis")
	browser.CheckPage(t, ctx, "/admin/apis")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sw-workflow"))); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `main button[type=submit]`)
	if p.url.Path != "/admin/apis" || !strings.Contains(p.text, "The API switches are saved.") {
		t.Fatalf("after saving the switches: %s\n%s", p.url, p.text)
	}
	code, body, raw := e.api(t, http.MethodGet, "/api/v1/workflows", "alice", portalAlicePassword, nil)
	if code != http.StatusForbidden || body["error"] != "api_disabled" {
		t.Fatalf("the workflow API switched off: %d %s", code, raw)
	}
	// A post without the browser's token, or with a forged one, changes
	// nothing: the switch it would turn on stays off.
	ops := cookieClient(t, base, opsAdmin, opsAdminPassword) // sign-in 3
	for name, token := range map[string]string{"missing": "", "forged": strings.Repeat("A", 43)} {
		form := url.Values{"workflow": {"on"}, "invoke": {"on"}, "basic_auth": {"on"}}
		if token != "" {
			form.Set("csrf_token", token)
		}
		if code := postStatus(t, ops, base+"/admin/apis", form); code != http.StatusForbidden {
			t.Errorf("%s CSRF token on /admin/apis: %d, want 403", name, code)
		}
	}
	if code, _, _ := e.api(t, http.MethodGet, "/api/v1/workflows", "alice", portalAlicePassword, nil); code != http.StatusForbidden {
		t.Fatalf("after forged posts the workflow API answers %d", code)
	}
	p = e.open(t, ctx, base+"/admin/apis")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#sw-workflow"))); err != nil {
		t.Fatal(err)
	}
	e.click(t, ctx, `main button[type=submit]`)
	if code, _, raw := e.api(t, http.MethodGet, "/api/v1/workflows", "alice", portalAlicePassword, nil); code != http.StatusOK {
		t.Fatalf("the workflow API switched on again: %d %s", code, raw)
	}

	// Flows: a definition with an error shows the problem with its line
	// and keeps the text; nothing is deployed. A good one is.
	p = e.open(t, ctx, base+"/admin/flows")
	browser.CheckPage(t, ctx, "/admin/flows")
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#f-source"), opsBadFlow)); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `main form button[type=submit]`)
	if p.status != http.StatusBadRequest || !strings.Contains(p.text, "line 5:") || !strings.Contains(p.text, "tleport") {
		t.Fatalf("a bad flow: %d\n%s", p.status, p.text)
	}
	fieldErr, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById(document.getElementById('f-source').getAttribute('aria-describedby')) || {}).textContent || ''`))
	if err != nil || !strings.Contains(fieldErr, "line 5:") {
		t.Fatalf("the source field's error: %q (%v)", fieldErr, err)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('f-source').value`))
	if err != nil || kept != opsBadFlow {
		t.Errorf("the form kept %q (%v), want what was pasted", kept, err)
	}
	browser.CheckPage(t, ctx, "/admin/flows with an error")
	if code, _, _ := e.api(t, http.MethodGet, "/api/v1/workflows/broken", "alice", portalAlicePassword, nil); code != http.StatusNotFound {
		t.Errorf("the broken flow: %d, want 404 (not deployed)", code)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#f-source"), opsGoodFlow)); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `main form button[type=submit]`)
	if p.url.Path != "/admin/flows" || !strings.Contains(p.text, "Flow greet version 1 is deployed.") {
		t.Fatalf("a good flow: %s\n%s", p.url, p.text)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href="/flows/greet"]').length`)); err != nil || n != 1 {
		t.Errorf("links to /flows/greet: %d (%v)", n, err)
	}

	// The same by upload, from a plain client: version 2; a file too
	// large is refused and deploys nothing.
	token := csrfOf(t, ops, base+"/admin/flows")
	upload := func(content string) (int, string) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		_ = mw.WriteField("csrf_token", token)
		fw, _ := mw.CreateFormFile("file", "greet.yaml")
		_, _ = io.WriteString(fw, content)
		_ = mw.Close()
		resp, err := ops.Post(base+"/admin/flows", mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Location") + string(b)
	}
	if code, got := upload(strings.Replace(opsGoodFlow, "world", "again", 1)); code != http.StatusSeeOther || !strings.Contains(got, "deployed=greet%402") {
		t.Fatalf("upload: %d %s", code, got)
	}
	if code, got := upload(opsGoodFlow + "# " + strings.Repeat("x", 1<<20) + "\n"); code != http.StatusRequestEntityTooLarge || !strings.Contains(got, "larger than 1024 KiB") {
		t.Errorf("a file too large: %d %.300s", code, got)
	}
	if code, got := upload(opsGoodFlow + "# " + strings.Repeat("x", 2<<20) + "\n"); code != http.StatusRequestEntityTooLarge || !strings.Contains(got, "larger than 1024 KiB") {
		t.Errorf("a body past the form's bound: %d %.300s", code, got)
	}
	if code, page := getPage(t, ops, base+"/admin/flows/greet"); code != http.StatusOK || !strings.Contains(page, "Version 2 (latest)") {
		t.Errorf("after the refused uploads greet's page: %d\n%s", code, page)
	}
	if code, _ := getPage(t, ops, base+"/admin/flows/nope"); code != http.StatusNotFound {
		t.Errorf("an unknown flow's page: %d, want 404", code)
	}

	// One flow's page: versions, source, export.
	p = e.open(t, ctx, base+"/admin/flows/greet?version=1")
	if p.status != http.StatusOK || !strings.Contains(p.text, "hello: world") || !strings.Contains(p.text, "Version 1") {
		t.Fatalf("greet version 1: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/admin/flows/greet")
	resp, err := ops.Get(base + "/admin/flows/greet/export?version=2")
	if err != nil {
		t.Fatal(err)
	}
	exported, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(exported), "hello: again") ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="greet-v2.yaml"` {
		t.Errorf("export: %d %v\n%s", resp.StatusCode, resp.Header, exported)
	}

	// Keys: rotating the access-token key publishes the new one at once,
	// the old one still published.
	before := jwksKids(t, base)

	// Every other form refuses a post without the browser's token, and
	// nothing changes: no key, no version, no cancel.
	for _, form := range []struct {
		path string
		vals url.Values
	}{
		{"/admin/keys", url.Values{"purpose": {"access"}}},
		{"/admin/flows", url.Values{"source": {strings.Replace(opsGoodFlow, "world", "forged", 1)}}},
		{"/admin/instances/" + leave2 + "/cancel", url.Values{}},
	} {
		for _, token := range []string{"", strings.Repeat("A", 43)} {
			if token != "" {
				form.vals.Set("csrf_token", token)
			}
			if code := postStatus(t, ops, base+form.path, form.vals); code != http.StatusForbidden {
				t.Errorf("POST %s with CSRF token %q: %d, want 403", form.path, token, code)
			}
		}
	}
	if kids := jwksKids(t, base); len(kids) != len(before) {
		t.Errorf("forged rotations changed the JWKS: %v, was %v", kids, before)
	}
	if st := e.instance(t, leave2, "waiting")["status"]; st != "waiting" {
		t.Errorf("after a forged cancel the instance is %v", st)
	}
	if code, page := getPage(t, ops, base+"/admin/flows/greet"); code != http.StatusOK || strings.Contains(page, "forged") || !strings.Contains(page, "Version 2 (latest)") {
		t.Errorf("after a forged deploy greet's page: %d\n%s", code, page)
	}
	p = e.open(t, ctx, base+"/admin/keys")
	browser.CheckPage(t, ctx, "/admin/keys")
	p = e.click(t, ctx, `button[value="access"]`)
	m := regexp.MustCompile(`The new key (\S+) signs`).FindStringSubmatch(p.text)
	if p.url.Path != "/admin/keys" || m == nil {
		t.Fatalf("after rotating: %s\n%s", p.url, p.text)
	}
	after := jwksKids(t, base)
	if !strings.Contains(strings.Join(after, " "), m[1]) || strings.Contains(strings.Join(before, " "), m[1]) || len(after) != len(before)+1 {
		t.Errorf("JWKS before %v, after %v; want the new key %s added", before, after, m[1])
	}
	if !strings.Contains(p.text, "retiring") {
		t.Errorf("the keys page shows no retiring key:\n%s", p.text)
	}

	// The audit log has each change, made by the admin, filtered by
	// event and outcome; a bad filter is named at its field.
	p = e.open(t, ctx, base+"/admin/audit?event=api_switch.changed&user=&outcome=success")
	if p.status != http.StatusOK || strings.Count(p.text, "workflow=off") != 1 || strings.Count(p.text, "workflow=on") != 1 {
		t.Errorf("the audit log of switches: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/admin/audit")
	for event, want := range map[string]string{"keys.rotated": "access key " + m[1], "flow.deployed": "flow greet version 2", "instance.cancelled": "instance " + leave1} {
		p = e.open(t, ctx, base+"/admin/audit?event="+event)
		if !strings.Contains(p.text, want) {
			t.Errorf("the audit log of %s has no %q:\n%s", event, want, p.text)
		}
	}
	p = e.open(t, ctx, base+"/admin/audit?since=yesterday&outcome=maybe")
	if p.status != http.StatusBadRequest || !strings.Contains(p.text, "since must be an RFC 3339 time") || !strings.Contains(p.text, `outcome "maybe" is neither`) {
		t.Errorf("a bad audit filter: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/admin/audit with errors")

	// The dashboard counts what was done. The audit log is written in
	// batches, so wait for the sign-ins to arrive.
	want := map[string]string{"running": "0", "waiting": "1", "failed": "1", "tasks": "1", "overdue": "0", "signins": "3", "signin-failures": "1"}
	var got map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		got = dashboardStats(t, ops, base)
		if fmt.Sprint(got) == fmt.Sprint(want) || time.Now().After(deadline) {
			break
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("dashboard numbers %v, want %v", got, want)
	}
	p = e.open(t, ctx, base+"/admin")
	if !strings.Contains(p.text, doomed) {
		t.Errorf("the dashboard's recent failures lack %s:\n%s", doomed, p.text)
	}
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href="/instances/`+doomed+`"]').length`)); err != nil || n != 1 {
		t.Errorf("links to the failed instance: %d (%v)", n, err)
	}
	// Today's row of the per-day table: completed, failed, cancelled,
	// in progress, total.
	row, err := chromedp.Run(ctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('#per-day-table tbody tr:last-child td')).map(td => td.textContent).join(',')`))
	if err != nil || row != "0,1,1,1,3" {
		t.Errorf("today's instances by outcome: %q (%v), want 0,1,1,1,3", row, err)
	}
	svg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[...document.querySelectorAll('svg[role="img"]')].map(s => s.querySelector('title').textContent + ':' + s.querySelectorAll('rect').length).join('|')`))
	if err != nil || !strings.Contains(svg, "Instances started per day") || !strings.Contains(svg, ":3|") {
		t.Errorf("the charts: %q (%v)", svg, err)
	}
	browser.CheckPage(t, ctx, "/admin")

	// Paging: 50 instances a page, the next page's link keeps the filter
	// and together the pages hold every instance of the flow once.
	all := map[string]bool{leave1: true, leave2: true}
	for range 50 {
		all[e.startInstance(t, "leave")] = true
	}
	seen := map[string]bool{}
	idRE := regexp.MustCompile(`href="/instances/([0-9a-f-]+)"`)
	next, pages := "/admin/instances?flow=leave", 0
	for next != "" && pages < 5 {
		code, page := getPage(t, ops, base+next)
		if code != http.StatusOK {
			t.Fatalf("%s: %d", next, code)
		}
		pages++
		for _, m := range idRE.FindAllStringSubmatch(page, -1) {
			if seen[m[1]] {
				t.Errorf("instance %s on two pages", m[1])
			}
			seen[m[1]] = true
		}
		next = ""
		if m := regexp.MustCompile(`<a href="([^"]+)">Next page</a>`).FindStringSubmatch(page); m != nil {
			next = strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.Contains(next, "flow=leave") {
				t.Errorf("the next page's link %s lost the filter", next)
			}
		}
	}
	if pages != 2 || len(seen) != len(all) {
		t.Errorf("%d pages listed %d instances, want 2 pages and %d", pages, len(seen), len(all))
	}
	for id := range all {
		if !seen[id] {
			t.Errorf("instance %s on no page", id)
		}
	}
}
