package flowdiagram

import (
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/flowgate/flowgate/internal/flow"
)

func expense(t *testing.T) *flow.Definition {
	t.Helper()
	src, err := os.ReadFile("../../examples/expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def, err := flow.Parse(src, "expense-approval.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return def
}

func edge(l *Layout, from, to string) (Edge, bool) {
	for _, e := range l.Edges {
		if e.From == from && e.To == to {
			return e, true
		}
	}
	return Edge{}, false
}

// Every way on of the definition is an arrow with what leads there as
// its label: switch cases (their condition) and default, task actions,
// next and the step that follows in the list.
func TestEdgesAndLabels(t *testing.T) {
	l := New(expense(t), Marks{})
	for _, c := range []struct{ from, to, label string }{
		{"check", "invalid", "input.amount <= 0"},
		{"check", "approve", "input.amount > 500"},
		{"check", "auto-approved", "otherwise"},
		{"approve", "approved", "Approve"},
		{"approve", "rejected", "Reject"},
		{"auto-approved", "connect", ""},
		{"approved", "connect", ""},
		{"connect", "connected", ""},
		{"filed", "done", "steps.file.output.status == 201"},
	} {
		e, ok := edge(l, c.from, c.to)
		if !ok {
			t.Errorf("no arrow %s → %s", c.from, c.to)
			continue
		}
		if e.Label != c.label {
			t.Errorf("arrow %s → %s labelled %q, want %q", c.from, c.to, e.Label, c.label)
		}
		if len(e.Points) < 2 {
			t.Errorf("arrow %s → %s has no line: %v", c.from, c.to, e.Points)
		}
	}
	// return and fail end the instance: no arrow leaves them, and no
	// step falls off the list, so there is no end box.
	for _, e := range l.Edges {
		if e.From == "done" || e.From == "invalid" || e.To == End {
			t.Errorf("unexpected arrow %s → %s", e.From, e.To)
		}
	}
	if len(l.Nodes) != len(expense(t).Steps) {
		t.Errorf("%d boxes, want one per step (%d)", len(l.Nodes), len(expense(t).Steps))
	}
	// Rows follow the way through the flow: a step is below every step
	// that leads to it (loops aside), and no two boxes overlap.
	rowOf := map[string]int{}
	for _, nd := range l.Nodes {
		rowOf[nd.ID] = nd.Row
	}
	for _, e := range l.Edges {
		if !e.Back && rowOf[e.To] <= rowOf[e.From] {
			t.Errorf("%s (row %d) is not below %s (row %d)", e.To, rowOf[e.To], e.From, rowOf[e.From])
		}
	}
	for i, a := range l.Nodes {
		for _, b := range l.Nodes[i+1:] {
			if a.X < b.X+boxW && b.X < a.X+boxW && a.Y < b.Y+boxH && b.Y < a.Y+boxH {
				t.Errorf("%s and %s overlap", a.ID, b.ID)
			}
		}
		if a.X < 0 || a.Y < 0 || a.X+boxW > l.Width || a.Y+boxH > l.Height {
			t.Errorf("%s lies outside the picture", a.ID)
		}
	}
}

// An instance's path marks its steps and arrows; the current and the
// failed step are marked as such, in the SVG too.
func TestMarks(t *testing.T) {
	l := New(expense(t), Marks{Path: []string{"check", "approve", "rejected"}, Current: "approve", Failed: "rejected"})
	marked := map[string]Node{}
	for _, nd := range l.Nodes {
		marked[nd.ID] = nd
	}
	if !marked["check"].Taken || !marked["approve"].Taken || marked["auto-approved"].Taken {
		t.Errorf("taken steps wrong: %+v", marked)
	}
	if !marked["approve"].Current || !marked["rejected"].Failed || marked["check"].Current {
		t.Errorf("current/failed marks wrong: %+v", marked)
	}
	if e, _ := edge(l, "check", "approve"); !e.Taken {
		t.Error("check → approve is not marked taken")
	}
	if e, _ := edge(l, "check", "invalid"); e.Taken {
		t.Error("check → invalid is marked taken")
	}
	svg := string(l.SVG("d1"))
	for _, want := range []string{
		`<g class="node taken" data-step="check">`,
		`<g class="node taken current" data-step="approve">`,
		`<g class="node terminal taken failed" data-step="rejected">`,
		`<g class="edge taken" data-from="check" data-to="approve">`,
		`<g class="edge" data-from="check" data-to="invalid">`,
		`marker-end="url(#d1-arrow-taken)"`,
		`role="img" aria-labelledby="d1-title d1-desc"`,
		`<text class="edge-label"`,
		`>Approve</text>`,
		`input.amount &gt; 500`,
	} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %s", want)
		}
	}
	if regexp.MustCompile(`\sstyle=`).MatchString(svg) {
		t.Error("SVG has an inline style attribute, which the pages' CSP refuses")
	}
	if d := l.Describe(); !strings.Contains(d, "approve is current") || !strings.Contains(d, "rejected failed") {
		t.Errorf("description lacks the marks: %s", d)
	}
}

// A loop is drawn as an arrow back up beside the boxes, and a step
// falling off the end of the list leads to an end box marked when the
// instance completed that way.
func TestLoopAndEnd(t *testing.T) {
	def, err := flow.Parse([]byte(`name: loop
steps:
  - id: ask
    type: task
    title: Ask
    assignees: ["user:bob"]
    actions: [Again, Stop]
    next: {Again: ask-more, Stop: after}
  - id: ask-more
    type: set
    vars: {n: 1}
    next: ask
  - id: after
    type: set
    vars: {n: 2}
`), "loop.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := New(def, Marks{Path: []string{"ask", "ask-more", "ask", "after"}, Completed: true})
	back, ok := edge(l, "ask-more", "ask")
	if !ok || !back.Back || !back.Taken {
		t.Errorf("loop arrow: %+v %v", back, ok)
	}
	if len(back.Points) != 6 || back.Points[2][0] >= l.Nodes[0].X {
		t.Errorf("loop arrow not in a lane left of the boxes: %v", back.Points)
	}
	if stop, _ := edge(l, "ask", "after"); stop.Label != "Stop" || !stop.Taken {
		t.Errorf("arrow of the action Stop: %+v", stop)
	}
	end, ok := edge(l, "after", End)
	if !ok || !end.Taken {
		t.Errorf("arrow to the end: %+v %v", end, ok)
	}
	if last := l.Nodes[len(l.Nodes)-1]; last.ID != End || !last.Taken {
		t.Errorf("end box: %+v", last)
	}
	if os.Getenv("FLOWDIAGRAM_WRITE") != "" {
		_ = os.WriteFile("/tmp/loop.svg", []byte(l.SVG("x")), 0o644)
		_ = os.WriteFile("/tmp/expense.svg", []byte(New(expense(t), Marks{Path: []string{"check", "approve"}, Current: "approve"}).SVG("x")), 0o644)
	}
}

// Below the first row a step sits under the step that leads to it, not
// in list order, so that the arrows of two branches do not cross.
func TestBranchesDoNotCross(t *testing.T) {
	def, err := flow.Parse([]byte(`name: branches
steps:
  - id: s
    type: switch
    cases:
      - when: "${{ true }}"
        next: p
    default: q
  - id: p
    type: set
    vars: {a: 1}
    next: pp
  - id: q
    type: set
    vars: {a: 2}
    next: qq
  - id: qq
    type: return
  - id: pp
    type: return
`), "branches.yaml")
	if err != nil {
		t.Fatal(err)
	}
	x := map[string]int{}
	for _, nd := range New(def, Marks{}).Nodes {
		x[nd.ID] = nd.X
	}
	if !(x["p"] < x["q"]) || !(x["pp"] < x["qq"]) {
		t.Fatalf("p, q, pp, qq at x %d, %d, %d, %d: want pp under p, left of qq under q", x["p"], x["q"], x["pp"], x["qq"])
	}
}
