package main

// Deadlines and schedules on the pages, end to end: the real binary and
// headless Chromium. A task started with a due time in the past is marked
// overdue in words on /tasks and on its page, and counted on the /admin
// dashboard, and marked on the home page; a task due later is not. A flow with a schedule lists its
// next runs on its page; one without has no such section.

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flowgate/flowgate/internal/testutil/browser"
)

const deadlinePassword = "deadline-password-1"

const deadlineFlow = `
name: claim
title: Expense claim
permissions: {start: ["role:employee"]}
input:
  deadline: {type: string, required: true}
  what: {type: string, required: true}
steps:
  - id: review
    type: task
    title: "Review ${{ input.what }}"
    assignees: ["role:employee"]
    actions: [Approve]
    due: "${{ input.deadline }}"
  - id: done
    type: return
    body: {ok: true}
`

const scheduledFlow = `
name: report
title: Weekday report
permissions: {start: ["role:employee"]}
triggers:
  - schedule: "0 7 * * MON-FRI"
    timezone: Europe/Amsterdam
steps:
  - id: done
    type: return
    body: {ok: true}
`

func TestBrowserDeadlinesAndSchedules(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	e := &connectEnv{base: "http://" + addr, dbPath: filepath.Join(dir, "flowgate.db"), seen: map[string][]byte{}, dbCopies: map[string][]byte{}}
	fdir := filepath.Join(dir, "flows")
	if err := os.MkdirAll(fdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"claim.yaml": deadlineFlow, "report.yaml": scheduledFlow} {
		if err := os.WriteFile(filepath.Join(fdir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "flowgate.yaml")
	text := fmt.Sprintf(`
database: "sqlite:%s"
users:
  - username: ada
    password: %q
    roles: [employee, admin]
apis:
  basic_auth: true
flows: %s
`, e.dbPath, deadlinePassword, fdir)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	e.srv = startServeAt(t, dir, addr, []string{"FLOWGATE_SECRET_KEY=" + durableKey}, "--config", cfg, "--public-url", e.base)

	past := time.Now().Add(-2 * time.Hour).UTC().Format(time.RFC3339)
	future := time.Now().Add(72 * time.Hour).UTC().Format(time.RFC3339)
	serials := map[string]int64{}
	for what, due := range map[string]string{"late taxi": past, "hotel": future} {
		code, _, raw := e.api(t, http.MethodPost, "/api/v1/workflows/claim/instances", "ada", deadlinePassword,
			map[string]any{"deadline": due, "what": what})
		if code != http.StatusCreated && code != http.StatusAccepted {
			t.Fatalf("start %s: %d %s", what, code, raw)
		}
	}
	code, body, raw := e.api(t, http.MethodGet, "/api/v1/tasks", "ada", deadlinePassword, nil)
	items, _ := body["items"].([]any)
	if code != http.StatusOK || len(items) != 2 {
		t.Fatalf("ada's tasks: %d %s", code, raw)
	}
	for _, it := range items {
		m := it.(map[string]any)
		serials[m["title"].(string)] = int64(m["serial"].(float64))
	}

	ctx := browser.New(t)
	e.open(t, ctx, e.base+"/login?return_to=%2Ftasks")
	p := e.signIn(t, ctx, "ada", deadlinePassword)
	if p.url.Path != "/tasks" {
		t.Fatalf("after sign-in: %s", p.url)
	}
	// Each task's line: the overdue one says so in words, with its due
	// time in a <time> element; the other only says when it is due.
	lines, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('main li')].map(li => li.textContent + '|' + li.querySelectorAll('time').length + '|' + li.querySelectorAll('.overdue').length)`))
	if err != nil {
		t.Fatal(err)
	}
	var late, later string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "Review late taxi"):
			late = l
		case strings.Contains(l, "Review hotel"):
			later = l
		}
	}
	if !strings.Contains(late, "Overdue: was due") || !strings.HasSuffix(late, "|2|1") {
		t.Fatalf("the overdue task's line: %q", late)
	}
	if strings.Contains(later, "Overdue") || !strings.Contains(later, "· due") || !strings.HasSuffix(later, "|2|0") {
		t.Fatalf("the task due later: %q", later)
	}
	browser.CheckPage(t, ctx, "/tasks with an overdue task")

	// The home page's short list marks it too.
	p = e.open(t, ctx, e.base+"/")
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('main li .overdue').length`)); err != nil || n != 1 {
		t.Fatalf("overdue marks on the home page: %d (%v)\n%s", n, err, p.text)
	}
	browser.CheckPage(t, ctx, "/ with an overdue task")

	p = e.open(t, ctx, fmt.Sprintf("%s/tasks/%d", e.base, serials["Review late taxi"]))
	if !strings.Contains(p.text, "Overdue: was due") {
		t.Fatalf("the overdue task's page: %s", p.text)
	}
	browser.CheckPage(t, ctx, "/tasks/{serial} overdue")
	p = e.open(t, ctx, fmt.Sprintf("%s/tasks/%d", e.base, serials["Review hotel"]))
	if strings.Contains(p.text, "Overdue") || !strings.Contains(p.text, "· due ") {
		t.Fatalf("the page of the task due later: %s", p.text)
	}

	p = e.open(t, ctx, e.base+"/admin")
	overdue, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-overdue")))
	if err != nil || overdue != "1" {
		t.Fatalf("dashboard overdue count %q (%v):\n%s", overdue, err, p.text)
	}
	open, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#stat-tasks")))
	if err != nil || open != "2" {
		t.Fatalf("dashboard open count %q (%v)", open, err)
	}
	browser.CheckPage(t, ctx, "/admin with an overdue task")

	// The scheduled flow lists its next five runs, weekdays at 7:00 in
	// Amsterdam; the other flow has no such section.
	p = e.open(t, ctx, e.base+"/flows/report")
	if !strings.Contains(p.text, "Next scheduled runs") || !strings.Contains(p.text, "0 7 * * MON-FRI (Europe/Amsterdam)") {
		t.Fatalf("the scheduled flow's page: %s", p.text)
	}
	times, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('ul[aria-labelledby="h-runs-0"] time')].map(t => t.getAttribute('datetime'))`))
	if err != nil || len(times) != 5 {
		t.Fatalf("next runs %v (%v), want 5", times, err)
	}
	ams, err := time.LoadLocation("Europe/Amsterdam")
	if err != nil {
		t.Fatal(err)
	}
	prev := time.Now().Add(-time.Minute)
	for _, s := range times {
		at, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatalf("next run %q: %v", s, err)
		}
		local := at.In(ams)
		if !at.After(prev) || local.Hour() != 7 || local.Minute() != 0 || local.Weekday() == time.Saturday || local.Weekday() == time.Sunday {
			t.Fatalf("next runs %v: %s is not a later weekday 7:00 in Amsterdam", times, local)
		}
		prev = at
	}
	browser.CheckPage(t, ctx, "/flows/{name} with a schedule")
	p = e.open(t, ctx, e.base+"/flows/claim")
	if p.status != 0 && p.status != http.StatusOK || strings.Contains(p.text, "Next scheduled runs") {
		t.Fatalf("the unscheduled flow's page: %d %s", p.status, p.text)
	}
}
