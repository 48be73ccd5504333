package web

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/flowgate/flowgate/internal/store"
)

// Every operation page renders with data of the shape its handler gives
// it, escapes what it shows, and its forms carry the CSRF token.
func TestAdminOperationPagesRender(t *testing.T) {
	rd, err := newRenderer()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 14, 15, 0, 0, 0, time.UTC)
	day := now.Truncate(24 * time.Hour)
	failed := store.Instance{ID: "i-<1>", Workflow: "doomed", Version: 1, Status: store.StatusFailed, StartedBy: "user:alice", StartedAt: now, EndedAt: now, Error: "it <went> wrong"}
	waiting := store.Instance{ID: "i-2", Workflow: "leave", Version: 2, Status: store.StatusWaiting, CurrentStep: "review", StartedBy: "user:alice", StartedAt: now}
	dash := dashboardPage{Instances: store.InstanceTotals{Running: 1, Waiting: 2, Failed: 3}, OpenTasks: 4, SignIns: 5, SignInFailures: 6,
		Failures: []store.Instance{failed}, DayStart: day, Generated: now,
		PerDay: newChart("per-day", "Per day", day.Add(-13*24*time.Hour), 14, 24*time.Hour, "Jan 2", instanceSeries(),
			[]store.Bucket{{Start: day, Key: store.StatusFailed, Count: 3}, {Start: day, Key: store.StatusWaiting, Count: 2}}),
		PerHour: newChart("per-hour", "Per hour", now.Add(-23*time.Hour), 24, time.Hour, "15:04", instanceSeries(), nil)}
	fv := store.FlowVersion{Name: "greet", Version: 2, Title: "Say <hello>", Source: []byte("name: greet\n"), DeployedBy: "user:ops", DeployedAt: now}
	ap := &auditPage{Query: map[string]string{"event": "keys.rotated", "outcome": "failure"}, Errors: map[string]string{}, Events: []string{"keys.rotated"},
		Fields: []auditField{{Name: "since", Label: "Since", Value: "x", Error: "since must be <a time>"}},
		Rows:   []store.AuditEvent{{Time: now, Event: "keys.rotated", User: "ops", Outcome: "success", Detail: "access key <k>"}}, Next: "c1"}
	for name, tc := range map[string]struct {
		page string
		data any
		want []string
	}{
		"dashboard": {"admin-dashboard", dash, []string{`<dd id="stat-waiting">2</dd>`, `<dd id="stat-signin-failures">6</dd>`, `href="/instances/i-%3c1%3e"`,
			`it &lt;went&gt; wrong`, `<svg role="img" aria-labelledby="per-day-t"`, `<td>0</td><td>3</td><td>0</td><td>2</td><td>5</td>`}},
		"flows": {"admin-flows", flowsPage{Flows: []store.FlowVersion{fv}, Next: "n1", Source: "name: <x>", SourceError: "not deployed:", Problems: []string{"line 5:3: bad"}},
			[]string{`href="/flows/greet"`, `name: &lt;x&gt;</textarea>`, `aria-describedby="e-source"`, `<li>line 5:3: bad</li>`, `enctype="multipart/form-data"`}},
		"flow": {"admin-flow", flowPage{Flow: fv, Latest: 2, Versions: []store.FlowVersion{fv}},
			[]string{`href="/admin/flows/greet/export?version=2"`, `Say &lt;hello&gt;`, "name: greet\n</pre>"}},
		"instances": {"admin-instances", &instancesPage{Flow: "leave", Status: "waiting", Statuses: instanceStatuses(), Instances: []store.Instance{waiting, failed}, Next: "n2"},
			[]string{`action="/admin/instances/i-2/cancel"`, `href="/admin/instances?cursor=n2&amp;flow=leave&amp;status=waiting"`, `<option value="waiting" selected>`}},
		"apis":  {"admin-apis", switchesPage(map[string]bool{"workflow": true, "invoke": false}), []string{`id="sw-invoke" name="invoke" aria`, `id="sw-workflow" name="workflow" checked`}},
		"audit": {"admin-audit", ap, []string{`since must be &lt;a time&gt;`, `<option selected>keys.rotated</option>`, `<option selected>failure</option>`}},
		"keys": {"admin-keys", struct{ Keys []keyRow }{[]keyRow{{ID: "k1", Purpose: "access", Alg: "ES256", CreatedAt: now}, {ID: "k0", Purpose: "id", Alg: "RS256", CreatedAt: now, RetireAfter: now}}},
			[]string{"<code>k1</code>", "retiring", `value="access"`}},
	} {
		var buf bytes.Buffer
		if err := rd.pages[tc.page].ExecuteTemplate(&buf, "layout", view{Title: "T", User: "ops", CSRF: "tok", Nav: "admin", Admin: true, Data: tc.data}); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		html := buf.String()
		for _, w := range tc.want {
			if !strings.Contains(html, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, html)
			}
		}
		if strings.Count(html, "<form") != strings.Count(html, `name="csrf_token" value="tok"`)+strings.Count(html, `method="get"`) {
			t.Errorf("%s: a POST form without the CSRF token:\n%s", name, html)
		}
		if strings.Contains(html, " style=") {
			t.Errorf("%s has an inline style, which the CSP blocks", name)
		}
	}
}

// A chart stacks each bucket's series in order from the baseline, the
// tallest bar filling the plot; counts outside the window are left out.
func TestNewChart(t *testing.T) {
	since := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	c := newChart("c", "T", since, 3, day, "Jan 2", instanceSeries(), []store.Bucket{
		{Start: since.Add(-day), Key: store.StatusCompleted, Count: 9}, // before the window
		{Start: since, Key: store.StatusCompleted, Count: 2},
		{Start: since, Key: store.StatusWaiting, Count: 1},
		{Start: since, Key: store.StatusRunning, Count: 1},
		{Start: since.Add(2 * day), Key: store.StatusFailed, Count: 2},
		{Start: since.Add(3 * day), Key: store.StatusFailed, Count: 5}, // after it
	})
	if c.Max != 4 || len(c.Bars) != 3 || c.Bars[0].Total != 4 || c.Bars[1].Total != 0 || c.Bars[2].Total != 2 {
		t.Fatalf("bars %+v, max %d", c.Bars, c.Max)
	}
	if got := c.Bars[0].Values; got[0] != 2 || got[3] != 2 || c.Bars[0].Label != "Mar 1" {
		t.Errorf("first bar %+v", c.Bars[0])
	}
	plotH := float64(chartH - chartTop - chartBottom)
	if len(c.Rects) != 3 {
		t.Fatalf("rects %+v", c.Rects)
	}
	first, second := c.Rects[0], c.Rects[1]
	if first.Class != "s-ok" || first.H != plotH/2 || first.Y+first.H != float64(chartH-chartBottom) ||
		second.Class != "s-open" || second.Y+second.H != first.Y || second.Y != float64(chartTop) {
		t.Errorf("the first bar's stack: %+v %+v", first, second)
	}
	if c.Rects[2].Class != "s-failed" || c.Rects[2].H != plotH/2 || c.Rects[2].X <= first.X {
		t.Errorf("the third bar: %+v", c.Rects[2])
	}
	// An empty chart still has its days and a scale.
	if e := newChart("e", "T", since, 14, day, "Jan 2", instanceSeries(), nil); len(e.Bars) != 14 || len(e.Rects) != 0 || e.Max != 0 || len(e.XLabels) == 0 {
		t.Errorf("empty chart %+v", e)
	}
}
