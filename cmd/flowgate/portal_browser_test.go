package main

// The work portal, end to end: the real binary and a real headless
// Chromium. An employee starts a flow through the API; the approver signs
// in through /login, finds the task on / and /tasks, sends its form with a
// bad value (the engine's message next to the field, nothing saved), then
// with a good one, and the instance completes. Every page is checked with
// axe-core at a phone's and a desktop's width, and a task form posted
// without the browser's CSRF token is refused.

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
)

const (
	portalAlicePassword = "alice-password-1"
	portalBobPassword   = "bob-password-1"
	// portalApprover is a long address as username: pages that show it
	// must wrap it on a phone.
	portalApprover = "bartholomew.approver-of-expenses@finance.example.com"
)

const portalFlow = `
name: leave
title: Leave request
permissions: {start: ["role:employee"]}
steps:
  - id: review
    type: task
    title: Review the leave request
    assignees: ["role:approver"]
    actions: [Approve, Reject]
    form:
      days: {type: integer, required: true, description: "Working days granted"}
      comment: {type: string, description: "Shown to the employee"}
  - id: done
    type: return
    body: {days: "${{ vars.days }}", comment: "${{ vars.comment }}"}
`

func newPortalEnv(t *testing.T) *connectEnv {
	t.Helper()
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fdir, "leave.yaml"), []byte(portalFlow), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: alice
    password: %q
    roles: [employee]
  - username: %q
    password: %q
    roles: [approver]
apis:
  basic_auth: true
flows: %s
`, e.dbPath, portalAlicePassword, portalApprover, portalBobPassword, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey},
		"--config", cfg, "--public-url", e.base)
	return e
}

// taskStatus reads the task through the API as alice's approver.
func (e *connectEnv) taskStatus(t *testing.T, serial int64) string {
	t.Helper()
	code, body, raw := e.api(t, http.MethodGet, fmt.Sprintf("/api/v1/tasks/%d", serial), portalApprover, portalBobPassword, nil)
	if code != http.StatusOK {
		t.Fatalf("task %d: %d %s", serial, code, raw)
	}
	return body["status"].(string)
}

func TestBrowserWorkPortal(t *testing.T) {
	e := newPortalEnv(t)

	// Not signed in: every page sends the browser to the sign-in page,
	// which returns to the page asked for.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, p := range []string{"/", "/tasks", "/tasks/1"} {
		resp, err := noFollow.Get(e.base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if want := "/login?return_to=" + url.QueryEscape(p); resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != want {
			t.Fatalf("GET %s signed out: %d to %q, want 302 to %q", p, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}

	code, body, raw := e.api(t, http.MethodPost, "/api/v1/workflows/leave/instances", "alice", portalAlicePassword, map[string]any{})
	if code != http.StatusCreated && code != http.StatusAccepted {
		t.Fatalf("start: %d %s", code, raw)
	}
	id, _ := body["id"].(string)
	if id == "" {
		t.Fatalf("start: no instance id in %s", raw)
	}
	code, body, raw = e.api(t, http.MethodGet, "/api/v1/tasks", portalApprover, portalBobPassword, nil)
	items, _ := body["items"].([]any)
	if code != http.StatusOK || len(items) != 1 {
		t.Fatalf("the approver's tasks: %d %s", code, raw)
	}
	serial := int64(items[0].(map[string]any)["serial"].(float64))
	taskPath := fmt.Sprintf("/tasks/%d", serial)

	ctx := browser.New(t)
	p := e.open(t, ctx, e.base+"/tasks")
	if p.url.Path != "/login" || p.url.Query().Get("return_to") != "/tasks" {
		t.Fatalf("/tasks signed out landed on %s", p.url)
	}
	p = e.signIn(t, ctx, portalApprover, portalBobPassword)
	if p.url.Path != "/tasks" || p.title != "My tasks" || !strings.Contains(p.text, "Review the leave request") {
		t.Fatalf("after sign-in: %s %q\n%s", p.url, p.title, p.text)
	}
	browser.CheckPage(t, ctx, "/tasks")

	p = e.open(t, ctx, e.base+"/")
	if p.status != http.StatusOK || !strings.Contains(p.text, "Review the leave request") || !strings.Contains(p.text, portalApprover) {
		t.Fatalf("home: %d\n%s", p.status, p.text)
	}
	browser.CheckPage(t, ctx, "/")

	p = e.click(t, ctx, `main a[href="`+taskPath+`"]`)
	if p.url.Path != taskPath || p.title != "Review the leave request" {
		t.Fatalf("the task link led to %s %q", p.url, p.title)
	}
	browser.CheckPage(t, ctx, taskPath)

	// A fraction where an integer is wanted: the engine's message next
	// to the field, what was typed kept, the task still open.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.CSS("#f-days"), "1.5"),
		chromedp.SendKeys(chromedp.CSS("#f-comment"), "enjoy"),
	); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `button[value="Approve"]`)
	if p.status != http.StatusBadRequest || p.url.Path != taskPath {
		t.Fatalf("a bad value: %d at %s\n%s", p.status, p.url, p.text)
	}
	fieldErr, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById(document.getElementById('f-days').getAttribute('aria-describedby')) || {}).textContent || ''`))
	if err != nil || fieldErr != "want integer, got 1.5" {
		t.Fatalf("the days field's error: %q (%v)\n%s", fieldErr, err, p.text)
	}
	kept, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('f-days').value + '|' + document.getElementById('f-comment').value`))
	if err != nil || kept != "1.5|enjoy" {
		t.Fatalf("the form kept %q (%v), want what was typed", kept, err)
	}
	browser.CheckPage(t, ctx, taskPath+" with an error")
	if s := e.taskStatus(t, serial); s != "open" {
		t.Fatalf("after a refused form the task is %s", s)
	}

	// A form posted without the browser's CSRF token, or with another,
	// is refused and changes nothing, though the session is valid.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: noFollow.CheckRedirect}
	cookieSignIn(t, c, e.base, portalApprover, portalBobPassword)
	for name, token := range map[string]string{"missing": "", "forged": strings.Repeat("A", 43)} {
		form := url.Values{"action": {"Approve"}, "days": {"3"}}
		if token != "" {
			form.Set("csrf_token", token)
		}
		resp, err := c.PostForm(e.base+taskPath, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s CSRF token: %d, want 403", name, resp.StatusCode)
		}
	}
	if s := e.taskStatus(t, serial); s != "open" {
		t.Fatalf("after forged posts the task is %s", s)
	}

	// The starter sees her instance on her home page, and the task, not
	// hers to act on, is a 404 page in the layout.
	aliceJar, _ := cookiejar.New(nil)
	alice := &http.Client{Jar: aliceJar, CheckRedirect: noFollow.CheckRedirect}
	cookieSignIn(t, alice, e.base, "alice", portalAlicePassword)
	if code, page := getPage(t, alice, e.base+"/"); code != http.StatusOK || !strings.Contains(page, id) || !strings.Contains(page, "Leave request") {
		t.Errorf("alice's home page: %d, want her instance %s and the flow she may start\n%s", code, id, page)
	}
	if code, page := getPage(t, alice, e.base+taskPath); code != http.StatusNotFound || !strings.Contains(page, "<h1>Not found</h1>") || !strings.Contains(page, `action="/logout"`) {
		t.Errorf("another's task: %d, want the 404 page in the layout\n%s", code, page)
	}

	// The page's own headers.
	resp, err := c.Get(e.base + taskPath)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if resp.StatusCode != http.StatusOK || !strings.Contains(csp, "style-src 'self'") || strings.Contains(csp, "unsafe-inline") ||
		resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") == "" {
		t.Errorf("task page headers: %d %v", resp.StatusCode, resp.Header)
	}

	if err := chromedp.Do(ctx, chromedp.Clear(chromedp.CSS("#f-days")), chromedp.SendKeys(chromedp.CSS("#f-days"), "3")); err != nil {
		t.Fatal(err)
	}
	p = e.click(t, ctx, `button[value="Approve"]`)
	if p.url.Path != "/tasks" || !strings.Contains(p.text, fmt.Sprintf("Task %d is done", serial)) || strings.Contains(p.text, "Review the leave request") {
		t.Fatalf("after approving: %s\n%s", p.url, p.text)
	}
	inst := e.instance(t, id, "completed", "failed", "cancelled")
	out, _ := inst["output"].(map[string]any)
	ob, _ := out["body"].(map[string]any)
	if inst["status"] != "completed" || ob["days"] != float64(3) || ob["comment"] != "enjoy" {
		t.Fatalf("the instance: %v", inst)
	}

	// The stylesheet: one file, cacheable, revalidated by its ETag.
	resp, err = http.Get(e.base + "/assets/flowgate.css")
	if err != nil {
		t.Fatal(err)
	}
	css, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") || etag == "" || len(css) == 0 {
		t.Fatalf("the stylesheet: %d %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest(http.MethodGet, e.base+"/assets/flowgate.css", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("the stylesheet with its ETag: %d, want 304", resp.StatusCode)
	}
}

// getPage reads a page with a signed-in client.
func getPage(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// cookieSignIn signs in through /login with a plain HTTP client.
func cookieSignIn(t *testing.T, c *http.Client, base, user, pass string) {
	t.Helper()
	resp, err := c.Get(base + "/login?return_to=%2F")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the login page:\n%s", page)
	}
	resp, err = c.PostForm(base+"/login", url.Values{"csrf_token": {string(m[1])}, "return_to": {"/"}, "username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("signing in %s: %d", user, resp.StatusCode)
	}
}
